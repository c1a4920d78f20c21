/* Quantization simulation: the network that integer inference computes, run in float with fake quantizers
 * (core/ops.h: nb_fake_quant), for any model. Nothing is placed by hand per model: while a simulated forward
 * pass runs, the context's op hooks see every op and quantize where the column quant of core/op_table.h says
 * (the input and weight of every convolution and linear layer, the inputs and outputs of adds, average pools
 * and concatenations, max pooling's input and output on one grid, views keeping their input's grid; with
 * quantize.concat_grid = shared a concatenation's inputs and output share one quantizer too). Each
 * quantizer is found by its place in the forward order, so the same model always gets the same quantizers,
 * named after the layer that reads them ("layer1.0.conv1.in").
 *
 * Weights are quantized per output channel (or per tensor), symmetric: 8 bits on [-127, 127], fewer on
 * [-2^(b-1), 2^(b-1) - 1]; a convolution followed by a batch norm quantizes the weight with the batch norm
 * folded in, W * sf with sf = gamma / sqrt(running_var + eps), and divides sf back out after the quantizer, so
 * the batch norm still runs (as torch's ConvBn2d in quantization-aware training): with frozen or evaluation
 * statistics the network is exactly the folded, quantized one that is deployed. Activations are unsigned
 * (uint8 for 8 bits) with a zero point: 0 for a non-negative tensor, else where calibration puts it; or, with
 * quantize.activation_grid = symmetric, signed (int8) with zero point 0, the form MNN's int8 kernels compute
 * correctly (its int8 adds ignore nonzero zero points).
 *
 * Step sizes come from calibration (min-max, percentile or MSE ranges over observed batches) and are then
 * frozen (post-training quantization) or trained with LSQ's gradient (quantization-aware training). They
 * live in checkpoints under quant/act/<name>/ and quant/weight/<parameter>/ (scale, zero_point, grid: qmin,
 * qmax and whether it was calibrated). */
#ifndef NB_QSIM_H
#define NB_QSIM_H

#include <stdbool.h>

#include "datasets/loader.h"
#include "models/model.h"
#include "setup/checkpoint.h"
#include "setup/settings.h"

typedef enum { NB_QRANGE_MINMAX, NB_QRANGE_PERCENTILE, NB_QRANGE_MSE } nb_qrange; /* quantize.range */

typedef struct {
    int wbits, abits;       /* default widths, 2..8 */
    char layer_bits[NB_CFG_VALUE_MAX]; /* "default" (the first layer and those producing the output at 8 bits)
                                          or "pattern=bits, ..." on layer names: a conv or linear layer's weight
                                          and input */
    bool per_channel;       /* weights: one step size per output channel */
    bool reduce_range;      /* 8-bit weights on [-64, 63] (x86 without VNNI computes them exactly) */
    bool symmetric_act;     /* activations signed on [-2^(b-1), 2^(b-1) - 1] with zero point 0 (MNN) */
    bool shared_concat;     /* a concatenation's inputs and output on one grid (quantize.concat_grid) */
    bool learn;             /* step sizes are trained (LSQ) */
    char skip_weights[NB_CFG_VALUE_MAX]; /* comma-separated parameter names whose weights another method
                                            quantizes (ADMM's codebooks): left as they are */
    nb_qrange range;        /* how calibration turns observations into ranges */
    double percentile;      /* quantize.range = percentile: the share of values kept inside, in percent */
} nb_qsim_cfg;

typedef struct nb_qsim nb_qsim;

/* The simulation's settings from a run's: quantization-aware training (compress.methods names qat) or
 * post-training full-integer quantization (quantize.activations > 0). False when neither asks for it. With
 * qat beside a codebook method (admm, twn, bwn), the weights of m that compress.layers selects for it are
 * skip_weights. */
bool nb_qsim_cfg_from(const nb_settings *s, const nb_model *m, nb_qsim_cfg *out);

/* Place the quantizers of m (a recorded forward pass finds them and the batch norm after each convolution)
 * and wrap m->forward, so that every forward pass from now on runs simulated. Weight step sizes start from
 * the current weights; activations wait for calibration. NULL after reporting. */
