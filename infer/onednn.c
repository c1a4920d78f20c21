/* oneDNN convolution and max pooling of nibble's inference (see onednn.h), oneDNN 2.6's C API: descriptor,
 * primitive descriptor with attributes (output scales, zero points, post-ops), primitive. The weights (integer
 * codes or floats) are reordered once into the layout the convolution chose (with the compensation oneDNN adds
 * for s8 inputs). */
#include "infer/onednn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

struct nb_infer_prim {
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, wei, bias;
    /* an output grid with a zero point (or narrower than 8 bits): oneDNN writes the rounded steps as s32 here
     * and the zero point is added after, on the integers, then clamped to the grid (oneDNN adds a zero point in
     * float before rounding, where 119.499996 becomes 119.5: ONNX Runtime rounds first, and a tie then lands
     * one step away) */
    int32_t *steps;
    int64_t count;
    nb_i8_grid out;
    char impl[64];
};

static dnnl_data_type_t act_type(nb_i8_grid g) { return nb_i8_signed(g) ? dnnl_s8 : dnnl_u8; }

static dnnl_data_type_t dnnl_type(nb_infer_type t) { return t == NB_INFER_F32 ? dnnl_f32 : t == NB_INFER_S8 ? dnnl_s8 : dnnl_u8; }

/* the memory for md with our own buffer (NULL: set before each run) */
static dnnl_memory_t mem(dnnl_engine_t eng, const dnnl_memory_desc_t *md, void *handle) {
    dnnl_memory_t m = NULL;
    if (dnnl_memory_create(&m, md, eng, handle ? handle : DNNL_MEMORY_NONE) != dnnl_success) return NULL;
    return m;
}

static void impl_name(nb_infer_prim *p, const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    snprintf(p->impl, sizeof p->impl, "%s", s ? s : "?");
}

/* weight descriptor (s8 codes or f32): 4-D oihw, or 5-D goihw for a grouped convolution; any: the layout left
 * to oneDNN */
static void weight_md(const nb_infer_conv *s, bool any, dnnl_memory_desc_t *md) {
    dnnl_data_type_t t = s->f32 ? dnnl_f32 : dnnl_s8;
    if (s->groups == 1) {
        dnnl_dims_t d = {s->o, s->c, s->kh, s->kw};
        dnnl_memory_desc_init_by_tag(md, 4, d, t, any ? dnnl_format_tag_any : dnnl_oihw);
    } else {
        dnnl_dims_t d = {s->groups, s->o / s->groups, s->c / s->groups, s->kh, s->kw};
        dnnl_memory_desc_init_by_tag(md, 5, d, t, any ? dnnl_format_tag_any : dnnl_goihw);
    }
}

