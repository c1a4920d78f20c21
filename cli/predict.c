/* bin/predict CKPT in.h5 out.h5 [CFG] [section.key=value ...]: logits of the model for every image of in.h5's
 * `images` dataset, preprocessed as in training (scaled, normalised), written as `logits` [N, num_classes]
 * into out.h5 (for a detector its raw outputs [N, 4 + C, P]: box offsets and class scores per default box).
 * A checkpoint with quantizers (quant/) runs as its simulated integer network, or with --integer on integers
 * (nibble's integer inference, infer/net.h: what ONNX Runtime computes from its export). Runs on the
 * device the configuration names (train.device), or on the CPU where there is no GPU. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/select.h"
#include "compress/qsim.h"
#include "core/check.h"
#include "core/context.h"
#include "core/ops.h"
#include "deploy/qweights.h"
#include "infer/net.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"

int main(int argc, char **argv) {
    bool integer = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--integer")) {
            integer = true;
            memmove(argv + i, argv + i + 1, sizeof *argv * (size_t)(argc - i - 1));
            argc--;
            i--;
        }
    if (argc < 4) {
        fprintf(stderr, "usage: bin/predict CKPT in.h5 out.h5 [--integer] [CFG] [section.key=value ...]\n");
        return 2;
    }
    const char *ckpt = argv[1], *in = argv[2], *out = argv[3];
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU); /* reads the configuration; then the one it names */
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    const char *cfg_path = argc > 4 && !strchr(argv[4], '=') ? argv[4] : NULL;
    int rc = nb_cfg_for_checkpoint(ctx, &cfg, ckpt, cfg_path, argc - 4, argv + 4);
    if (rc) {
        fprintf(stderr, "nibble: error: %s\n", cfg.err);
        return 1;
    }
    nb_ctx_free(ctx);
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    ctx = nb_ctx_for(s, NB_DEVICE_OR_CPU);
    nb_model *m = nb_model_for(ctx, s);
    nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL);
    nb_qsim *sim; /* a full-integer checkpoint predicts as its integer network */
    if (nb_qsim_for_checkpoint(m, s, ckpt, &sim)) return 1;
    nb_qweights w = {0};
    nb_infer_net *net = NULL;
    if (integer && (nb_qweights_open(ctx, &w, ckpt) || !(net = nb_infer_net_new(m, sim, &w)))) return 1;
    nb_dataset ds;
    nb_dataset_load_hdf5_ex(ctx, &ds, in, 0, false);
    if (ds.c != m->spec.in_channels || ds.h != m->spec.input_size || ds.w != m->spec.input_size) {
        NB_FAIL(ctx, in, "images are %dx%dx%d; the model takes %dx%dx%d", ds.c, ds.h, ds.w, m->spec.in_channels,
                m->spec.input_size, m->spec.input_size);
    }
    nb_loader_cfg lc;
    nb_loader_cfg_for(ctx, s, &ds, NB_SPLIT_VAL, &lc);
    /* per image: num_classes logits, or a detector's [4 + C, P] raw outputs; known after the first batch */
    int64_t per = 0, out_shape[NB_MAX_DIMS];
    int out_ndim = 0;
    float *logits = NULL;
    nb_loader *l = nb_loader_new(&ds, &lc);
    nb_set_grad_enabled(ctx, false);
    nb_loader_start(l, 0, 0);
    const nb_batch *b;
    int64_t done = 0;
    while ((b = nb_loader_next(l))) {
        if (net) { /* on integers: [N, outputs] */
            if (!logits) {
                per = nb_infer_net_outputs(net);
                out_ndim = 2;
                logits = nb_xmalloc(sizeof(float) * (size_t)ds.n * (size_t)per);
            }
            if (nb_infer_net_run(net, b->x, b->n, logits + (size_t)done * (size_t)per)) return 1;
            done += b->n;
            continue;
        }
        size_t mark = nb_scope_begin(ctx);
        int64_t xs[4] = {b->n, ds.c, ds.h, ds.w};
        nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x);
        nb_tensor *z = m->forward(m, x, false);
        if (!z) return 1;
        if (!logits) {
            per = nb_numel(z) / b->n;
            out_ndim = z->ndim;
            memcpy(out_shape, z->shape, sizeof out_shape);
            logits = nb_xmalloc(sizeof(float) * (size_t)ds.n * (size_t)per);
        }
        nb_tensor_to_host(z, logits + (size_t)done * (size_t)per, sizeof(float) * (size_t)b->n * (size_t)per);
        done += b->n;
        nb_release(x);
        nb_scope_end(ctx, mark);
    }
    nb_loader_free(l);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[NB_MAX_DIMS] = {(hsize_t)ds.n, (hsize_t)per};
    for (int i = 1; i < out_ndim && !net; i++) dims[i] = (hsize_t)out_shape[i];
    hid_t sp = H5Screate_simple(out_ndim, dims, NULL);
    hid_t d = f >= 0 ? H5Dcreate2(f, "logits", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    rc = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, logits) >= 0 ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    if (f >= 0 && H5Fclose(f) < 0) rc = -1;
    if (rc == 0 && rename(tmp, out) != 0) rc = -1;
    if (rc) {
        unlink(tmp);
        NB_FAIL(ctx, out, "cannot write the logits");
    }
    free(logits);
    nb_infer_net_free(net);
    if (integer) nb_qweights_close(&w);
    nb_dataset_free(&ds);
    nb_qsim_free(sim);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
