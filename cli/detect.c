/* bin/detect CKPT IMAGE... -o OUT.png [CFG] [section.key=value ...]: runs a detector checkpoint on pictures
 * (JPEG or PNG, any size: each is resized to the model's input as in evaluation), prints one JSON line per
 * detection (image, class, score, box in the picture's pixels) and draws the boxes with class and score onto
 * the picture, written as OUT.png (with several pictures, OUT-1.png, OUT-2.png, ...). Detections scoring under
 * detect.score_min are dropped; override it (detect.score_min=0.3) for a cleaner picture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "core/check.h"
#include "core/ops.h"
#include "datasets/det_data.h"
#include "datasets/voc.h"
#include "detect/decode.h"
#include "train/chart.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"

static const unsigned char palette[8][3] = {{230, 25, 75},  {60, 180, 75},  {0, 130, 200}, {245, 130, 48},
                                            {145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {128, 128, 0}};

static int usage(void) {
    fprintf(stderr, "usage: bin/detect CKPT IMAGE... -o OUT.png [CFG] [section.key=value ...]\n");
    return 2;
}

static bool is_image(const char *a) {
    const char *dot = strrchr(a, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

int main(int argc, char **argv) {
    if (argc < 4 || argv[1][0] == '-') return usage();
    const char *ckpt = argv[1], *out = NULL, *cfg_path = NULL;
    char **images = calloc((size_t)argc, sizeof(char *)), **rest = calloc((size_t)argc, sizeof(char *));
    int n_images = 0, n_rest = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (strchr(argv[i], '=')) rest[n_rest++] = argv[i];
        else if (is_image(argv[i])) images[n_images++] = argv[i];
        else cfg_path = argv[i];
    }
    if (!out || !n_images) return usage();
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    if (nb_cfg_for_checkpoint(ctx, &cfg, ckpt, cfg_path, n_rest, rest)) {
        if (cfg.err[0]) fprintf(stderr, "nibble: error: %s\n", cfg.err);
        return 1;
    }
    nb_ctx_free(ctx);
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    ctx = nb_ctx_for(s, NB_DEVICE_OR_CPU);
    nb_model *m = nb_model_for(ctx, s);
    if (!m || nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL)) return 1;
    if (!m->priors) {
        NB_FAIL(ctx, ckpt, "holds a %s, a classifier; bin/detect needs a detector (ssd_*, ssdlite_*, lrssd_*)",
                m->spec.arch);
        return 1;
    }
    int S = m->spec.input_size, C = m->spec.num_classes, P = nb_priors(m->priors, NULL, 0);
    nb_cbox *priors = nb_xmalloc(sizeof(nb_cbox) * (size_t)P);
    nb_priors(m->priors, priors, P);
    const double *mean = s->data.mean.v, *std = s->data.std.v;
    int nm = s->data.mean.n < 3 ? s->data.mean.n : 3, ns = s->data.std.n < 3 ? s->data.std.n : 3;
    float fm[3], fs[3];
    for (int c = 0; c < 3; c++) fm[c] = (float)mean[nm == 3 ? c : 0], fs[c] = (float)std[ns == 3 ? c : 0];
    /* class names as the training data had them (VOC's twenty when data.classes is empty) */
    int n_names;
    char **names = nb_voc_class_names(ctx, s->data.classes, &n_names);
    if (!names) return 1;
    nb_decode_cfg dc = {NB_SSD_VAR_CENTER, NB_SSD_VAR_SIZE, m->spec.det.score_min, m->spec.det.nms_iou, m->spec.det.top_k};
    nb_detection *dets = nb_xmalloc(sizeof(nb_detection) * (size_t)(dc.top_k > 0 ? dc.top_k : 1));
    float *x = nb_xmalloc(sizeof(float) * 3 * (size_t)S * S), *pred = nb_xmalloc(sizeof(float) * (size_t)(4 + C) * P);
    nb_set_grad_enabled(ctx, false);
    int rc = 0;
    for (int i = 0; i < n_images && !rc; i++) {
        nb_image full;
        char err[300];
        if (nb_det_load_image(images[i], S, fm, fs, x, &full, err, sizeof err)) {
            NB_FAIL(ctx, images[i], "%s", err);
            rc = 1;
            break;
        }
        size_t mark = nb_scope_begin(ctx);
        nb_tensor *xt = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){1, 3, S, S}, x);
        nb_tensor *z = m->forward(m, xt, false);
        if (!z || nb_tensor_to_host(z, pred, sizeof(float) * (size_t)(4 + C) * P)) rc = 1;
        nb_release(xt);
        nb_scope_end(ctx, mark);
        int n = rc ? 0 : nb_decode(&dc, pred, P, priors, P, C, i, dets);
        int thick = full.w > 400 ? 3 : 2, scale = full.w > 400 ? 2 : 1;
        for (int k = n - 1; k >= 0; k--) { /* the best drawn last, on top */
            nb_box b = dets[k].box;
            int x0 = (int)(b.x1 * full.w), y0 = (int)(b.y1 * full.h), x1 = (int)(b.x2 * full.w), y1 = (int)(b.y2 * full.h);
            const unsigned char *col = palette[dets[k].cls % 8];
            nb_draw_box(full.rgb, full.w, full.h, x0, y0, x1, y1, thick, col[0], col[1], col[2]);
            char label[64];
            if (dets[k].cls < n_names) snprintf(label, sizeof label, "%s %.2f", names[dets[k].cls], (double)dets[k].score);
            else snprintf(label, sizeof label, "class %d %.2f", dets[k].cls, (double)dets[k].score);
            static const unsigned char white[3] = {255, 255, 255};
            nb_draw_label(full.rgb, full.w, full.h, x0, y0 - 10 * scale >= 0 ? y0 - 10 * scale : y0, label, scale, white,
                          col);
        }
        for (int k = 0; k < n; k++) {
            nb_box b = dets[k].box;
            printf("{\"image\": \"%s\", \"class\": %d, \"name\": \"%s\", \"score\": %.4f, \"box\": [%.1f, %.1f, %.1f, %.1f]}\n",
                   images[i], dets[k].cls, dets[k].cls < n_names ? names[dets[k].cls] : "", (double)dets[k].score,
                   (double)(b.x1 * full.w), (double)(b.y1 * full.h), (double)(b.x2 * full.w), (double)(b.y2 * full.h));
        }
        char path[1100];
        if (n_images == 1) {
            snprintf(path, sizeof path, "%s", out);
        } else {
            const char *dot = strrchr(out, '.');
            int stem = dot ? (int)(dot - out) : (int)strlen(out);
            snprintf(path, sizeof path, "%.*s-%d%s", stem, out, i + 1, dot ? dot : ".png");
        }
        if (!rc && nb_png_write_rgb(path, full.rgb, full.w, full.h, err, sizeof err)) {
            NB_FAIL(ctx, path, "%s", err);
            rc = 1;
        }
        if (!rc) fprintf(stderr, "nibble: %s: %d detection%s -> %s\n", images[i], n, n == 1 ? "" : "s", path);
        nb_image_free(&full);
    }
    free(x), free(pred), free(dets), free(priors), free(images), free(rest);
    nb_voc_free_names(names, n_names);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return rc;
}
