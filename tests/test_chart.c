/* The learning-curve chart: the PNG is valid and sized per panel, series are really drawn where they belong,
 * degenerate data still renders, and failed writes report the path and leave no file behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "train/chart.h"

typedef struct { unsigned char *px; int w, h; } image;

static image read_png(const char *path) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&im, path));
    im.format = PNG_FORMAT_RGB;
    image out = {malloc(PNG_IMAGE_SIZE(im)), (int)im.width, (int)im.height};
    assert_non_null(out.px);
    assert_true(png_image_finish_read(&im, NULL, out.px, 0, NULL));
    return out;
}

static const unsigned char *pixel(const image *im, int x, int y) { return im->px + ((size_t)y * im->w + x) * 3; }

static int is(const unsigned char *p, unsigned char r, unsigned char g, unsigned char b) {
    return p[0] == r && p[1] == g && p[2] == b;
}

/* Columns in [x0, x1) holding the colour: a curve across the plot spans hundreds, a legend swatch a few dozen. */
static int columns_with(const image *im, int x0, int x1, const nb_series *s) {
    int n = 0;
    for (int x = x0; x < x1; x++)
        for (int y = 0; y < im->h; y++)
            if (is(pixel(im, x, y), s->r, s->g, s->b)) {
                n++;
                break;
            }
    return n;
}

