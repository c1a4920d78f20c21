/* Data-parallel groups over MPI (see dist.h). The gradient reducer: as backward completes each parameter's
 * gradient (nb_grad_hooks), the gradient is scaled by this rank's share of the batch and copied into a staging
 * buffer; when a bucket of them is full it goes to MPI_Iallreduce, and the reducer polls the requests in
 * flight at every later gradient so that MPI progresses while backward computes. At the end of backward it
 * waits for the rest and writes the sums back into the gradients. */
#include "train/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arith.h"
#include "core/check.h"

#ifdef NB_MPI
#include <mpi.h>
#endif
#if defined(NB_MPI) && defined(NB_CUDA)
#include "backend/cuda/cuda_nccl.h"
#define NB_NCCL 1
#endif

typedef struct {
    nb_tensor *grad;
    size_t offset, count; /* in floats, within the staging buffer */
} staged;

struct nb_dist {
    nb_comm comm;
    nb_ctx *ctx;
    bool mpi;
    int local_size;
    char describe[128];
    size_t bucket_floats;
    float *staging;
    size_t staging_cap, used, bucket_start;
    staged *items;
    size_t n_items, cap_items;
#ifdef NB_MPI
    MPI_Request *requests;
    int n_requests, cap_requests;
#endif
    double wait_seconds;
    int failed;
    void *nccl; /* GPU ranks: gradients are summed by NCCL on the device instead of staged through the host */
};

#ifdef NB_MPI
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

/* mpirun (Open MPI), srun with PMIx or PMI-2, MPICH's hydra: each leaves its mark in the environment */
static bool launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return true;
    return false;
}

#ifdef NB_MPI
static int mpi_sum_f64(nb_comm *c, double *buf, int64_t n) {
    nb_dist *d = c->impl;
    double t0 = now();
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    d->wait_seconds += now() - t0;
    return rc == MPI_SUCCESS ? 0 : -1;
}
#endif

nb_dist *nb_dist_init(int *argc, char ***argv) {
    nb_dist *d = nb_xcalloc(1, sizeof *d);
    d->comm = (nb_comm){.rank = 0, .size = 1, .share = 1.0, .impl = d};
    d->local_size = 1;
    snprintf(d->describe, sizeof d->describe, "one process");
    (void)argc;
    (void)argv;
#ifdef NB_MPI
    if (!launched_by_mpi()) return d;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "nibble: error: MPI_Init failed: cannot join the job mpirun started\n");
        exit(1);
    }
    d->mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->comm.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->comm.rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
    d->comm.allreduce_f64 = mpi_sum_f64;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len;
    MPI_Get_library_version(lib, &len);
    char *nl = strchr(lib, ','); /* "Open MPI v4.1.4, package: ..." */
    if (nl) *nl = 0;
    snprintf(d->describe, sizeof d->describe, "%d ranks (%.80s)", d->comm.size, lib);
#else
    if (launched_by_mpi())
        fprintf(stderr, "nibble: warning: started by mpirun, but this build has no MPI (make MPI=1): every rank "
                        "trains alone\n");
#endif
    return d;
}

void nb_dist_finalize(nb_dist *d) {
    if (!d) return;
#ifdef NB_MPI
    if (d->n_requests) MPI_Waitall(d->n_requests, d->requests, MPI_STATUSES_IGNORE);
    free(d->requests);
#ifdef NB_NCCL
    nb_nccl_free(d->nccl);
#endif
    if (d->mpi) MPI_Finalize();
#endif
    free(d->staging);
    free(d->items);
    free(d);
}

int nb_dist_rank(const nb_dist *d) { return d ? d->comm.rank : 0; }
int nb_dist_size(const nb_dist *d) { return d ? d->comm.size : 1; }
int nb_dist_local_size(const nb_dist *d) { return d ? d->local_size : 1; }
const char *nb_dist_describe(const nb_dist *d) { return d ? d->describe : "one process"; }

void nb_dist_set_share(nb_dist *d, int n_local, int n_global) {
    if (d) d->comm.share = n_global > 0 ? (double)n_local / (double)n_global : 0.0;
}

double nb_dist_take_wait_seconds(nb_dist *d) {
    if (!d) return 0;
    double s = d->wait_seconds;
    d->wait_seconds = 0;
    return s;
}

int nb_dist_sum(nb_dist *d, double *buf, int64_t n) {
    if (!d || d->comm.size == 1) return 0;
    return d->comm.allreduce_f64(&d->comm, buf, n);
}

#ifdef NB_MPI
/* the current bucket to MPI */
static void launch_bucket(nb_dist *d) {
    size_t count = d->used - d->bucket_start;
    if (!count) return;
    if (d->n_requests == d->cap_requests)
        d->requests = nb_xrealloc(d->requests, sizeof *d->requests * (size_t)(d->cap_requests = d->cap_requests ? 2 * d->cap_requests : 16));
    double t0 = now();
    if (MPI_Iallreduce(MPI_IN_PLACE, d->staging + d->bucket_start, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &d->requests[d->n_requests++]) != MPI_SUCCESS)
        d->failed = 1;
    d->wait_seconds += now() - t0;
    d->bucket_start = d->used;
}

static void wait_all(nb_dist *d) {
    double t0 = now();
    if (d->n_requests && MPI_Waitall(d->n_requests, d->requests, MPI_STATUSES_IGNORE) != MPI_SUCCESS) d->failed = 1;
    d->n_requests = 0;
    d->wait_seconds += now() - t0;
}

