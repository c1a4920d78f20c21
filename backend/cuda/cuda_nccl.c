/* NCCL all-reduce on the CUDA backend's stream (see cuda_nccl.h). */
#include "backend/cuda/cuda_nccl.h"

#include <nccl.h>
#include <string.h>

#include "backend/cuda/cuda.h"
#include "core/check.h"

_Static_assert(sizeof(ncclUniqueId) == NB_NCCL_ID_BYTES, "NCCL's unique id size");

static int nccl_fail(nb_ctx *ctx, const char *what, ncclResult_t r) {
    NB_FAIL(ctx, "nccl", "%s: %s", what, ncclGetErrorString(r));
    return -1;
}

int nb_nccl_unique_id(nb_ctx *ctx, void *id) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) return nccl_fail(ctx, "ncclGetUniqueId", r);
    memcpy(id, &u, sizeof u);
    return 0;
}

int nb_nccl_init(nb_ctx *ctx, const void *id, int rank, int size, void **comm) {
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclComm_t c;
    ncclResult_t r = ncclCommInitRank(&c, size, u, rank);
    if (r != ncclSuccess) return nccl_fail(ctx, "ncclCommInitRank", r);
    *comm = c;
    return 0;
}

int nb_nccl_sum(nb_ctx *ctx, void *comm, float *p, size_t count) {
    ncclResult_t r = ncclAllReduce(p, p, count, ncclFloat, ncclSum, (ncclComm_t)comm, cuda_of(ctx->backend)->stream);
    return r == ncclSuccess ? 0 : nccl_fail(ctx, "ncclAllReduce", r);
}

void nb_nccl_free(void *comm) {
    if (comm) ncclCommDestroy((ncclComm_t)comm);
}
