/* Detection's geometry and bookkeeping against hand-computed cases: IoU and SSD's box encoding, the default
 * boxes of the published SSD300 VOC configuration, matching (best prior per ground truth, then IoU > 0.5),
 * non-maximum suppression with ties, VOC AP (11-point and all-point, difficult objects, duplicates, classes
 * without ground truth, the devkit's pixel convention) and the VOC annotation reader on good and broken
 * files; the multibox loss and its gradients against PyTorch (tests/fixtures/multibox.h5, written by
 * scripts/gen_detect_fixtures.py) and finite differences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "datasets/voc.h"
#include "detect/boxes.h"
#include "detect/match.h"
#include "detect/nms.h"
#include "detect/priors.h"
#include "detect/voc_eval.h"
#include "models/model.h"
#include "support/run.h"
#include "support/testutil.h"

#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-5)

static void test_iou_and_encoding(void **state) {
    (void)state;
    NEAR(nb_box_iou((nb_box){0, 0, 2, 2}, (nb_box){1, 1, 3, 3}), 1.0 / 7.0);
    NEAR(nb_box_iou((nb_box){0, 0, 1, 1}, (nb_box){1, 0, 2, 1}), 0.0); /* touching edges */
    NEAR(nb_box_iou((nb_box){0, 0, 1, 1}, (nb_box){0, 0, 1, 1}), 1.0);
    /* centre (0.4, 0.4), 0.4 x 0.2 against a default box at (0.5, 0.5), 0.2 x 0.4 */
    float t[4];
    nb_cbox p = {0.5f, 0.5f, 0.2f, 0.4f};
    nb_box b = {0.2f, 0.3f, 0.6f, 0.5f};
    nb_box_encode(b, p, 0.1f, 0.2f, t);
    NEAR(t[0], -5.0);
    NEAR(t[1], -2.5);
    NEAR(t[2], log(2.0) / 0.2);
    NEAR(t[3], -log(2.0) / 0.2);
    nb_box back = nb_box_decode(t, p, 0.1f, 0.2f);
    NEAR(back.x1, b.x1);
    NEAR(back.y1, b.y1);
    NEAR(back.x2, b.x2);
    NEAR(back.y2, b.y2);
}

/* SSD300 on VOC (Liu et al.; ssd.pytorch's voc config): 8732 default boxes */
static void test_priors_ssd300(void **state) {
    (void)state;
    nb_prior_cfg c = {.n_maps = 6,
                      .map_size = {38, 19, 10, 5, 3, 1},
                      .min_size = {30, 60, 111, 162, 213, 264},
                      .max_size = {60, 111, 162, 213, 264, 315},
                      .n_ratios = {1, 2, 2, 2, 1, 1},
                      .ratios = {{2}, {2, 3}, {2, 3}, {2, 3}, {2}, {2}},
                      .image_size = 300,
                      .clip = true};
    int n = nb_priors(&c, NULL, 0);
    assert_int_equal(n, 8732);
    assert_int_equal(nb_priors_per_location(&c, 1), 6);
    nb_cbox *p = malloc(sizeof *p * (size_t)n);
    assert_int_equal(nb_priors(&c, p, n), n);
    int L = 38 * 38; /* boxes of one type on the first map */
    NEAR(p[0].cx, 0.5 / 38), NEAR(p[0].cy, 0.5 / 38), NEAR(p[0].w, 0.1), NEAR(p[0].h, 0.1);
    NEAR(p[1].cx, 1.5 / 38), NEAR(p[1].cy, 0.5 / 38); /* next location along the row, same type */
    NEAR(p[38].cx, 0.5 / 38), NEAR(p[38].cy, 1.5 / 38); /* next row */
    NEAR(p[L].w, sqrt(0.1 * 0.2)), NEAR(p[L].cx, 0.5 / 38);
    NEAR(p[2 * L].w, 0.1 * sqrt(2.0)), NEAR(p[2 * L].h, 0.1 / sqrt(2.0));
    NEAR(p[3 * L].w, 0.1 / sqrt(2.0)), NEAR(p[3 * L].h, 0.1 * sqrt(2.0));
    NEAR(p[4 * L].w, 0.2), NEAR(p[4 * L].cx, 0.5 / 19); /* the second map starts */
    /* the last map: 1x1, s = 0.88; its extra box and the tall 1:2 box are clipped to the image */
    NEAR(p[n - 3].w, fmin(1.0, sqrt(0.88 * 1.05)));
    NEAR(p[n - 1].cx, 0.5), NEAR(p[n - 1].w, 0.88 / sqrt(2.0)), NEAR(p[n - 1].h, 1.0);
    free(p);
}

