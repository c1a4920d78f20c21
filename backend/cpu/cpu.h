/* Internals of the CPU backend: the oneDNN engine and stream, the interned layouts (oneDNN memory
 * descriptors that tensors refer to by number), the primitive cache and the helpers every op file uses. */
#ifndef NB_CPU_H
#define NB_CPU_H

#include <oneapi/dnnl/dnnl.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/backend.h"
#include "core/op_impl.h"
#include "core/pool.h"

#define CPU_MAX_ARGS 12

/* One cached oneDNN primitive with its memory objects; data handles are set at each execution. */
typedef struct cpu_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    int nargs;
    int arg[CPU_MAX_ARGS];
    dnnl_memory_t mem[CPU_MAX_ARGS];
    dnnl_memory_t scratch;
    int layout[CPU_MAX_ARGS]; /* interned layout of each argument (0 when plain contiguous) */
} cpu_prim;

typedef struct {
    uint64_t hash;
    size_t key_len;
    unsigned char *key;
    cpu_prim *prim;
} cpu_cache_slot;

typedef struct {
    unsigned char buf[768];
    size_t len;
} cpu_key;

typedef struct {
    nb_backend base;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_attr_t attr; /* user-managed scratchpad */
    nb_pool pool;

    dnnl_memory_desc_t *layouts; /* index 0 unused: plain */
    uint64_t *layout_hash;
    int n_layouts, cap_layouts;

    cpu_cache_slot *cache;
    size_t cache_cap, cache_n;

    void *scratch;
    size_t scratch_bytes;

    bool reference_conv; /* im2col + sgemm instead of oneDNN (NB_CPU_CONV=reference) */
} cpu_backend;

static inline cpu_backend *cpu_of(nb_backend *be) { return (cpu_backend *)be; }

/* The backend a context runs on (backend/select.c chooses it). */
nb_backend *nb_cpu_backend_new(nb_ctx *ctx);

