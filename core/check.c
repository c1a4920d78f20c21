/* Error delivery: format the message once, keep it on the context, hand it to the handler. */
#include "core/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

void nb_raise(nb_ctx *ctx, const char *file, int line, const char *where, const char *fmt, ...) {
    char msg[sizeof ctx->last_error];
    int off = snprintf(msg, sizeof msg, "%s: ", where ? where : "nibble");
    va_list ap;
    va_start(ap, fmt);
    if (off > 0 && (size_t)off < sizeof msg) vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    snprintf(msg + len, sizeof msg - len, " [%s:%d]", file, line);
    if (!ctx) {
        fprintf(stderr, "nibble: error: %s\n", msg);
        exit(1);
    }
    memcpy(ctx->last_error, msg, sizeof msg);
    ctx->n_errors++;
    if (ctx->on_error) {
        ctx->on_error(ctx->on_error_user, ctx->last_error);
        return;
    }
    fprintf(stderr, "nibble: error: %s\n", ctx->last_error);
    exit(1);
}

_Noreturn void nb_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "nibble: internal error at %s:%d: %s\n  hint: this is a bug in nibble; please report it "
                    "with the command that triggered it\n",
            file, line, what);
    abort();
}

void *nb_xmalloc_at(size_t bytes, const char *file, int line) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "nibble: out of host memory allocating %zu bytes at %s:%d\n", bytes, file, line);
        exit(1);
    }
    return p;
}

void *nb_xcalloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "nibble: out of host memory allocating %zu x %zu bytes at %s:%d\n", n, size, file, line);
        exit(1);
    }
    return p;
}

void *nb_xrealloc_at(void *p, size_t bytes, const char *file, int line) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) {
        fprintf(stderr, "nibble: out of host memory growing to %zu bytes at %s:%d\n", bytes, file, line);
        exit(1);
    }
    return q;
}

const char *nb_shape_fmt(char *buf, size_t n, const nb_tensor *t) {
    if (!t) {
        snprintf(buf, n, "(none)");
        return buf;
    }
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (off < n) off += (size_t)snprintf(buf + off, n - off, "]");
    if (t->dtype != NB_F32 && off < n) snprintf(buf + off, n - off, " %s", nb_dtype_name(t->dtype));
    return buf;
}