static void test_matching(void **state) {
    (void)state;
    /* four quadrant boxes and a central one */
    nb_cbox pr[5] = {{.25f, .25f, .5f, .5f}, {.75f, .25f, .5f, .5f}, {.25f, .75f, .5f, .5f}, {.75f, .75f, .5f, .5f},
                     {.5f, .5f, .6f, .6f}};
    nb_match_cfg c = {0.5f, 0.1f, 0.2f};
    /* g0 covers 80% of the top-left quadrant, g1 64% of the bottom-right, g2 is small and central: its best
     * IoU (0.028, with the central box) is far below 0.5, yet it must get that box */
    nb_box gt[3] = {{0, 0, .4f, .5f}, {.55f, .55f, .95f, .95f}, {.45f, .45f, .55f, .55f}};
    int labels[3] = {3, 1, 2};
    int64_t conf[5];
    float loc[20];
    assert_int_equal(nb_match(&c, pr, 5, gt, labels, 3, conf, loc), 3);
    int64_t want[5] = {3, 0, 0, 1, 2};
    for (int p = 0; p < 5; p++) assert_int_equal(conf[p], want[p]);
    /* g0 against the top-left box: centre (0.2, 0.25), 0.4 x 0.5 */
    NEAR(loc[0], -1.0), NEAR(loc[1], 0.0), NEAR(loc[2], log(0.8) / 0.2), NEAR(loc[3], 0.0);
    for (int k = 4; k < 12; k++) NEAR(loc[k], 0.0); /* background boxes have no regression target */
    /* without g2 the central box stays background (best IoU 0.137) */
    assert_int_equal(nb_match(&c, pr, 5, gt, labels, 2, conf, loc), 2);
    assert_int_equal(conf[4], 0);
    /* two ground truths whose best box is the same: the later one keeps it */
    nb_box twins[2] = {{0, 0, .5f, .5f}, {0, 0, .45f, .45f}};
    int tl[2] = {1, 2};
    nb_match(&c, pr, 5, twins, tl, 2, conf, loc);
    assert_int_equal(conf[0], 2);
    /* no ground truth: everything is background */
    assert_int_equal(nb_match(&c, pr, 5, gt, labels, 0, conf, loc), 0);
    for (int p = 0; p < 5; p++) assert_int_equal(conf[p], 0);
}

static void test_nms(void **state) {
    (void)state;
    nb_box b[6] = {{0, 0, 1, 1}, {0, 0, 1, .9f}, {2, 2, 3, 3}, {2, 2, 3, 3}, {5, 5, 6, 6}, {0, 0, 1, .4f}};
    float s[6] = {.9f, .8f, .8f, .8f, .01f, .7f};
    int keep[6];
    /* b1 overlaps b0 by 0.9; b2 and b3 tie in score and box: the lower index wins; b4 is under min_score;
     * b5 overlaps b0 by 0.4 only */
    int k = nb_nms(b, s, 6, 0.5f, 0.05f, 10, keep);
    assert_int_equal(k, 3);
    assert_int_equal(keep[0], 0);
    assert_int_equal(keep[1], 2);
    assert_int_equal(keep[2], 5);
    assert_int_equal(nb_nms(b, s, 6, 0.5f, 0.05f, 2, keep), 2); /* top_k */
    assert_int_equal(nb_nms(b, s, 6, 0.95f, 0.0f, 10, keep), 5); /* looser threshold: only the exact twin goes */
    assert_int_equal(nb_nms(b, s, 0, 0.5f, 0.0f, 10, keep), 0);
}

