/* Detection through the whole system, on a tiny VOC-format dataset the test writes (support/synth_voc.h):
 * SSD augmentation keeps every box on its object; bin/train trains an LRSSD with the multibox loss, skips and
 * counts a corrupt picture, evaluates VOC mAP each epoch and resumes bit for bit; ADMM quantizes the whole
 * detector onto its codebook (prediction layers excludable); bin/eval and bin/detect read the checkpoint;
 * bin/export writes it as ONNX (float, folded, ADMM-quantized with a scale per layer, and the dense-predictor
 * LRSSD with a scale per output channel) that ONNX Runtime runs to the same raw
 * outputs as bin/predict; a classifier on detection data and a wrong class count are clear errors. */
#include <hdf5.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "datasets/dataset.h"
#include "datasets/det_data.h"
#include "support/ckpt_bytes.h"
#include "support/run.h"
#include "support/synth_voc.h"
#include "support/testutil.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define SIZE 64

static char dir[128], voc[256], cfg[300];

static void run_ok(const char *const *argv, run_result *r) {
    run_prog(r, argv);
    if (r->status) fail_msg("%s exited %d:\n%s%s", argv[0], r->status, r->out, r->err);
}

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "dettrain")) return -1;
    snprintf(voc, sizeof voc, "%s/voc", dir);
    synth_voc_write(voc, 48, 16, SIZE, 5, 1);
    char text[2048];
    snprintf(text, sizeof text,
             "# LRSSD on 64x64 red and blue rectangles\n"
             "[data]\nformat = voc\nroot = %s\ntrain = SYNTH/trainval\nval = SYNTH/test\nclasses = " SYNTH_VOC_CLASSES
             "\naugment = ssd\nmean = 0.5, 0.5, 0.5\nstd = 0.25, 0.25, 0.25\nworkers = 2\n"
             "[model]\narch = lrssd_mobilenet_v2\nnum_classes = 3\nin_channels = 3\ninput_size = 64\nwidth = 0.25\n"
             "[train]\nepochs = 2\nbatch = 8\neval_batch = 16\nlog_every = 2\n"
             "[optim]\ntype = sgd\nlr = 0.02\nmomentum = 0.9\nclip_norm = 10\nwarmup_epochs = 0\n",
             voc);
    write_test_file(dir, "det.cfg", text);
    snprintf(cfg, sizeof cfg, "%s/det.cfg", dir);
    use_ort_node_path();
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

static const float mean3[3] = {0.5f, 0.5f, 0.5f}, std3[3] = {0.25f, 0.25f, 0.25f};

/* Through photometric distortion, expand, min-IoU crop, flip and resize, the centre of every box still
 * shows its object's colour; without augmentation boxes are the annotations, scaled. */
static void test_augmented_boxes_follow_objects(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_dataset ds;
    assert_int_equal(nb_dataset_load_voc(ctx, &ds, voc, "SYNTH/trainval", SYNTH_VOC_CLASSES, SIZE, 0), 0);
    assert_int_equal(ds.n, 48);
    nb_cbox prior = {0.5f, 0.5f, 0.3f, 0.3f};
    nb_dataset_set_priors(&ds, &prior, 1, 0.5f, 4.0f);
    float x[3 * SIZE * SIZE], target[5];
    nb_det_object objs[8];
    int n, checked = 0, cropped = 0;
    char err[256];
    nb_rng r0 = nb_rng_make(1, 1);
    assert_int_equal(nb_det_sample(ds.det, 0, &r0, true, mean3, std3, x, target, objs, 8, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "PNG"));
    for (int i = 1; i < 48; i++)
        for (int s = 0; s < 6; s++) {
            nb_rng r = nb_rng_make(9, (uint64_t)(i * 16 + s));
            assert_int_equal(nb_det_sample(ds.det, i, &r, s > 0, mean3, std3, x, target, objs, 8, &n, err, sizeof err), 0);
            const nb_voc_image *vi = &ds.det->voc.images[i];
            if (s == 0) { /* evaluation: every non-difficult object, its box scaled to [0, 1] */
                int want = 0;
                for (int k = 0; k < vi->n_objects; k++) want += !vi->objects[k].difficult;
                assert_int_equal(n, want);
                assert_true(fabsf(objs[0].box.x1 - (vi->objects[0].box.x1 - 1) / SIZE) < 1e-5f);
                assert_true(fabsf(objs[0].box.y2 - (vi->objects[0].box.y2 - 1) / SIZE) < 1e-5f);
            }
            cropped += n < vi->n_objects;
            for (int k = 0; k < n; k++) {
                nb_box b = objs[k].box;
                assert_true(b.x1 >= 0 && b.y1 >= 0 && b.x2 <= 1 && b.y2 <= 1 && b.x2 > b.x1 && b.y2 > b.y1);
                if ((b.x2 - b.x1) * SIZE < 4 || (b.y2 - b.y1) * SIZE < 4) continue; /* shrunk to a few pixels */
                int cx = (int)(0.5f * (b.x1 + b.x2) * SIZE), cy = (int)(0.5f * (b.y1 + b.y2) * SIZE);
                float rgb[3];
                for (int c = 0; c < 3; c++) rgb[c] = x[c * SIZE * SIZE + cy * SIZE + cx] * std3[c] + mean3[c];
                if (objs[k].cls == 0) assert_true(rgb[0] > rgb[1] + 0.1f && rgb[0] > rgb[2] + 0.1f);
                else assert_true(rgb[2] > rgb[0] + 0.1f && rgb[2] > rgb[1] + 0.1f);
                checked++;
            }
        }
    assert_true(checked > 200);
    assert_true(cropped > 10); /* the crops really drop objects */
    nb_dataset_free(&ds);
    nb_ctx_free(ctx);
}

