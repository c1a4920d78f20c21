/* Every configuration key, one row each, and the typed settings read from them. A row binds the key's
 * section, name, type, default, choices (ENUM keys: "a|b|c") and help to a field of nb_settings, as Redis's
 * typed config table does: setup/config.c checks files and overrides against the rows, nb_settings_read
 * converts the values once, and from then on every module reads s->section.key, never a string. A new key is
 * one row here. The rows' order is the order of the resolved configuration every checkpoint carries.
 *
 * Field types: INT int64_t, FLOAT double, BOOL bool, STR char[NB_CFG_VALUE_MAX], ENUM nb_setting_enum (the
 * index of the value among the choices, with the enums below naming them, and the value's text for messages),
 * LIST nb_setting_list (comma-separated numbers). */
#ifndef NB_SETTINGS_H
#define NB_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "setup/config.h"

#define NB_FMNIST_DIR "/usr/share/datasets/fashion-mnist/"

#define NB_SETTINGS_MODEL(X)                                                                                           \
    X(model, arch, STR, "resnet20", NULL,                                                                              \
      "architecture: onnx (the model of model.onnx); smallcnn; CIFAR-style resnet20, resnet56 (any 6n+2); resnet18, resnet34, resnet50, resnet101, "   \
      "resnet152; alexnet; mobilenet_v2; shufflenet_v2_x0_5, _x1_0, _x1_5, _x2_0; muffnet_x0_5, muffnet_x1_0")         \
    X(model, num_classes, INT, "10", NULL,                                                                             \
      "classifier outputs")                                                                                            \
    X(model, in_channels, INT, "1", NULL,                                                                              \
      "input image channels")                                                                                          \
    X(model, input_size, INT, "28", NULL,                                                                              \
      "input height = width")                                                                                          \
    X(model, width, FLOAT, "1.0", NULL,                                                                                \
      "channel multiplier")                                                                                            \
    X(model, init, STR, "", NULL,                                                                                      \
      "start from the weights of this HDF5 checkpoint (strict by name)")                                               \
    X(model, init_strict, BOOL, "true", NULL,                                                                          \
      "false: model.init fills the parameters whose names it has (a classifier's backbone for a detector) and leaves " \
      "the rest as initialised")                                                                                       \
    X(model, zero_init_residual, BOOL, "false", NULL,                                                                  \
      "ResNets: each block's last BN scale starts at 0")                                                               \
    X(model, onnx, STR, "", NULL,                                                                                      \
      "model.arch = onnx: the ONNX file to import (relative to the cfg that names it); its initializers become the "  \
      "parameters, model.num_classes and model.in_channels make the classifier and first convolution anew where they "\
      "differ from the file's")

#define NB_SETTINGS_DATA(X)                                                                                            \
    X(data, format, ENUM, "idx", "idx|hdf5|folder|cifar|voc",                                                          \
      "idx: MNIST-style files (.gz or raw); hdf5: datasets images + labels; folder: data.root/{train,val}/<class>/ "   \
      "of JPEG and PNG files (torchvision's ImageFolder); cifar: CIFAR-10/100 binaries in data.root; voc: Pascal "     \
      "VOC detection data under data.root, data.train and data.val naming splits such as VOC2007/trainval+VOC2012/trainval") \
    X(data, classes, STR, "", NULL,                                                                                    \
      "voc: the object classes, comma-separated (default: VOC's twenty)")                                              \
    X(data, root, STR, "", NULL,                                                                                       \
      "folder and cifar formats: the dataset's directory")                                                             \
    X(data, train, STR, NB_FMNIST_DIR "train-images-idx3-ubyte.gz", NULL,                                              \
      "training images (idx) or file (hdf5)")                                                                          \
    X(data, train_labels, STR, "", NULL,                                                                               \
      "idx labels; default: the images path with images-idx3 -> labels-idx1")                                          \
    X(data, val, STR, NB_FMNIST_DIR "t10k-images-idx3-ubyte.gz", NULL,                                                 \
      "validation images (idx) or file (hdf5)")                                                                        \
    X(data, val_labels, STR, "", NULL,                                                                                 \
      "idx labels of the validation set; derived like train_labels")                                                   \
    X(data, limit, INT, "0", NULL,                                                                                     \
      "use only the first N training samples (0: all)")                                                                \
    X(data, val_limit, INT, "0", NULL,                                                                                 \
      "use only the first N validation samples (0: all)")                                                              \
    X(data, augment, ENUM, "none", "none|flip|crop|crop_flip|rrc|rrc_flip|ssd",                                        \
      "training augmentation: flip, padded random crop (in-memory data), random resized crop (image folders), ssd "    \
      "(detection: photometric distortion, expand, min-IoU random crop, flip)")                                        \
    X(data, scale_min, FLOAT, "0.08", NULL,                                                                            \
      "random resized crop: smallest fraction of the image area")                                                      \
    X(data, resize, INT, "0", NULL,                                                                                    \
      "image folders, evaluation: shorter side before the centre crop (0: 8/7 of model.input_size)")                   \
    X(data, pad, INT, "2", NULL,                                                                                       \
      "zero padding of the random crop")                                                                               \
    X(data, mean, LIST, "0.2860", NULL,                                                                                \
      "per-channel mean subtracted after scaling to [0,1]")                                                            \
    X(data, std, LIST, "0.3530", NULL,                                                                                 \
      "per-channel standard deviation divided by")                                                                     \
    X(data, workers, INT, "2", NULL,                                                                                   \
      "loader threads preparing batches ahead of the model")

