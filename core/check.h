/* Error reporting: every failure names the op or file, what it was given and what it expected, and the
 * file:line of the check. Errors go to the context's handler; the default prints and exits(1), a test can
 * install one that records the message and lets the op return NULL. */
#ifndef NB_CHECK_H
#define NB_CHECK_H

#include <stddef.h>

typedef struct nb_ctx nb_ctx;
typedef struct nb_tensor nb_tensor;

void nb_raise(nb_ctx *ctx, const char *file, int line, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Report an error from `where` (an op name, a file name) and continue; the caller returns a failure. */
#define NB_FAIL(ctx, where, ...) nb_raise((ctx), __FILE__, __LINE__, (where), __VA_ARGS__)

/* Check an input condition; on failure report and return `ret` from the enclosing function. */
#define NB_REQUIRE(ctx, cond, ret, where, ...)                                                          \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            NB_FAIL(ctx, where, __VA_ARGS__);                                                          \
            return ret;                                                                                \
        }                                                                                              \
    } while (0)

/* A broken internal invariant: a bug in nibble, not bad input. Always fatal. */
#define NB_ASSERT(cond)                                                                                \
    do {                                                                                               \
        if (!(cond)) nb_panic(__FILE__, __LINE__, #cond);                                              \
    } while (0)

_Noreturn void nb_panic(const char *file, int line, const char *what);

/* Allocation that cannot fail quietly: out of host memory is fatal with file:line. */
void *nb_xmalloc_at(size_t bytes, const char *file, int line);
void *nb_xcalloc_at(size_t n, size_t size, const char *file, int line);
void *nb_xrealloc_at(void *p, size_t bytes, const char *file, int line);
#define nb_xmalloc(b) nb_xmalloc_at((b), __FILE__, __LINE__)
#define nb_xcalloc(n, s) nb_xcalloc_at((n), (s), __FILE__, __LINE__)
#define nb_xrealloc(p, b) nb_xrealloc_at((p), (b), __FILE__, __LINE__)

/* "[2,3,8,8]" into buf; used in error messages. */
const char *nb_shape_fmt(char *buf, size_t n, const nb_tensor *t);
#define NB_SHAPE(t) nb_shape_fmt((char[96]){0}, 96, (t))

#endif
