/* The CPU backend: oneDNN engine and stream, pooled host memory, interned layouts, the primitive cache,
 * reorders, and dispatch of nodes to the per-op files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/cpu.h"

int cpu_dnnl_fail(cpu_backend *be, const char *op, const char *call, dnnl_status_t st, const char *file,
                  int line) {
    static const char *const names[] = {"success", "out of memory", "invalid arguments", "unimplemented",
                                        "iterator ends", "runtime error", "not required"};
    const char *why = (unsigned)st < sizeof names / sizeof *names ? names[st] : "unknown status";
    nb_raise(be->base.ctx, file, line, op, "oneDNN call %s failed: %s", call, why);
    return -1;
}

/* ---- memory ---- */

#define HUGE_PAGE (2u << 20)

static void *sys_alloc(void *user, size_t bytes) {
    (void)user;
    if (bytes >= HUGE_PAGE && !getenv("NB_NO_THP")) {
        /* activations and their gradients: ask for transparent huge pages, which spares the convolution
         * kernels most of their TLB misses (where the kernel allows THP only on request) */
        size_t rounded = (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
        void *p = aligned_alloc(HUGE_PAGE, rounded);
        if (p) madvise(p, rounded, MADV_HUGEPAGE);
        return p;
    }
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static void sys_free(void *user, void *p) {
    (void)user;
    free(p);
}

static void *cpu_alloc(nb_backend *be, size_t bytes) { return nb_pool_get(&cpu_of(be)->pool, bytes); }
static void cpu_release(nb_backend *be, void *p, size_t bytes) { nb_pool_put(&cpu_of(be)->pool, p, bytes); }

static int cpu_upload(nb_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    memcpy(dst, src, bytes);
    return 0;
}

static int cpu_download(nb_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    memcpy(dst, src, bytes);
    return 0;
}

static void cpu_mem_stats(nb_backend *be, nb_mem_stats *out) { *out = cpu_of(be)->pool.stats; }

/* ---- layouts ---- */

static dnnl_data_type_t dnnl_type(nb_dtype t) {
    switch (t) {
    case NB_F32: return dnnl_f32;
    case NB_I8: return dnnl_s8;
    case NB_U8: return dnnl_u8;
    case NB_I32: return dnnl_s32;
    case NB_BF16: return dnnl_bf16;
    default: return dnnl_data_type_undef;
    }
}

static void dims_of(const nb_tensor *t, dnnl_dims_t dims, int *nd) {
    if (t->ndim == 0) {
        dims[0] = 1;
        *nd = 1;
        return;
    }
    for (int i = 0; i < t->ndim; i++) dims[i] = t->shape[i];
    *nd = t->ndim;
}

void cpu_md_plain(const nb_tensor *t, dnnl_memory_desc_t *md) {
    dnnl_dims_t dims, strides;
    int nd;
    dims_of(t, dims, &nd);
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_strides(md, nd, dims, dnnl_type(t->dtype), strides);
}

void cpu_md_any(const nb_tensor *t, dnnl_memory_desc_t *md) {
    dnnl_dims_t dims;
    int nd;
    dims_of(t, dims, &nd);
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_tag(md, nd, dims, dnnl_type(t->dtype), dnnl_format_tag_any);
}

const dnnl_memory_desc_t *cpu_layout_md(cpu_backend *be, int layout) {
    NB_ASSERT(layout > 0 && layout < be->n_layouts);
    return &be->layouts[layout];
}

int cpu_md(cpu_backend *be, const nb_tensor *t, dnnl_memory_desc_t *md) {
    if (t->layout != NB_LAYOUT_PLAIN) {
        *md = *cpu_layout_md(be, t->layout);
        return 0;
    }
    if (dnnl_type(t->dtype) == dnnl_data_type_undef) {
        NB_FAIL(be->base.ctx, "cpu", "dtype %s of %s has no oneDNN equivalent", nb_dtype_name(t->dtype),
                NB_SHAPE(t));
        return -1;
    }
    dnnl_dims_t dims, strides;
    int nd;
    dims_of(t, dims, &nd);
    for (int i = 0; i < nd; i++) strides[i] = t->ndim ? t->stride[i] : 1;
    memset(md, 0, sizeof *md);
    dnnl_memory_desc_init_by_strides(md, nd, dims, dnnl_type(t->dtype), strides);
    return 0;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t md_hash(const dnnl_memory_desc_t *md) {
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(&md->ndims, sizeof md->ndims, h);
    h = fnv(md->dims, sizeof(md->dims[0]) * (size_t)md->ndims, h);
    h = fnv(&md->data_type, sizeof md->data_type, h);
    h = fnv(&md->format_kind, sizeof md->format_kind, h);
    if (md->format_kind == dnnl_blocked) {
        const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
        h = fnv(b->strides, sizeof(b->strides[0]) * (size_t)md->ndims, h);
        h = fnv(&b->inner_nblks, sizeof b->inner_nblks, h);
        h = fnv(b->inner_blks, sizeof(b->inner_blks[0]) * (size_t)b->inner_nblks, h);
        h = fnv(b->inner_idxs, sizeof(b->inner_idxs[0]) * (size_t)b->inner_nblks, h);
    }
    return h;
}

int cpu_intern(cpu_backend *be, const dnnl_memory_desc_t *md, const nb_tensor *for_shape) {
    if (for_shape) {
        dnnl_memory_desc_t plain;
        cpu_md_plain(for_shape, &plain);
        if (dnnl_memory_desc_equal(&plain, md)) return NB_LAYOUT_PLAIN;
    }
    uint64_t h = md_hash(md);
    for (int i = 1; i < be->n_layouts; i++)
        if (be->layout_hash[i] == h && dnnl_memory_desc_equal(&be->layouts[i], md)) return i;
    if (be->n_layouts == be->cap_layouts) {
        be->cap_layouts = be->cap_layouts ? be->cap_layouts * 2 : 64;
        be->layouts = nb_xrealloc(be->layouts, sizeof *be->layouts * (size_t)be->cap_layouts);
        be->layout_hash = nb_xrealloc(be->layout_hash, sizeof *be->layout_hash * (size_t)be->cap_layouts);
    }
    if (be->n_layouts == 0) be->n_layouts = 1; /* slot 0 is the plain layout */
    int id = be->n_layouts++;
    be->layouts[id] = *md;
    be->layout_hash[id] = h;
    return id;
}

static size_t cpu_layout_bytes(nb_backend *b, const nb_tensor *t) {
    return dnnl_memory_desc_get_size(cpu_layout_md(cpu_of(b), t->layout));
}

int64_t cpu_phys_len(const nb_tensor *t) {
    if (t->layout == NB_LAYOUT_PLAIN) return nb_numel(t);
    return (int64_t)(t->storage->bytes / nb_dtype_size(t->dtype));
}

int cpu_layout_as(nb_backend *b, int layout, nb_dtype dtype) {
    if (layout == NB_LAYOUT_PLAIN) return NB_LAYOUT_PLAIN;
    cpu_backend *be = cpu_of(b);
    const dnnl_memory_desc_t *own = cpu_layout_md(be, layout);
    if (own->data_type == dnnl_type(dtype)) return layout; /* the common case: every allocation asks */
    dnnl_memory_desc_t md = *own;
    if (md.format_kind != dnnl_blocked || dnnl_type(dtype) == dnnl_data_type_undef) {
        NB_FAIL(b->ctx, "cast", "layout %d cannot hold %s", layout, nb_dtype_name(dtype));
        return -1;
    }
    /* the blocking (dims, block sizes, strides in elements) stays; only the element type changes. A layout
     * with oneDNN's extra compensation data (int8 weights) is not blocked plainly and was refused above. */
    md.data_type = dnnl_type(dtype);
    return cpu_intern(be, &md, NULL);
}

nb_tensor *cpu_new(cpu_backend *be, nb_dtype dt, int ndim, const int64_t *shape, int layout) {
    nb_tensor *t = nb_tensor_header(be->base.ctx, dt, ndim, shape);
    if (!t) return NULL;
    if (nb_tensor_alloc(t, layout) != 0) {
        nb_release(t);
        return NULL;
    }
    return t;
}

/* ---- primitive cache ---- */

void cpu_key_init(cpu_key *k, int op, int phase) {
    k->len = 0;
    cpu_key_add(k, &op, sizeof op);
    cpu_key_add(k, &phase, sizeof phase);
}

void cpu_key_add(cpu_key *k, const void *p, size_t n) {
    NB_ASSERT(k->len + n <= sizeof k->buf);
    memcpy(k->buf + k->len, p, n);
    k->len += n;
}

void cpu_key_tensor(cpu_key *k, const nb_tensor *t) {
    if (!t) {
        int none = -1;
        cpu_key_add(k, &none, sizeof none);
        return;
    }
    int head[3] = {t->ndim, (int)t->dtype, t->layout};
    cpu_key_add(k, head, sizeof head);
    cpu_key_add(k, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    if (t->layout == NB_LAYOUT_PLAIN) cpu_key_add(k, t->stride, sizeof(int64_t) * (size_t)t->ndim);
}

static uint64_t key_hash(const cpu_key *k) { return fnv(k->buf, k->len, 0xcbf29ce484222325ULL) | 1; }

cpu_prim *cpu_cache_find(cpu_backend *be, const cpu_key *k) {
    if (!be->cache_cap) return NULL;
    uint64_t h = key_hash(k);
    for (size_t i = h & (be->cache_cap - 1);; i = (i + 1) & (be->cache_cap - 1)) {
        cpu_cache_slot *s = &be->cache[i];
        if (!s->hash) return NULL;
        if (s->hash == h && s->key_len == k->len && !memcmp(s->key, k->buf, k->len)) return s->prim;
    }
}

static void cache_insert(cpu_backend *be, uint64_t h, unsigned char *key, size_t len, cpu_prim *p) {
    for (size_t i = h & (be->cache_cap - 1);; i = (i + 1) & (be->cache_cap - 1)) {
        cpu_cache_slot *s = &be->cache[i];
        if (!s->hash) {
            *s = (cpu_cache_slot){.hash = h, .key_len = len, .key = key, .prim = p};
            be->cache_n++;
            return;
        }
    }
}

static void cache_put(cpu_backend *be, const cpu_key *k, cpu_prim *p) {
    if ((be->cache_n + 1) * 2 > be->cache_cap) {
        cpu_cache_slot *old = be->cache;
        size_t old_cap = be->cache_cap;
        be->cache_cap = old_cap ? old_cap * 2 : 256;
        be->cache = nb_xcalloc(be->cache_cap, sizeof *be->cache);
        be->cache_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].hash) cache_insert(be, old[i].hash, old[i].key, old[i].key_len, old[i].prim);
        free(old);
    }
    unsigned char *key = nb_xmalloc(k->len);
    memcpy(key, k->buf, k->len);
    cache_insert(be, key_hash(k), key, k->len, p);
}

static void prim_free(cpu_prim *p) {
    for (int i = 0; i < p->nargs; i++) dnnl_memory_destroy(p->mem[i]);
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    dnnl_primitive_destroy(p->prim);
    dnnl_primitive_desc_destroy(p->pd);
    free(p);
}

void cpu_cache_free(cpu_backend *be) {
    for (size_t i = 0; i < be->cache_cap; i++) {
        if (!be->cache[i].hash) continue;
        prim_free(be->cache[i].prim);
        free(be->cache[i].key);
    }
    free(be->cache);
    be->cache = NULL;
    be->cache_cap = be->cache_n = 0;
}

cpu_prim *cpu_prim_make(cpu_backend *be, const cpu_key *k, dnnl_primitive_desc_t pd, const int *args, int nargs,
                        const nb_tensor *const *shape_of) {
    NB_ASSERT(nargs <= CPU_MAX_ARGS);
    cpu_prim *p = nb_xcalloc(1, sizeof *p);
    p->pd = pd;
    if (dnnl_primitive_create(&p->prim, pd) != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        free(p);
        NB_FAIL(be->base.ctx, "cpu", "oneDNN could not create a primitive");
        return NULL;
    }
    p->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        p->arg[i] = args[i];
        dnnl_memory_create(&p->mem[i], md, be->engine, DNNL_MEMORY_NONE);
        p->layout[i] = shape_of && shape_of[i] ? cpu_intern(be, md, shape_of[i]) : cpu_intern(be, md, NULL);
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (sbytes) {
        if (sbytes > be->scratch_bytes) {
            free(be->scratch);
            be->scratch = sys_alloc(NULL, sbytes);
            be->scratch_bytes = sbytes;
        }
        dnnl_memory_create(&p->scratch, smd, be->engine, DNNL_MEMORY_NONE);
    }
    cache_put(be, k, p);
    return p;
}

int cpu_prim_run(cpu_backend *be, cpu_prim *p, void *const *handles, const char *op) {
    dnnl_exec_arg_t args[CPU_MAX_ARGS + 1];
    int n = 0;
    for (int i = 0; i < p->nargs; i++) {
        if (!handles[i]) continue;
        dnnl_memory_set_data_handle_v2(p->mem[i], handles[i], be->stream);
        args[n++] = (dnnl_exec_arg_t){p->arg[i], p->mem[i]};
    }
    if (p->scratch) {
        dnnl_memory_set_data_handle_v2(p->scratch, be->scratch, be->stream);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
    }
    CPU_DNNL(be, op, dnnl_primitive_execute(p->prim, be->stream, n, args));
    CPU_DNNL(be, op, dnnl_stream_wait(be->stream));
    return 0;
}

/* ---- reorders ---- */

static void strided_copy(const nb_tensor *dst, const nb_tensor *src) {
    size_t es = nb_dtype_size(src->dtype);
    int nd = src->ndim;
    int64_t n = nb_numel(src);
    if (n == 0) return;
    char *d = nb_data(dst);
    const char *s = nb_data(src);
    if (nb_is_contiguous(dst) && nb_is_contiguous(src)) {
        memcpy(d, s, (size_t)n * es);
        return;
    }
    /* innermost dimension as the copy unit, the rest enumerated by a flat index */
    int64_t inner = nd ? src->shape[nd - 1] : 1, outer = n / inner;
    int64_t sst = nd ? src->stride[nd - 1] : 1, dst_st = nd ? dst->stride[nd - 1] : 1;
#pragma omp parallel for schedule(static) if (n > CPU_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        int64_t rem = o, so = 0, doff = 0;
        for (int k = nd - 2; k >= 0; k--) {
            int64_t idx = rem % src->shape[k];
            rem /= src->shape[k];
            so += idx * src->stride[k];
            doff += idx * dst->stride[k];
        }
        if (sst == 1 && dst_st == 1) {
            memcpy(d + doff * (int64_t)es, s + so * (int64_t)es, (size_t)inner * es);
        } else {
            for (int64_t i = 0; i < inner; i++)
                memcpy(d + (doff + i * dst_st) * (int64_t)es, s + (so + i * sst) * (int64_t)es, es);
        }
    }
}

int cpu_relayout(nb_backend *b, nb_tensor *dst, const nb_tensor *src) {
    cpu_backend *be = cpu_of(b);
    nb_ctx *ctx = b->ctx;
    bool cast = dst->dtype != src->dtype;
    NB_REQUIRE(ctx, nb_same_shape(dst, src) && (!cast || (nb_dtype_is_float(dst->dtype) && nb_dtype_is_float(src->dtype))),
               -1, "relayout", "cannot copy %s into %s", NB_SHAPE(src), NB_SHAPE(dst));
    void *d = nb_data(dst), *s = nb_data(src);
    if (!d || !s) return -1;
    /* a copy between types (f32 <-> bf16) is a oneDNN reorder, which converts as it moves */
    if (!cast && dst->layout == NB_LAYOUT_PLAIN && src->layout == NB_LAYOUT_PLAIN) {
        strided_copy(dst, src);
        return 0;
    }
    if (!cast && dst->layout == src->layout) {
        memcpy(d, s, dst->storage->bytes < src->storage->bytes ? dst->storage->bytes : src->storage->bytes);
        return 0;
    }
    cpu_key k;
    cpu_key_init(&k, NB_OP_RELAYOUT, PHASE_REORDER);
    cpu_key_tensor(&k, src);
    cpu_key_tensor(&k, dst);
    cpu_prim *p = cpu_cache_find(be, &k);
    if (!p) {
        dnnl_memory_desc_t smd, dmd;
        if (cpu_md(be, src, &smd) || cpu_md(be, dst, &dmd)) return -1;
        /* grouped-convolution weights carry 5-D (g, O/g, I/g, kh, kw) layouts over a 4-D tensor:
         * view the plain side in the same 5-D form (only a plain contiguous tensor can be viewed so) */
        if (smd.ndims != dmd.ndims) {
            dnnl_memory_desc_t *plain = src->layout == NB_LAYOUT_PLAIN ? &smd : &dmd;
            const dnnl_memory_desc_t *other = plain == &smd ? &dmd : &smd;
            const nb_tensor *pt = plain == &smd ? src : dst;
            dnnl_memory_desc_t r;
            NB_REQUIRE(ctx, nb_is_contiguous(pt), -1, "relayout", "cannot reorder strided %s into a grouped layout",
                       NB_SHAPE(pt));
            CPU_DNNL(be, "relayout", dnnl_memory_desc_reshape(&r, plain, other->ndims, other->dims));
            *plain = r;
        }
        dnnl_primitive_desc_t pd;
        CPU_DNNL(be, "relayout", dnnl_reorder_primitive_desc_create(&pd, &smd, be->engine, &dmd, be->engine, be->attr));
        const nb_tensor *shapes[2] = {src, dst};
        p = cpu_prim_make(be, &k, pd, (int[]){DNNL_ARG_FROM, DNNL_ARG_TO}, 2, shapes);
        if (!p) return -1;
    }
    return cpu_prim_run(be, p, (void *[]){s, d}, "relayout");
}

nb_tensor *cpu_as_layout(cpu_backend *be, nb_tensor *t, int layout, bool *owned) {
    *owned = false;
    if (t->layout == layout && (layout != NB_LAYOUT_PLAIN || nb_is_contiguous(t))) return t;
    nb_tensor *c = cpu_new(be, t->dtype, t->ndim, t->shape, layout);
    if (!c) return NULL;
    if (cpu_relayout(&be->base, c, t) != 0) {
        nb_release(c);
        return NULL;
    }
    *owned = true;
    return c;
}

static int cpu_activation_layout(nb_backend *b, const nb_tensor *t) {
    if (t->ndim != 4 || t->dtype != NB_F32) return NB_LAYOUT_PLAIN;
    /* ask a 3x3 convolution producing this shape which destination layout it picks */
    dnnl_dims_t d = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
    dnnl_dims_t wd = {t->shape[1], t->shape[1], 3, 3}, st = {1, 1}, dil = {0, 0}, pad = {1, 1};
    dnnl_memory_desc_t xmd, wmd, ymd;
    memset(&xmd, 0, sizeof xmd);
    memset(&wmd, 0, sizeof wmd);
    dnnl_memory_desc_init_by_tag(&xmd, 4, d, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any);
    ymd = xmd;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;
    if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &xmd, &wmd,
                                                   NULL, &ymd, st, dil, pad, pad) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, cpu_of(b)->attr, cpu_of(b)->engine, NULL) != dnnl_success)
        return NB_LAYOUT_PLAIN;
    int id = cpu_intern(cpu_of(b), dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), t);
    dnnl_primitive_desc_destroy(pd);
    return id;
}

