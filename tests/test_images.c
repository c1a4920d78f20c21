/* Image folders end to end: JPEG and PNG decoding in every mode a collection mixes (against the pixels that
 * were written), DCT-scaled decoding, refusal of CMYK, truncated and fake files with a reason, the crop
 * rectangles and the antialiased resampling, ImageFolder's class order, a loader whose batches do not depend
 * on its thread count and that skips and counts unreadable files, CIFAR binaries, and bin/train on a
 * synthetic ImageNet-style tree. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasets/dataset.h"
#include "datasets/image_decode.h"
#include "datasets/image_transform.h"
#include "datasets/loader.h"
#include "datasets/synth_images.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"

static char dir[256];

static int setup(void **st) {
    (void)st;
    return make_test_dir(dir, sizeof dir, "images");
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

/* A smooth picture (JPEG-friendly) with every channel different. */
static unsigned char *gradient(int w, int h) {
    unsigned char *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *q = p + ((size_t)y * w + x) * 3;
            q[0] = (unsigned char)(x * 255 / (w - 1));
            q[1] = (unsigned char)(y * 255 / (h - 1));
            q[2] = (unsigned char)(128 + 100 * sin(x * 0.05) * cos(y * 0.07));
        }
    return p;
}

static int decode(const char *path, double scale, nb_image *im, char *err) {
    int w, h;
    nb_image_file *f = nb_image_open(path, &w, &h, err, 256);
    if (!f) return -1;
    return nb_image_decode(f, scale, im, err, 256);
}

static void test_decode_modes(void **st) {
    (void)st;
    enum { W = 96, H = 64 };
    unsigned char *src = gradient(W, H);
    static const char *const modes[] = {"png", "png-grey", "png-grey16", "png-palette", "png-rgba", "png-interlaced",
                                        "jpeg", "jpeg-grey", "jpeg-progressive"};
    char path[400], err[256];
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        snprintf(path, sizeof path, "%s/%s.img", dir, modes[m]);
        assert_int_equal(nb_write_image(path, modes[m], src, W, H, err, sizeof err), 0);
        nb_image im;
        if (decode(path, 1.0, &im, err)) fail_msg("%s: %s", modes[m], err);
        assert_int_equal(im.w, W);
        assert_int_equal(im.h, H);
        bool jpeg = !strncmp(modes[m], "jpeg", 4);
        double sum = 0, worst = 0;
        for (int i = 0; i < W * H; i++) {
            const unsigned char *s = src + 3 * i, *d = im.rgb + 3 * i;
            int grey = (299 * s[0] + 587 * s[1] + 114 * s[2]) / 1000, want[3];
            for (int c = 0; c < 3; c++) want[c] = s[c];
            if (strstr(modes[m], "grey")) want[0] = want[1] = want[2] = grey;
            if (!strcmp(modes[m], "png-grey16")) { /* the high byte of grey * 257 + (x & 7), capped */
                int v = grey * 257 + (i % W & 7);
                want[0] = want[1] = want[2] = (v > 65535 ? 65535 : v) >> 8;
            }
            if (!strcmp(modes[m], "png-palette")) { /* the nearest entry of the writer's 6x7x6 colour cube */
                want[0] = (s[0] + 25) / 51 * 51;
                want[1] = (s[1] + 21) / 42 * 42;
                want[2] = (s[2] + 25) / 51 * 51;
            }
            if (strstr(modes[m], "grey")) assert_true(d[0] == d[1] && d[1] == d[2]);
            for (int c = 0; c < 3; c++) {
                double e = fabs((double)d[c] - want[c]);
                sum += e;
                worst = fmax(worst, e);
                if (!jpeg && e != 0) fail_msg("%s: pixel %d channel %d is %d, want %d", modes[m], i, c, d[c], want[c]);
            }
        }
        if (jpeg && (sum / (W * H * 3) > 2.5 || worst > 40))
            fail_msg("%s: mean error %.2f, worst %.0f against the source", modes[m], sum / (W * H * 3), worst);
        nb_image_free(&im);
    }
    free(src);
}