#define NB_SETTINGS_TRAIN(X)                                                                                           \
    X(train, epochs, INT, "10", NULL,                                                                                  \
      "passes over the training set")                                                                                  \
    X(train, steps, INT, "0", NULL,                                                                                    \
      "stop after this many optimizer steps (0: no limit)")                                                            \
    X(train, batch, INT, "128", NULL,                                                                                  \
      "training batch size")                                                                                           \
    X(train, eval_batch, INT, "500", NULL,                                                                             \
      "evaluation batch size")                                                                                         \
    X(train, seed, INT, "1", NULL,                                                                                     \
      "seeds initialisation, sample order and augmentation")                                                           \
    X(train, shuffle, BOOL, "true", NULL,                                                                              \
      "reshuffle the training set every epoch")                                                                        \
    X(train, out, STR, "", NULL,                                                                                       \
      "run directory (default runs/<cfg name>)")                                                                       \
    X(train, device, ENUM, "cpu", "cpu|cuda",                                                                          \
      "backend: cpu (oneDNN, OpenBLAS) or cuda (a build made with make CUDA=1)")                                       \
    X(train, precision, ENUM, "fp32", "fp32|bf16|fp16",                                                                \
      "training arithmetic: fp32, or bf16 mixed precision (convolutions, linear layers and the activations "          \
      "between them in bf16; f32 weights, optimizer state, batch-norm statistics and loss; evaluation in fp32); "      \
      "fp16 needs a GPU backend with fp16 kernels")                                                                    \
    X(train, loss_scale, ENUM, "off", "off|dynamic",                                                                   \
      "dynamic loss scaling, as torch.cuda.amp.GradScaler: backward from the loss times a scale, the gradients "       \
      "unscaled before anything reads them; a step with an inf or NaN gradient is skipped and lowers the scale")       \
    X(train, loss_scale_init, FLOAT, "65536", NULL,                                                                    \
      "loss scaling: the first scale")                                                                                 \
    X(train, loss_scale_growth, FLOAT, "2", NULL,                                                                      \
      "loss scaling: the scale's factor after loss_scale_interval steps without an overflow")                          \
    X(train, loss_scale_backoff, FLOAT, "0.5", NULL,                                                                   \
      "loss scaling: the scale's factor after a step with one")                                                        \
    X(train, loss_scale_interval, INT, "2000", NULL,                                                                   \
      "loss scaling: overflow-free steps in a row before the scale grows (0: never)")                                  \
    X(train, threads, INT, "0", NULL,                                                                                  \
      "compute threads (0: all cores, shared out among the ranks on one machine)")                                     \
    X(train, sync_bn, BOOL, "false", NULL,                                                                             \
      "data-parallel: batch norms use the statistics of the whole global batch")                                       \
    X(train, bucket_mb, FLOAT, "4", NULL,                                                                              \
      "data-parallel: gradients are summed over the ranks in buckets of this size")                                    \
    X(train, label_smoothing, FLOAT, "0", NULL,                                                                        \
      "cross-entropy label smoothing")                                                                                 \
    X(train, log_every, INT, "50", NULL,                                                                               \
      "steps between metric lines")                                                                                    \
    X(train, save_every, INT, "0", NULL,                                                                               \
      "steps between mid-epoch checkpoints (0: at epoch ends only)")

