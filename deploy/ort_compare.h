/* An exported model run by ONNX Runtime on a whole dataset beside nibble's own outputs for the same inputs:
 * what shows that the engine computes what nibble's simulation of the integer network computes. ONNX Runtime
 * runs through node and scripts/ort_run.js (onnxruntime-node), with every graph optimization on, as a
 * deployment runs it (QuantizeLinear/DequantizeLinear pairs fused into integer kernels); an engine in this
 * process (nibble's integer inference) is compared the same way. */
#ifndef NB_ORT_COMPARE_H
#define NB_ORT_COMPARE_H

#include "datasets/loader.h"
#include "models/model.h"

typedef struct {
    int64_t n;             /* images */
    double top1;           /* ONNX Runtime's top-1 against the labels (classifiers; NAN for detectors) */
    double top1_agreement; /* images whose top class is the same in both (classifiers; NAN for detectors) */
    double within_step;    /* output values within one step of nibble's */
    double step;           /* that step: the range of nibble's outputs over the set, / 255 (an 8-bit output) */
    double max_abs_diff;
} nb_ort_comparison;

/* Run m (as it is: through its quantization simulation when it has one) and ONNX Runtime on model `onnx`
 * over ds as lc prepares it, at most `limit` images (0: all), and compare. root: the repository (where
 * scripts/ort_run.js and build/ort/node_modules are); threads: ONNX Runtime's. 0, or -1 after reporting. */
int nb_ort_compare(nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, const char *onnx, const char *root,
                   int threads, int64_t limit, nb_ort_comparison *out);

/* The same comparison with an engine that runs in this process (nibble's integer inference): fn(user, x, k, y)
 * takes k images [k, c, h, w] as nibble saw them and writes their outputs y [k, outputs]. */
typedef int (*nb_engine_fn)(void *user, const float *x, int64_t k, float *y);
int nb_engine_compare(nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, nb_engine_fn fn, void *user,
                      int64_t limit, nb_ort_comparison *out);
/* nb_ort_compare with that engine's outputs (outputs values an image) in place of the model's: nibble's
 * integer inference against ONNX Runtime (or MNN) on the same exported network */
typedef struct {
    nb_engine_fn fn;
    void *user;
    int64_t outputs;
} nb_engine;
int nb_ort_compare_engine(const nb_engine *mine, nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc,
                          const char *onnx, const char *root, int threads, int64_t limit, nb_ort_comparison *out);

#endif