static void test_dct_scaling_and_errors(void **st) {
    (void)st;
    unsigned char *src = gradient(320, 240);
    char path[400], err[256];
    snprintf(path, sizeof path, "%s/big.jpg", dir);
    assert_int_equal(nb_write_image(path, "jpeg", src, 320, 240, err, sizeof err), 0);
    static const struct {
        double scale;
        int w, h;
    } cases[] = {{1.0, 320, 240}, {0.5, 160, 120}, {0.3, 120, 90}, {0.1, 40, 30}, {2.0, 320, 240}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_image im;
        assert_int_equal(decode(path, cases[i].scale, &im, err), 0);
        if (im.w != cases[i].w || im.h != cases[i].h)
            fail_msg("decoding at %.2f gave %dx%d, want %dx%d", cases[i].scale, im.w, im.h, cases[i].w, cases[i].h);
        nb_image_free(&im);
    }
    /* what a loader must refuse, each with a reason */
    snprintf(path, sizeof path, "%s/cmyk.jpg", dir);
    assert_int_equal(nb_write_image(path, "jpeg-cmyk", src, 64, 48, err, sizeof err), 0);
    nb_image im;
    assert_int_not_equal(decode(path, 1.0, &im, err), 0);
    assert_non_null(strstr(err, "CMYK"));
    snprintf(path, sizeof path, "%s/cut.jpg", dir);
    assert_int_equal(nb_write_image(path, "jpeg", src, 320, 240, err, sizeof err), 0);
    synth_truncate(path, 3000);
    assert_int_not_equal(decode(path, 1.0, &im, err), 0);
    assert_non_null(strstr(err, "broken JPEG"));
    snprintf(path, sizeof path, "%s/cut.png", dir);
    assert_int_equal(nb_write_image(path, "png", src, 320, 240, err, sizeof err), 0);
    synth_truncate(path, 2000);
    assert_int_not_equal(decode(path, 1.0, &im, err), 0);
    assert_non_null(strstr(err, "broken PNG"));
    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *f = fopen(path, "w");
    fputs("not an image at all\n", f);
    fclose(f);
    assert_int_not_equal(decode(path, 1.0, &im, err), 0);
    assert_non_null(strstr(err, "neither a JPEG nor a PNG"));
    snprintf(path, sizeof path, "%s/missing.jpg", dir);
    assert_int_not_equal(decode(path, 1.0, &im, err), 0);
    assert_non_null(strstr(err, "cannot open"));
    free(src);
}

static void test_crops_and_resampling(void **st) {
    (void)st;
    /* RandomResizedCrop: inside the image, 8% to 100% of its area, aspect 3/4 to 4/3 (up to rounding) */
    nb_rng r = nb_rng_make(3, 4);
    for (int i = 0; i < 2000; i++) {
        nb_rect c = nb_random_resized_crop(&r, 500, 375, 0.08);
        assert_true(c.x >= 0 && c.y >= 0 && c.x + c.w <= 500 && c.y + c.h <= 375);
        double area = c.w * c.h / (500.0 * 375.0), ratio = c.w / c.h;
        assert_true(area > 0.075 && area <= 1.0);
        assert_true(ratio > 0.74 && ratio < 1.35);
    }
    /* Resize(256) + CenterCrop(224) of 500x375: a centred square of 224 * 375/256 source pixels */
    nb_rect c = nb_center_crop(500, 375, 256, 224);
    assert_true(fabs(c.w - 328.125) < 1e-9 && fabs(c.h - 328.125) < 1e-9);
    assert_true(fabs(c.x - (500 - 328.125) / 2) < 1e-9 && fabs(c.y - (375 - 328.125) / 2) < 1e-9);

    float mean[3] = {0, 0, 0}, sd[3] = {1, 1, 1};
    /* the identity: a whole square image at its own size comes back exactly, flipped when asked */
    enum { S = 40 };
    unsigned char *src = gradient(S, S);
    nb_image im = {S, S, src};
    float out[3 * S * S];
    for (int flip = 0; flip < 2; flip++) {
        nb_resample_normalize(&im, (nb_rect){0, 0, S, S}, S, flip, mean, sd, out);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int sx = flip ? S - 1 - x : x;
                    float want = src[((size_t)y * S + sx) * 3 + ch] / 255.0f;
                    assert_true(fabsf(out[ch * S * S + y * S + x] - want) < 1e-6f);
                }
    }
    free(src);
    /* antialiasing: a one-pixel checkerboard shrunk 8x averages to grey instead of aliasing */
    unsigned char *cb = malloc(64 * 64 * 3);
    for (int i = 0; i < 64 * 64; i++) memset(cb + 3 * i, ((i % 64) + (i / 64)) % 2 ? 255 : 0, 3);
    nb_image ci = {64, 64, cb};
    float small[3 * 8 * 8];
    nb_resample_normalize(&ci, (nb_rect){0, 0, 64, 64}, 8, false, mean, sd, small);
    for (int i = 0; i < 3 * 64; i++) assert_true(fabsf(small[i] - 0.5f) < 0.02f);
    /* normalisation: (v/255 - mean) / std */
    float m2[3] = {0.5f, 0.25f, 0.0f}, s2[3] = {0.5f, 0.25f, 2.0f};
    nb_resample_normalize(&ci, (nb_rect){0, 0, 64, 64}, 8, false, m2, s2, small);
    assert_true(fabsf(small[0] - 0.0f) < 0.04f && fabsf(small[64] - 1.0f) < 0.08f && fabsf(small[128] - 0.25f) < 0.01f);
    free(cb);
}