static void test_voc_ap(void **state) {
    (void)state;
    nb_voc_eval_cfg c07 = {true, false, 0.5f}, call = {false, false, 0.5f};
    /* class 0: objects A (image 0), B and a difficult D (image 1). Detections: A (TP), D (neither), A again
     * (duplicate: FP), B (TP) -> recall .5 .5 1, precision 1 .5 2/3.
     * class 1: detections but no ground truth (AP undefined, left out of the mean). class 2: ground truth
     * but no detection (AP 0). */
    nb_gt_object gt[4] = {{0, 0, {0, 0, .5f, .5f}, false},
                          {1, 0, {.5f, .5f, 1, 1}, false},
                          {1, 0, {0, 0, .3f, .3f}, true},
                          {0, 2, {0, 0, 1, 1}, false}};
    nb_detection d[5] = {{0, 0, .9f, {0, 0, .5f, .5f}},
                         {1, 0, .8f, {0, 0, .3f, .3f}},
                         {0, 0, .7f, {0, 0, .5f, .48f}},
                         {1, 0, .6f, {.5f, .5f, 1, .95f}},
                         {0, 1, .9f, {0, 0, 1, 1}}};
    double ap[3];
    double m = nb_voc_map(&call, d, 5, gt, 4, 3, ap);
    NEAR(ap[0], 0.5 + 0.5 * 2.0 / 3.0);
    assert_true(isnan(ap[1]));
    NEAR(ap[2], 0.0);
    NEAR(m, (0.5 + 0.5 * 2.0 / 3.0) / 2.0);
    nb_voc_map(&c07, d, 5, gt, 4, 3, ap);
    NEAR(ap[0], (6.0 + 5.0 * 2.0 / 3.0) / 11.0); /* recall 0..0.5: precision 1; 0.6..1: 2/3 */
    /* equal scores keep the given order: a false positive given first costs half the AP */
    nb_gt_object one = {0, 0, {0, 0, 1, 1}, false};
    nb_detection tie[2] = {{0, 0, .5f, {2, 2, 3, 3}}, {0, 0, .5f, {0, 0, 1, 1}}};
    nb_voc_map(&call, tie, 2, &one, 1, 1, ap);
    NEAR(ap[0], 0.5);
    nb_detection tie2[2] = {tie[1], tie[0]};
    nb_voc_map(&call, tie2, 2, &one, 1, 1, ap);
    NEAR(ap[0], 1.0);
    /* the devkit's pixel convention: (1,1)-(2,2) is 2x2 pixels, so (1,1)-(2,3) overlaps it by 4/6 (> 0.5);
     * in plain geometry the same numbers give exactly 0.5, which is not enough */
    nb_gt_object px = {0, 0, {1, 1, 2, 2}, false};
    nb_detection pd = {0, 0, .5f, {1, 1, 2, 3}};
    nb_voc_eval_cfg cpx = {false, true, 0.5f};
    nb_voc_map(&cpx, &pd, 1, &px, 1, 1, ap);
    NEAR(ap[0], 1.0);
    nb_voc_map(&call, &pd, 1, &px, 1, 1, ap);
    NEAR(ap[0], 0.0);
    /* no class with ground truth at all */
    assert_true(isnan(nb_voc_map(&call, d, 5, gt, 0, 3, ap)));
}

static const char *good_xml =
    "<annotation><folder>VOC2007</folder><filename>000001.jpg</filename>\n"
    "<size><width>353</width><height>500</height><depth>3</depth></size>\n"
    "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax>"
    "<ymax>371</ymax></bndbox></object>\n"
    "<object><name> person </name><difficult>1</difficult><bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax>"
    "<ymax>498</ymax></bndbox></object>\n"
    "<object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>\n"
    "</annotation>\n";

