/* Backend selection: builds a context on the backend a device names (see select.h). */
#include "backend/select.h"

#include <stdio.h>

#include "backend/cpu/cpu.h"
#include "core/check.h"

#ifdef NB_CUDA
nb_backend *nb_cuda_backend_new(nb_ctx *ctx);
bool nb_cuda_probe(char *why, size_t n);
#endif

bool nb_cuda_available(char *why, size_t n) {
#ifdef NB_CUDA
    return nb_cuda_probe(why, n);
#else
    snprintf(why, n, "this build has no CUDA backend (rebuild with `make CUDA=1` where nvcc and cuDNN are installed)");
    return false;
#endif
}

#ifndef NB_CUDA
/* reports through the context, as a backend that cannot start does */
static nb_backend *no_cuda_backend(nb_ctx *ctx) {
    NB_FAIL(ctx, "nb_ctx_new", "this build has no CUDA backend\n  hint: rebuild with `make CUDA=1` on a "
                               "machine with nvcc and cuDNN");
    return NULL;
}
#endif

nb_ctx *nb_ctx_new(nb_device device) {
    switch (device) {
    case NB_DEVICE_CUDA:
#ifdef NB_CUDA
        return nb_ctx_make(nb_cuda_backend_new);
#else
        return nb_ctx_make(no_cuda_backend);
#endif
    case NB_DEVICE_CPU: break;
    }
    return nb_ctx_make(nb_cpu_backend_new);
}

void nb_cpu_use_reference_conv(nb_ctx *ctx, bool on) {
    if (ctx->backend->device == NB_DEVICE_CPU) cpu_of(ctx->backend)->reference_conv = on;
}