nb_qsim *nb_qsim_new(nb_model *m, const nb_qsim_cfg *cfg);
/* Unwrap m->forward and free the simulation. */
void nb_qsim_free(nb_qsim *q);

/* Calibration: between begin and end, forward passes run in float and each activation quantizer records what
 * it sees. It takes two passes over the same batches: pass 0 the ranges, pass 1 the histograms that
 * percentile and MSE ranges need (min-max needs only pass 0). nb_qsim_calibrate_end sets every activation's
 * step size and zero point. */
void nb_qsim_calibrate_begin(nb_qsim *q, int pass);
int nb_qsim_calibrate_end(nb_qsim *q);
/* Calibration by a rule instead of observed values (data-free ranges, compress/bn_ranges.h): while fn is set,
 * a calibration pass tells fn each activation quantizer's index and the tensor it would observe, and records
 * nothing; nb_qsim_set_range then gives the quantizer the range it would have seen (nb_qsim_calibrate_end
 * turns it into a step size and zero point). fn NULL: observe values again. */
typedef void (*nb_qsim_observer)(void *user, int point, nb_tensor *t);
void nb_qsim_observe_with(nb_qsim *q, nb_qsim_observer fn, void *user);
void nb_qsim_set_range(nb_qsim *q, int point, double lo, double hi);
const char *nb_qsim_point_name(const nb_qsim *q, int point);
/* The whole calibration over the first `images` samples of ds as lc prepares them (no augmentation for a
 * deployment's statistics): one pass per nb_qsim_calibrate_begin, in evaluation mode, then
 * nb_qsim_calibrate_end. Long passes show progress on stderr unless quiet. 0, or -1 after reporting. */
int nb_qsim_calibrate(nb_qsim *q, const nb_dataset *ds, const nb_loader_cfg *lc, int64_t images, bool quiet);
/* The same over n images already in memory (normalised, [n, C, H, W] floats: distilled data), batch at a time. */
int nb_qsim_calibrate_images(nb_qsim *q, const float *x, int64_t n, int batch, bool quiet);
/* Recompute every weight quantizer's step sizes from the current weights (min-max at 8 bits, MSE below). */
int nb_qsim_init_weights(nb_qsim *q);

/* The trainable step sizes (cfg.learn): n, with at most max of them in out. */
int nb_qsim_params(nb_qsim *q, nb_tensor **out, int max);
/* The checkpoint's quant/... tensors, to save or to load in place. */
void nb_qsim_state(nb_qsim *q, nb_ckpt_extra *out);
/* After loading state (source: where from, for messages): read the grids back. nb_qsim_sync: 1 when every
 * quantizer is calibrated, 0 when one is not, -1 after reporting a grid that is none. nb_qsim_check_ready:
 * 0, or an error naming the first quantizer that is not calibrated. */
int nb_qsim_sync(nb_qsim *q, const char *source);
int nb_qsim_check_ready(nb_qsim *q, const char *source);
/* While exporting, forward passes quantize activations only: the lowering writes the weights' integer codes
 * from nb_qsim_weight_grid. */
void nb_qsim_set_exporting(nb_qsim *q, bool on);

/* How weight parameter w, with the batch norm of scale bn_gamma folded in (NULL: none), is quantized in the
 * deployed network: a host copy of its step sizes (malloc'd; *n_scale of them, 1 or one per output channel)
 * on the grid [*qmin, *qmax]; NULL when the simulation does not quantize it so. nb_qsim_quantizes: whether it
 * quantizes w at all. */
float *nb_qsim_weight_scales(const nb_qsim *q, const nb_tensor *w, const nb_tensor *bn_gamma, int64_t *n_scale,
                             int *qmin, int *qmax);
bool nb_qsim_quantizes(const nb_qsim *q, const nb_tensor *w);

/* A simulation for checkpoint ckpt when it holds one (quant/ records) and the settings ask for it: placed on
 * m (its weights loaded) and its step sizes loaded. *out NULL when the checkpoint has none. 0, or -1 after
 * reporting. */
int nb_qsim_for_checkpoint(nb_model *m, const nb_settings *s, const char *ckpt, nb_qsim **out);

/* A JSON summary: quantizers, their widths, how many activations are signed. */
void nb_qsim_describe(const nb_qsim *q, char *buf, size_t n);

#endif
