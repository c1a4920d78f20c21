/* bin/eval CKPT [CFG] [section.key=value ...]: a checkpoint evaluated on the validation set (data.val) as one
 * JSON object on stdout: top-1, top-5 and loss for a classifier; VOC07 11-point and all-point mAP and the loss
 * for a detector. Without CFG the configuration stored in the checkpoint is used; it runs on the device that
 * configuration trained on (train.device), or on the CPU where there is no GPU. A checkpoint with quantizers
 * (quant/: quantization-aware training, full-integer bin/quantize) is evaluated through the simulation of its
 * integer network ("simulated": true).
 *
 * --onnx MODEL.onnx: the same images also go through ONNX Runtime running the exported model (all graph
 * optimizations: an integer model runs in integer kernels), and the JSON adds its top-1, how often its top
 * class is nibble's, and how many output values are within one step (the output range / 255) of nibble's;
 * --limit N compares the first N images only. --mnn MODEL.mnn does the same with MNN (the model converted by
 * MNNConvert from bin/export --mnn; its runner comes from scripts/mnn_setup.sh), under the key "mnn".
 *
 * --integer: the same images also go through nibble's own integer inference (infer/net.h: oneDNN int8
 * kernels on the deploy graph), compared with the simulation the same way under the key "integer" (its steps
 * on stderr), and scored on the whole set as the simulation is ("integer": {"scored": top-1 and top-5, or a
 * detector's mAP}: the network as it deploys); with --onnx too, ONNX Runtime is compared with the integer inference instead of the simulation
 * (key "onnxruntime_vs_integer"). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/select.h"
#include "compress/qsim.h"
#include "core/check.h"
#include "deploy/ort_compare.h"
#include "deploy/qweights.h"
#include "infer/net.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"
#include "task/task.h"

static int load_cfg(nb_ctx *ctx, nb_cfg *cfg, const char *ckpt, int argc, char **argv) {
    const char *cfg_path = NULL;
    for (int i = 2; i < argc; i++)
        if (!strchr(argv[i], '=')) cfg_path = argv[i];
    int rc = nb_cfg_for_checkpoint(ctx, cfg, ckpt, cfg_path, argc - 2, argv + 2);
    if (rc) fprintf(stderr, "nibble: error: %s\n", cfg->err);
    return rc;
}

/* The repository bin/eval runs from (bin/ is one level below it): where scripts/ort_run.js is */
static void repo_root(char *buf, size_t n) {
    ssize_t k = readlink("/proc/self/exe", buf, n - 1);
    buf[k > 0 ? k : 0] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(buf, '/');
        if (slash) *slash = 0;
    }
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/scripts/ort_run.js", buf);
    if (access(probe, R_OK) != 0) snprintf(buf, n, ".");
}