static void make_tree(const char *root) {
    nb_synth_spec s = {.classes = 3, .train_per_class = 12, .val_per_class = 4, .min_side = 40, .max_side = 160, .broken = true, .seed = 5};
    char err[256];
    if (nb_synth_image_tree(root, &s, err, sizeof err)) fail_msg("%s", err);
}

static void test_folder_loader(void **st) {
    (void)st;
    char root[300], train[320];
    snprintf(root, sizeof root, "%s/tree", dir);
    snprintf(train, sizeof train, "%s/train", root);
    make_tree(root);
    nb_ctx *ctx = tu_ctx();
    nb_dataset ds;
    assert_int_equal(nb_dataset_load_folder(ctx, &ds, train, 32, 0), 0);
    assert_int_equal(ds.n, 3 * 12 + 3);
    assert_int_equal(ds.n_classes, 3);
    assert_string_equal(ds.classes[0], "class00");
    assert_string_equal(ds.classes[2], "class02");
    for (int64_t i = 0; i < ds.n; i++) {
        char want[16];
        snprintf(want, sizeof want, "/class%02d/", (int)ds.labels[i]);
        assert_non_null(strstr(ds.files[i], want));
        if (i) assert_true(ds.labels[i] >= ds.labels[i - 1]);
    }
    /* batches are a function of (seed, epoch, batch), whatever the number of threads */
    nb_loader_cfg c = {.batch = 5, .shuffle = true, .seed = 9, .augment = NB_AUG_RRC | NB_AUG_FLIP, .workers = 1,
                       .mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f}};
    size_t per = 3 * 32 * 32;
    float *x1 = malloc(sizeof(float) * per * (size_t)ds.n), *x3 = malloc(sizeof(float) * per * (size_t)ds.n);
    int64_t y1[64], y3[64];
    for (int pass = 0; pass < 2; pass++) {
        c.workers = pass ? 3 : 1;
        nb_loader *l = nb_loader_new(&ds, &c);
        nb_loader_start(l, 2, 0);
        const nb_batch *b;
        int64_t k = 0;
        while ((b = nb_loader_next(l))) {
            memcpy((pass ? x3 : x1) + (size_t)k * per, b->x, sizeof(float) * per * (size_t)b->n);
            memcpy((pass ? y3 : y1) + k, b->y, sizeof(int64_t) * (size_t)b->n);
            k += b->n;
        }
        assert_int_equal(k, ds.n);
        nb_loader_free(l);
    }
    assert_memory_equal(x1, x3, sizeof(float) * per * (size_t)ds.n);
    assert_memory_equal(y1, y3, sizeof(int64_t) * (size_t)ds.n);
    /* the three unreadable files were skipped, counted once each, and named */
    assert_int_equal(ds.skipped->count, 3);
    assert_non_null(strstr(ds.skipped->first, "zz_"));
    /* values are normalised crops: within the range (0 - 0.5)/0.25 .. (1 - 0.5)/0.25 */
    for (size_t i = 0; i < per * (size_t)ds.n; i++) assert_true(x1[i] >= -2.0001f && x1[i] <= 2.0001f);
    free(x1);
    free(x3);
    nb_dataset_free(&ds);
    /* a limit keeps every class */
    assert_int_equal(nb_dataset_load_folder(ctx, &ds, train, 32, 6), 0);
    assert_int_equal(ds.n, 6);
    assert_int_equal(ds.labels[0], 0);
    assert_int_equal(ds.labels[5], 2);
    nb_dataset_free(&ds);
    /* a folder without classes is an error that names it */
    char empty[320];
    snprintf(empty, sizeof empty, "%s/train/class00", root);
    assert_int_not_equal(nb_dataset_load_folder(ctx, &ds, empty, 32, 0), 0);
    tu_expect_error(ctx, "holds no class folders");
    assert_int_not_equal(nb_dataset_load_folder(ctx, &ds, "/nonexistent/folder", 32, 0), 0);
    tu_expect_error(ctx, "cannot open the image folder");
    nb_ctx_free(ctx);
}

