/* The .cfg parser: includes, comments, later-wins, overrides, and errors that name file:line and the
 * nearest valid key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "tests/support/run.h"
#include "core/backend.h"
#include "optim/optim.h"
#include "setup/config.h"
#include "setup/settings.h"

static char dir[256];

static int setup(void **st) {
    (void)st;
    if (make_test_dir(dir, sizeof dir, "config")) return -1;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/sub", dir); /* for the include relative to a cfg's own folder */
    return mkdir(sub, 0755);
}

static int teardown(void **st) {
    (void)st;
    return remove_test_dir(dir);
}

static int load(nb_cfg *c, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    nb_cfg_init(c);
    return nb_cfg_load(c, p);
}

static void test_values_includes_overrides(void **st) {
    (void)st;
    write_test_file(dir, "sub/base.cfg", "# shared\n[optim]\nlr = 0.5\nmomentum = 0.8\n[train]\nbatch = 32\n");
    write_test_file(dir, "exp.cfg", "include = sub/base.cfg   # relative to this file\n\n[optim]\nlr = 0.05  # later wins\n"
                          "milestones = 10, 20,30\n[model]\narch = smallcnn\n[train]\nshuffle = false\n");
    nb_cfg c;
    assert_int_equal(load(&c, "exp.cfg"), 0);
    assert_true(nb_cfg_float(&c, "optim.lr") == 0.05);
    assert_true(nb_cfg_float(&c, "optim.momentum") == 0.8);
    assert_int_equal(nb_cfg_int(&c, "train.batch"), 32);
    assert_string_equal(nb_cfg_str(&c, "model.arch"), "smallcnn");
    assert_false(nb_cfg_bool(&c, "train.shuffle"));
    double ms[4];
    assert_int_equal(nb_cfg_floats(&c, "optim.milestones", ms, 4), 3);
    assert_true(ms[0] == 10 && ms[1] == 20 && ms[2] == 30);
    assert_int_equal(nb_cfg_int(&c, "train.epochs"), 10); /* default */
    assert_false(nb_cfg_is_set(&c, "train.epochs"));
    assert_int_equal(nb_cfg_override(&c, "train.epochs=3"), 0);
    assert_int_equal(nb_cfg_int(&c, "train.epochs"), 3);
    /* the resolved text reads back to the same values */
    char *text = nb_cfg_to_string(&c);
    assert_non_null(strstr(text, "sub/base.cfg:4"));
    nb_cfg d;
    nb_cfg_init(&d);
    assert_int_equal(nb_cfg_load_string(&d, text, "resolved"), 0);
    assert_true(nb_cfg_float(&d, "optim.lr") == 0.05);
    assert_int_equal(nb_cfg_int(&d, "train.epochs"), 3);
    assert_string_equal(nb_cfg_str(&d, "optim.milestones"), "10, 20,30");
    free(text);
    nb_cfg_free(&c);
    nb_cfg_free(&d);
}

static void expect_fail(const char *text, const char *msg) {
    write_test_file(dir, "bad.cfg", text);
    nb_cfg c;
    assert_int_equal(load(&c, "bad.cfg"), -1);
    if (!strstr(c.err, msg)) fail_msg("expected \"%s\" in: %s", msg, c.err);
    nb_cfg_free(&c);
}

