/* The engine's contracts: determinism, a malloc-free steady state, early release of saved activations,
 * no-grad mode, the walkable tape, views without copies, gradient accumulation, in-place detection. */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/backend.h"
#include "core/rng.h"
#include "optim/optim.h"
#include "tests/support/testutil.h"

/* Count the allocations made from nibble's own code (linked with --wrap; oneDNN's internals are not). */
static long n_mallocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n) {
    n_mallocs++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s) {
    n_mallocs++;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n) {
    n_mallocs++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    n_mallocs++;
    return __real_aligned_alloc(a, n);
}

typedef struct {
    nb_tensor *p[8];
    nb_tensor *x, *labels;
    nb_optim *opt;
} net;

/* conv-BN-ReLU-maxpool, conv-BN-ReLU, global pool, dropout, linear: the op mix of a real step */
static void net_init(nb_ctx *ctx, net *n, uint64_t seed) {
    int64_t shapes[8][4] = {{8, 3, 3, 3}, {8}, {8}, {12, 8, 3, 3}, {12}, {12}, {5, 12}, {5}};
    int nd[8] = {4, 1, 1, 4, 1, 1, 2, 1};
    const char *names[8] = {"c1.w", "bn1.w", "bn1.b", "c2.w", "bn2.w", "bn2.b", "fc.w", "fc.b"};
    for (int i = 0; i < 8; i++) {
        n->p[i] = nb_tensor_new(ctx, NB_F32, nd[i], shapes[i]);
        if (nd[i] > 1) tu_randn(n->p[i], seed + (uint64_t)i);
        else nb_fill(n->p[i], i % 3 == 1 ? 1.0 : 0.0);
        nb_set_name(n->p[i], names[i]);
        nb_set_requires_grad(n->p[i], true);
    }
    n->x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){6, 3, 12, 12});
    tu_randn(n->x, seed + 100);
    int64_t lab[6] = {0, 1, 2, 3, 4, 0};
    n->labels = nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){6}, lab);
    nb_optim_config cfg = {.kind = NB_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f};
    n->opt = nb_optim_new(ctx, &cfg, n->p, 8);
}

static float net_step(nb_ctx *ctx, net *n) {
    size_t mark = nb_scope_begin(ctx);
    nb_bn_attr bn = {.momentum = 0.1f, .training = 1};
    nb_tensor *h = nb_conv2d(n->x, n->p[0], NULL, (nb_conv_attr){.pad = {1, 1}});
    h = nb_maxpool2d(nb_relu(nb_batchnorm2d(h, n->p[1], n->p[2], NULL, NULL, bn)), (nb_pool_attr){.kernel = {2, 2}});
    h = nb_conv2d(h, n->p[3], NULL, (nb_conv_attr){.pad = {1, 1}});
    h = nb_relu(nb_batchnorm2d(h, n->p[4], n->p[5], NULL, NULL, bn));
    h = nb_dropout(nb_flatten(nb_global_avgpool(h)), 0.2f, 1);
    nb_tensor *loss = nb_cross_entropy(nb_linear(h, n->p[6], n->p[7]), n->labels, 0.1f);
    assert_non_null(loss);
    float v = nb_item(loss);
    nb_optim_zero_grad(n->opt);
    assert_int_equal(nb_backward(loss, NULL), 0);
    assert_int_equal(nb_optim_step(n->opt), 0);
    nb_scope_end(ctx, mark);
    return v;
}

static void net_free(net *n) {
    nb_optim_free(n->opt);
    for (int i = 0; i < 8; i++) nb_release(n->p[i]);
    nb_release(n->x);
    nb_release(n->labels);
}

static void run_steps(int threads, float *losses, float *params_out) {
    omp_set_num_threads(threads);
    nb_ctx *ctx = tu_ctx();
    nb_ctx_seed(ctx, 7, 0);
    net n;
    net_init(ctx, &n, 11);
    for (int s = 0; s < 5; s++) losses[s] = net_step(ctx, &n);
    nb_tensor_to_host(n.p[3], params_out, sizeof(float) * 12 * 8 * 9);
    net_free(&n);
    nb_ctx_free(ctx);
}

static void test_determinism(void **st) {
    (void)st;
    float l1[5], l2[5], p1[864], p2[864];
    run_steps(2, l1, p1);
    run_steps(2, l2, p2);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(p1, p2, sizeof p1);
    omp_set_num_threads(2);
}

