/* Models: an architecture by name, its named parameters and buffers (torchvision state_dict names and
 * layouts), and its forward pass. */
#ifndef NB_MODEL_H
#define NB_MODEL_H

#include <stdbool.h>
#include <stdio.h>

#include "detect/priors.h"
#include "layers/params.h"

typedef struct {
    const char *arch;   /* "smallcnn", CIFAR "resnet20".."resnet110", ImageNet "resnet18".."resnet152",
                           "shufflenet_v2_x1_0" (and x0_5, x1_5, x2_0), "mobilenet_v2", "alexnet",
                           "muffnet_x0_5", "muffnet_x1_0" */
    int num_classes;
    int in_channels;
    int input_size;     /* H = W the model is built for (only smallcnn's classifier depends on it) */
    float width;        /* channel multiplier: 1.0 is the published network */
    int zero_init_residual; /* ResNets: start each block's last BN scale at 0, so blocks begin as identities */
    uint64_t seed;      /* initialisation */
    struct {            /* detectors (ssd_*, ssdlite_*, lrssd_*); num_classes then counts the background too */
        int n_ratios;
        float ratios[NB_PRIOR_RATIOS]; /* default boxes' aspect ratios a > 1 (each gives a and 1/a) */
        float first_scale, min_scale, max_scale; /* SSD's s_1, and s_2 ... s_m spread evenly */
        int head_channels;                       /* LRSSD: the shared head's width (0: 128 x model.width) */
        bool dense_predictor;                    /* LRSSD: the shared predictor a dense 3x3 (else 3x3 dw + 1x1) */
        float neg_pos;                           /* training: hard negatives per positive (3) */
        float score_min, nms_iou;                /* inference: detect/decode.h */
        int top_k;
    } det;
} nb_model_spec;

typedef struct nb_model nb_model;
struct nb_model {
    nb_model_spec spec; /* spec.arch points at arch below: the model owns its copy */
    char arch[64];
    nb_ctx *ctx;
    nb_params params;
    nb_tensor *(*forward)(nb_model *m, nb_tensor *x, bool training); /* logits [N, num_classes] */
    void (*destroy)(nb_model *m);
    void *impl;
    /* detectors: their default boxes; forward then returns [N, 4 + num_classes, P] (see detect/priors.h) */
    const nb_prior_cfg *priors;
    /* a wrapper of forward (compress/qsim.c: the quantization simulation) keeps the model's own forward here,
     * and itself in wrapper; NULL when none */
    nb_tensor *(*wrapped_forward)(nb_model *m, nb_tensor *x, bool training);
    void *wrapper;
};

/* A model with its spec, context, an empty parameter list seeded by spec->seed and a zeroed impl of
 * impl_size bytes: what every architecture starts from. */
nb_model *nb_model_alloc(nb_ctx *ctx, const nb_model_spec *spec, size_t impl_size,
                         nb_tensor *(*forward)(nb_model *, nb_tensor *, bool), void (*destroy)(nb_model *));

/* NULL with an error naming the known architectures when arch is unknown. */
nb_model *nb_model_create(nb_ctx *ctx, const nb_model_spec *spec);
void nb_model_free(nb_model *m);

/* Record m's forward pass (zero images, a batch of `batch`, evaluation mode) with every op on a cleared tape:
 * what channel analysis, data-free quantization, the summary and export read. The caller clears the tape and
 * ends the scope (nb_scope_end(ctx, *mark)) when done, and releases *input. NULL after reporting. */
nb_tensor *nb_record_forward(nb_model *m, int batch, size_t *mark, nb_tensor **input);
/* Per-layer table: name, output shape, parameters, MFLOPs (multiply-accumulates), and totals. */
int nb_print_summary(nb_model *m, FILE *f);
const char *nb_model_arch_list(void); /* "smallcnn, resnet20, ..." for messages */

nb_model *nb_smallcnn_create(nb_ctx *ctx, const nb_model_spec *spec);
nb_model *nb_resnet_cifar_create(nb_ctx *ctx, const nb_model_spec *spec, int depth);
bool nb_resnet_imagenet_depth(int depth); /* 18, 34, 50, 101, 152 */
nb_model *nb_resnet_imagenet_create(nb_ctx *ctx, const nb_model_spec *spec, int depth);
nb_model *nb_alexnet_create(nb_ctx *ctx, const nb_model_spec *spec);
nb_model *nb_mobilenetv2_create(nb_ctx *ctx, const nb_model_spec *spec);
bool nb_muffnet_arch(const char *arch); /* muffnet_x0_5, muffnet_x1_0 */
nb_model *nb_muffnet_create(nb_ctx *ctx, const nb_model_spec *spec);
bool nb_shufflenetv2_arch(const char *arch); /* shufflenet_v2_x0_5, _x1_0, _x1_5, _x2_0 */
nb_model *nb_shufflenetv2_create(nb_ctx *ctx, const nb_model_spec *spec);
bool nb_ssd_arch(const char *arch); /* {ssd,ssdlite,lrssd}_{mobilenet_v2,resnet18} */
nb_model *nb_ssd_create(nb_ctx *ctx, const nb_model_spec *spec);

#endif