static void test_voc_reader(void **state) {
    (void)state;
    char dir[256], sub[300], path[400];
    assert_int_equal(make_test_dir(dir, sizeof dir, "voc"), 0);
    snprintf(sub, sizeof sub, "%s/VOC2007", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/Annotations", sub), mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/ImageSets", sub), mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/ImageSets/Main", sub), mkdir(path, 0755);
    write_test_file(sub, "Annotations/000001.xml", good_xml);
    write_test_file(sub, "Annotations/000002.xml", "<annotation><size><width>10</width><height>10</height>");
    write_test_file(sub, "Annotations/000003.xml",
                    "<annotation><size><width>10</width><height>10</height></size><object><name>dog</name>"
                    "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>x</xmax><ymax>4</ymax></bndbox></object></annotation>");
    write_test_file(sub, "Annotations/000004.xml",
                    "<annotation><size><width>10</width><height>10</height></size><object><name>dog</name>"
                    "<bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>4</ymax></bndbox></object></annotation>");
    write_test_file(sub, "ImageSets/Main/train.txt", "000001\n000002\n000003\n000004\n000005\n");
    write_test_file(sub, "ImageSets/Main/one.txt", "000001\n");

    nb_ctx *ctx = tu_ctx();
    nb_voc_set set;
    assert_int_equal(nb_voc_load(ctx, &set, dir, "VOC2007/train", NULL, 0), 0);
    assert_int_equal(set.n, 1);
    assert_int_equal(set.n_classes, 20);
    assert_int_equal(set.skipped, 4); /* truncated XML, non-numeric box, inverted box, missing file */
    assert_non_null(strstr(set.first_skip, "000002.xml"));
    assert_non_null(strstr(set.first_skip, "not well-formed XML"));
    assert_int_equal(set.ignored_objects, 1); /* the unicorn */
    nb_voc_image *im = &set.images[0];
    assert_string_equal(im->id, "000001");
    assert_non_null(strstr(im->image, "VOC2007/JPEGImages/000001.jpg"));
    assert_int_equal(im->width, 353);
    assert_int_equal(im->height, 500);
    assert_int_equal(im->n_objects, 2);
    assert_int_equal(im->objects[0].cls, 11); /* dog */
    assert_false(im->objects[0].difficult);
    NEAR(im->objects[0].box.x1, 48), NEAR(im->objects[0].box.y2, 371);
    assert_int_equal(im->objects[1].cls, 14); /* person, name trimmed */
    assert_true(im->objects[1].difficult);
    nb_voc_free(&set);

    /* each reason, file by file */
    char why[400];
    nb_voc_image one;
    char *cls[1] = {"dog"};
    snprintf(path, sizeof path, "%s/Annotations/000003.xml", sub);
    assert_int_equal(nb_voc_read_annotation(path, cls, 1, &one, NULL, why, sizeof why), 1);
    assert_non_null(strstr(why, "numeric"));
    snprintf(path, sizeof path, "%s/Annotations/000004.xml", sub);
    assert_int_equal(nb_voc_read_annotation(path, cls, 1, &one, NULL, why, sizeof why), 1);
    assert_non_null(strstr(why, "inverted"));

    /* a class subset and two splits joined; the same list twice gives the image twice */
    assert_int_equal(nb_voc_load(ctx, &set, dir, "VOC2007/one + VOC2007/one", "person, dog", 0), 0);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.n_classes, 2);
    assert_int_equal(set.images[1].objects[0].cls, 1);
    assert_int_equal(set.images[1].objects[1].cls, 0);
    assert_int_equal(set.ignored_objects, 2);
    nb_voc_free(&set);

    /* hard errors: the list is missing, no split, a class twice, nothing readable */
    assert_int_not_equal(nb_voc_load(ctx, &set, dir, "VOC2007/val", NULL, 0), 0);
    tu_expect_error(ctx, "ImageSets/Main/val.txt");
    assert_int_not_equal(nb_voc_load(ctx, &set, dir, "trainval", NULL, 0), 0);
    tu_expect_error(ctx, "VOC2007/trainval");
    assert_int_not_equal(nb_voc_load(ctx, &set, dir, "VOC2007/one", "dog,cat,dog", 0), 0);
    tu_expect_error(ctx, "twice");
    write_test_file(sub, "ImageSets/Main/bad.txt", "000002\n");
    assert_int_not_equal(nb_voc_load(ctx, &set, dir, "VOC2007/bad", NULL, 0), 0);
    tu_expect_error(ctx, "no readable image");
    nb_ctx_free(ctx);
    assert_int_equal(remove_test_dir(dir), 0);
}

typedef struct {
    nb_tensor *target;
    float ratio, beta;
} multibox_args;

static nb_tensor *multibox_fn(nb_tensor **in, void *user) {
    multibox_args *a = user;
    return nb_multibox_loss(in[0], a->target, a->ratio, a->beta);
}