#define NB_SETTINGS_OPTIM(X)                                                                                           \
    X(optim, type, ENUM, "sgd", "sgd|adam|adamw",                                                                      \
      "optimizer")                                                                                                     \
    X(optim, lr, FLOAT, "0.1", NULL,                                                                                   \
      "peak learning rate")                                                                                            \
    X(optim, momentum, FLOAT, "0.9", NULL,                                                                             \
      "SGD momentum")                                                                                                  \
    X(optim, nesterov, BOOL, "false", NULL,                                                                            \
      "Nesterov momentum")                                                                                             \
    X(optim, wd, FLOAT, "5e-4", NULL,                                                                                  \
      "weight decay")                                                                                                  \
    X(optim, wd_exempt, BOOL, "false", NULL,                                                                           \
      "no weight decay on batch-norm parameters and biases")                                                           \
    X(optim, beta1, FLOAT, "0.9", NULL,                                                                                \
      "Adam beta1")                                                                                                    \
    X(optim, beta2, FLOAT, "0.999", NULL,                                                                              \
      "Adam beta2")                                                                                                    \
    X(optim, eps, FLOAT, "1e-8", NULL,                                                                                 \
      "Adam epsilon")                                                                                                  \
    X(optim, schedule, ENUM, "cosine", "constant|step|multistep|cosine|poly",                                          \
      "learning-rate schedule over epochs")                                                                            \
    X(optim, schedule_unit, ENUM, "step", "step|epoch",                                                                \
      "update the rate every step (fractional epochs) or epoch")                                                       \
    X(optim, warmup_epochs, FLOAT, "0", NULL,                                                                          \
      "linear warm-up length")                                                                                         \
    X(optim, warmup_start, FLOAT, "0.1", NULL,                                                                         \
      "warm-up starts at this fraction of lr")                                                                         \
    X(optim, step_size, FLOAT, "30", NULL,                                                                             \
      "step schedule: epochs between decays")                                                                          \
    X(optim, gamma, FLOAT, "0.1", NULL,                                                                                \
      "step/multistep decay factor")                                                                                   \
    X(optim, milestones, LIST, "", NULL,                                                                               \
      "multistep: epochs at which to decay")                                                                           \
    X(optim, min_lr, FLOAT, "0", NULL,                                                                                 \
      "cosine: final learning rate")                                                                                   \
    X(optim, power, FLOAT, "1", NULL,                                                                                  \
      "poly: exponent")                                                                                                \
    X(optim, clip_norm, FLOAT, "0", NULL,                                                                              \
      "clip the global gradient norm to this (0: off)")