static int int8_run(void *net, const float *x, int64_t k, float *y) { return nb_infer_net_run(net, x, k, y); }

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bin/eval CKPT [CFG] [--onnx MODEL.onnx | --mnn MODEL.mnn | --integer] [--limit N] "
                        "[section.key=value ...]\n");
        return 2;
    }
    /* --onnx, --mnn and --limit are ours; the rest goes to the configuration */
    const char *onnx = NULL, *engine = "onnxruntime";
    long long limit = 0;
    bool integer = false;
    for (int i = 2; i < argc; i++) {
        int take = 0;
        if (!strcmp(argv[i], "--onnx") && i + 1 < argc) onnx = argv[i + 1], take = 2;
        else if (!strcmp(argv[i], "--mnn") && i + 1 < argc) onnx = argv[i + 1], engine = "mnn", take = 2;
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc) limit = atoll(argv[i + 1]), take = 2;
        else if (!strcmp(argv[i], "--integer")) integer = true, take = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nibble: error: unknown option %s\n", argv[i]);
            return 2;
        }
        if (take) {
            memmove(argv + i, argv + i + take, sizeof *argv * (size_t)(argc - i - take));
            argc -= take;
            i--;
        }
    }
    const char *ckpt = argv[1];
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU); /* reads the configuration; then the one it names */
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    if (load_cfg(ctx, &cfg, ckpt, argc, argv)) return 1;
    nb_ctx_free(ctx);
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    ctx = nb_ctx_for(s, NB_DEVICE_OR_CPU);
    nb_model *m = nb_model_for(ctx, s);
    nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL);
    /* a checkpoint with quantizers is evaluated as the integer network it deploys as (the simulation) */
    nb_qsim *sim;
    if (nb_qsim_for_checkpoint(m, s, ckpt, &sim)) return 1;
    nb_dataset val;
    nb_data_load(ctx, s, NB_SPLIT_VAL, &val);
    nb_data_for_model(ctx, s, m, &val);
    nb_loader_cfg lc;
    nb_loader_cfg_for(ctx, s, &val, NB_SPLIT_VAL, &lc);
    nb_task *task = nb_task_for(m, s);
    nb_eval_result r;
    if (task->evaluate(task, &val, &lc, &r)) return 1;
    char fields[200];
    task->eval_fields(task, &r, fields, sizeof fields);
    char versus[1024] = "";
    nb_qweights w = {0};
    nb_infer_net *net = NULL;
    if (integer) { /* nibble's integer inference beside the simulation */
        if (nb_qweights_open(ctx, &w, ckpt) || !(net = nb_infer_net_new(m, sim, &w))) return 1;
        nb_ort_comparison c;
        if (nb_engine_compare(m, &val, &lc, int8_run, net, limit, &c)) return 1;
        char steps[16384];
        nb_infer_net_describe(net, steps, sizeof steps);
        fprintf(stderr, "nibble: integer inference ran\n%s", steps);
        /* the integer network scored as the simulation is (its top-1 and top-5, or a detector's mAP) */
        nb_model *im = nb_infer_model(m, net);
        nb_task *it = nb_task_for(im, s);
        nb_eval_result ir;
        char ifields[200];
        if (it->evaluate(it, &val, &lc, &ir)) return 1;
        it->eval_fields(it, &ir, ifields, sizeof ifields);
        nb_task_free(it);
        nb_model_free(im);
        snprintf(versus, sizeof versus,
                 ", \"integer\": {\"scored\": {\"n\": %lld, %s, \"loss\": %.6f}, \"n\": %lld, \"top1_agreement\": %.6f, "
                 "\"within_one_step\": %.6f, \"step\": %.6g, \"max_abs_diff\": %.6g}",
                 (long long)ir.n, ifields, ir.loss, (long long)c.n, c.top1_agreement, c.within_step, c.step, c.max_abs_diff);
    }
    if (onnx) { /* the engine against the simulation, or with --integer against nibble's integer inference */
        char root[1024];
        repo_root(root, sizeof root);
        nb_ort_comparison c;
        nb_engine mine = {int8_run, net, net ? nb_infer_net_outputs(net) : 0};
        if (net ? nb_ort_compare_engine(&mine, m, &val, &lc, onnx, root, omp_get_max_threads(), limit, &c)
                : nb_ort_compare(m, &val, &lc, onnx, root, omp_get_max_threads(), limit, &c))
            return 1;
        size_t used = strlen(versus);
        snprintf(versus + used, sizeof versus - used,
                 ", \"%s%s\": {\"model\": \"%s\", \"n\": %lld, \"top1\": %.6f, \"top1_agreement\": %.6f, "
                 "\"within_one_step\": %.6f, \"step\": %.6g, \"max_abs_diff\": %.6g}",
                 engine, net ? "_vs_integer" : "", onnx, (long long)c.n, c.top1, c.top1_agreement, c.within_step, c.step,
                 c.max_abs_diff);
    }
    nb_infer_net_free(net);
    if (integer) nb_qweights_close(&w);
    printf("{\"checkpoint\": \"%s\", \"data\": \"%s\", \"n\": %lld, %s, \"loss\": %.6f, \"simulated\": %s%s}\n", ckpt,
           val.source, (long long)r.n, fields, r.loss, sim ? "true" : "false", versus);
    nb_qsim_free(sim);
    nb_task_free(task);
    nb_dataset_free(&val);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