static void on_grad_ready(void *user, nb_tensor *leaf) {
    nb_dist *d = user;
    nb_tensor *g = leaf->grad;
    if (!g || d->failed) return; /* no gradient on any rank: the graph is the same everywhere */
#ifdef NB_NCCL
    if (d->nccl) { /* on the stream, after the kernels that made g: scale by the share, then sum in place */
        if (nb_axpby(g, 0.0f, g, (float)d->comm.share) || nb_nccl_sum(d->ctx, d->nccl, nb_data(g), nb_numel(g)))
            d->failed = 1;
        return;
    }
#endif
    /* physical elements: blocked layouts carry padding, which is zero on every rank */
    size_t bytes = nb_storage_bytes(g);
    size_t count = bytes / sizeof(float);
    if (d->used + count > d->staging_cap) {
        /* buffers in flight must not move: finish them before growing */
        wait_all(d);
        size_t cap = 2 * (d->used + count);
        float *grown = nb_xmalloc(sizeof(float) * cap);
        if (d->used) memcpy(grown, d->staging, sizeof(float) * d->used);
        free(d->staging);
        d->staging = grown;
        d->staging_cap = cap;
    }
    float *dst = d->staging + d->used;
    if (nb_storage_download(g, dst, bytes)) {
        d->failed = 1;
        return;
    }
    float share = (float)d->comm.share;
    for (size_t i = 0; i < count; i++) dst[i] *= share;
    if (d->n_items == d->cap_items)
        d->items = nb_xrealloc(d->items, sizeof *d->items * (d->cap_items = d->cap_items ? 2 * d->cap_items : 64));
    nb_retain(g);
    d->items[d->n_items++] = (staged){g, d->used, count};
    d->used += count;
    if (d->used - d->bucket_start >= d->bucket_floats) launch_bucket(d);
    if (d->n_requests) { /* let MPI move the buckets in flight along */
        int done;
        MPI_Testall(d->n_requests, d->requests, &done, MPI_STATUSES_IGNORE);
        if (done) d->n_requests = 0;
    }
}

static int on_backward_end(void *user) {
    nb_dist *d = user;
    launch_bucket(d);
    wait_all(d);
    int rc = d->failed ? -1 : 0;
    for (size_t i = 0; i < d->n_items; i++) {
        staged *s = &d->items[i];
        if (rc == 0 && nb_storage_upload(s->grad, d->staging + s->offset, s->count * sizeof(float))) rc = -1;
        nb_release(s->grad);
    }
    d->n_items = 0;
    d->used = d->bucket_start = 0;
    d->failed = 0;
    if (rc) NB_FAIL(d->ctx, "mpi", "the gradient all-reduce failed");
    return rc;
}
#endif

void nb_dist_attach(nb_dist *d, nb_ctx *ctx, size_t bucket_bytes) {
    if (!d || d->comm.size == 1) return;
    d->ctx = ctx;
    ctx->comm = &d->comm;
    d->bucket_floats = bucket_bytes / sizeof(float);
#ifdef NB_MPI
    ctx->grad_hooks = (nb_grad_hooks){on_grad_ready, on_backward_end, d};
#endif
#ifdef NB_NCCL
    if (nb_ctx_device(ctx) == NB_DEVICE_CUDA) {
        unsigned char id[NB_NCCL_ID_BYTES] = {0};
        if (d->comm.rank == 0) nb_nccl_unique_id(ctx, id);
        MPI_Bcast(id, NB_NCCL_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD);
        nb_nccl_init(ctx, id, d->comm.rank, d->comm.size, &d->nccl); /* errors are fatal */
    }
#endif
}

int nb_dist_sync_params(nb_dist *d, nb_params *ps) {
    (void)ps; /* read only when built with MPI */
    if (!d || d->comm.size == 1) return 0;
#ifdef NB_MPI
    for (int i = 0; i < ps->n; i++) {
        nb_tensor *t = ps->items[i].t;
        size_t bytes = nb_storage_bytes(t);
        void *h = nb_xmalloc(bytes ? bytes : 1);
        int rc = nb_storage_download(t, h, bytes);
        if (rc == 0 && MPI_Bcast(h, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS) rc = -1;
        if (rc == 0 && d->comm.rank != 0) rc = nb_storage_upload(t, h, bytes);
        free(h);
        if (rc) {
            NB_FAIL(d->ctx, "mpi", "broadcasting %s from rank 0 failed", t->name);
            return -1;
        }
    }
#endif
    return 0;
}

int nb_dist_consistent(nb_dist *d, const nb_params *ps) {
    if (!d || d->comm.size == 1) return 1;
#ifdef NB_MPI
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the parameters' bytes, in registration order */
    for (int i = 0; i < ps->n; i++) {
        if (ps->items[i].kind != NB_PARAM) continue;
        const nb_tensor *t = ps->items[i].t;
        size_t bytes = nb_tensor_bytes(t); /* the values, not a blocked layout's padding */
        unsigned char *p = nb_xmalloc(bytes ? bytes : 1);
        if (nb_tensor_to_host(t, p, bytes)) {
            free(p);
            return -1;
        }
        for (size_t k = 0; k < bytes; k++) h = (h ^ p[k]) * 1099511628211ULL;
        free(p);
    }
    uint64_t lo = h, hi = h;
    if (MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS ||
        MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return -1;
    return lo == hi;
#else
    (void)ps;
    return 1;
#endif
}