#define NB_SETTINGS_COMPRESS(X)                                                                                        \
    X(compress, methods, STR, "none", NULL,                                                                            \
      "compression methods, applied in this order: admm, prune, kd, twn, bwn (or none)")                               \
    X(compress, layers, STR, "default", NULL,                                                                          \
      "weights to quantize: glob patterns of parameter names, or default (every conv and linear weight but the first " \
      "convolution and the last linear layer)")                                                                        \
    X(compress, exclude, STR, "", NULL,                                                                                \
      "glob patterns of weights to leave alone")                                                                       \
    X(compress, codebook, STR, "ternary", NULL,                                                                        \
      "ADMM codebook: binary, ternary, pm2 {0,±1,±2}, pm4 {0,±1,±2,±4}, pow2_N")                                       \
    X(compress, codebook_layers, STR, "", NULL,                                                                        \
      "per-layer codebooks: pattern=codebook, ...")                                                                    \
    X(compress, scale, ENUM, "layer", "layer|channel",                                                                 \
      "ADMM: one scale alpha per layer or per output channel")                                                         \
    X(compress, rho, FLOAT, "5e-3", NULL,                                                                              \
      "ADMM penalty rho at the start")                                                                                 \
    X(compress, rho_growth, FLOAT, "1.1", NULL,                                                                        \
      "rho is multiplied by this at every G/U update")                                                                 \
    X(compress, admm_interval, INT, "0", NULL,                                                                         \
      "steps between ADMM's G and U updates (0: one epoch)")                                                           \
    X(compress, admm_forward, ENUM, "float", "float|quantized",                                                        \
      "ADMM's W-step: loss gradient at the float W (Leng et al.) or at Proj(W), straight through to W")                \
    X(compress, admm_final_epochs, FLOAT, "0", NULL,                                                                   \
      "ADMM: the last N epochs train the quantized network straight through, without the penalty")                     \
    X(compress, extragradient, BOOL, "false", NULL,                                                                    \
      "ADMM's W-step by extragradient (two gradients per step)")                                                       \
    X(compress, sparsity, FLOAT, "0.9", NULL,                                                                          \
      "pruning: final sparsity of every pruned layer")                                                                 \
    X(compress, sparsity_init, FLOAT, "0", NULL,                                                                       \
      "pruning: sparsity where the cubic schedule starts")                                                             \
    X(compress, sparsity_layers, STR, "", NULL,                                                                        \
      "per-layer final sparsity: pattern=value, ...")                                                                  \
    X(compress, prune_layers, STR, "default", NULL,                                                                    \
      "weights to prune (patterns as compress.layers)")                                                                \
    X(compress, prune_start, FLOAT, "0", NULL,                                                                         \
      "pruning starts at this epoch")                                                                                  \
    X(compress, prune_epochs, FLOAT, "0", NULL,                                                                        \
      "epochs the cubic schedule spans (0: one-shot pruning at the start)")                                            \
    X(compress, prune_every, INT, "0", NULL,                                                                           \
      "steps between mask updates (0: a quarter epoch)")                                                               \
    X(compress, granularity, ENUM, "weight", "weight|channel",                                                         \
      "prune single weights or whole output channels")                                                                 \
    X(compress, importance, ENUM, "magnitude", "magnitude|taylor",                                                     \
      "rank by |w| or by accumulated |g*w|")                                                                           \
    X(compress, teacher, STR, "", NULL,                                                                                \
      "distillation: the teacher's checkpoint")                                                                        \
    X(compress, teacher_cfg, STR, "", NULL,                                                                            \
      "the teacher's configuration (default: the one stored in its checkpoint)")                                       \
    X(compress, kd_alpha, FLOAT, "0.5", NULL,                                                                          \
      "distillation: weight of the cross-entropy (1 - alpha on T^2 KL)")                                               \
    X(compress, kd_temperature, FLOAT, "4", NULL,                                                                      \
      "distillation temperature T")                                                                                    \
    X(compress, wbits, INT, "8", NULL,                                                                                 \
      "qat: weight bits (2..8), symmetric, with batch norms folded in")                                                \
    X(compress, abits, INT, "8", NULL,                                                                                 \
      "qat: activation bits (2..8), unsigned with a zero point")                                                       \
    X(compress, qat_layers, STR, "default", NULL,                                                                      \
      "qat and full-integer bin/quantize: per-layer bits 'pattern=bits, ...' on layer names (a convolution or linear " \
      "layer's weight and input; 0 leaves the layer float); default: the first layer and those producing the output " \
      "at 8 bits")                                                                                                     \
    X(compress, qat_scale, ENUM, "channel", "layer|channel",                                                           \
      "qat and full-integer bin/quantize: weight step sizes per layer or per output channel")                                                        \
    X(compress, freeze_bn, FLOAT, "0", NULL,                                                                           \
      "qat: the last epochs run with batch-norm statistics frozen (torch's freeze_bn_stats)")

#define NB_SETTINGS_DETECT(X)                                                                                          \
    X(detect, ratios, LIST, "2,3", NULL,                                                                               \
      "detectors: default boxes' aspect ratios a > 1 (each gives a and 1/a)")                                          \
    X(detect, first_scale, FLOAT, "0.1", NULL,                                                                         \
      "detectors: scale of the first (finest) map's default boxes")                                                    \
    X(detect, min_scale, FLOAT, "0.2", NULL,                                                                           \
      "detectors: scale of the second map's boxes")                                                                    \
    X(detect, max_scale, FLOAT, "0.88", NULL,                                                                          \
      "detectors: scale of the last map's boxes")                                                                      \
    X(detect, head_channels, INT, "0", NULL,                                                                           \
      "LRSSD: width of the shared head (0: 128 x model.width)")                                                        \
    X(detect, predictor, ENUM, "separable", "separable|dense",                                                         \
      "LRSSD: the shared prediction layer, 3x3 depthwise + BN + 1x1 or one dense 3x3 convolution")                     \
    X(detect, match_iou, FLOAT, "0.5", NULL,                                                                           \
      "training: a default box takes a ground truth it overlaps by more")                                              \
    X(detect, neg_pos, FLOAT, "3", NULL,                                                                               \
      "training: hard negatives per positive")                                                                         \
    X(detect, expand_max, FLOAT, "4", NULL,                                                                            \
      "ssd augmentation: largest zoom-out (canvas side / image side)")                                                 \
    X(detect, nms_iou, FLOAT, "0.45", NULL,                                                                            \
      "evaluation: per-class non-maximum suppression threshold")                                                       \
    X(detect, score_min, FLOAT, "0.01", NULL,                                                                          \
      "evaluation: detections scoring less are dropped")                                                               \
    X(detect, top_k, INT, "200", NULL,                                                                                 \
      "evaluation: detections kept per image")