static double metric(const char *path, int epoch, const char *key) {
    size_t n;
    char *text = read_file(path, &n);
    assert_non_null(text);
    char want[64], pat[64];
    snprintf(want, sizeof want, "\"type\": \"epoch\", \"epoch\": %d,", epoch);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    char *line = strstr(text, want);
    assert_non_null(line);
    char *p = strstr(line, pat);
    assert_non_null(p);
    double v = strtod(p + strlen(pat), NULL);
    free(text);
    return v;
}

static void test_train_resume_eval_detect(void **st) {
    (void)st;
    char a[300], b[300], akv[320], bkv[320], path[400], path2[400];
    snprintf(a, sizeof a, "%s/run_a", dir);
    snprintf(b, sizeof b, "%s/run_b", dir);
    snprintf(akv, sizeof akv, "train.out=%s", a);
    snprintf(bkv, sizeof bkv, "train.out=%s", b);
    run_result r;
    run_ok(ARGV("train", cfg, akv), &r);
    assert_non_null(strstr(r.err, "1 unreadable image"));
    snprintf(path, sizeof path, "%s/metrics.jsonl", a);
    double m1 = metric(path, 1, "val_map07"), m2 = metric(path, 2, "val_map07");
    assert_true(m1 >= 0 && m1 <= 1 && m2 >= 0 && m2 <= 1);
    assert_true(metric(path, 2, "train_loss") < metric(path, 1, "train_loss"));
    /* stopped after the first epoch's six steps, then resumed to two epochs: the same checkpoint, bit for bit */
    run_ok(ARGV("train", cfg, bkv, "train.steps=6"), &r); /* 48 pictures, batches of 8 */
    run_ok(ARGV("train", cfg, bkv, "--resume"), &r);
    snprintf(path, sizeof path, "%s/last.h5", a);
    snprintf(path2, sizeof path2, "%s/last.h5", b);
    ckpt_bytes x = ckpt_bytes_read(path), y = ckpt_bytes_read(path2);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.buf, y.buf, x.len);
    free(x.buf);
    free(y.buf);
    /* bin/eval: the mAP the run logged for its best epoch */
    snprintf(path, sizeof path, "%s/best.h5", a);
    run_ok(ARGV("eval", path), &r);
    char *p = strstr(r.out, "\"map07\": ");
    assert_non_null(p);
    double best = fmax(m1, m2);
    assert_true(fabs(strtod(p + 9, NULL) - best) < 1e-6);
    /* bin/detect draws onto the picture, at its size */
    char img[400], png[400];
    snprintf(img, sizeof img, "%s/SYNTH/JPEGImages/000050.png", voc);
    snprintf(png, sizeof png, "%s/detect.png", dir);
    run_ok(ARGV("detect", path, img, "-o", png, "detect.score_min=0.0", "detect.top_k=5"), &r);
    assert_non_null(strstr(r.out, "\"box\": ["));
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&im, png));
    assert_int_equal(im.width, SIZE);
    assert_int_equal(im.height, SIZE);
    png_image_free(&im);
}

