/* Context lifetime, grad mode, ownership scopes and error-handler plumbing. */
#include "core/context.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/check.h"

nb_ctx *nb_ctx_make(nb_backend *(*make_backend)(nb_ctx *ctx)) {
    /* a write past the file-size limit (ulimit -f) then fails with EFBIG, which the writer reports naming the
     * file, instead of SIGXFSZ killing the process without a word */
    signal(SIGXFSZ, SIG_IGN);
    nb_ctx *ctx = nb_xcalloc(1, sizeof *ctx);
    ctx->grad_enabled = true;
    ctx->seed = 0;
    ctx->stream = 0;
    ctx->backend = make_backend ? make_backend(ctx) : NULL;
    if (!ctx->backend) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

void nb_ctx_free(nb_ctx *ctx) {
    if (!ctx) return;
    nb_tape_clear(ctx);
    nb_scope_end(ctx, 0);
    free(ctx->scope);
    free(ctx->tape.nodes);
    nb_arena_free(&ctx->tape.arena);
    while (ctx->free_tensors) {
        nb_tensor *t = ctx->free_tensors;
        ctx->free_tensors = t->next_free;
        free(t);
    }
    while (ctx->free_storages) {
        nb_storage *s = ctx->free_storages;
        ctx->free_storages = s->next_free;
        free(s);
    }
    if (ctx->backend) ctx->backend->destroy(ctx->backend);
    if (ctx->walker_pid > 0) { /* the HDF5 walker (formats/h5_probe.c), idle between files */
        kill(ctx->walker_pid, SIGKILL);
        close(ctx->walker_fd);
        while (waitpid(ctx->walker_pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    free(ctx);
}

nb_device nb_ctx_device(const nb_ctx *ctx) { return ctx->backend->device; }

const char *nb_ctx_backend_name(const nb_ctx *ctx) { return ctx->backend->name; }

void nb_ctx_set_error_handler(nb_ctx *ctx, nb_error_fn fn, void *user) {
    ctx->on_error = fn;
    ctx->on_error_user = user;
}

const char *nb_ctx_last_error(const nb_ctx *ctx) { return ctx->last_error; }

void nb_ctx_seed(nb_ctx *ctx, uint64_t seed, uint64_t stream) {
    ctx->seed = seed;
    ctx->stream = stream;
    ctx->offset = 0;
}

bool nb_set_grad_enabled(nb_ctx *ctx, bool on) {
    bool prev = ctx->grad_enabled;
    ctx->grad_enabled = on;
    return prev;
}

void nb_set_record_all(nb_ctx *ctx, bool on) { ctx->record_all = on; }

void nb_set_scope_name(nb_ctx *ctx, const char *name) {
    snprintf(ctx->scope_name, sizeof ctx->scope_name, "%s", name ? name : "");
}

size_t nb_scope_begin(nb_ctx *ctx) { return ctx->scope_len; }

void nb_scope_add(nb_ctx *ctx, nb_tensor *t) {
    if (ctx->scope_len == ctx->scope_cap) {
        ctx->scope_cap = ctx->scope_cap ? ctx->scope_cap * 2 : 256;
        ctx->scope = nb_xrealloc(ctx->scope, ctx->scope_cap * sizeof *ctx->scope);
    }
    ctx->scope[ctx->scope_len++] = t;
    t->in_scope = true;
}

void nb_scope_end(nb_ctx *ctx, size_t mark) {
    while (ctx->scope_len > mark) {
        nb_tensor *t = ctx->scope[--ctx->scope_len];
        if (!t) continue; /* taken out by nb_scope_take */
        t->in_scope = false;
        nb_release(t);
    }
}

nb_tensor *nb_scope_take(nb_tensor *t) {
    if (!t || !t->in_scope) return t;
    nb_ctx *ctx = t->ctx;
    for (size_t i = ctx->scope_len; i-- > 0;) {
        if (ctx->scope[i] == t) {
            ctx->scope[i] = NULL;
            break;
        }
    }
    t->in_scope = false;
    return t;
}

void nb_mem_stats_get(nb_ctx *ctx, nb_mem_stats *out) { ctx->backend->mem_stats(ctx->backend, out); }