static void test_rng_thread_independent(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    int64_t shape[1] = {100003};
    nb_tensor *a = nb_tensor_new(ctx, NB_F32, 1, shape), *b = nb_tensor_new(ctx, NB_F32, 1, shape);
    omp_set_num_threads(1);
    tu_randn(a, 5);
    omp_set_num_threads(2);
    tu_randn(b, 5);
    float *ha = tu_host(a), *hb = tu_host(b);
    assert_memory_equal(ha, hb, sizeof(float) * 100003);
    /* the stream is not degenerate: mean ~ 0, variance ~ 1 */
    double m = 0, v = 0;
    for (int i = 0; i < 100003; i++) m += ha[i];
    m /= 100003;
    for (int i = 0; i < 100003; i++) v += (ha[i] - m) * (ha[i] - m);
    v /= 100003;
    assert_true(m > -0.02 && m < 0.02);
    assert_true(v > 0.97 && v < 1.03);
    /* independent streams differ */
    tu_rand_uniform(b, 5, 0.0f, 1.0f);
    free(hb);
    hb = tu_host(b);
    for (int i = 0; i < 100; i++) assert_true(hb[i] >= 0.0f && hb[i] < 1.0f);
    free(ha);
    free(hb);
    nb_release(a);
    nb_release(b);
    nb_ctx_free(ctx);
}

static void test_steady_state_malloc_free(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_ctx_seed(ctx, 7, 0);
    net n;
    net_init(ctx, &n, 3);
    for (int s = 0; s < 3; s++) net_step(ctx, &n); /* warm-up: primitives, pool blocks, free lists */
    nb_mem_stats before, after;
    nb_mem_stats_get(ctx, &before);
    long m0 = n_mallocs;
    uint64_t h0 = ctx->header_allocs;
    for (int s = 0; s < 5; s++) net_step(ctx, &n);
    nb_mem_stats_get(ctx, &after);
    assert_int_equal(after.sys_allocs, before.sys_allocs);
    assert_true(after.pool_hits > before.pool_hits);
    assert_int_equal(ctx->header_allocs, h0);
    if (n_mallocs != m0) fail_msg("%ld allocations from nibble code in 5 steady-state steps", n_mallocs - m0);
    net_free(&n);
    nb_ctx_free(ctx);
}

static void test_saved_activations_released(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){2, 4, 6, 6});
    nb_tensor *w = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){4, 4, 3, 3});
    tu_randn(x, 1);
    tu_randn(w, 2);
    nb_set_requires_grad(w, true);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *y = nb_conv2d(x, w, NULL, (nb_conv_attr){.pad = {1, 1}});
    nb_tensor *z = nb_relu(y);
    nb_tensor *kept = nb_relu(z);
    kept->keep = true;
    nb_tensor *loss = nb_mse(nb_flatten(kept), nb_flatten(nb_scale(kept, 0.0f)));
    nb_mem_stats s0, s1;
    nb_mem_stats_get(ctx, &s0);
    assert_int_equal(nb_backward(loss, NULL), 0);
    nb_mem_stats_get(ctx, &s1);
    assert_true(y->data_released); /* consumed by backward */
    assert_false(kept->data_released);
    assert_true(s1.bytes_in_use < s0.bytes_in_use);
    assert_non_null(w->grad);
    assert_int_equal(nb_tape_size(ctx), 0);
    /* reading released data is an error that says why, not a crash */
    float buf[288];
    assert_int_not_equal(nb_tensor_to_host(y, buf, sizeof buf), 0);
    tu_expect_error(ctx, "released");
    nb_scope_end(ctx, mark);
    nb_release(x);
    nb_release(w);
    nb_ctx_free(ctx);
}

