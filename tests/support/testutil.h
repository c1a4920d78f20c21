/* What the tests share: reading PyTorch fixtures from HDF5, comparing tensors with a documented tolerance,
 * capturing errors instead of exiting, and central finite-difference gradient checks. */
#ifndef NB_TESTUTIL_H
#define NB_TESTUTIL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "core/ops.h"
#include "core/tensor.h"

/* Relative error of `got` against reference `ref`: max_i |got_i - ref_i| / max(|ref_i|, rms(ref)).
 * The floor at the RMS of the reference keeps elements that cancel to near zero (a sum of many products in a
 * convolution, a gradient at a saddle) from turning float32 rounding into a huge relative error. */
double tu_rel_err(const float *got, const float *ref, int64_t n);

/* Fail the current cmocka test with the first differing elements when the error exceeds tol. */
void tu_assert_close(const char *what, const float *got, const float *ref, int64_t n, double tol);
void tu_assert_tensor_close(const char *what, const nb_tensor *got, const float *ref, int64_t n, double tol);

/* The backend under test: NB_TEST_DEVICE=cuda selects the CUDA backend (scripts/run-tests.sh runs the
 * suite once per backend present); cpu otherwise. */
nb_device tu_device(void);
const char *tu_device_name(void);

/* A context on the backend under test whose errors are recorded, not fatal: ops return NULL and the test
 * inspects the message. */
nb_ctx *tu_ctx(void);
void tu_expect_error(nb_ctx *ctx, const char *substring); /* asserts an error containing substring happened */
void tu_clear_error(nb_ctx *ctx);

/* HDF5 fixture access. tu_read returns a malloc'd float array (or i64 when the dataset is integer) and its
 * shape; NULL if the dataset does not exist. */
hid_t tu_open(const char *path);
bool tu_has(hid_t group, const char *name);
float *tu_read_f32(hid_t group, const char *name, int *ndim, int64_t *shape);
int64_t *tu_read_i64(hid_t group, const char *name, int *ndim, int64_t *shape);
nb_tensor *tu_load(nb_ctx *ctx, hid_t group, const char *name); /* NULL if absent */
double tu_attr_double(hid_t obj, const char *name, double fallback);
int tu_attr_ints(hid_t obj, const char *name, int *out, int max); /* returns count, 0 if absent */
int tu_list_groups(hid_t group, char names[][64], int max);

/* Finite differences: f maps the inputs to a tensor; the loss is sum(f(x) * r) for a fixed random r.
 * Checks up to `samples` elements of input `which` with central differences of step h. */
typedef nb_tensor *(*tu_fn)(nb_tensor **in, void *user);
void tu_gradcheck(nb_ctx *ctx, tu_fn f, nb_tensor **in, int n_in, int which, void *user, int samples, double h,
                  double tol, const char *what);

/* Fill a tensor with N(0, 1) (or uniform [lo, hi)) values from a fixed stream. */
void tu_randn(nb_tensor *t, uint64_t seed);
void tu_rand_uniform(nb_tensor *t, uint64_t seed, float lo, float hi);

/* Host copy of a tensor (malloc'd floats; a bf16 tensor's values widened to f32). */
float *tu_host(const nb_tensor *t);

#endif
