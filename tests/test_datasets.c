/* Data readers and the loader: idx (raw and gzip) and HDF5 files read right, broken files give errors that
 * name the file, and batches are the same for any number of loader threads and from any starting batch. */
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
#include "datasets/loader.h"
#include "tests/support/run.h"
#include "tests/support/synth.h"
#include "tests/support/testutil.h"

static char dir[256];

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "data")) return -1;
    synth_write_idx(dir, "raw", 50, 8, 6, 5, false, 1);
    synth_write_idx(dir, "gz", 50, 8, 6, 5, true, 1);
    char p[512];
    snprintf(p, sizeof p, "%s/u8.h5", dir);
    synth_write_h5(p, 40, 2, 6, 6, 4, true, 2);
    snprintf(p, sizeof p, "%s/f32.h5", dir);
    synth_write_h5(p, 40, 2, 6, 6, 4, false, 2);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

static void path(char *out, const char *name) { snprintf(out, 512, "%s/%s", dir, name); }

static void test_idx(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    for (int gz = 0; gz < 2; gz++) {
        char im[512], lb[512];
        path(im, gz ? "gz-images-idx3-ubyte.gz" : "raw-images-idx3-ubyte");
        assert_int_equal(nb_idx_labels_path(im, lb, sizeof lb), 0);
        assert_non_null(strstr(lb, gz ? "gz-labels-idx1-ubyte.gz" : "raw-labels-idx1-ubyte"));
        nb_dataset ds;
        assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), 0);
        assert_int_equal(ds.n, 50);
        assert_int_equal(ds.h, 8);
        assert_int_equal(ds.w, 6);
        assert_int_equal(ds.dtype, NB_U8);
        for (int i = 0; i < 50; i++) {
            unsigned char want[48];
            int64_t l;
            synth_sample(i, 1, 8, 6, 5, 1, want, &l);
            assert_memory_equal((unsigned char *)ds.images + 48 * i, want, 48);
            assert_int_equal(ds.labels[i], l);
        }
        nb_dataset_free(&ds);
        assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 7), 0);
        assert_int_equal(ds.n, 7);
        nb_dataset_free(&ds);
    }
    nb_ctx_free(ctx);
}

static void test_idx_errors(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    char im[512], lb[512], cmd[2048];
    nb_dataset ds;
    path(im, "missing-images-idx3-ubyte");
    path(lb, "missing-labels-idx1-ubyte");
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), -1);
    tu_expect_error(ctx, "missing-images-idx3-ubyte: cannot open");
    /* a truncated images file, raw and gzip */
    path(im, "raw-images-idx3-ubyte");
    snprintf(cmd, sizeof cmd, "cp %s %s/cut-images-idx3-ubyte && cp %s/raw-labels-idx1-ubyte %s/cut-labels-idx1-ubyte", im,
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    path(im, "cut-images-idx3-ubyte");
    path(lb, "cut-labels-idx1-ubyte");
    synth_truncate(im, 16 + 48 * 30);
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), -1);
    tu_expect_error(ctx, "cut-images-idx3-ubyte: truncated or corrupt: expected 2400 bytes of pixels, read 1440");
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 10), -1); /* even when only a prefix is used */
    tu_expect_error(ctx, "truncated");
    snprintf(cmd, sizeof cmd, "head -c 300 %s/gz-images-idx3-ubyte.gz > %s/cutgz-images-idx3-ubyte.gz", dir, dir);
    assert_int_equal(system(cmd), 0);
    path(im, "cutgz-images-idx3-ubyte.gz");
    path(lb, "gz-labels-idx1-ubyte.gz");
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), -1);
    tu_expect_error(ctx, "cutgz-images-idx3-ubyte.gz: truncated or corrupt");
    /* a 16-byte header that claims 2^31 images of 1x1: the memory follows the bytes there (fuzz/regress/idx) */
    path(im, "claims-images-idx3-ubyte");
    FILE *hf = fopen(im, "wb");
    assert_non_null(hf);
    fwrite("\x00\x00\x08\x03\x80\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01", 1, 16, hf);
    fclose(hf);
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), -1);
    tu_expect_error(ctx, "claims-images-idx3-ubyte: truncated or corrupt: expected 2147483648 bytes of pixels, read 0");
    /* labels and images swapped: wrong magic */
    path(im, "raw-labels-idx1-ubyte");
    path(lb, "raw-images-idx3-ubyte");
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), -1);
    tu_expect_error(ctx, "not an idx3 image file: magic 0x00000801, expected 0x00000803");
    /* a labels file for another set */
    path(im, "raw-images-idx3-ubyte");
    synth_write_idx(dir, "other", 20, 8, 6, 5, false, 3);
    path(lb, "other-labels-idx1-ubyte");
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), -1);
    tu_expect_error(ctx, "has 20 labels but");
    nb_ctx_free(ctx);
}