/* A filled square marker is the only thing drawn with a 5x5 solid block; lines are 2 px and text 1 px thick. */
static int has_block(const image *im, int x0, int x1, const nb_series *s) {
    for (int y = 0; y + 5 <= im->h; y++)
        for (int x = x0; x + 5 <= x1; x++) {
            int all = 1;
            for (int dy = 0; dy < 5 && all; dy++)
                for (int dx = 0; dx < 5 && all; dx++) all = is(pixel(im, x + dx, y + dy), s->r, s->g, s->b);
            if (all) return 1;
        }
    return 0;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void make_dir(char *dir) {
    strcpy(dir, "/tmp/nb_chart_XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static const double epochs[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static const double train_loss[8] = {2.3, 1.6, 1.2, NAN, 0.8, 0.65, 0.55, 0.5};
static const double val_loss[8] = {2.4, 1.9, 1.5, 1.3, 1.2, 1.15, 1.1, 1.12};
static const double train_acc[8] = {0.12, 0.41, 0.58, 0.67, 0.74, 0.79, 0.82, 0.85};
static const double test_x[1] = {8}, test_acc[1] = {0.8};

static void test_two_panels(void **state) {
    (void)state;
    nb_series loss[2] = {{epochs, train_loss, 8, "train", 31, 119, 180}, {epochs, val_loss, 8, "val", 255, 127, 14}};
    nb_series acc[2] = {{epochs, train_acc, 8, "train", 44, 160, 44}, {test_x, test_acc, 1, "test", 214, 39, 40}};
    nb_panel panels[2] = {{"loss", "epoch", loss, 2, 0}, {"accuracy", "epoch", acc, 2, 1}};
    char dir[32], path[64], tmp[80], err[256] = "";
    make_dir(dir);
    snprintf(path, sizeof path, "%s/chart.png", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    assert_int_equal(nb_chart_write(path, panels, 2, err, sizeof err), 0);
    assert_false(exists(tmp));
    image im = read_png(path);
    assert_int_equal(im.w, 2 * 480);
    assert_int_equal(im.h, 360);
    assert_true(is(pixel(&im, 0, 0), 255, 255, 255));
    assert_true(is(pixel(&im, im.w - 1, im.h - 1), 255, 255, 255));
    /* each curve crosses most of its own panel and none of the other */
    for (int i = 0; i < 2; i++) {
        assert_in_range(columns_with(&im, 0, 480, &loss[i]), 250, 480);
        assert_int_equal(columns_with(&im, 480, 960, &loss[i]), 0);
    }
    assert_in_range(columns_with(&im, 480, 960, &acc[0]), 250, 480);
    assert_int_equal(columns_with(&im, 0, 480, &acc[0]), 0);
    /* the one-point series is a marker, and only in its panel */
    assert_true(has_block(&im, 480, 960, &acc[1]));
    assert_false(has_block(&im, 0, 480, &acc[1]));
    free(im.px);

    /* redrawing replaces the file in place, as the trainer does every epoch */
    panels[1].n_series = 1;
    assert_int_equal(nb_chart_write(path, panels, 2, err, sizeof err), 0);
    im = read_png(path);
    assert_false(has_block(&im, 480, 960, &acc[1]));
    free(im.px);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_degenerate_data(void **state) {
    (void)state;
    double flat[8], nan[8];
    for (int i = 0; i < 8; i++) flat[i] = 0.7, nan[i] = i % 2 ? NAN : INFINITY;
    nb_series s[3] = {{epochs, flat, 8, "flat", 31, 119, 180}, {epochs, nan, 8, "nan", 214, 39, 40},
                      {NULL, NULL, 0, "empty", 148, 103, 189}};
    nb_panel panels[3] = {{"flat", "epoch", s, 3, 0}, {"flat percent", "epoch", s, 1, 1}, {"no data", "epoch", NULL, 0, 0}};
    char dir[32], path[64], err[256] = "";
    make_dir(dir);
    snprintf(path, sizeof path, "%s/chart.png", dir);
    assert_int_equal(nb_chart_write(path, panels, 3, err, sizeof err), 0);
    image im = read_png(path);
    assert_int_equal(im.w, 3 * 480);
    /* all-equal values still get a visible line; nothing of the empty series reaches the picture, not even its
       legend entry */
    assert_in_range(columns_with(&im, 0, 480, &s[0]), 250, 480);
    assert_in_range(columns_with(&im, 480, 960, &s[0]), 250, 480);
    assert_int_equal(columns_with(&im, 0, im.w, &s[2]), 0);
    /* the panel without data still has axes: a dark frame around a white plot */
    int dark = 0;
    for (int x = 960; x < 1440; x++) dark += pixel(&im, x, 180)[0] < 128;
    assert_in_range(dark, 2, 40);
    free(im.px);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_write_failures(void **state) {
    (void)state;
    nb_series s = {epochs, train_loss, 8, "train", 31, 119, 180};
    nb_panel panel = {"loss", "epoch", &s, 1, 0};
    char dir[32], path[80], tmp[96], err[256];
    make_dir(dir);

    /* the directory does not exist: the temporary cannot even be created */
    snprintf(path, sizeof path, "%s/missing/chart.png", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    strcpy(err, "");
    assert_int_equal(nb_chart_write(path, &panel, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_false(exists(path));
    assert_false(exists(tmp));
    snprintf(tmp, sizeof tmp, "%s/missing", dir);
    assert_false(exists(tmp));

    /* the temporary is written but cannot replace a directory: it must be cleaned up */
    snprintf(path, sizeof path, "%s/taken", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(mkdir(path, 0700), 0);
    strcpy(err, "");
    assert_int_equal(nb_chart_write(path, &panel, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_false(exists(tmp));

    /* the temporary is created but the disk "fills" part way, caught by libpng (a chart larger than the stdio
       buffer) or only when the tail is flushed at close (a small one): either way the error is reported, the
       partial temporary removed and the previous chart left untouched */
    nb_panel four[4] = {panel, panel, panel, panel};
    snprintf(path, sizeof path, "%s/chart.png", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (int n = 1; n <= 4; n += 3) {
        FILE *old = fopen(path, "w");
        assert_non_null(old);
        fputs("previous", old);
        assert_int_equal(fclose(old), 0);
        struct rlimit saved, small;
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        small = saved;
        small.rlim_cur = 1000;
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        strcpy(err, "");
        int rc = nb_chart_write(path, four, n, err, sizeof err);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        signal(SIGXFSZ, prev);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, "File too large"));
        assert_false(exists(tmp));
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 8);
        assert_int_equal(unlink(path), 0);
    }

    /* nothing to draw is a caller error, reported the same way */
    strcpy(err, "");
    assert_int_equal(nb_chart_write(tmp, &panel, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, tmp));
    assert_false(exists(tmp));

    snprintf(path, sizeof path, "%s/taken", dir);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_panels),
        cmocka_unit_test(test_degenerate_data),
        cmocka_unit_test(test_write_failures),
    };
    return cmocka_run_group_tests_name("learning-curve chart", tests, NULL, NULL);
}