/* the weights, in the layout pd wants: a reorder from plain (g)oihw */
static dnnl_memory_t weights(dnnl_engine_t eng, dnnl_stream_t st, const nb_infer_conv *s,
                             const dnnl_memory_desc_t *want) {
    dnnl_memory_desc_t plain;
    weight_md(s, false, &plain);
    dnnl_memory_t from = mem(eng, &plain, s->f32 ? (void *)s->weights : (void *)s->codes), to = mem(eng, want, DNNL_MEMORY_ALLOCATE);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    bool ok = from && to && dnnl_reorder_primitive_desc_create(&rpd, &plain, eng, want, eng, NULL) == dnnl_success &&
              dnnl_primitive_create(&r, rpd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(r, st, 2, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success;
    }
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (from) dnnl_memory_destroy(from);
    if (!ok && to) dnnl_memory_destroy(to);
    return ok ? to : NULL;
}

/* The convolution of s (see nb_infer_conv_new), its output zero point (zero_after) applied by the post-ops
 * (fused) or after it on s32 steps; NULL when oneDNN has no such primitive. */
static nb_infer_prim *conv_prim(dnnl_engine_t eng, const nb_infer_conv *s, const float *scales, const int32_t *bias,
                                bool zero_after, bool fused) {
    int64_t O = s->o;
    dnnl_memory_desc_t xmd, wmd, bmd, ymd;
    dnnl_dims_t xd = {s->n, s->c, s->h, s->w}, yd = {s->n, s->o, s->oh, s->ow}, bd = {s->o};
    dnnl_memory_desc_init_by_tag(&xmd, 4, xd, s->f32 ? dnnl_f32 : act_type(s->in), dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&ymd, 4, yd, s->f32 || s->out_float      ? dnnl_f32
                                              : zero_after && !fused ? dnnl_s32
                                                                     : act_type(s->out),
                                 dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&bmd, 1, bd, s->f32 ? dnnl_f32 : dnnl_s32, dnnl_x);
    weight_md(s, true, &wmd);
    dnnl_dims_t strides = {s->stride[0], s->stride[1]}, dil = {s->dilation[0] - 1, s->dilation[1] - 1};
    dnnl_dims_t pl = {s->pad[0], s->pad[1]};
    /* the right and bottom padding that gives the recorded output size */
    dnnl_dims_t pr = {(s->oh - 1) * s->stride[0] + (s->kh - 1) * s->dilation[0] + 1 - s->h - s->pad[0],
                      (s->ow - 1) * s->stride[1] + (s->kw - 1) * s->dilation[1] + 1 - s->w - s->pad[1]};
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_create(&attr);
    if (!s->f32) {
        dnnl_primitive_attr_set_output_scales(attr, O, 1 << 1, scales); /* per output channel (a per-tensor scale repeated) */
        if (s->in.zero) dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, (const int32_t[]){s->in.zero});
    }
    if (s->act != NB_INFER_ACT_NONE || fused) {
        /* after the output scales, in the output's units: a step of the grid (or 1 for float) */
        float six = s->f32 || s->out_float ? 6.0f : 6.0f / s->out.scale;
        dnnl_post_ops_create(&po);
        if (s->act == NB_INFER_ACT_RELU) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        else if (s->act == NB_INFER_ACT_RELU6) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, six);
        if (fused) { /* rounded steps on the grid, then the zero point added to integers */
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_round, 0.0f, 0.0f);
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, (float)(s->out.qmin - s->out.zero),
                                         (float)(s->out.qmax - s->out.zero));
            if (s->out.zero) dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_DST, 1, 0, (const int32_t[]){s->out.zero});
        }
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    nb_infer_prim *p = nb_xcalloc(1, sizeof *p);
    dnnl_stream_t st = NULL;
    bool ok = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &xmd,
                                                         &wmd, s->bias ? &bmd : NULL, &ymd, strides, dil, pl, pr) ==
                  dnnl_success &&
              dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL) == dnnl_success;
    if (ok) {
        impl_name(p, pd);
        ok = dnnl_primitive_create(&p->prim, pd) == dnnl_success && dnnl_stream_create(&st, eng, dnnl_stream_default_flags) == dnnl_success;
    }
    if (ok) {
        p->wei = weights(eng, st, s, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
        p->src = mem(eng, &xmd, NULL);
        p->dst = mem(eng, &ymd, NULL);
        if (s->bias) { /* int32 on the accumulator's grid, or the float bias as it is */
            p->bias = mem(eng, &bmd, DNNL_MEMORY_ALLOCATE);
            void *h = NULL;
            if (p->bias && dnnl_memory_get_data_handle(p->bias, &h) == dnnl_success)
                memcpy(h, bias ? (const void *)bias : (const void *)s->bias, 4 * (size_t)O);
        }
        ok = p->wei && p->src && p->dst && (!s->bias || p->bias);
        if (zero_after && !fused) {
            p->count = s->n * s->o * s->oh * s->ow;
            p->steps = nb_xmalloc(sizeof(int32_t) * (size_t)p->count);
            p->out = s->out;
        }
    }
    if (st) dnnl_stream_destroy(st);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        nb_infer_prim_free(p);
        return NULL;
    }
    return p;
}

