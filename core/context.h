/* The context: the backend, the autograd tape, ownership scopes for op outputs, grad mode and the error
 * handler. One per thread of use; it is the only mutable state nibble keeps. */
#ifndef NB_CONTEXT_H
#define NB_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/backend.h"
#include "core/tape.h"
#include "core/tensor.h"

typedef void (*nb_error_fn)(void *user, const char *message);

/* A data-parallel group (train/dist.c implements it over MPI): the ranks training one model on shards of each
 * global batch. Core code sees only this interface. */
typedef struct nb_comm nb_comm;
struct nb_comm {
    int rank, size;
    double share; /* this rank's fraction of the current global batch: its gradients' weight in the sum */
    int (*allreduce_f64)(nb_comm *c, double *buf, int64_t n); /* element-wise sum over the ranks, in place */
    void *impl;
};

/* Called by nb_backward: on_grad_ready once per leaf whose gradient is complete (its first use in the
 * forward pass has been differentiated; grad NULL when it got none), in the order they complete;
 * on_backward_end after the last node. Data-parallel training reduces gradients here while backward goes on. */
typedef struct {
    void (*on_grad_ready)(void *user, nb_tensor *leaf);
    int (*on_backward_end)(void *user);
    void *user;
} nb_grad_hooks;

/* Called around every op while installed: quantization simulation (compress/qsim.c) puts fake quantizers
 * where the column quant of core/op_table.h says, whatever model runs. on_inputs sees an op's inputs before
 * its node is made and may replace them (same shapes); on_output sees its first output after it ran (and its
 * first input) and may replace it. The ops a hook runs itself do not call the hooks again. Each returns 0, or
 * -1 after reporting (the op then fails). */
typedef struct {
    int (*on_inputs)(void *user, nb_op op, nb_tensor **in, int n_in);
    int (*on_output)(void *user, nb_op op, nb_tensor *in0, nb_tensor **out);
    void *user;
} nb_op_hooks;

/* A file from elsewhere that a check ran on before it was read (formats/h5_probe.c: a child process walks an
 * HDF5 file with libhdf5), by identity and modification time, and the check's outcome */
typedef struct {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
    int outcome;
} nb_file_check;

struct nb_ctx {
    nb_backend *backend;

    nb_error_fn on_error; /* NULL: print to stderr and exit(1) */
    void *on_error_user;
    char last_error[2048];
    int n_errors;

    bool grad_enabled;
    bool record_all; /* record every op on the tape, even without gradients (summaries, export) */
    nb_tape tape;

    /* Op outputs are owned by the innermost scope until nb_scope_end. */
    nb_tensor **scope;
    size_t scope_len, scope_cap;

    /* Layer name for the nodes being recorded ("layer1.0.conv1"); set by layer code. */
    char scope_name[128];

    /* Free lists so that a steady-state step allocates no host memory either. */
    nb_tensor *free_tensors;
    nb_storage *free_storages;
    uint64_t header_allocs;

    /* Stochastic ops (dropout) draw from (seed, stream); offset advances by the elements drawn. */
    uint64_t seed, stream, offset;

    nb_comm *comm;          /* the data-parallel group, or NULL for one process */
    bool sync_bn;           /* with comm: training batch norms use the whole group's batch statistics */
    nb_grad_hooks grad_hooks; /* all NULL unless a reducer is installed */
    nb_op_hooks op_hooks;     /* all NULL unless a quantization simulation runs a forward pass */
    bool in_op_hook;          /* a hook is running: its own ops do not call the hooks */
    /* training batch norms normalise with their running statistics and leave them alone (quantization-aware
     * training's last epochs, as torch's freeze_bn_stats: the statistics folded into the deployed weights stop
     * moving) */
    bool bn_frozen;
    /* mixed precision: NB_BF16 runs convolutions and linear layers, and what follows them, on bf16 activations
     * (core/autocast.c); NB_F32 (the default) runs everything in f32 */
    nb_dtype autocast;
    /* the files checked so far, newest last: a file opened again (a resume reads last.h5 five times) is checked
     * once */
    nb_file_check checked[8];
    int n_checked;
    /* the process that walks those files (formats/h5_probe.c), kept between files: pid 0 when none runs; fd
     * is its end of the socket that carries a path there and the outcome back */
    int walker_pid, walker_fd;
};

/* A context on the backend that make_backend builds for it (backend/select.h chooses one by device:
 * nb_ctx_new). NULL, after the backend reported why, when it cannot start. */
nb_ctx *nb_ctx_make(nb_backend *(*make_backend)(nb_ctx *ctx));
void nb_ctx_free(nb_ctx *ctx);
nb_device nb_ctx_device(const nb_ctx *ctx);
const char *nb_ctx_backend_name(const nb_ctx *ctx); /* "cpu", "cuda": what train.device names */
void nb_ctx_set_error_handler(nb_ctx *ctx, nb_error_fn fn, void *user);
const char *nb_ctx_last_error(const nb_ctx *ctx);
void nb_ctx_seed(nb_ctx *ctx, uint64_t seed, uint64_t stream);

bool nb_set_grad_enabled(nb_ctx *ctx, bool on); /* returns the previous setting */
/* Mixed precision for the ops that follow: NB_BF16 or NB_F32 (off); returns the previous setting. Whether the
 * backend can: nb_autocast_supported (f32 always can). */
nb_dtype nb_set_autocast(nb_ctx *ctx, nb_dtype dtype);
bool nb_autocast_supported(nb_ctx *ctx, nb_dtype dtype);
/* ... and whether the hardware computes it natively (else it is emulated: correct, but slower than f32) */
bool nb_autocast_native(nb_ctx *ctx, nb_dtype dtype);
void nb_set_record_all(nb_ctx *ctx, bool on);
void nb_set_scope_name(nb_ctx *ctx, const char *name);

size_t nb_scope_begin(nb_ctx *ctx);
void nb_scope_end(nb_ctx *ctx, size_t mark);
nb_tensor *nb_scope_take(nb_tensor *t); /* move an op output out of its scope: the caller now owns it */

int nb_backward(nb_tensor *root, const nb_tensor *grad); /* grad NULL: root must have one element, seeded 1 */

void nb_mem_stats_get(nb_ctx *ctx, nb_mem_stats *out);

#endif