static void test_no_grad_and_tape(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){1, 3, 8, 8});
    nb_tensor *w = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){4, 3, 3, 3});
    nb_tensor *fw = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){2, 64});
    tu_randn(x, 1);
    tu_randn(w, 2);
    tu_randn(fw, 3);
    nb_set_requires_grad(w, true);
    size_t mark = nb_scope_begin(ctx);
    bool prev = nb_set_grad_enabled(ctx, false);
    nb_tensor *y = nb_relu(nb_conv2d(x, w, NULL, (nb_conv_attr){.stride = {2, 2}, .pad = {1, 1}}));
    assert_non_null(y);
    assert_false(y->requires_grad);
    assert_int_equal(nb_tape_size(ctx), 0);
    nb_set_grad_enabled(ctx, prev);
    /* recording for inspection: every op lands on the tape with its kind, attributes and shapes */
    nb_set_record_all(ctx, true);
    nb_set_scope_name(ctx, "stem");
    nb_tensor *h = nb_relu(nb_conv2d(x, w, NULL, (nb_conv_attr){.stride = {2, 2}, .pad = {1, 1}}));
    nb_tensor *o = nb_linear(nb_flatten(h), fw, NULL);
    assert_non_null(o);
    nb_set_record_all(ctx, false);
    size_t n = nb_tape_size(ctx);
    assert_true(n >= 4);
    const nb_node *c = nb_tape_node(ctx, 0);
    assert_int_equal(c->op, NB_OP_CONV2D);
    assert_int_equal(c->attr.conv.stride[0], 2);
    assert_string_equal(c->scope, "stem");
    assert_int_equal(nb_node_macs(c), 4 * 4 * 4 * 3 * 3 * 3);
    const nb_node *last = nb_tape_node(ctx, n - 1);
    assert_int_equal(last->op, NB_OP_LINEAR);
    assert_int_equal(nb_node_macs(last), 2 * 64);
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    nb_release(w);
    nb_release(fw);
    nb_ctx_free(ctx);
}

static void test_views_share_storage(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = (float)i;
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){1, 6, 2, 2}, v);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *r = nb_reshape(x, 2, (int64_t[]){6, -1});
    assert_ptr_equal(r->storage, x->storage);
    nb_tensor *s = nb_slice(x, 1, 2, 3);
    assert_ptr_equal(s->storage, x->storage);
    assert_false(nb_is_contiguous(s) && s->shape[0] > 1);
    float out[12];
    assert_int_equal(nb_tensor_to_host(s, out, sizeof out), 0);
    for (int i = 0; i < 12; i++) assert_true(out[i] == (float)(8 + i));
    nb_scope_end(ctx, mark);
    nb_release(x);
    nb_ctx_free(ctx);
}

static void test_grad_accumulates(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){4});
    nb_fill(x, 1.5);
    nb_set_requires_grad(x, true);
    size_t mark = nb_scope_begin(ctx);
    /* x used three times: x + 2x, then times 3 */
    nb_tensor *y = nb_scale(nb_add_scaled(x, 1.0f, nb_scale(x, 2.0f), 1.0f), 3.0f);
    nb_tensor *t = nb_tensor_new(ctx, NB_F32, 1, (int64_t[]){4});
    assert_int_equal(nb_backward(nb_mse(y, t), NULL), 0);
    /* d/dx mean((9x)^2) = 2 * 81 x / 4 */
    float g[4];
    nb_tensor_to_host(x->grad, g, sizeof g);
    for (int i = 0; i < 4; i++) assert_true(g[i] > 60.74f && g[i] < 60.76f);
    /* a second backward adds to the leaf's gradient */
    y = nb_scale(x, 2.0f);
    assert_int_equal(nb_backward(nb_mse(y, t), NULL), 0);
    nb_tensor_to_host(x->grad, g, sizeof g);
    for (int i = 0; i < 4; i++) assert_true(g[i] > 60.75f + 2.9f && g[i] < 60.75f + 3.1f);
    nb_scope_end(ctx, mark);
    nb_release(t);
    nb_release(x);
    nb_ctx_free(ctx);
}

static void test_inplace_detected(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){2, 3});
    nb_tensor *w = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){4, 3});
    tu_randn(x, 1);
    tu_randn(w, 2);
    nb_set_requires_grad(w, true);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *y = nb_linear(x, w, NULL);
    float v[6] = {0};
    nb_tensor_copy_from_host(x, v, sizeof v); /* x is needed for dL/dw */
    nb_tensor *t = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){2, 4});
    assert_int_not_equal(nb_backward(nb_mse(y, t), NULL), 0);
    tu_expect_error(ctx, "modified in place");
    nb_scope_end(ctx, mark);
    nb_release(t);
    nb_release(x);
    nb_release(w);
    nb_ctx_free(ctx);
}

/* A weight converted to the convolution's preferred layout reads back unchanged, and the optimizer's
 * state follows it; its padding stays zero so blocked arithmetic never leaks into real channels. */
