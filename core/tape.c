/* Recording ops and reverse-mode differentiation over the recorded tape. */
#include "core/tape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op_impl.h"

/* ---- arena ---- */

#define NB_ARENA_CHUNK (256 * 1024)

void *nb_arena_alloc(nb_arena *a, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    if (!a->head || a->head->used + bytes > a->head->cap) {
        nb_arena_chunk *c = NULL;
        /* reuse a retired chunk that fits before asking the system */
        for (nb_arena_chunk **pp = &a->full; *pp; pp = &(*pp)->next) {
            if ((*pp)->cap >= bytes) {
                c = *pp;
                *pp = c->next;
                break;
            }
        }
        if (!c) {
            size_t cap = bytes > NB_ARENA_CHUNK ? bytes : NB_ARENA_CHUNK;
            c = nb_xmalloc(sizeof *c + cap);
            c->cap = cap;
        }
        c->used = 0;
        c->next = a->head; /* chunks in use form a chain, newest first */
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += bytes;
    return p;
}

void nb_arena_reset(nb_arena *a) {
    /* every chunk in the head chain becomes free for reuse */
    nb_arena_chunk *c = a->head;
    while (c) {
        nb_arena_chunk *next = c->next;
        c->used = 0;
        c->next = a->full;
        a->full = c;
        c = next;
    }
    a->head = NULL;
}

void nb_arena_free(nb_arena *a) {
    nb_arena_reset(a);
    nb_arena_chunk *c = a->full;
    while (c) {
        nb_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->full = NULL;
}

/* ---- the op table ---- */

static int64_t cost_none(const nb_node *n) {
    (void)n;
    return 0;
}

static int64_t cost_conv(const nb_node *n) {
    const nb_tensor *y = n->out[0], *w = n->in[1];
    if (!y || !w) return 0;
    return y->shape[0] * y->shape[1] * y->shape[2] * y->shape[3] * w->shape[1] * w->shape[2] * w->shape[3];
}

static int64_t cost_linear(const nb_node *n) {
    const nb_tensor *x = n->in[0], *w = n->in[1];
    if (!x || !w) return 0;
    return x->shape[0] * w->shape[0] * w->shape[1];
}

typedef struct {
    const char *name, *attr;
    nb_op_impl impl;
    nb_op_deploy deploy;
    nb_op_quant quant;
    int64_t (*cost)(const nb_node *n);
} op_info;

/* sizeof names the member, so a row whose attr is not a member of nb_attr does not compile */
#define NB_OP_INFO(E, name, attr, cost, impl, deploy, quant)                                                     \
    [NB_OP_##E] = {#name, sizeof(((nb_attr *)0)->attr) ? #attr : "", NB_IMPL_##impl, NB_DEPLOY_##deploy,           \
                   NB_QUANT_##quant, cost_##cost},
static const op_info op_infos[NB_OP_COUNT] = {NB_OP_TABLE(NB_OP_INFO)};
#undef NB_OP_INFO

const char *nb_op_name(nb_op op) { return (unsigned)op < NB_OP_COUNT ? op_infos[op].name : "?"; }
nb_op_impl nb_op_impl_of(nb_op op) { return op_infos[op].impl; }
nb_op_deploy nb_op_deploy_of(nb_op op) { return op_infos[op].deploy; }
nb_op_quant nb_op_quant_of(nb_op op) { return op_infos[op].quant; }
const char *nb_op_attr_member(nb_op op) { return op_infos[op].attr; }

int nb_op_from_name(const char *name) {
    for (int op = 0; op < NB_OP_COUNT; op++)
        if (!strcmp(op_infos[op].name, name)) return op;
    return -1;
}

/* ---- recording ---- */

/* The op hooks' view of a new op's inputs, before its node exists: the ops a hook runs complete (and may
 * reset the tape's arena) before this node is allocated there. */
static bool hook_inputs(nb_ctx *ctx, nb_op op, nb_tensor *const *in, int n_in, nb_tensor **out) {
    for (int i = 0; i < n_in; i++) out[i] = in[i];
    if (!ctx->op_hooks.on_inputs || ctx->in_op_hook) return true;
    ctx->in_op_hook = true;
    int rc = ctx->op_hooks.on_inputs(ctx->op_hooks.user, op, out, n_in);
    ctx->in_op_hook = false;
    return rc == 0;
}

nb_node *nb_op_begin(nb_ctx *ctx, nb_op op, nb_tensor *const *in, int n_in, int n_out) {
    nb_tensor *local[16], **hooked = n_in <= 16 ? local : nb_xmalloc(sizeof *hooked * (size_t)n_in);
    bool ok = hook_inputs(ctx, op, in, n_in, hooked), lowp = false;
    /* casts, like the hooks' ops, complete before this node is allocated in the arena */
    if (ok) ok = nb_autocast_inputs(ctx, op, hooked, n_in, &lowp) == 0;
    in = hooked;
    nb_arena *a = &ctx->tape.arena;
    nb_node *n = nb_arena_alloc(a, sizeof *n);
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = nb_arena_alloc(a, sizeof(nb_tensor *) * (size_t)(n_in ? n_in : 1));
    n->in_version = nb_arena_alloc(a, sizeof(uint32_t) * (size_t)(n_in ? n_in : 1));
    n->out = nb_arena_alloc(a, sizeof(nb_tensor *) * (size_t)(n_out ? n_out : 1));
    n->saved = nb_arena_alloc(a, sizeof(nb_tensor *) * NB_MAX_SAVED);
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    for (int i = 0; i < n_out; i++) n->out[i] = NULL;
    size_t sl = strlen(ctx->scope_name);
    char *s = nb_arena_alloc(a, sl + 1);
    memcpy(s, ctx->scope_name, sl + 1);
    n->scope = s;
    n->failed = !ok;
    n->lowp = lowp;
    if (hooked != local) free(hooked);
    return n;
}

nb_tensor *nb_op_out(nb_node *n, int i, nb_dtype dtype, int ndim, const int64_t *shape) {
    nb_ctx *ctx = NULL;
    for (int k = 0; k < n->n_in && !ctx; k++)
        if (n->in[k]) ctx = n->in[k]->ctx;
    NB_ASSERT(ctx && i < n->n_out);
    nb_tensor *t = nb_tensor_header(ctx, nb_autocast_out_dtype(n, dtype), ndim, shape);
    n->out[i] = t;
    return t;
}

nb_tensor *nb_node_save(nb_node *n, nb_dtype dtype, int ndim, const int64_t *shape, int layout) {
    NB_ASSERT(n->n_saved < NB_MAX_SAVED);
    nb_ctx *ctx = NULL;
    for (int k = 0; k < n->n_in && !ctx; k++)
        if (n->in[k]) ctx = n->in[k]->ctx;
    nb_tensor *t = nb_tensor_header(ctx, dtype, ndim, shape);
    if (!t) return NULL;
    if (nb_tensor_alloc(t, layout) != 0) {
        nb_release(t);
        return NULL;
    }
    n->saved[n->n_saved++] = t;
    return t;
}

static void node_drop(nb_node *n) {
    for (int i = 0; i < n->n_saved; i++) nb_release(n->saved[i]);
    n->n_saved = 0;
}

void nb_node_set_saved(nb_node *n, int i, nb_tensor *t) {
    NB_ASSERT(i < NB_MAX_SAVED);
    for (int k = n->n_saved; k <= i; k++) n->saved[k] = NULL;
    if (n->n_saved <= i) n->n_saved = i + 1;
    nb_release(n->saved[i]);
    n->saved[i] = t;
}

bool nb_node_wants_grad(const nb_ctx *ctx, const nb_node *n) {
    if (ctx->record_all) return true;
    if (!ctx->grad_enabled) return false;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->requires_grad) return true;
    return false;
}

int nb_op_finish(nb_ctx *ctx, nb_node *n) {
    if (n->failed) goto fail;
    for (int i = 0; i < n->n_out; i++)
        if (!n->out[i]) goto fail;
    if (nb_core_forward(ctx, n) != 0) goto fail;
    /* versions after forward: batch norm updates its running statistics as part of the op */
    for (int i = 0; i < n->n_in; i++) n->in_version[i] = n->in[i] ? n->in[i]->version : 0;

    bool needs_grad = false;
    if (ctx->grad_enabled)
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->requires_grad) needs_grad = true;
    for (int i = 0; i < n->n_out; i++) {
        nb_tensor *o = n->out[i];
        o->is_leaf = false;
        o->requires_grad = needs_grad && nb_dtype_is_float(o->dtype);
        nb_scope_add(ctx, o);
    }
    if (needs_grad || ctx->record_all) {
        nb_tape *tp = &ctx->tape;
        if (tp->n == tp->cap) {
            tp->cap = tp->cap ? tp->cap * 2 : 256;
            tp->nodes = nb_xrealloc(tp->nodes, tp->cap * sizeof *tp->nodes);
        }
        n->seq = (int64_t)tp->n;
        tp->nodes[tp->n++] = n;
        /* the tape holds its own reference to everything backward may touch */
        for (int i = 0; i < n->n_in; i++) nb_retain(n->in[i]);
        for (int i = 0; i < n->n_out; i++) nb_retain(n->out[i]);
    } else {
        node_drop(n);
        if (ctx->tape.n == 0) nb_arena_reset(&ctx->tape.arena);
    }
    return 0;
fail:
    for (int i = 0; i < n->n_out; i++) {
        nb_release(n->out[i]);
        n->out[i] = NULL;
    }
    node_drop(n);
    if (ctx->tape.n == 0) nb_arena_reset(&ctx->tape.arena);
    return -1;
}

nb_tensor *nb_op_finish1(nb_ctx *ctx, nb_node *n) {
    nb_tensor *out0 = n->out[0], *in0 = n->n_in ? n->in[0] : NULL;
    nb_op op = n->op;
    if (nb_op_finish(ctx, n) != 0) return NULL;
    if (!ctx->op_hooks.on_output || ctx->in_op_hook) return out0;
    ctx->in_op_hook = true;
    int rc = ctx->op_hooks.on_output(ctx->op_hooks.user, op, in0, &out0);
    ctx->in_op_hook = false;
    return rc == 0 ? out0 : NULL;
}

/* ---- walking ---- */

size_t nb_tape_size(const nb_ctx *ctx) { return ctx->tape.n; }

const nb_node *nb_tape_node(const nb_ctx *ctx, size_t i) { return i < ctx->tape.n ? ctx->tape.nodes[i] : NULL; }

static void node_release_refs(nb_node *n) {
    node_drop(n);
    for (int i = 0; i < n->n_in; i++) nb_release(n->in[i]);
    for (int i = 0; i < n->n_out; i++) nb_release(n->out[i]);
    n->n_in = n->n_out = 0;
}

void nb_tape_clear(nb_ctx *ctx) {
    nb_tape *tp = &ctx->tape;
    for (size_t i = tp->n; i-- > 0;) node_release_refs(tp->nodes[i]);
    tp->n = 0;
    nb_arena_reset(&tp->arena);
}

/* ---- backward ---- */

/* A forward activation whose only remaining owner is its scope will never be read again by backward:
 * give its memory back now rather than at the end of the step. */
static void release_if_done(nb_tensor *t, const nb_tensor *root) {
    if (!t || t == root || t->is_leaf || t->keep || !t->in_scope || t->refs != 2 || !t->storage) return;
    nb_ctx *ctx = t->ctx;
    nb_storage *s = t->storage;
    t->storage = NULL;
    t->data_released = true;
    if (--s->refs == 0) {
        ctx->backend->release(ctx->backend, s->data, s->bytes);
        s->data = NULL;
        s->next_free = ctx->free_storages;
        ctx->free_storages = s;
    }
}

static bool shared(const nb_tensor *t) { return t->refs > 1 || (t->storage && t->storage->refs > 1); }

static int accumulate(nb_tensor *t, nb_tensor *g) {
    nb_ctx *ctx = t->ctx;
    if (!t->grad) {
        t->grad = g;
        return 0;
    }
    int rc = 0;
    if (g->layout != t->grad->layout) rc = nb_tensor_relayout(g, t->grad->layout);
    if (rc) {
        nb_release(g);
        return rc;
    }
    if (shared(t->grad) && !shared(g)) {
        /* the gradient so far is shared (a caller's upstream gradient, or one buffer handed to both inputs of
         * an add): sum into the new contribution instead of copying it first */
        rc = ctx->backend->axpby(ctx->backend, g, 1.0f, t->grad, 1.0f);
        nb_release(t->grad);
        t->grad = g;
        return rc;
    }
    if (shared(t->grad)) {
        nb_tensor *own = nb_tensor_clone(t->grad);
        if (!own) rc = -1;
        nb_release(t->grad);
        t->grad = own;
    }
    if (rc == 0) rc = ctx->backend->axpby(ctx->backend, t->grad, 1.0f, g, 1.0f);
    nb_release(g);
    return rc;
}

int nb_backward(nb_tensor *root, const nb_tensor *grad) {
    if (!root) return -1;
    nb_ctx *ctx = root->ctx;
    nb_backend *be = ctx->backend;
    NB_REQUIRE(ctx, root->requires_grad, -1, "backward",
               "the tensor %s does not require a gradient\n  hint: mark parameters with nb_set_requires_grad "
               "before the forward pass, and keep grad mode on",
               NB_SHAPE(root));
    if (grad) {
        NB_REQUIRE(ctx, nb_same_shape(grad, root), -1, "backward", "gradient %s does not match the tensor %s",
                   NB_SHAPE(grad), NB_SHAPE(root));
    } else {
        NB_REQUIRE(ctx, nb_numel(root) == 1, -1, "backward",
                   "an implicit gradient needs a one-element tensor, got %s\n  hint: pass the upstream "
                   "gradient, or reduce to a scalar loss first",
                   NB_SHAPE(root));
    }

    nb_tensor *seed;
    int rc = 0;
    if (grad && grad->layout == root->layout && grad->dtype == root->dtype &&
        (grad->layout != NB_LAYOUT_PLAIN || nb_is_contiguous(grad))) {
        seed = (nb_tensor *)grad; /* borrowed, never written: accumulate copies on write */
        nb_retain(seed);
    } else {
        seed = nb_tensor_header(ctx, root->dtype, root->ndim, root->shape);
        if (!seed || nb_tensor_alloc(seed, root->layout) != 0) return -1;
        rc = grad ? be->relayout(be, seed, grad) : nb_fill(seed, 1.0);
        if (rc != 0) {
            nb_release(seed);
            return -1;
        }
    }
    if (root->grad) {
        rc = accumulate(root, seed);
    } else {
        root->grad = seed;
    }

    nb_tape *tp = &ctx->tape;
    /* with gradient hooks: the leaves each node is the first reader of, in forward order; walking backward,
     * a leaf's gradient is complete once that node is done */
    typedef struct {
        size_t k;
        nb_tensor *leaf;
    } first_read;
    first_read *ready = NULL;
    size_t n_ready = 0, cap_ready = 0;
    if (ctx->grad_hooks.on_grad_ready)
        for (size_t k = 0; k < tp->n; k++)
            for (int i = 0; i < tp->nodes[k]->n_in; i++) {
                nb_tensor *x = tp->nodes[k]->in[i];
                if (!x || !x->is_leaf || !x->requires_grad) continue;
                bool seen = false;
                for (size_t j = 0; j < n_ready && !seen; j++) seen = ready[j].leaf == x;
                if (seen) continue;
                if (n_ready == cap_ready) ready = nb_xrealloc(ready, (cap_ready = cap_ready ? 2 * cap_ready : 64) * sizeof *ready);
                ready[n_ready++] = (first_read){k, x};
            }
    size_t next_ready = n_ready;
    nb_tensor *gout[16];
    nb_tensor *gin_small[16];
    for (size_t k = tp->n; k-- > 0 && rc == 0;) {
        nb_node *n = tp->nodes[k];
        bool any_out = false, any_in = false;
        for (int i = 0; i < n->n_out; i++)
            if (n->out[i]->grad) any_out = true;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->requires_grad) any_in = true;
        if (any_out && any_in) {
            NB_ASSERT(n->n_out <= 16);
            for (int i = 0; i < n->n_in; i++) {
                nb_tensor *x = n->in[i];
                if (x && x->version != n->in_version[i]) {
                    NB_FAIL(ctx, nb_op_name(n->op),
                            "input %d %s (%s) was modified in place after the forward pass; its gradient "
                            "would be wrong",
                            i, NB_SHAPE(x), x->name[0] ? x->name : "unnamed");
                    rc = -1;
                    break;
                }
            }
            if (rc != 0) break;
            /* outputs without a gradient (an unused split part) contribute zeros */
            for (int i = 0; i < n->n_out; i++) {
                nb_tensor *o = n->out[i];
                if (!o->grad) {
                    o->grad = nb_tensor_header(ctx, o->dtype, o->ndim, o->shape);
                    if (nb_tensor_alloc(o->grad, o->layout) != 0 || be->fill(be, o->grad, 0.0) != 0) {
                        rc = -1;
                        break;
                    }
                }
                gout[i] = o->grad;
            }
            if (rc != 0) break;
            nb_tensor **gin = n->n_in <= 16 ? gin_small : nb_xcalloc((size_t)n->n_in, sizeof *gin);
            for (int i = 0; i < n->n_in; i++) {
                nb_tensor *x = n->in[i];
                gin[i] = x && x->requires_grad ? nb_tensor_header(ctx, x->dtype, x->ndim, x->shape) : NULL;
            }
            rc = nb_core_backward(ctx, n, gout, gin);
            for (int i = 0; i < n->n_in; i++) {
                if (!gin[i]) continue;
                if (rc == 0 && gin[i]->storage) {
                    rc = accumulate(n->in[i], gin[i]);
                } else {
                    nb_release(gin[i]);
                }
            }
            if (gin != gin_small) free(gin);
        }
        /* gradients of intermediate outputs are consumed: free them unless asked to keep */
        for (int i = 0; i < n->n_out; i++) {
            nb_tensor *o = n->out[i];
            if (o != root && !o->retain_grad && o->grad) {
                nb_release(o->grad);
                o->grad = NULL;
            }
        }
        while (rc == 0 && next_ready > 0 && ready[next_ready - 1].k == k)
            ctx->grad_hooks.on_grad_ready(ctx->grad_hooks.user, ready[--next_ready].leaf);
        node_drop(n);
        for (int i = 0; i < n->n_in; i++) release_if_done(n->in[i], root);
        for (int i = 0; i < n->n_out; i++) release_if_done(n->out[i], root);
        for (int i = 0; i < n->n_in; i++) nb_release(n->in[i]);
        for (int i = 0; i < n->n_out; i++) nb_release(n->out[i]);
        n->n_in = n->n_out = 0;
    }
    free(ready);
    nb_tape_clear(ctx);
    if (!root->retain_grad && !root->is_leaf && root->grad) {
        nb_release(root->grad);
        root->grad = NULL;
    }
    if (rc == 0 && ctx->grad_hooks.on_backward_end) rc = ctx->grad_hooks.on_backward_end(ctx->grad_hooks.user);
    return rc;
}

/* ---- cost ---- */

int64_t nb_node_macs(const nb_node *n) { return op_infos[n->op].cost(n); }
