/* Data-parallel training over MPI. `mpirun -np N bin/train CFG` (or srun) starts N ranks; each trains the same
 * model on its shard of every global batch, and the gradients are summed over the ranks while backward is
 * still running (buckets handed to MPI_Iallreduce as soon as their last gradient is complete). Started
 * without mpirun, or built without MPI (make MPI=0), a process is a group of one and nothing here costs
 * anything. */
#ifndef NB_DIST_H
#define NB_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "layers/params.h"

typedef struct nb_dist nb_dist;

/* Join the group mpirun or srun started (recognised from the environment), or make a group of one. A failure
 * to start MPI is fatal, with MPI's message. */
nb_dist *nb_dist_init(int *argc, char ***argv);
/* After the context it was attached to is gone (the context points into the group). */
void nb_dist_finalize(nb_dist *d);
int nb_dist_rank(const nb_dist *d);
int nb_dist_size(const nb_dist *d);
int nb_dist_local_size(const nb_dist *d); /* ranks on this machine */
const char *nb_dist_describe(const nb_dist *d); /* "2 ranks (Open MPI 4.1.4)" or "one process" */

/* Make ctx data-parallel: ctx->comm is the group, and backward sums every parameter's gradient over the ranks,
 * weighted by each rank's share of the batch (nb_dist_set_share), in buckets of about bucket_bytes. A group of
 * one leaves ctx alone. */
void nb_dist_attach(nb_dist *d, nb_ctx *ctx, size_t bucket_bytes);
/* This rank holds n_local of the global batch's n_global samples. */
void nb_dist_set_share(nb_dist *d, int n_local, int n_global);
/* Element-wise sums over the ranks, in place. 0, or -1 after reporting. */
int nb_dist_sum(nb_dist *d, double *buf, int64_t n);
/* Every parameter and buffer as rank 0 has it (batch-norm running statistics differ between ranks that
 * normalise with their own batches; evaluation and checkpoints use rank 0's). */
int nb_dist_sync_params(nb_dist *d, nb_params *ps);
/* Whether every rank holds the same trainable parameters, bit for bit (a hash of them compared over the
 * group): data-parallel ranks must, since they apply the same summed gradients. 1 yes, 0 no, -1 error. */
int nb_dist_consistent(nb_dist *d, const nb_params *ps);
/* Seconds spent waiting for gradient reductions since the last call (the communication share of a step). */
double nb_dist_take_wait_seconds(nb_dist *d);

#endif