#define NB_SETTINGS_QUANTIZE(X)                                                                                        \
    X(quantize, method, ENUM, "round", "round|optimal|none",                                                           \
      "bin/quantize: min-max round to nearest, the optimal projection, or none (folding and equalization only)")       \
    X(quantize, scale, ENUM, "layer", "layer|channel",                                                                 \
      "bin/quantize: one scale per tensor or per output channel")                                                      \
    X(quantize, fold_bn, BOOL, "false", NULL,                                                                          \
      "bin/quantize: fold batch norms into the convolutions first, as deployment does")                                \
    X(quantize, dfq, BOOL, "false", NULL,                                                                              \
      "bin/quantize: data-free quantization (BN folding, cross-layer equalization, bias correction)")                  \
    X(quantize, bias_correction, BOOL, "true", NULL,                                                                   \
      "bin/quantize with dfq: correct the biases from the BN statistics")                                              \
    X(quantize, activations, INT, "0", NULL,                                                                           \
      "bin/quantize: activation bits of full-integer quantization, calibrated on training images (0: weights only, "   \
      "as quantize.method says)")                                                                                      \
    X(quantize, weights, INT, "8", NULL,                                                                               \
      "bin/quantize with quantize.activations: weight bits (symmetric, per compress.qat_scale)")                           \
    X(quantize, calibration, INT, "512", NULL,                                                                         \
      "bin/quantize with quantize.activations: calibration images, the first of the training set")                     \
    X(quantize, range, ENUM, "minmax", "minmax|percentile|mse",                                                        \
      "calibration: activation ranges from the extremes seen, a percentile, or the clip of least squared error")      \
    X(quantize, percentile, FLOAT, "99.99", NULL,                                                                      \
      "quantize.range = percentile: the share of values inside the range, percent")                                  \
    X(quantize, data_free, ENUM, "none", "none|zeroq|bn",                                                              \
      "bin/quantize with quantize.activations: no data; zeroq calibrates on quantize.calibration images distilled "  \
      "from the model (random inputs optimized until every batch norm sees its running statistics), bn takes the "   \
      "ranges from the batch norms' statistics carried through the network (no image at all)")                      \
    X(quantize, bn_sigmas, FLOAT, "6", NULL,                                                                           \
      "quantize.data_free = bn: each channel's range is its mean plus or minus this many standard deviations")        \
    X(quantize, distill_steps, INT, "500", NULL,                                                                       \
      "quantize.data_free = zeroq: Adam steps on the distilled images")                                                \
    X(quantize, activation_grid, ENUM, "unsigned", "unsigned|symmetric",                                              \
      "qat and full-integer bin/quantize: activations as uint8 with a zero point (ONNX Runtime's preferred form), or " \
      "signed with zero point 0 (symmetric: what MNN's int8 kernels compute correctly, at one bit less for "           \
      "non-negative tensors)")                                                                                         \
    X(quantize, concat_grid, ENUM, "shared", "shared|separate",                                                        \
      "qat and full-integer bin/quantize: a concatenation's inputs and output on one grid (the engines then copy "   \
      "bytes; TFLite's int8 rule), or each on its own (the engine requantizes every input through a table)")        \
    X(quantize, reduce_range, BOOL, "false", NULL,                                                                     \
      "qat and full-integer bin/quantize: 8-bit weights on [-64, 63], which x86 CPUs without VNNI compute exactly "   \
      "(their 16-bit pair sums saturate with full int8 weights: ONNX Runtime's reduce_range)")

#define NB_SETTINGS(X)                                                                                            \
    NB_SETTINGS_MODEL(X)                                                                                          \
    NB_SETTINGS_DATA(X) NB_SETTINGS_TRAIN(X) NB_SETTINGS_OPTIM(X) NB_SETTINGS_COMPRESS(X) NB_SETTINGS_DETECT(X) \
    NB_SETTINGS_QUANTIZE(X)

#define NB_SETTING_LIST_MAX 32

typedef struct {
    int id;        /* index among the key's choices: one of the enums below */
    char name[32]; /* the value as written */
} nb_setting_enum;

typedef struct {
    int n; /* values given (at most NB_SETTING_LIST_MAX are kept) */
    double v[NB_SETTING_LIST_MAX];
} nb_setting_list;

