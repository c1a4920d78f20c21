/* Inference speed of a full-integer checkpoint in nibble itself: its integer inference (infer/net.h, oneDNN
 * int8 kernels) and, on the same machine in the same run, the float network it quantizes, run by the same
 * inference path in float (oneDNN float kernels, batch norms folded, NHWC) and by nibble's training forward
 * pass (batch norms as they are, no tape). Batch 1 latency (median) and batch B throughput on random inputs of
 * the model's shape. Prints one JSON line.
 * --profile: each network's steps with their mean batch-1 time, on stderr.
 * usage: bench_infer CKPT [BATCH [SECONDS]] [--profile] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "bench/clock.h"
#include "compress/qsim.h"
#include "core/check.h"
#include "core/ops.h"
#include "deploy/qweights.h"
#include "infer/net.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"

typedef struct {
    nb_model *m;
    nb_infer_net *net; /* NULL: the training forward */
    float *x, *y;
    int64_t c, h, w;
} runner;

static int run_once(runner *r, int64_t n) {
    if (r->net) return nb_infer_net_run(r->net, r->x, n, r->y);
    size_t mark = nb_scope_begin(r->m->ctx);
    nb_tensor *x = nb_tensor_from_host(r->m->ctx, NB_F32, 4, (int64_t[]){n, r->c, r->h, r->w}, r->x);
    nb_tensor *y = x ? r->m->forward(r->m, x, false) : NULL;
    int rc = y && nb_tensor_to_host(y, r->y, sizeof(float) * (size_t)nb_numel(y)) == 0 ? 0 : -1;
    nb_release(x);
    nb_scope_end(r->m->ctx, mark);
    return rc;
}

/* median seconds of one run of n images, over at least `runs` runs and `budget` seconds */
static double timed(runner *r, int64_t n, double budget, int runs);

/* the steps of r's network and their mean batch-1 times, on stderr */
static void profiled(runner *r, const char *what, double budget) {
    nb_infer_net_profile(r->net, true);
    timed(r, 1, budget, 10);
    nb_infer_net_profile(r->net, false);
    static char desc[1 << 16];
    nb_infer_net_describe(r->net, desc, sizeof desc);
    fprintf(stderr, "== %s, batch 1\n%s", what, desc);
}

static double timed(runner *r, int64_t n, double budget, int runs) {
    double *t = nb_xmalloc(sizeof(double) * 100000);
    int k = 0;
    if (run_once(r, n)) exit(1); /* warm-up: primitives, buffers */
    double end = bench_now() + budget;
    while ((k < runs || bench_now() < end) && k < 100000) {
        double t0 = bench_now();
        if (run_once(r, n)) exit(1);
        t[k++] = bench_now() - t0;
    }
    bench_sort_seconds(t, k);
    double med = t[k / 2];
    free(t);
    return med;
}

int main(int argc, char **argv) {
    bool profile = argc > 2 && !strcmp(argv[argc - 1], "--profile");
    argc -= profile;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_infer CKPT [BATCH [SECONDS]] [--profile]\n");
        return 2;
    }
    const char *ckpt = argv[1];
    int64_t B = argc > 2 ? atoll(argv[2]) : 32;
    double seconds = argc > 3 ? atof(argv[3]) : 3.0;
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    if (nb_cfg_for_checkpoint(ctx, &cfg, ckpt, NULL, 0, NULL)) {
        fprintf(stderr, "nibble: error: %s\n", cfg.err);
        return 1;
    }
    nb_ctx_free(ctx);
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    ctx = nb_ctx_for(s, NB_DEVICE_OR_CPU);
    nb_model *m = nb_model_for(ctx, s);
    nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL);
    nb_qsim *sim;
    nb_qweights w;
    if (nb_qsim_for_checkpoint(m, s, ckpt, &sim) || nb_qweights_open(ctx, &w, ckpt)) return 1;
    nb_infer_net *net = nb_infer_net_new(m, sim, &w);
    if (!net) return 1;
    int64_t c = m->spec.in_channels, h = m->spec.input_size, wd = m->spec.input_size, per = nb_infer_net_outputs(net);
    runner r = {.m = m, .net = net, .c = c, .h = h, .w = wd};
    r.x = nb_xmalloc(sizeof(float) * (size_t)(B * c * h * wd));
    r.y = nb_xmalloc(sizeof(float) * (size_t)(B * per));
    for (int64_t i = 0; i < B * c * h * wd; i++) r.x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    bool prev = nb_set_grad_enabled(ctx, false);
    double i1 = timed(&r, 1, seconds, 10), ib = timed(&r, B, seconds, 3);
    if (profile) profiled(&r, "integer", seconds);
    nb_infer_net_free(net);
    nb_qsim_free(sim); /* unwraps the model: the float network from here */
    r.net = nb_infer_net_new_float(m, NULL);
    if (!r.net) return 1;
    double f1 = timed(&r, 1, seconds, 10), fb = timed(&r, B, seconds, 3);
    if (profile) profiled(&r, "float", seconds);
    nb_infer_net_free(r.net);
    r.net = NULL;
    double t1 = timed(&r, 1, seconds, 10), tb = timed(&r, B, seconds, 3);
    nb_set_grad_enabled(ctx, prev);
    printf("{\"checkpoint\": \"%s\", \"arch\": \"%s\", \"batch\": %lld, \"int8_ms_batch1\": %.4f, \"int8_img_per_s\": %.2f, "
           "\"float_ms_batch1\": %.4f, \"float_img_per_s\": %.2f, \"forward_ms_batch1\": %.4f, \"forward_img_per_s\": %.2f}\n",
           ckpt, m->spec.arch, (long long)B, 1000 * i1, (double)B / ib, 1000 * f1, (double)B / fb, 1000 * t1, (double)B / tb);
    free(r.x);
    free(r.y);
    nb_qweights_close(&w);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