nb_infer_prim *nb_infer_conv_new(nb_ctx *ctx, dnnl_engine_t eng, const nb_infer_conv *s, const char *layer) {
    int64_t O = s->o;
    float *scales = s->f32 ? NULL : nb_xmalloc(sizeof(float) * (size_t)O);
    int32_t *bias = s->bias && !s->f32 ? nb_xmalloc(sizeof(int32_t) * (size_t)O) : NULL;
    for (int64_t k = 0; k < O && !s->f32; k++) {
        /* as deploy/onnx_emit.c writes the int32 bias and ONNX Runtime's QLinearConv requantizes: s_x s_w / s_y
         * in float32 */
        float sw = s->in.scale * s->wscale[s->per_channel ? k : 0];
        scales[k] = s->out_float ? sw : sw / s->out.scale;
        if (bias) bias[k] = (int32_t)fmin(fmax(nearbyint((double)s->bias[k] / (double)sw), -2147483648.0), 2147483647.0);
    }
    /* An output zero point, or a grid narrower than the bytes (2 to 7 bits), must come after the rounding: oneDNN
     * adds a zero point in float before it converts, and a value a hair under a half step then rounds the other
     * way (ONNX Runtime rounds first). So the post-ops round (half to even) and clamp to the grid's steps first,
     * and the zero point is added to an integer; where oneDNN refuses that chain, the rounded steps come out as
     * s32 and the zero point is added after, on the integers (the slower way, a pass over 4-byte values). */
    bool narrow = nb_i8_signed(s->out) ? s->out.qmin > -128 || s->out.qmax < 127 : s->out.qmin > 0 || s->out.qmax < 255;
    bool zero_after = !s->f32 && !s->out_float && (s->out.zero != 0 || narrow);
    nb_infer_prim *p = zero_after ? conv_prim(eng, s, scales, bias, true, true) : NULL;
    if (!p) p = conv_prim(eng, s, scales, bias, zero_after, false);
    free(scales);
    free(bias);
    if (!p)
        NB_FAIL(ctx, layer, "oneDNN has no %s convolution for input [%lld, %lld, %lld, %lld] (%s), weight [%lld, %lld, "
                "%lld, %lld], groups %d, output %s", s->f32 ? "float" : "int8", (long long)s->n, (long long)s->c,
                (long long)s->h, (long long)s->w, s->f32 ? "f32" : nb_i8_signed(s->in) ? "s8" : "u8", (long long)s->o,
                (long long)(s->c / s->groups), (long long)s->kh, (long long)s->kw, s->groups,
                s->f32 || s->out_float ? "f32" : nb_i8_signed(s->out) ? "s8" : "u8");
    return p;
}

nb_infer_prim *nb_infer_maxpool_new(nb_ctx *ctx, dnnl_engine_t eng, int64_t n, int64_t c, int64_t h, int64_t w,
                                    int64_t oh, int64_t ow, const int kernel[2], const int stride[2], const int pad[2],
                                    nb_infer_type type, const char *layer) {
    dnnl_memory_desc_t xmd, ymd;
    dnnl_dims_t xd = {n, c, h, w}, yd = {n, c, oh, ow}, k = {kernel[0], kernel[1]}, st = {stride[0], stride[1]};
    dnnl_dims_t pl = {pad[0], pad[1]};
    dnnl_dims_t pr = {(oh - 1) * stride[0] + kernel[0] - h - pad[0], (ow - 1) * stride[1] + kernel[1] - w - pad[1]};
    dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dnnl_type(type), dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_type(type), dnnl_nhwc);
    dnnl_pooling_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    nb_infer_prim *p = nb_xcalloc(1, sizeof *p);
    bool ok = dnnl_pooling_forward_desc_init(&d, dnnl_forward_inference, dnnl_pooling_max, &xmd, &ymd, st, k, pl, pr) ==
                  dnnl_success &&
              dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL) == dnnl_success;
    if (ok) {
        impl_name(p, pd);
        ok = dnnl_primitive_create(&p->prim, pd) == dnnl_success;
        p->src = mem(eng, &xmd, NULL);
        p->dst = mem(eng, &ymd, NULL);
        ok = ok && p->src && p->dst;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        nb_infer_prim_free(p);
        NB_FAIL(ctx, layer, "oneDNN has no %s max pooling for [%lld, %lld, %lld, %lld]", type == NB_INFER_F32 ? "float" : "int8", (long long)n, (long long)c,
                (long long)h, (long long)w);
        return NULL;
    }
    return p;
}

int nb_infer_prim_run(nb_ctx *ctx, nb_infer_prim *p, dnnl_stream_t st, const void *src, void *dst) {
    dnnl_memory_set_data_handle(p->src, (void *)src);
    dnnl_memory_set_data_handle(p->dst, p->steps ? (void *)p->steps : dst);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_DST, p->dst}};
    int n = 2;
    if (p->wei) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, p->wei};
    if (p->bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias};
    NB_REQUIRE(ctx, dnnl_primitive_execute(p->prim, st, n, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success,
               -1, "int8 inference", "a oneDNN primitive (%s) failed to run", p->impl);
    if (p->steps) nb_i8_add_zero(p->steps, p->count, p->out, dst);
    return 0;
}

const char *nb_infer_prim_impl(const nb_infer_prim *p) { return p->impl; }

void nb_infer_prim_free(nb_infer_prim *p) {
    if (!p) return;
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->src) dnnl_memory_destroy(p->src);
    if (p->dst) dnnl_memory_destroy(p->dst);
    if (p->wei) dnnl_memory_destroy(p->wei);
    if (p->bias) dnnl_memory_destroy(p->bias);
    free(p->steps);
    free(p);
}