static void test_weight_layout_roundtrip(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){2, 5, 6, 6});
    nb_tensor *w = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){3, 5, 3, 3});
    tu_randn(x, 1);
    tu_randn(w, 2);
    float w0[135], w1[135];
    nb_tensor_to_host(w, w0, sizeof w0);
    nb_set_name(w, "w");
    nb_set_requires_grad(w, true);
    nb_optim_config cfg = {.kind = NB_OPTIM_SGD, .lr = 0.0f, .momentum = 0.9f};
    nb_optim *o = nb_optim_new(ctx, &cfg, &w, 1);
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *y = nb_conv2d(x, w, NULL, (nb_conv_attr){.pad = {1, 1}});
    assert_non_null(y);
    assert_int_equal(nb_backward(nb_mse(nb_flatten(y), nb_flatten(nb_scale(y, 0.5f))), NULL), 0);
    assert_int_equal(nb_optim_step(o), 0);
    nb_scope_end(ctx, mark);
    nb_tensor_to_host(w, w1, sizeof w1);
    assert_memory_equal(w0, w1, sizeof w0); /* lr 0: unchanged content whatever the layout */
    nb_optim_entry e;
    assert_int_equal(nb_optim_state_at(o, 0, &e), 0);
    assert_int_equal(e.tensor->layout, w->layout);
    nb_optim_free(o);
    nb_release(x);
    nb_release(w);
    nb_ctx_free(ctx);
}

/* Dropout cannot match PyTorch's generator; what it must do instead: zero a fraction p, scale the rest by
 * 1/(1-p), use the same mask in backward, repeat exactly for the same (seed, stream), differ for another. */
static void test_dropout_statistics(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    int64_t n = 200000;
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){100, 2000});
    nb_fill(x, 2.0);
    nb_set_requires_grad(x, true);
    float *y1 = malloc(sizeof(float) * (size_t)n), *y2 = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n);
    size_t mark = nb_scope_begin(ctx);
    nb_ctx_seed(ctx, 5, 1);
    nb_tensor *y = nb_dropout(x, 0.3f, 1);
    nb_tensor_to_host(y, y1, sizeof(float) * (size_t)n);
    nb_tensor *gy = nb_tensor_new(ctx, NB_F32, 2, (int64_t[]){100, 2000});
    nb_fill(gy, 1.0);
    assert_int_equal(nb_backward(y, gy), 0);
    nb_tensor_to_host(x->grad, g, sizeof(float) * (size_t)n);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y1[i] == 0.0f) {
            zeros++;
            assert_true(g[i] == 0.0f);
        } else {
            assert_true(fabsf(y1[i] - 2.0f / 0.7f) < 1e-6f);
            assert_true(fabsf(g[i] - 1.0f / 0.7f) < 1e-6f);
        }
    }
    double frac = (double)zeros / (double)n; /* 0.3 +- 5 standard deviations */
    assert_true(fabs(frac - 0.3) < 5 * sqrt(0.3 * 0.7 / (double)n));
    nb_ctx_seed(ctx, 5, 1);
    nb_tensor_to_host(nb_dropout(x, 0.3f, 1), y2, sizeof(float) * (size_t)n);
    assert_memory_equal(y1, y2, sizeof(float) * (size_t)n);
    nb_ctx_seed(ctx, 5, 2);
    nb_tensor_to_host(nb_dropout(x, 0.3f, 1), y2, sizeof(float) * (size_t)n);
    assert_memory_not_equal(y1, y2, sizeof(float) * (size_t)n);
    /* evaluation mode is the identity */
    assert_ptr_equal(nb_dropout(x, 0.3f, 0), x);
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    free(y1);
    free(y2);
    free(g);
    nb_release(gy);
    nb_release(x);
    nb_ctx_free(ctx);
}

int main(void) {
    omp_set_num_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_rng_thread_independent),
        cmocka_unit_test(test_steady_state_malloc_free),
        cmocka_unit_test(test_saved_activations_released),
        cmocka_unit_test(test_no_grad_and_tape),
        cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_grad_accumulates),
        cmocka_unit_test(test_inplace_detected),
        cmocka_unit_test(test_weight_layout_roundtrip),
        cmocka_unit_test(test_dropout_statistics),
    };
    return cmocka_run_group_tests_name("engine contracts", tests, NULL, NULL);
}