static void test_hdf5(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    char p[512];
    for (int f32 = 0; f32 < 2; f32++) {
        path(p, f32 ? "f32.h5" : "u8.h5");
        nb_dataset ds;
        assert_int_equal(nb_dataset_load_hdf5(ctx, &ds, p, 0), 0);
        assert_int_equal(ds.n, 40);
        assert_int_equal(ds.c, 2);
        assert_int_equal(ds.dtype, f32 ? NB_F32 : NB_U8);
        unsigned char want[72];
        int64_t l;
        synth_sample(13, 2, 6, 6, 4, 2, want, &l);
        assert_int_equal(ds.labels[13], l);
        if (f32) assert_true(fabsf(((float *)ds.images)[13 * 72 + 5] - want[5] / 255.0f) < 1e-6f);
        else assert_memory_equal((unsigned char *)ds.images + 13 * 72, want, 72);
        nb_dataset_free(&ds);
    }
    nb_dataset ds;
    path(p, "u8.h5");
    char cut[512], cmd[1200];
    path(cut, "cut.h5");
    snprintf(cmd, sizeof cmd, "head -c 2000 %s > %s", p, cut);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(nb_dataset_load_hdf5(ctx, &ds, cut, 0), -1);
    tu_expect_error(ctx, "cut.h5:");
    path(p, "raw-images-idx3-ubyte");
    assert_int_equal(nb_dataset_load_hdf5(ctx, &ds, p, 0), -1);
    tu_expect_error(ctx, "raw-images-idx3-ubyte: cannot open as an HDF5 data set");
    /* four int64 labels in 8 bytes of storage: libhdf5 read past its buffer (fuzz/regress/hdf5_data; the
     * fuzz input's first byte is the target's switch) */
    path(p, "short-labels.h5");
    snprintf(cmd, sizeof cmd, "tail -c +2 fuzz/regress/hdf5_data/labels-stored-short > %s", p);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(nb_dataset_load_hdf5(ctx, &ds, p, 0), -1);
    tu_expect_error(ctx, "short-labels.h5: 'labels' claims 32 bytes of data but the file stores 8");
    nb_ctx_free(ctx);
}

static void collect(nb_loader *l, int64_t epoch, int64_t first, float *xs, int64_t *ys, int64_t *count) {
    nb_loader_start(l, epoch, first);
    const nb_batch *b;
    int64_t n = 0;
    while ((b = nb_loader_next(l))) {
        memcpy(xs + n * 48, b->x, sizeof(float) * 48 * (size_t)b->n);
        memcpy(ys + n, b->y, sizeof(int64_t) * (size_t)b->n);
        n += b->n;
    }
    nb_loader_stop(l);
    *count = n;
}

