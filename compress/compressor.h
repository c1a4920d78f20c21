/* Compression methods as trainer hooks. The trainer knows no method: it calls every configured compressor at
 * fixed points of the run (epoch and minibatch boundaries, before backward, before the optimizer step, around
 * evaluation, at the end), and methods compose by being called in turn (prune, then quantize, then distil,
 * as [compress] methods lists them). A compressor's state is a set of named tensors that the checkpoint
 * carries, so --resume restores it exactly. */
#ifndef NB_COMPRESSOR_H
#define NB_COMPRESSOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "models/model.h"
#include "optim/optim.h"
#include "setup/checkpoint.h"
#include "setup/settings.h"

/* What the hooks of a training step see and may change. */
typedef struct {
    nb_ctx *ctx;
    nb_model *model;
    nb_optim *optim;
    nb_tensor *x, *y;    /* the batch */
    nb_tensor *logits;   /* after the forward pass */
    nb_tensor *loss;     /* before_backward may replace it (distillation) */
    int64_t step;        /* optimizer steps taken before this one */
    int64_t epoch;
    double lr;
} nb_step;

typedef struct nb_compressor nb_compressor;
struct nb_compressor {
    const char *name; /* "admm", "prune", "kd", "twn", "bwn": its checkpoint state lives under compress/<name>/ */
    void *impl;
    /* each hook may be NULL; 0 on success, -1 after reporting */
    int (*epoch_begin)(nb_compressor *c, int64_t epoch);
    int (*epoch_end)(nb_compressor *c, int64_t epoch);
    int (*batch_begin)(nb_compressor *c, nb_step *s);
    int (*before_backward)(nb_compressor *c, nb_step *s);
    int (*before_step)(nb_compressor *c, nb_step *s);
    int (*batch_end)(nb_compressor *c, nb_step *s);
    /* evaluation and best.h5 see the compressed network: swap it in, then back */
    int (*eval_begin)(nb_compressor *c);
    int (*eval_end)(nb_compressor *c);
    /* the end of training: make the compression final (weights exactly on the codebook, masks applied) */
    int (*finish)(nb_compressor *c);
    /* the tensors to checkpoint and restore */
    void (*state)(nb_compressor *c, nb_ckpt_extra *out);
    /* parameters of the method's own that the optimizer trains (quantizers' step sizes): n, at most max in out */
    int (*params)(nb_compressor *c, nb_tensor **out, int max);
    /* fields for the epoch's metrics line, as ", \"key\": value" */
    void (*metrics)(nb_compressor *c, char *buf, size_t n);
    void (*destroy)(nb_compressor *c);
};

/* The methods compress.methods may name, one row each: the enum constant's suffix and the name, which is also
 * the name of its constructor, nb_<name>_new(ctx, settings, model, steps_per_epoch) (compress/<file>.c). A new
 * method is its file and a row here (and its keys in setup/settings.h). */
#define NB_METHODS(X)  \
    X(ADMM, admm)      \
    X(PRUNE, prune)    \
    X(KD, kd)          \
    X(TWN, twn)        \
    X(BWN, bwn)        \
    X(QAT, qat)

#define NB_METHOD_ENUM(E, name) NB_METHOD_##E,
typedef enum { NB_METHODS(NB_METHOD_ENUM) } nb_method;
#undef NB_METHOD_ENUM
#define NB_METHODS_MAX 8

typedef struct {
    nb_method list[NB_METHODS_MAX]; /* in the order compress.methods names them: the order hooks run in */
    int n;
} nb_method_set;

/* compress.methods parsed once, and every rule on which methods and options go together (and with a
 * detector, m) checked here and nowhere else. 0, or -1 after reporting. */
int nb_methods_parse(nb_ctx *ctx, const nb_settings *s, const nb_model *m, nb_method_set *out);
bool nb_methods_has(const nb_method_set *set, nb_method which);

typedef struct {
    nb_compressor *items[NB_METHODS_MAX];
    int n;
    bool extragradient; /* ADMM's extragradient step: the trainer takes two gradients per step */
} nb_compress_set;

/* The compressors of methods (nb_methods_parse), over model m; *set is left empty when there are none.
 * steps_per_epoch converts epoch settings into steps. 0, or -1 after reporting. */
int nb_compress_new(nb_ctx *ctx, const nb_settings *s, const nb_method_set *methods, nb_model *m,
                    int64_t steps_per_epoch, nb_compress_set *set);
void nb_compress_free(nb_compress_set *set);

/* Call a hook of every compressor in order; stop at the first failure. Evaluation's hooks swap the compressed
 * network in at NB_AT_BEGIN in list order and back out at NB_AT_END in reverse. */
typedef enum { NB_AT_BEGIN, NB_AT_END } nb_edge;
int nb_compress_epoch(nb_compress_set *set, nb_edge edge, int64_t epoch);
int nb_compress_step(nb_compress_set *set, int which, nb_step *s);
enum { NB_HOOK_BATCH_BEGIN, NB_HOOK_BEFORE_BACKWARD, NB_HOOK_BEFORE_STEP, NB_HOOK_BATCH_END };
int nb_compress_eval(nb_compress_set *set, nb_edge edge);
int nb_compress_finish(nb_compress_set *set);
void nb_compress_state(nb_compress_set *set, nb_ckpt_extra *out);
/* The methods' own trainable parameters (nb_compressor.params), at most max: how many. */
int nb_compress_params(nb_compress_set *set, nb_tensor **out, int max);
void nb_compress_metrics(nb_compress_set *set, char *buf, size_t n);

/* ---- shared by the methods ---- */

/* Quantizing methods put the quantized weights in place for evaluation, keeping the float ones to restore,
 * and for good at the end of training. */
typedef enum { NB_QUANTIZE_KEEP_FLOAT, NB_QUANTIZE_FOR_GOOD } nb_quantize_mode;

/* The weights a method acts on: conv and linear weights (2-D and up) whose names match `layers` (comma-separated
 * glob patterns; "default" = all but the first convolution and the last linear layer, which stay full
 * precision, as is usual) and not compress.exclude. */
int nb_compress_select(const nb_compress_settings *c, const char *layers, const nb_model *m, nb_tensor **out, int max);
/* A per-layer value from "pattern=value, pattern=value" (the first match wins), or NULL. */
const char *nb_compress_override(const char *list, const char *name, char *buf, size_t n);

/* Host copies of device tensors (the projections that sort run on the host). */
float *nb_host_copy(const nb_tensor *t);
int nb_host_store(nb_tensor *t, const float *h);

#endif
