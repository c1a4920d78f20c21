/* Training throughput of a model on random batches (by default 1x28x28, Fashion-MNIST's shape): forward,
 * cross-entropy, backward and an SGD step, as bin/train runs them (the loss read back every step), without
 * the data loader. Prints one JSON line, with the step's multiply-accumulates per image (forward, gradient of
 * the weights, and gradient of the input wherever the input needs one) and the GFLOP/s they come to.
 * ARCH import:NAME times the zoo model NAME exported to ONNX (bin/export's code) and imported again
 * (model.arch = onnx): what the import costs in throughput.
 * PRECISION bf16 trains in mixed precision (train.precision = bf16).
 * usage: bench_train ARCH [BATCH [STEPS [WIDTH [IN_CHANNELS [SIZE [cpu|cuda [CLASSES [fp32|bf16]]]]]]]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend/select.h"
#include "bench/clock.h"
#include "core/arith.h"
#include "core/context.h"
#include "core/ops.h"
#include "deploy/export.h"
#include "import/onnx_import.h"
#include "models/model.h"
#include "optim/optim.h"

/* Multiply-accumulates of one training step, read from the forward's tape: each convolution and linear layer
 * runs once forward, then once for each of its weight and input that needs a gradient (the stem's input, the
 * batch, needs none). */
static double step_macs(const nb_ctx *ctx) {
    double macs = 0;
    for (size_t i = 0; i < nb_tape_size(ctx); i++) {
        const nb_node *n = nb_tape_node(ctx, i);
        int passes = 1 + (n->n_in > 0 && n->in[0] && n->in[0]->requires_grad) +
                     (n->n_in > 1 && n->in[1] && n->in[1]->requires_grad);
        macs += (double)nb_node_macs(n) * passes;
    }
    return macs;
}

int main(int argc, char **argv) {
    const char *arch = argc > 1 ? argv[1] : "resnet20";
    int B = argc > 2 ? atoi(argv[2]) : 128, steps = argc > 3 ? atoi(argv[3]) : 20;
    float width = argc > 4 ? (float)atof(argv[4]) : 1.0f;
    int cin = argc > 5 ? atoi(argv[5]) : 1, size = argc > 6 ? atoi(argv[6]) : 28;
    bool gpu = argc > 7 && !strcmp(argv[7], "cuda");
    int classes = argc > 8 ? atoi(argv[8]) : 10;
    bool bf16 = argc > 9 && !strcmp(argv[9], "bf16");
    nb_ctx *ctx = nb_ctx_new(gpu ? NB_DEVICE_CUDA : NB_DEVICE_CPU);
    if (!ctx) return 1;
    if (bf16 && !nb_autocast_supported(ctx, NB_BF16)) {
        fprintf(stderr, "bench_train: the %s backend does not train in bf16\n", nb_ctx_backend_name(ctx));
        return 1;
    }
    bool import = !strncmp(arch, "import:", 7);
    nb_model_spec spec = {.arch = import ? arch + 7 : arch, .num_classes = classes, .in_channels = cin,
                          .input_size = size, .width = width, .seed = 1};
    nb_model *m = nb_model_create(ctx, &spec);
    if (!m) return 1;
    if (import) {
        char path[128];
        snprintf(path, sizeof path, "/tmp/nb_bench_import_%d.onnx", (int)getpid());
        nb_export_opts eo = {.opset = 17};
        nb_export_report er;
        if (nb_export_onnx(m, NULL, &eo, path, &er)) return 1;
        nb_model_free(m);
        spec.arch = "onnx";
        m = nb_onnx_import(ctx, &spec, path);
        unlink(path);
        if (!m) return 1;
    }
    nb_tensor *params[512];
    int np = 0;
    for (int i = 0; i < m->params.n && np < 512; i++)
        if (m->params.items[i].kind == NB_PARAM) params[np++] = m->params.items[i].t;
    nb_optim_config oc = {.kind = NB_OPTIM_SGD, .lr = 0.01f, .momentum = 0.9f, .weight_decay = 5e-4f};
    nb_optim *o = nb_optim_new(ctx, &oc, params, np);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){B, cin, size, size});
    nb_rng_fill f = {.dist = NB_RNG_NORMAL, .a = 0, .b = 1, .seed = 3};
    nb_fill_random(x, &f);
    int64_t *lab = malloc(sizeof(int64_t) * (size_t)B);
    for (int i = 0; i < B; i++) lab[i] = i % classes;
    nb_tensor *y = nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){B}, lab);
    double t0 = 0, train_macs = 0;
    for (int s = -5; s < steps; s++) {
        if (s == 0) t0 = bench_now();
        size_t mark = nb_scope_begin(ctx);
        nb_set_autocast(ctx, bf16 ? NB_BF16 : NB_F32);
        nb_tensor *loss = nb_cross_entropy(m->forward(m, x, true), y, 0.0f);
        nb_set_autocast(ctx, NB_F32);
        if (s == -5) train_macs = step_macs(ctx) / B;
        nb_item(loss);
        nb_optim_zero_grad(o);
        nb_backward(loss, NULL);
        nb_optim_step(o);
        nb_scope_end(ctx, mark);
    }
    double dt = bench_now() - t0;
    nb_mem_stats ms;
    nb_mem_stats_get(ctx, &ms);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"name\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"batch\": %d, \"size\": %d, \"img_per_s\": %.1f, \"ms_per_step\": %.2f, "
           "\"train_mmacs_per_img\": %.3f, \"gflop_per_s\": %.1f, "
           "\"peak_mem_mib\": %.0f, \"max_rss_mib\": %.0f}\n",
           arch, nb_ctx_backend_name(ctx), bf16 ? "bf16" : "fp32", B, size, steps * B / dt, dt / steps * 1e3, train_macs / 1e6,
           2 * train_macs * steps * B / dt / 1e9, (double)ms.peak_in_use / (1 << 20), (double)ru.ru_maxrss / 1024.0);
    free(lab);
    nb_release(x);
    nb_release(y);
    nb_optim_free(o);
    nb_model_free(m);
    nb_ctx_free(ctx);
    return 0;
}
