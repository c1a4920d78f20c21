/* Mixed precision on the CPU: which ops run on bf16 activations here (oneDNN has bf16 convolutions, matrix
 * products, batch norm, eltwise and pooling; AVX-512 BF16 and AMX run them natively, other AVX-512 CPUs
 * emulate them, slowly), and the bf16 copies of f32 weights that convolutions and linear layers read. */
#include "backend/cpu/cpu.h"

bool cpu_lowp_supports(nb_backend *b, nb_op op, nb_dtype dtype) {
    if (dtype != NB_BF16) return false;
    switch (op) {
    case NB_OP_CONV2D:
    case NB_OP_LINEAR:
    case NB_OP_RELU:
    case NB_OP_RELU6:
    case NB_OP_LEAKY_RELU:
    case NB_OP_SIGMOID:
    case NB_OP_HARDSWISH:
    case NB_OP_SILU:
    case NB_OP_MAXPOOL2D:
    case NB_OP_AVGPOOL2D:
    case NB_OP_GLOBAL_AVGPOOL:
    case NB_OP_ADD:
    case NB_OP_CHANNEL_SHUFFLE:
    case NB_OP_RESHAPE:
    case NB_OP_SLICE:
    case NB_OP_CONCAT:
    case NB_OP_RELAYOUT: return true;
    /* synchronized batch norm's own backward pass reads f32 (cpu_bn.c) */
    case NB_OP_BATCHNORM2D: return !(b->ctx->sync_bn && b->ctx->comm);
    default: return false;
    }
}

bool cpu_lowp_native(nb_backend *b, nb_dtype dtype) {
    (void)b;
    /* oneDNN's ISA values are sets of feature bits: AMX's contains avx512_core_bf16's, avx2_vnni's does not */
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    return dtype == NB_BF16 && (isa & bf16) == bf16;
}

nb_tensor *cpu_lowp_weight(cpu_backend *be, nb_tensor *w, int layout) {
    /* a parameter keeps its copy until the optimizer (or anything else) writes it: every write bumps the
     * version, as the tape's check of saved inputs relies on too */
    bool cache = w->is_leaf;
    if (cache && w->lowp && w->lowp_version == w->version && w->lowp->layout == layout) {
        nb_retain(w->lowp);
        return w->lowp;
    }
    nb_tensor *c = cpu_new(be, NB_BF16, w->ndim, w->shape, layout);
    if (!c) return NULL;
    if (cpu_relayout(&be->base, c, w) != 0) {
        nb_release(c);
        return NULL;
    }
    if (cache) {
        nb_release(w->lowp);
        w->lowp = c;
        w->lowp_version = w->version;
        nb_retain(c);
    }
    return c;
}