/* The choices of the ENUM keys, in the order their rows list them. train.device is an nb_device
 * (core/backend.h), optim.type an nb_optim_kind and optim.schedule an nb_sched_kind (optim/optim.h), whose
 * orders are the same (tests/test_config.c checks every one). */
typedef enum { NB_DATA_IDX, NB_DATA_HDF5, NB_DATA_FOLDER, NB_DATA_CIFAR, NB_DATA_VOC } nb_data_format; /* data.format */
typedef enum {
    NB_AUGMENT_NONE, NB_AUGMENT_FLIP, NB_AUGMENT_CROP, NB_AUGMENT_CROP_FLIP, NB_AUGMENT_RRC, NB_AUGMENT_RRC_FLIP,
    NB_AUGMENT_SSD
} nb_augment_kind;                                                            /* data.augment */
typedef enum { NB_PER_STEP, NB_PER_EPOCH } nb_schedule_unit;                 /* optim.schedule_unit */
typedef enum { NB_SCALE_LAYER, NB_SCALE_CHANNEL } nb_scale_kind;             /* compress.scale, quantize.scale */
typedef enum { NB_ADMM_FLOAT, NB_ADMM_QUANTIZED } nb_admm_forward;           /* compress.admm_forward */
typedef enum { NB_PRUNE_WEIGHT, NB_PRUNE_CHANNEL } nb_prune_granularity;     /* compress.granularity */
typedef enum { NB_IMPORTANCE_MAGNITUDE, NB_IMPORTANCE_TAYLOR } nb_importance; /* compress.importance */
typedef enum { NB_PREDICTOR_SEPARABLE, NB_PREDICTOR_DENSE } nb_predictor;    /* detect.predictor */
typedef enum { NB_QUANTIZE_ROUND, NB_QUANTIZE_OPTIMAL, NB_QUANTIZE_NONE } nb_quantize_method; /* quantize.method */
typedef enum { NB_DATA_FREE_NONE, NB_DATA_FREE_ZEROQ, NB_DATA_FREE_BN } nb_data_free;       /* quantize.data_free */
typedef enum { NB_ACT_GRID_UNSIGNED, NB_ACT_GRID_SYMMETRIC } nb_act_grid;                      /* quantize.activation_grid */
typedef enum { NB_CONCAT_GRID_SHARED, NB_CONCAT_GRID_SEPARATE } nb_concat_grid;               /* quantize.concat_grid */
typedef enum { NB_PRECISION_FP32, NB_PRECISION_BF16, NB_PRECISION_FP16 } nb_precision;          /* train.precision */
typedef enum { NB_LOSS_SCALE_OFF, NB_LOSS_SCALE_DYNAMIC } nb_loss_scale_mode;                   /* train.loss_scale */

#define NB_SETTING_FIELD(section, key, type, def, choices, help) NB_SETTING_FIELD_##type(key)
#define NB_SETTING_FIELD_INT(key) int64_t key;
#define NB_SETTING_FIELD_FLOAT(key) double key;
#define NB_SETTING_FIELD_BOOL(key) bool key;
#define NB_SETTING_FIELD_STR(key) char key[NB_CFG_VALUE_MAX];
#define NB_SETTING_FIELD_ENUM(key) nb_setting_enum key;
#define NB_SETTING_FIELD_LIST(key) nb_setting_list key;

typedef struct { NB_SETTINGS_MODEL(NB_SETTING_FIELD) } nb_model_settings;
typedef struct { NB_SETTINGS_DATA(NB_SETTING_FIELD) } nb_data_settings;
typedef struct { NB_SETTINGS_TRAIN(NB_SETTING_FIELD) } nb_train_settings;
typedef struct { NB_SETTINGS_OPTIM(NB_SETTING_FIELD) } nb_optim_settings;
typedef struct { NB_SETTINGS_COMPRESS(NB_SETTING_FIELD) } nb_compress_settings;
typedef struct { NB_SETTINGS_DETECT(NB_SETTING_FIELD) } nb_detect_settings;
typedef struct { NB_SETTINGS_QUANTIZE(NB_SETTING_FIELD) } nb_quantize_settings;

typedef struct {
    nb_model_settings model;
    nb_data_settings data;
    nb_train_settings train;
    nb_optim_settings optim;
    nb_compress_settings compress;
    nb_detect_settings detect;
    nb_quantize_settings quantize;
} nb_settings;

/* Every field from a configuration the parser has checked (so nothing can fail). */
void nb_settings_read(const nb_cfg *cfg, nb_settings *s);

#endif