static void test_errors(void **st) {
    (void)st;
    expect_fail("[optim]\nlrr = 0.1\n", "bad.cfg:2: unknown key 'lrr' in [optim]; did you mean 'optim.lr'?");
    expect_fail("[optim]\nmomentun = 0.9\n", "did you mean 'optim.momentum'?");
    expect_fail("\n[trian]\nepochs = 2\n", "bad.cfg:2: unknown section [trian]; did you mean [train]?");
    expect_fail("[train]\nepochs = ten\n", "bad.cfg:2: train.epochs = 'ten': expected an integer");
    expect_fail("[optim]\nlr = 0.1x\n", "optim.lr = '0.1x': expected a number");
    expect_fail("[optim]\ntype = rmsprop\n", "optim.type = 'rmsprop': expected one of sgd|adam|adamw");
    expect_fail("[train]\nshuffle = maybe\n", "expected true or false");
    expect_fail("[optim]\nmilestones = 10;20\n", "expected comma-separated numbers");
    expect_fail("epochs = 3\n", "bad.cfg:1: key 'epochs' outside any [section]");
    expect_fail("[train]\nepochs\n", "bad.cfg:2: expected 'key = value'");
    expect_fail("include = nowhere.cfg\n", "nowhere.cfg: cannot open config file");
    write_test_file(dir, "loop.cfg", "include = loop.cfg\n");
    nb_cfg c;
    assert_int_equal(load(&c, "loop.cfg"), -1);
    assert_non_null(strstr(c.err, "include cycle"));
    assert_int_equal(nb_cfg_override(&c, "optim.lrate=1"), -1);
    assert_non_null(strstr(c.err, "command line: unknown key 'lrate' in [optim]; did you mean 'optim.lr'?"));
    assert_int_equal(nb_cfg_override(&c, "epochs=1"), -1);
    assert_non_null(strstr(c.err, "not of the form section.key=value"));
    /* a value the resolved cfg could not carry into a checkpoint as itself (fuzz/regress/cfg) */
    assert_int_equal(nb_cfg_override(&c, "compress.methods=adm#"), -1);
    assert_non_null(strstr(c.err, "value of compress.methods contains '#' (it starts a comment)"));
    assert_int_equal(nb_cfg_override(&c, "train.out=a\nb"), -1);
    assert_non_null(strstr(c.err, "a control character"));
    nb_cfg_free(&c);
    /* an include that is a directory (its size reads as anything) */
    write_test_file(dir, "dir.cfg", "include = /\n");
    assert_int_equal(load(&c, "dir.cfg"), -1);
    assert_non_null(strstr(c.err, "/: is not a regular file"));
    nb_cfg_free(&c);
    nb_cfg_init(&c);
    assert_int_equal(nb_cfg_load(&c, "/nonexistent/x.cfg"), -1);
    assert_non_null(strstr(c.err, "/nonexistent/x.cfg: cannot open config file"));
    nb_cfg_free(&c);
}

/* Every committed cfg resolves: its includes exist, every key is in the schema and every value parses. A key
 * renamed in the schema would otherwise break an experiment only when someone next runs it. */
static void test_committed_cfgs_load(void **st) {
    (void)st;
    const char *folders[] = {"experiments", "configs"};
    for (int f = 0; f < 2; f++) {
        DIR *d = opendir(folders[f]);
        assert_non_null(d); /* the suite runs from the repository root */
        int loaded = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 4, ".cfg")) continue;
            char path[600];
            snprintf(path, sizeof path, "%s/%s", folders[f], e->d_name);
            nb_cfg c;
            nb_cfg_init(&c);
            if (nb_cfg_load(&c, path) != 0) fail_msg("%s does not load: %s", path, c.err);
            nb_cfg_free(&c);
            loaded++;
        }
        closedir(d);
        assert_true(loaded >= 5);
    }
}

/* The typed settings: each type converted as the text reads, and every choice of every ENUM key read as the
 * enum constant of its position (the enums of setup/settings.h, and nb_device, nb_optim_kind, nb_sched_kind). */