static void test_multibox_loss(void **state) {
    (void)state;
    nb_ctx *ctx = tu_ctx();
    hid_t f = tu_open("tests/fixtures/multibox.h5");
    const char *cases[] = {"sparse", "dense", "ratio2", "empty"};
    for (int c = 0; c < 4; c++) {
        hid_t g = H5Gopen2(f, cases[c], H5P_DEFAULT);
        nb_tensor *pred = tu_load(ctx, g, "pred"), *target = tu_load(ctx, g, "target");
        multibox_args a = {target, (float)tu_attr_double(g, "neg_pos_ratio", 0), (float)tu_attr_double(g, "beta", 0)};
        int nd;
        int64_t sh[4];
        float *y = tu_read_f32(g, "y", &nd, sh), *gy = tu_read_f32(g, "gy", &nd, sh);
        float *gp = tu_read_f32(g, "grad_pred", &nd, sh);
        nb_set_requires_grad(pred, true);
        size_t mark = nb_scope_begin(ctx);
        nb_tensor *loss = multibox_fn(&pred, &a);
        char what[64];
        snprintf(what, sizeof what, "multibox loss (%s)", cases[c]);
        tu_assert_tensor_close(what, loss, y, 1, 1e-5);
        assert_int_equal(nb_backward(nb_scale(loss, gy[0]), NULL), 0);
        snprintf(what, sizeof what, "multibox gradient (%s)", cases[c]);
        tu_assert_tensor_close(what, pred->grad, gp, nb_numel(pred), 1e-5);
        nb_scope_end(ctx, mark);
        if (c == 0) {
            tu_gradcheck(ctx, multibox_fn, &pred, 1, 0, &a, 60, 1e-2, 1e-2, "multibox loss");
            /* a class target that is no class is named with its image and prior */
            float *t = tu_host(target);
            t[(60 + 1) * 5] = 7; /* image 1, prior 1 */
            nb_tensor *bt = nb_tensor_from_host(ctx, NB_F32, 3, target->shape, t);
            assert_null(nb_multibox_loss(pred, bt, 3.0f, 1.0f));
            tu_expect_error(ctx, "class target 7 of image 1, prior 1 is not an integer in [0, 5)");
            t[(60 + 1) * 5] = 0.5f;
            assert_int_equal(nb_tensor_copy_from_host(bt, t, sizeof(float) * (size_t)nb_numel(bt)), 0);
            assert_null(nb_multibox_loss(pred, bt, 3.0f, 1.0f));
            tu_expect_error(ctx, "class target 0.5 of image 1");
            nb_release(bt);
            free(t);
            assert_null(nb_multibox_loss(pred, pred, 3.0f, 1.0f));
            tu_expect_error(ctx, "must be [3, 60, 5]");
            nb_tensor *few = nb_tensor_new(ctx, NB_F32, 3, (int64_t[]){3, 5, 60});
            assert_null(nb_multibox_loss(few, target, 3.0f, 1.0f));
            tu_expect_error(ctx, "must be [N, 4 + C, P] with C >= 2");
            nb_release(few);
        }
        free(y), free(gy), free(gp);
        nb_release(pred), nb_release(target);
        H5Gclose(g);
    }
    H5Fclose(f);
    nb_ctx_free(ctx);
}

static nb_tensor *upsample_fn(nb_tensor **in, void *user) {
    const int *size = user;
    return nb_upsample_nearest(in[0], size[0], size[1]);
}

/* LRSSD's cascade upsampling: PyTorch's nearest rule (source floor(i * in / out)), written out by hand, and
 * its gradient by finite differences */
