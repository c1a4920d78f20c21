/* NCCL for data-parallel training on GPUs: the gradient sums between the ranks' GPUs run as NCCL all-reduces
 * on the backend's stream, ordered after the backward kernels that produce them and before the optimizer's.
 * train/dist.c sets the communicator up over MPI (rank 0's unique id broadcast to the others). */
#ifndef NB_CUDA_NCCL_H
#define NB_CUDA_NCCL_H

#include <stddef.h>

#include "core/context.h"

#define NB_NCCL_ID_BYTES 128

/* rank 0: a new unique id into id[NB_NCCL_ID_BYTES]. 0, or -1 after reporting. */
int nb_nccl_unique_id(nb_ctx *ctx, void *id);
/* Join the communicator of `size` ranks named by id; *comm is the handle. 0, or -1 after reporting. */
int nb_nccl_init(nb_ctx *ctx, const void *id, int rank, int size, void **comm);
/* In-place sum of count floats at the device pointer p over the ranks, queued on the backend's stream. */
int nb_nccl_sum(nb_ctx *ctx, void *comm, float *p, size_t count);
void nb_nccl_free(void *comm);

#endif