static void test_loader_deterministic(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    char im[512], lb[512];
    path(im, "raw-images-idx3-ubyte");
    path(lb, "raw-labels-idx1-ubyte");
    nb_dataset ds;
    assert_int_equal(nb_dataset_load_idx(ctx, &ds, im, lb, 0), 0);
    nb_loader_cfg c = {.batch = 8, .shuffle = true, .seed = 9, .augment = NB_AUG_FLIP | NB_AUG_CROP, .pad = 2, .workers = 1,
                       .mean = {0.5f}, .std = {0.25f}};
    float a[50 * 48], b[50 * 48];
    int64_t ya[50], yb[50], na, nbb;
    nb_loader *l1 = nb_loader_new(&ds, &c);
    collect(l1, 3, 0, a, ya, &na);
    c.workers = 3;
    nb_loader *l3 = nb_loader_new(&ds, &c);
    collect(l3, 3, 0, b, yb, &nbb);
    assert_int_equal(na, 50);
    assert_int_equal(nbb, 50);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(ya, yb, sizeof ya);
    assert_int_equal(nb_loader_batches(l1), 7);
    /* starting at batch 4 gives the tail of the same epoch */
    collect(l3, 3, 4, b, yb, &nbb);
    assert_int_equal(nbb, 50 - 32);
    assert_memory_equal(a + 32 * 48, b, sizeof(float) * 48 * 18);
    /* another epoch is another order */
    collect(l1, 4, 0, b, yb, &nbb);
    assert_memory_not_equal(ya, yb, sizeof ya);
    /* every sample appears once per epoch */
    int64_t hist_a[5] = {0}, hist_b[5] = {0};
    for (int i = 0; i < 50; i++) hist_a[ya[i]]++, hist_b[yb[i]]++;
    assert_memory_equal(hist_a, hist_b, sizeof hist_a);
    nb_loader_free(l1);
    nb_loader_free(l3);
    nb_dataset_free(&ds);
    nb_ctx_free(ctx);
}

/* Without augmentation a sample is the image scaled and normalised; with a crop offset and a flip, pixels
 * move where torchvision's RandomCrop(padding) + RandomHorizontalFlip would put them. */
static void test_augmentation(void **st) {
    (void)st;
    nb_dataset ds = {.n = 1, .c = 1, .h = 4, .w = 5, .dtype = NB_U8};
    unsigned char img[20];
    for (int i = 0; i < 20; i++) img[i] = (unsigned char)(10 * i);
    int64_t lab = 0;
    ds.images = img;
    ds.labels = &lab;
    nb_loader_cfg c = {.batch = 1, .workers = 1, .mean = {0.0f}, .std = {1.0f}};
    nb_loader *l = nb_loader_new(&ds, &c);
    float out[20];
    nb_loader_sample(l, 0, 0, out);
    for (int i = 0; i < 20; i++) assert_true(fabsf(out[i] - img[i] / 255.0f) < 1e-7f);
    nb_loader_free(l);
    c.augment = NB_AUG_FLIP | NB_AUG_CROP;
    c.pad = 1;
    l = nb_loader_new(&ds, &c);
    int saw_flip = 0, saw_shift = 0;
    for (int e = 0; e < 40; e++) {
        nb_loader_sample(l, e, 0, out);
        /* find (dy, dx, flip) that explains the output */
        int found = 0;
        for (int dy = -1; dy <= 1 && !found; dy++)
            for (int dx = -1; dx <= 1 && !found; dx++)
                for (int fl = 0; fl < 2 && !found; fl++) {
                    int ok = 1;
                    for (int y = 0; y < 4 && ok; y++)
                        for (int x = 0; x < 5 && ok; x++) {
                            int sy = y + dy, sx = (fl ? 4 - x : x) + dx;
                            float want = sy >= 0 && sy < 4 && sx >= 0 && sx < 5 ? img[sy * 5 + sx] / 255.0f : 0.0f;
                            ok = fabsf(out[y * 5 + x] - want) < 1e-6f;
                        }
                    if (ok) {
                        found = 1;
                        saw_flip |= fl;
                        saw_shift |= dx != 0 || dy != 0;
                    }
                }
        assert_true(found);
    }
    assert_true(saw_flip && saw_shift);
    nb_loader_free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx),  cmocka_unit_test(test_idx_errors),          cmocka_unit_test(test_hdf5),
        cmocka_unit_test(test_loader_deterministic), cmocka_unit_test(test_augmentation),
    };
    return cmocka_run_group_tests_name("datasets and loader", tests, setup, teardown);
}