static void test_admm_detector(void **st) {
    (void)st;
    char out[300], outkv[320], path[400];
    snprintf(out, sizeof out, "%s/admm", dir);
    snprintf(outkv, sizeof outkv, "train.out=%s", out);
    run_result r;
    run_ok(ARGV("train", cfg, outkv, "train.epochs=1", "data.limit=24", "compress.methods=admm", "compress.codebook=pm4",
                "compress.rho=0.5", "compress.admm_interval=1", "compress.exclude=head.shared.pw.weight"),
           &r);
    snprintf(path, sizeof path, "%s/last.h5", out);
    hid_t f = tu_open(path);
    /* every convolution but the first is on its codebook, the excluded prediction layer is not quantized */
    assert_false(tu_has(f, "compress/admm/codes/head.shared.pw.weight"));
    assert_false(tu_has(f, "compress/admm/codes/features.0.0.weight"));
    const char *layers[] = {"head.shared.dw.weight", "head.lateral.0.conv.weight", "extras.2.pw.weight", "head.cascade.weight",
                            "features.14.conv.0.0.weight"};
    for (int k = 0; k < 5; k++) {
        char name[200];
        snprintf(name, sizeof name, "compress/admm/alpha/%s", layers[k]);
        int nd;
        int64_t sh[4];
        float *alpha = tu_read_f32(f, name, &nd, sh);
        snprintf(name, sizeof name, "model/%s", layers[k]);
        float *w = tu_read_f32(f, name, &nd, sh);
        assert_non_null(alpha);
        assert_non_null(w);
        int64_t n = 1;
        for (int i = 0; i < nd; i++) n *= sh[i];
        static const float q[7] = {-4, -2, -1, 0, 1, 2, 4};
        for (int64_t i = 0; i < n; i++) {
            bool on = false;
            for (int j = 0; j < 7; j++) on |= w[i] == alpha[0] * q[j];
            if (!on) fail_msg("%s[%lld] = %g is not alpha (%g) times {0, ±1, ±2, ±4}", layers[k], (long long)i,
                              (double)w[i], (double)alpha[0]);
        }
        free(alpha);
        free(w);
    }
    H5Fclose(f);
}

/* bin/predict's raw outputs and ONNX Runtime's on the exported file, for the same images */
static void ort_matches(const char *ckpt, const char *onnx) {
    char h5[400], logits[400], in[400], outf[400];
    snprintf(h5, sizeof h5, "%s/images.h5", dir);
    snprintf(logits, sizeof logits, "%s.logits.h5", onnx);
    snprintf(in, sizeof in, "%s/images.f32", dir);
    snprintf(outf, sizeof outf, "%s.out.f32", onnx);
    enum { N = 3 };
    static unsigned char u8[N * 3 * SIZE * SIZE];
    static float xf[N * 3 * SIZE * SIZE];
    nb_rng g = nb_rng_make(3, 3);
    for (int i = 0; i < N * 3 * SIZE * SIZE; i++) {
        u8[i] = (unsigned char)nb_rng_below(&g, 256);
        xf[i] = ((float)u8[i] / 255.0f - 0.5f) / 0.25f;
    }
    hid_t f = H5Fcreate(h5, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {N, 3, SIZE, SIZE};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_NATIVE_UCHAR, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, u8);
    H5Dclose(d), H5Sclose(sp), H5Fclose(f);
    FILE *fp = fopen(in, "wb");
    assert_int_equal(fwrite(xf, sizeof xf, 1, fp), 1);
    fclose(fp);
    run_result r;
    run_ok(ARGV("predict", ckpt, h5, logits), &r);
    hid_t lf = tu_open(logits);
    int nd;
    int64_t shape[4];
    float *want = tu_read_f32(lf, "logits", &nd, shape);
    H5Fclose(lf);
    assert_int_equal(nd, 3);
    run_cmd(&r, ARGV("node", "scripts/ort_run.js", onnx, in, "3,3,64,64", outf));
    if (r.status) fail_msg("ONNX Runtime could not run %s:\n%s%s", onnx, r.out, r.err);
    size_t bytes;
    float *got = (float *)read_file(outf, &bytes);
    int64_t count = shape[0] * shape[1] * shape[2];
    assert_int_equal(bytes, sizeof(float) * (size_t)count);
    char what[500];
    snprintf(what, sizeof what, "ONNX Runtime on %s vs bin/predict", onnx);
    tu_assert_close(what, got, want, count, 1e-4);
    free(got);
    free(want);
}