static void write_cifar(const char *path, int n, int label_bytes, int seed) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        unsigned char rec[2 + 3072];
        rec[0] = (unsigned char)((i + seed) % 20);
        rec[label_bytes - 1] = (unsigned char)((i * 7 + seed) % (label_bytes == 2 ? 100 : 10));
        for (int k = 0; k < 3072; k++) rec[label_bytes + k] = (unsigned char)(k * 3 + i + seed);
        fwrite(rec, 1, (size_t)(label_bytes + 3072), f);
    }
    fclose(f);
}

static void test_cifar(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    char c10[300], c100[300], path[400];
    snprintf(c10, sizeof c10, "%s/cifar10", dir);
    snprintf(c100, sizeof c100, "%s/cifar100", dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s", c10, c100);
    assert_int_equal(system(cmd), 0);
    for (int b = 1; b <= 5; b++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", c10, b);
        write_cifar(path, 4, 1, b * 10);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", c10);
    write_cifar(path, 3, 1, 99);
    snprintf(path, sizeof path, "%s/train.bin", c100);
    write_cifar(path, 5, 2, 1);
    nb_dataset ds;
    assert_int_equal(nb_dataset_load_cifar(ctx, &ds, c10, true, 0), 0);
    assert_int_equal(ds.n, 20);
    assert_true(ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.dtype == NB_U8);
    assert_int_equal(ds.labels[4], (0 * 7 + 20) % 10); /* first record of the second batch */
    assert_int_equal(((unsigned char *)ds.images)[4 * 3072 + 5], (unsigned char)(5 * 3 + 0 + 20));
    nb_dataset_free(&ds);
    assert_int_equal(nb_dataset_load_cifar(ctx, &ds, c10, false, 0), 0);
    assert_int_equal(ds.n, 3);
    nb_dataset_free(&ds);
    assert_int_equal(nb_dataset_load_cifar(ctx, &ds, c100, true, 0), 0);
    assert_int_equal(ds.n, 5);
    assert_int_equal(ds.labels[3], (3 * 7 + 1) % 100); /* the fine label */
    nb_dataset_free(&ds);
    snprintf(path, sizeof path, "%s/data_batch_3.bin", c10);
    synth_truncate(path, 3000);
    assert_int_not_equal(nb_dataset_load_cifar(ctx, &ds, c10, true, 0), 0);
    tu_expect_error(ctx, "not a whole number of 3073-byte CIFAR records");
    nb_ctx_free(ctx);
}

/* bin/train with the ImageNet recipe on the synthetic tree: a few steps, the unreadable files reported. */
static void test_train_on_tree(void **st) {
    (void)st;
    char root[300], rootkv[320], out[320];
    snprintf(root, sizeof root, "%s/tree", dir);
    if (access(root, F_OK) != 0) make_tree(root);
    snprintf(rootkv, sizeof rootkv, "data.root=%s", root);
    snprintf(out, sizeof out, "train.out=%s/run_r18", dir);
    run_result r;
    const char *argv[] = {"train", "experiments/r18_imagenet.cfg", rootkv, out, "model.input_size=64",
                          "model.num_classes=3", "train.batch=8", "train.steps=4", "optim.lr=0.01", "data.workers=2",
                          "model.width=0.25", NULL};
    run_prog(&r, argv);
    if (r.status != 0) fail_msg("bin/train exited with %d:\n%s", r.status, r.err);
    assert_non_null(strstr(r.err, "3 unreadable images"));
    assert_non_null(strstr(r.err, "/zz_")); /* the first one met, named with its reason */
    /* a bad augmentation for folders is a clear configuration error */
    const char *bad[] = {"train", "experiments/r18_imagenet.cfg", rootkv, out, "data.augment=crop_flip", "--resume", NULL};
    run_prog(&r, bad);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "image folders take rrc or rrc_flip"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_modes),
        cmocka_unit_test(test_dct_scaling_and_errors),
        cmocka_unit_test(test_crops_and_resampling),
        cmocka_unit_test(test_folder_loader),
        cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_train_on_tree),
    };
    return cmocka_run_group_tests_name("image folders and CIFAR", tests, setup, teardown);
}
