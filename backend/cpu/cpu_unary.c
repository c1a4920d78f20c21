/* The unary element-wise ops (impl UNARY in core/op_table.h) on the CPU: for each, its value f(x) and its
 * derivative times the incoming gradient, gy * f'(x), as OpenMP loops over the physical buffer. core/ops_unary.c
 * does the rest (front-end, recording, backward). A new unary op is a case in each switch below. */
#include <math.h>

#include "backend/cpu/cpu.h"

bool cpu_unary_supports(nb_op op) {
    switch (op) {
    case NB_OP_HARDSIGMOID:
    case NB_OP_SQUARE: return true;
    default: return false;
    }
}

/* y[i] = expr of x (and g, the incoming gradient) for every physical element */
#define CPU_UNARY_LOOP(expr)                                                                                   \
    {                                                                                                          \
        _Pragma("omp parallel for simd schedule(static) if (n > CPU_PAR_MIN)")                                \
        for (int64_t i = 0; i < n; i++) {                                                                      \
            float x = xp[i], g = gp ? gp[i] : 0.0f;                                                            \
            (void)g;                                                                                           \
            yp[i] = (expr);                                                                                    \
        }                                                                                                      \
    }

int cpu_unary(nb_backend *b, nb_op op, float alpha, nb_tensor *y, const nb_tensor *x, const nb_tensor *gy) {
    cpu_backend *be = cpu_of(b);
    float *yp = nb_data(y);
    const float *xp = nb_data(x), *gp = gy ? nb_data(gy) : NULL;
    if (!yp || !xp || (gy && !gp)) return -1;
    int64_t n = cpu_phys_len(x);
    (void)alpha;
    switch (op) {
    case NB_OP_HARDSIGMOID: /* relu6(x + 3) / 6, as torch.nn.functional.hardsigmoid; slope 1/6 inside (-3, 3) */
        if (gy) CPU_UNARY_LOOP(x > -3.0f && x < 3.0f ? g / 6.0f : 0.0f)
        else CPU_UNARY_LOOP(fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f)
        break;
    case NB_OP_SQUARE: /* x * x (batch statistics of a distillation's loss) */
        if (gy) CPU_UNARY_LOOP(2.0f * x * g)
        else CPU_UNARY_LOOP(x * x)
        break;
    default:
        NB_FAIL(b->ctx, nb_op_name(op), "the CPU backend has no unary kernel for this op");
        return -1;
    }
    /* a blocked layout's padding must stay zero where f(0) is not: oneDNN zero-pads a buffer that a memory
     * object of that layout takes */
    if (!gy && y->layout != NB_LAYOUT_PLAIN && cpu_phys_len(y) > nb_numel(y)) {
        dnnl_memory_t m;
        CPU_DNNL(be, nb_op_name(op), dnnl_memory_create(&m, cpu_layout_md(be, y->layout), be->engine, yp));
        dnnl_memory_destroy(m);
    }
    return 0;
}