static void test_export_to_onnx_runtime(void **st) {
    (void)st;
    char ckpt[400], onnx[400], qckpt[400], qonnx[400];
    snprintf(ckpt, sizeof ckpt, "%s/run_a/best.h5", dir);
    run_result r;
    snprintf(onnx, sizeof onnx, "%s/lrssd.onnx", dir);
    run_ok(ARGV("export", ckpt, "-o", onnx), &r);
    run_cmd(&r, ARGV("/usr/bin/python3", "scripts/onnx_check.py", onnx));
    if (r.status) fail_msg("%s%s", r.out, r.err);
    ort_matches(ckpt, onnx);
    /* the default boxes a deployment decodes with travel in the metadata: 64x64 gives maps of 4, 2 and 1 */
    run_cmd(&r, ARGV("/usr/bin/python3", "-c",
                     "import json, sys, onnx; m = onnx.load(sys.argv[1]); "
                     "p = json.loads({q.key: q.value for q in m.metadata_props}['nibble.priors']); "
                     "print([k['size'] for k in p['maps']])",
                     onnx));
    if (r.status || !strstr(r.out, "[4, 2, 1]")) fail_msg("nibble.priors metadata: %s%s", r.out, r.err);
    /* and the input's description names the detector's output, [N, 4 + C, P], not a classifier's [N, C] */
    run_ok(ARGV("export", "--check", onnx), &r);
    if (!strstr(r.out, "output logits (no softmax): float32 [N, 4 + ")) fail_msg("nibble.input metadata: %s", r.out);
    snprintf(onnx, sizeof onnx, "%s/lrssd_folded.onnx", dir);
    run_ok(ARGV("export", ckpt, "-o", onnx, "--fold-bn"), &r);
    run_cmd(&r, ARGV("/usr/bin/python3", "scripts/onnx_check.py", onnx));
    if (r.status) fail_msg("%s%s", r.out, r.err);
    ort_matches(ckpt, onnx);
    /* the ADMM-quantized detector as int8 codes + DequantizeLinear */
    snprintf(qckpt, sizeof qckpt, "%s/admm/last.h5", dir);
    snprintf(qonnx, sizeof qonnx, "%s/lrssd_pm4.onnx", dir);
    run_ok(ARGV("export", qckpt, "-o", qonnx), &r);
    if (!strstr(r.out, " layers as int8 codes (admm)") && !strstr(r.err, " layers as int8 codes (admm)"))
        fail_msg("expected int8 codes: %s%s", r.out, r.err);
    ort_matches(qckpt, qonnx);
    /* LRSSD with the dense shared predictor, every layer on {0,±1,±2,±4} with a scale per output channel */
    char outkv[320];
    snprintf(outkv, sizeof outkv, "train.out=%s/admm_dense", dir);
    run_ok(ARGV("train", cfg, outkv, "train.epochs=1", "data.limit=24", "detect.predictor=dense", "compress.methods=admm",
                "compress.codebook=pm4", "compress.scale=channel", "compress.rho=0.5", "compress.admm_interval=1"),
           &r);
    snprintf(qckpt, sizeof qckpt, "%s/admm_dense/last.h5", dir);
    hid_t f = tu_open(qckpt);
    int nd;
    int64_t sh[4];
    float *alpha = tu_read_f32(f, "compress/admm/alpha/head.shared.conv.weight", &nd, sh);
    assert_non_null(alpha);
    assert_int_equal(sh[0], (4 + 3) * 6); /* (4 + C) A output channels, each its own scale */
    free(alpha);
    H5Fclose(f);
    for (int fold = 0; fold < 2; fold++) { /* folded: each channel's α times its batch norm's scale */
        snprintf(qonnx, sizeof qonnx, "%s/lrssd_dense_pm4%s.onnx", dir, fold ? "_folded" : "");
        run_ok(fold ? ARGV("export", qckpt, "-o", qonnx, "--fold-bn") : ARGV("export", qckpt, "-o", qonnx), &r);
        if (!strstr(r.out, " layers as int8 codes (admm)") && !strstr(r.err, " layers as int8 codes (admm)"))
            fail_msg("expected int8 codes: %s%s", r.out, r.err);
        ort_matches(qckpt, qonnx);
    }
}

static void test_errors(void **st) {
    (void)st;
    char outkv[320];
    snprintf(outkv, sizeof outkv, "train.out=%s/bad", dir);
    run_result r;
    run_prog(&r, ARGV("train", cfg, outkv, "model.arch=resnet20"));
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "is detection data (data.format = voc), but model.arch = resnet20 is a classifier"));
    run_prog(&r, ARGV("train", cfg, outkv, "model.num_classes=2"));
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "needs model.num_classes = 3"));
    run_prog(&r, ARGV("train", cfg, outkv, "data.augment=crop"));
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "takes none or ssd"));
    /* bin/detect: a picture that does not decode is named, and no output is left behind */
    char ckpt[400], bad[400], png[400];
    snprintf(ckpt, sizeof ckpt, "%s/run_a/best.h5", dir);
    snprintf(bad, sizeof bad, "%s/SYNTH/JPEGImages/000000.png", voc); /* the corrupt one */
    snprintf(png, sizeof png, "%s/nothing.png", dir);
    run_prog(&r, ARGV("detect", ckpt, bad, "-o", png));
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "000000.png"));
    assert_null(fopen(png, "rb"));

}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_augmented_boxes_follow_objects),
        cmocka_unit_test(test_train_resume_eval_detect),
        cmocka_unit_test(test_admm_detector),
        cmocka_unit_test(test_export_to_onnx_runtime),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