static void test_settings_typed(void **st) {
    (void)st;
    nb_cfg c;
    nb_cfg_init(&c);
    nb_settings *s = malloc(sizeof *s);
    nb_settings_read(&c, s);
    assert_string_equal(s->model.arch, "resnet20");
    assert_int_equal(s->data.format.id, NB_DATA_IDX);
    assert_int_equal(s->train.batch, 128);
    assert_true(s->data.mean.n == 1 && s->data.mean.v[0] == 0.2860);
    assert_true(s->model.init_strict && !s->model.zero_init_residual);
    const char *set[] = {"model.arch=resnet8", "train.batch=7", "optim.lr=0.25", "model.zero_init_residual=yes",
                         "data.mean=0.1, 0.2,0.3", "optim.milestones="};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++) assert_int_equal(nb_cfg_override(&c, set[i]), 0);
    nb_settings_read(&c, s);
    assert_string_equal(s->model.arch, "resnet8");
    assert_int_equal(s->train.batch, 7);
    assert_true(s->optim.lr == 0.25 && s->model.zero_init_residual);
    assert_true(s->data.mean.n == 3 && s->data.mean.v[0] == 0.1 && s->data.mean.v[2] == 0.3);
    assert_int_equal(s->optim.milestones.n, 0);
    struct {
        const char *key, *value;
        const int *field, want;
    } choices[] = {
        {"data.format", "hdf5", &s->data.format.id, NB_DATA_HDF5},
        {"data.format", "folder", &s->data.format.id, NB_DATA_FOLDER},
        {"data.format", "cifar", &s->data.format.id, NB_DATA_CIFAR},
        {"data.format", "voc", &s->data.format.id, NB_DATA_VOC},
        {"data.augment", "none", &s->data.augment.id, NB_AUGMENT_NONE},
        {"data.augment", "flip", &s->data.augment.id, NB_AUGMENT_FLIP},
        {"data.augment", "crop", &s->data.augment.id, NB_AUGMENT_CROP},
        {"data.augment", "crop_flip", &s->data.augment.id, NB_AUGMENT_CROP_FLIP},
        {"data.augment", "rrc", &s->data.augment.id, NB_AUGMENT_RRC},
        {"data.augment", "rrc_flip", &s->data.augment.id, NB_AUGMENT_RRC_FLIP},
        {"data.augment", "ssd", &s->data.augment.id, NB_AUGMENT_SSD},
        {"train.device", "cpu", &s->train.device.id, NB_DEVICE_CPU},
        {"train.device", "cuda", &s->train.device.id, NB_DEVICE_CUDA},
        {"optim.type", "sgd", &s->optim.type.id, NB_OPTIM_SGD},
        {"optim.type", "adam", &s->optim.type.id, NB_OPTIM_ADAM},
        {"optim.type", "adamw", &s->optim.type.id, NB_OPTIM_ADAMW},
        {"optim.schedule", "constant", &s->optim.schedule.id, NB_SCHED_CONSTANT},
        {"optim.schedule", "step", &s->optim.schedule.id, NB_SCHED_STEP},
        {"optim.schedule", "multistep", &s->optim.schedule.id, NB_SCHED_MULTISTEP},
        {"optim.schedule", "cosine", &s->optim.schedule.id, NB_SCHED_COSINE},
        {"optim.schedule", "poly", &s->optim.schedule.id, NB_SCHED_POLY},
        {"optim.schedule_unit", "step", &s->optim.schedule_unit.id, NB_PER_STEP},
        {"optim.schedule_unit", "epoch", &s->optim.schedule_unit.id, NB_PER_EPOCH},
        {"compress.scale", "layer", &s->compress.scale.id, NB_SCALE_LAYER},
        {"compress.scale", "channel", &s->compress.scale.id, NB_SCALE_CHANNEL},
        {"quantize.scale", "channel", &s->quantize.scale.id, NB_SCALE_CHANNEL},
        {"compress.admm_forward", "float", &s->compress.admm_forward.id, NB_ADMM_FLOAT},
        {"compress.admm_forward", "quantized", &s->compress.admm_forward.id, NB_ADMM_QUANTIZED},
        {"compress.granularity", "weight", &s->compress.granularity.id, NB_PRUNE_WEIGHT},
        {"compress.granularity", "channel", &s->compress.granularity.id, NB_PRUNE_CHANNEL},
        {"compress.importance", "magnitude", &s->compress.importance.id, NB_IMPORTANCE_MAGNITUDE},
        {"compress.importance", "taylor", &s->compress.importance.id, NB_IMPORTANCE_TAYLOR},
        {"detect.predictor", "separable", &s->detect.predictor.id, NB_PREDICTOR_SEPARABLE},
        {"detect.predictor", "dense", &s->detect.predictor.id, NB_PREDICTOR_DENSE},
        {"quantize.method", "round", &s->quantize.method.id, NB_QUANTIZE_ROUND},
        {"quantize.method", "optimal", &s->quantize.method.id, NB_QUANTIZE_OPTIMAL},
        {"quantize.method", "none", &s->quantize.method.id, NB_QUANTIZE_NONE},
    };
    for (size_t i = 0; i < sizeof choices / sizeof *choices; i++) {
        char kv[96];
        snprintf(kv, sizeof kv, "%s=%s", choices[i].key, choices[i].value);
        assert_int_equal(nb_cfg_override(&c, kv), 0);
        nb_settings_read(&c, s);
        if (*choices[i].field != choices[i].want)
            fail_msg("%s reads as %d, the enum says %d", kv, *choices[i].field, choices[i].want);
    }
    assert_string_equal(s->quantize.method.name, "none");
    free(s);
    nb_cfg_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_includes_overrides),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_committed_cfgs_load),
        cmocka_unit_test(test_settings_typed),
    };
    return cmocka_run_group_tests_name("configuration files", tests, setup, teardown);
}