static void test_upsample_nearest(void **state) {
    (void)state;
    nb_ctx *ctx = tu_ctx();
    int sizes[2][4] = {{5, 5, 10, 10}, {3, 2, 7, 5}};
    for (int k = 0; k < 2; k++) {
        int H = sizes[k][0], W = sizes[k][1], oh = sizes[k][2], ow = sizes[k][3];
        nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){2, 3, H, W});
        tu_randn(x, 5 + k);
        nb_set_requires_grad(x, true);
        size_t mark = nb_scope_begin(ctx);
        nb_tensor *y = nb_upsample_nearest(x, oh, ow);
        assert_non_null(y);
        float *xv = tu_host(x), *yv = tu_host(y), *want = malloc(sizeof(float) * 6 * (size_t)(oh * ow));
        for (int c = 0; c < 6; c++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                    want[(c * oh + i) * ow + j] = xv[(c * H + i * H / oh) * W + j * W / ow];
        tu_assert_close("upsample_nearest", yv, want, 6 * oh * ow, 0.0);
        free(xv), free(yv), free(want);
        nb_scope_end(ctx, mark);
        tu_gradcheck(ctx, upsample_fn, &x, 1, 0, sizes[k] + 2, 20, 1e-2, 1e-3, "upsample_nearest");
        nb_release(x);
    }
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 3, (int64_t[]){1, 2, 3});
    assert_null(nb_upsample_nearest(x, 4, 4));
    tu_expect_error(ctx, "upsample_nearest");
    nb_release(x);
    nb_ctx_free(ctx);
}

/* Every detector: output [N, 4 + C, P] with P the default boxes of its maps; LRSSD shares one prediction
 * layer over the scales (its parameters do not grow with the number of maps), separable or dense */
static void test_detector_shapes(void **state) {
    (void)state;
    nb_ctx *ctx = tu_ctx();
    const char *archs[] = {"ssd_mobilenet_v2", "ssdlite_mobilenet_v2", "lrssd_mobilenet_v2",
                           "ssd_resnet18",     "ssdlite_resnet18",     "lrssd_resnet18", "lrssd_mobilenet_v2"};
    for (int a = 0; a < 7; a++) {
        nb_model_spec spec = {.arch = archs[a], .num_classes = 4, .in_channels = 3, .input_size = 96, .width = 0.25f,
                              .seed = 1};
        spec.det.dense_predictor = a == 6; /* the last: LRSSD's shared predictor one dense 3x3 convolution */
        spec.det.n_ratios = 1;
        spec.det.ratios[0] = 2;
        spec.det.first_scale = 0.1f, spec.det.min_scale = 0.2f, spec.det.max_scale = 0.9f;
        nb_model *m = nb_model_create(ctx, &spec);
        assert_non_null(m);
        assert_non_null(m->priors);
        /* 96 -> 6 (stride 16), 3, 2, 1: four maps of 4 boxes per location */
        assert_int_equal(m->priors->n_maps, 4);
        int P = nb_priors(m->priors, NULL, 0);
        assert_int_equal(P, 4 * (36 + 9 + 4 + 1));
        nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){2, 3, 96, 96});
        tu_randn(x, 3);
        size_t mark = nb_scope_begin(ctx);
        nb_tensor *y = m->forward(m, x, false);
        assert_non_null(y);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[0], 2);
        assert_int_equal(y->shape[1], 4 + 4);
        assert_int_equal(y->shape[2], P);
        nb_scope_end(ctx, mark);
        nb_release(x);
        if (a == 6) { /* one 3x3 predictor D -> (4 + C)A for every scale, D = 128 x 0.25 */
            nb_tensor *w = nb_params_find(&m->params, "head.shared.conv.weight");
            assert_non_null(w);
            assert_int_equal(w->shape[0], (4 + 4) * 4);
            assert_int_equal(w->shape[1], 32);
            assert_int_equal(w->shape[2], 3);
            assert_null(nb_params_find(&m->params, "head.shared.dw.weight"));
            assert_null(nb_params_find(&m->params, "head.shared.bn.0.weight"));
        }
        nb_model_free(m);
    }
    nb_model_spec bad = {.arch = "lrssd_mobilenet_v2", .num_classes = 1, .in_channels = 3, .input_size = 96, .width = 1};
    assert_null(nb_model_create(ctx, &bad));
    tu_expect_error(ctx, "counts the background too");
    nb_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iou_and_encoding), cmocka_unit_test(test_priors_ssd300), cmocka_unit_test(test_matching),
        cmocka_unit_test(test_nms),              cmocka_unit_test(test_voc_ap),        cmocka_unit_test(test_voc_reader),
        cmocka_unit_test(test_multibox_loss),
        cmocka_unit_test(test_detector_shapes),
        cmocka_unit_test(test_upsample_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