/* ---- dispatch: one kernel table over core/op_table.h's ops ---- */

typedef struct {
    int (*forward)(cpu_backend *be, nb_node *n);
    int (*backward)(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
} cpu_kernel;

#define ELTWISE {cpu_eltwise_forward, cpu_eltwise_backward}
#define POOL {cpu_pool_forward, cpu_pool_backward}
#define POINTWISE {cpu_pointwise_forward, cpu_pointwise_backward}
#define SHAPE {cpu_shape_forward, cpu_shape_backward}
#define LOSS {cpu_loss_forward, cpu_loss_backward}
/* ops of impl KERNEL; views are the core's, unary ops go to cpu_unary */
static const cpu_kernel cpu_kernels[NB_OP_COUNT] = {
    [NB_OP_CONV2D] = {cpu_conv_forward, cpu_conv_backward},
    [NB_OP_LINEAR] = {cpu_linear_forward, cpu_linear_backward},
    [NB_OP_BATCHNORM2D] = {cpu_bn_forward, cpu_bn_backward},
    [NB_OP_RELU] = ELTWISE, [NB_OP_RELU6] = ELTWISE, [NB_OP_LEAKY_RELU] = ELTWISE, [NB_OP_SIGMOID] = ELTWISE,
    [NB_OP_HARDSWISH] = ELTWISE,
    [NB_OP_SILU] = ELTWISE,
    [NB_OP_MAXPOOL2D] = POOL, [NB_OP_AVGPOOL2D] = POOL, [NB_OP_GLOBAL_AVGPOOL] = POOL,
    [NB_OP_ADD] = POINTWISE, [NB_OP_SCALE] = POINTWISE, [NB_OP_DROPOUT] = POINTWISE,
    [NB_OP_MUL_CHANNEL] = SHAPE, [NB_OP_CHANNEL_SHUFFLE] = SHAPE,
    [NB_OP_SOFTMAX] = LOSS, [NB_OP_LOG_SOFTMAX] = LOSS, [NB_OP_CROSS_ENTROPY] = LOSS, [NB_OP_KL_DIV] = LOSS,
    [NB_OP_SMOOTH_L1] = LOSS, [NB_OP_MSE] = LOSS,
    [NB_OP_MULTIBOX] = {cpu_multibox_forward, cpu_multibox_backward},
    [NB_OP_FAKE_QUANT] = {cpu_fake_quant_forward, cpu_fake_quant_backward},
};

static bool cpu_supports(nb_backend *b, nb_op op) {
    (void)b;
    return (unsigned)op < NB_OP_COUNT && (cpu_kernels[op].forward || cpu_unary_supports(op));
}

static int cpu_forward(nb_backend *b, nb_node *n) { return cpu_kernels[n->op].forward(cpu_of(b), n); }

static int cpu_backward(nb_backend *b, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    return cpu_kernels[n->op].backward(cpu_of(b), n, gout, gin);
}

static void cpu_destroy(nb_backend *b) {
    cpu_backend *be = cpu_of(b);
    cpu_cache_free(be);
    free(be->layouts);
    free(be->layout_hash);
    free(be->scratch);
    nb_pool_destroy(&be->pool);
    dnnl_primitive_attr_destroy(be->attr);
    dnnl_stream_destroy(be->stream);
    dnnl_engine_destroy(be->engine);
    free(be);
}

nb_backend *nb_cpu_backend_new(nb_ctx *ctx) {
    cpu_backend *be = nb_xcalloc(1, sizeof *be);
    be->base = (nb_backend){
        .name = "cpu",
        .device = NB_DEVICE_CPU,
        .ctx = ctx,
        .destroy = cpu_destroy,
        .alloc = cpu_alloc,
        .release = cpu_release,
        .upload = cpu_upload,
        .download = cpu_download,
        .mem_stats = cpu_mem_stats,
        .layout_bytes = cpu_layout_bytes,
        .relayout = cpu_relayout,
        .activation_layout = cpu_activation_layout,
        .layout_as = cpu_layout_as,
        .lowp_supports = cpu_lowp_supports,
        .lowp_native = cpu_lowp_native,
        .supports = cpu_supports,
        .forward = cpu_forward,
        .backward = cpu_backward,
        .unary = cpu_unary,
        .fill = cpu_fill,
        .axpby = cpu_axpby,
        .mul = cpu_mul,
        .sum_squares = cpu_sum_squares,
        .rng_fill = cpu_rng_fill,
        .sgd_step = cpu_sgd_step,
        .adam_step = cpu_adam_step,
        .counter_add = cpu_counter_add,
        .sum_abs = cpu_sum_abs,
        .sign_codes = cpu_sign_codes,
        .abs_mul_add = cpu_abs_mul_add,
        .range = cpu_range,
        .bn_fold = cpu_bn_fold,
    };
    if (dnnl_engine_create(&be->engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&be->stream, be->engine, dnnl_stream_default_flags) != dnnl_success ||
        dnnl_primitive_attr_create(&be->attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(be->attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        NB_FAIL(ctx, "cpu", "could not start oneDNN's CPU engine");
        free(be);
        return NULL;
    }
    nb_pool_init(&be->pool, sys_alloc, sys_free, NULL);
    const char *impl = getenv("NB_CPU_CONV");
    be->reference_conv = impl && !strcmp(impl, "reference");
    be->n_layouts = 1;
    be->cap_layouts = 64;
    be->layouts = nb_xcalloc((size_t)be->cap_layouts, sizeof *be->layouts);
    be->layout_hash = nb_xcalloc((size_t)be->cap_layouts, sizeof *be->layout_hash);
    return &be->base;
}