/* Report a failed oneDNN call with the op name; evaluates to -1. */
int cpu_dnnl_fail(cpu_backend *be, const char *op, const char *call, dnnl_status_t st, const char *file, int line);
#define CPU_DNNL(be, op, call)                                                                                \
    do {                                                                                                       \
        dnnl_status_t st_ = (call);                                                                            \
        if (st_ != dnnl_success) return cpu_dnnl_fail((be), (op), #call, st_, __FILE__, __LINE__);             \
    } while (0)

/* Layouts */
int cpu_intern(cpu_backend *be, const dnnl_memory_desc_t *md, const nb_tensor *for_shape);
int cpu_md(cpu_backend *be, const nb_tensor *t, dnnl_memory_desc_t *md); /* md of t as it is stored */
void cpu_md_plain(const nb_tensor *t, dnnl_memory_desc_t *md);           /* plain contiguous md of t's shape */
void cpu_md_any(const nb_tensor *t, dnnl_memory_desc_t *md);             /* format_any md of t's shape */
const dnnl_memory_desc_t *cpu_layout_md(cpu_backend *be, int layout);

/* Primitive cache */
void cpu_key_init(cpu_key *k, int op, int phase);
void cpu_key_add(cpu_key *k, const void *p, size_t n);
void cpu_key_tensor(cpu_key *k, const nb_tensor *t); /* shape, dtype, layout and strides, not the data */
cpu_prim *cpu_cache_find(cpu_backend *be, const cpu_key *k);
/* Make a primitive from pd (taking ownership) for the listed DNNL_ARG_* ids, and cache it under k. */
cpu_prim *cpu_prim_make(cpu_backend *be, const cpu_key *k, dnnl_primitive_desc_t pd, const int *args, int nargs,
                        const nb_tensor *const *shape_of);
/* Run with data pointers in the order of the args given to cpu_prim_make. */
int cpu_prim_run(cpu_backend *be, cpu_prim *p, void *const *handles, const char *op);
void cpu_cache_free(cpu_backend *be);

/* Reorder src into dst (same logical shape, any layouts). */
int cpu_relayout(nb_backend *be, nb_tensor *dst, const nb_tensor *src);
/* The interned layout arranged as `layout` with elements of dtype (a bf16 activation of an f32 one's
 * blocking), or -1 after reporting. */
int cpu_layout_as(nb_backend *be, int layout, nb_dtype dtype);
/* Mixed precision: the ops whose kernels here take bf16 activations (core/autocast.c asks). */
bool cpu_lowp_supports(nb_backend *be, nb_op op, nb_dtype dtype);
bool cpu_lowp_native(nb_backend *be, nb_dtype dtype);
/* The bf16 copy of weight w in layout `layout`, a reference the caller releases: w's cached copy when w is a
 * parameter (remade after w changes), else a copy of its own. NULL after reporting. */
nb_tensor *cpu_lowp_weight(cpu_backend *be, nb_tensor *w, int layout);
/* A tensor with the content of t in layout `layout`: t itself when it already is, else a new tensor
 * (the caller releases it when *owned is set). */
nb_tensor *cpu_as_layout(cpu_backend *be, nb_tensor *t, int layout, bool *owned);
/* Header + storage in the given layout. */
nb_tensor *cpu_new(cpu_backend *be, nb_dtype dt, int ndim, const int64_t *shape, int layout);
/* Physical element count of a tensor, in its own element type (includes blocked-layout padding). */
int64_t cpu_phys_len(const nb_tensor *t);

/* Per-op implementations */
int cpu_conv_forward(cpu_backend *be, nb_node *n);
int cpu_conv_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_conv_ref_forward(cpu_backend *be, nb_node *n);
int cpu_conv_ref_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_linear_forward(cpu_backend *be, nb_node *n);
int cpu_linear_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_bn_forward(cpu_backend *be, nb_node *n);
int cpu_bn_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_pool_forward(cpu_backend *be, nb_node *n);
int cpu_pool_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_eltwise_forward(cpu_backend *be, nb_node *n);
int cpu_eltwise_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_pointwise_forward(cpu_backend *be, nb_node *n); /* add, scale, dropout */
int cpu_pointwise_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_shape_forward(cpu_backend *be, nb_node *n); /* mul_channel, channel shuffle */
int cpu_shape_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_loss_forward(cpu_backend *be, nb_node *n); /* softmax, log-softmax, losses */
int cpu_loss_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int cpu_multibox_forward(cpu_backend *be, nb_node *n);
int cpu_fake_quant_forward(cpu_backend *be, nb_node *n);
int cpu_fake_quant_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
/* the unary element-wise ops (impl UNARY): which it has, and f(x) or gy * f'(x) over the physical buffer */
bool cpu_unary_supports(nb_op op);
int cpu_unary(nb_backend *be, nb_op op, float alpha, nb_tensor *y, const nb_tensor *x, const nb_tensor *gy);
int cpu_multibox_backward(cpu_backend *be, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);

/* Kernels over physical buffers */
int cpu_fill(nb_backend *be, nb_tensor *t, double v);
int cpu_axpby(nb_backend *be, nb_tensor *y, float a, const nb_tensor *x, float b);
int cpu_mul(nb_backend *be, nb_tensor *y, const nb_tensor *x);
int cpu_sum_squares(nb_backend *be, const nb_tensor *t, double *out);
int cpu_rng_fill(nb_backend *be, nb_tensor *t, const nb_rng_fill *spec);
int cpu_sgd_step(nb_backend *be, const nb_sgd_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *buf);
int cpu_adam_step(nb_backend *be, const nb_adam_step *s, nb_tensor *p, const nb_tensor *g, nb_tensor *m,
                  nb_tensor *v);
int cpu_counter_add(nb_backend *be, nb_tensor *t, int64_t v);
int cpu_sum_abs(nb_backend *be, const nb_tensor *t, double threshold, double *sum, int64_t *count);
int cpu_sign_codes(nb_backend *be, nb_tensor *v, nb_tensor *codes, double threshold, float alpha);
int cpu_abs_mul_add(nb_backend *be, nb_tensor *acc, const nb_tensor *a, const nb_tensor *b);
int cpu_range(nb_backend *be, const nb_tensor *t, double *lo, double *hi);
int cpu_bn_fold(nb_backend *be, nb_tensor *sf, nb_tensor *inv, const nb_tensor *gamma, const nb_tensor *var, float eps);

/* What a cached primitive does for its op, part of the cache key. */
enum { PHASE_FWD = 0, PHASE_BWD_DATA = 1, PHASE_BWD_WEIGHTS = 2, PHASE_REORDER = 3, PHASE_FWD_INFER = 4,
       PHASE_BWD = 5 };

/* Parallel loops only pay off past this many elements. */
#define CPU_PAR_MIN 32768

/* The build targets baseline x86-64 (SSE2), so that one binary runs anywhere. The loops oneDNN does not run
 * for us and that convert bf16 element by element (shifts, rounding) are compiled again for AVX2 and AVX-512,
 * chosen at load time by the CPU. The same bits on every clone: these loops are element-wise or keep their
 * sums' order per lane, and -std=c11 contracts no a*x + b into a fused multiply-add. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CPU_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_SIMD_CLONES
#endif

#endif
