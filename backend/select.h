/* Choosing a backend: the one place that knows every backend. Programs and tests make their context here, on
 * the device they ask for; core/ sees only the backend interface (core/backend.h). */
#ifndef NB_SELECT_H
#define NB_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/context.h"

/* A context on the CPU backend (oneDNN, OpenBLAS, OpenMP) or the CUDA backend. A device this build or machine
 * lacks is reported through the default error handler (stderr, exit 1). */
nb_ctx *nb_ctx_new(nb_device device);

/* Whether this build has the CUDA backend and a device to run it on; `why` gets the device's name, or the
 * reason there is none (skipped tests print it). */
bool nb_cuda_available(char *why, size_t n);

/* Run convolutions through the CPU backend's im2col + sgemm reference path instead of oneDNN (also selected
 * by the environment variable NB_CPU_CONV=reference when the context is made). No effect on other backends. */
void nb_cpu_use_reference_conv(nb_ctx *ctx, bool on);

#endif
