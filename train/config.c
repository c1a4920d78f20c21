/* The configuration schema and parser. */
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

typedef enum { T_INT, T_FLOAT, T_STR, T_BOOL, T_ENUM, T_LIST } key_type;

typedef struct {
    const char *name; /* section.key */
    key_type type;
    const char *def;
    const char *choices; /* T_ENUM: "a|b|c" */
    const char *help;
} key_spec;

#define FMNIST "/usr/share/datasets/fashion-mnist/"
static const key_spec schema[] = {
    {"model.arch", T_STR, "resnet20", NULL,
     "architecture: smallcnn; CIFAR-style resnet20, resnet56 (any 6n+2); resnet18, resnet34, resnet50, resnet101, "
     "resnet152; alexnet; mobilenet_v2; shufflenet_v2_x0_5, _x1_0, _x1_5, _x2_0; muffnet_x0_5, muffnet_x1_0"},
    {"model.num_classes", T_INT, "10", NULL, "classifier outputs"},
    {"model.in_channels", T_INT, "1", NULL, "input image channels"},
    {"model.input_size", T_INT, "28", NULL, "input height = width"},
    {"model.width", T_FLOAT, "1.0", NULL, "channel multiplier"},
    {"model.init", T_STR, "", NULL, "start from the weights of this HDF5 checkpoint (strict by name)"},
    {"model.init_strict", T_BOOL, "true", NULL,
     "false: model.init fills the parameters whose names it has (a classifier's backbone for a detector) and leaves "
     "the rest as initialised"},
    {"model.zero_init_residual", T_BOOL, "false", NULL, "ResNets: each block's last BN scale starts at 0"},
    {"data.format", T_ENUM, "idx", "idx|hdf5|folder|cifar|voc",
     "idx: MNIST-style files (.gz or raw); hdf5: datasets images + labels; folder: data.root/{train,val}/<class>/ "
     "of JPEG and PNG files (torchvision's ImageFolder); cifar: CIFAR-10/100 binaries in data.root; voc: Pascal "
     "VOC detection data under data.root, data.train and data.val naming splits such as VOC2007/trainval+VOC2012/trainval"},
    {"data.classes", T_STR, "", NULL, "voc: the object classes, comma-separated (default: VOC's twenty)"},
    {"data.root", T_STR, "", NULL, "folder and cifar formats: the dataset's directory"},
    {"data.train", T_STR, FMNIST "train-images-idx3-ubyte.gz", NULL, "training images (idx) or file (hdf5)"},
    {"data.train_labels", T_STR, "", NULL, "idx labels; default: the images path with images-idx3 -> labels-idx1"},
    {"data.val", T_STR, FMNIST "t10k-images-idx3-ubyte.gz", NULL, "validation images (idx) or file (hdf5)"},
    {"data.val_labels", T_STR, "", NULL, "idx labels of the validation set; derived like train_labels"},
    {"data.limit", T_INT, "0", NULL, "use only the first N training samples (0: all)"},
    {"data.val_limit", T_INT, "0", NULL, "use only the first N validation samples (0: all)"},
    {"data.augment", T_ENUM, "none", "none|flip|crop|crop_flip|rrc|rrc_flip|ssd",
     "training augmentation: flip, padded random crop (in-memory data), random resized crop (image folders), ssd "
     "(detection: photometric distortion, expand, min-IoU random crop, flip)"},
    {"data.scale_min", T_FLOAT, "0.08", NULL, "random resized crop: smallest fraction of the image area"},
    {"data.resize", T_INT, "0", NULL, "image folders, evaluation: shorter side before the centre crop (0: 8/7 of model.input_size)"},
    {"data.pad", T_INT, "2", NULL, "zero padding of the random crop"},
    {"data.mean", T_LIST, "0.2860", NULL, "per-channel mean subtracted after scaling to [0,1]"},
    {"data.std", T_LIST, "0.3530", NULL, "per-channel standard deviation divided by"},
    {"data.workers", T_INT, "2", NULL, "loader threads preparing batches ahead of the model"},
    {"train.epochs", T_INT, "10", NULL, "passes over the training set"},
    {"train.steps", T_INT, "0", NULL, "stop after this many optimizer steps (0: no limit)"},
    {"train.batch", T_INT, "128", NULL, "training batch size"},
    {"train.eval_batch", T_INT, "500", NULL, "evaluation batch size"},
    {"train.seed", T_INT, "1", NULL, "seeds initialisation, sample order and augmentation"},
    {"train.shuffle", T_BOOL, "true", NULL, "reshuffle the training set every epoch"},
    {"train.out", T_STR, "", NULL, "run directory (default runs/<cfg name>)"},
    {"train.device", T_ENUM, "cpu", "cpu|cuda", "backend: cpu (oneDNN, OpenBLAS) or cuda (a build made with make CUDA=1)"},
    {"train.threads", T_INT, "0", NULL, "compute threads (0: all cores, shared out among the ranks on one machine)"},
    {"train.sync_bn", T_BOOL, "false", NULL, "data-parallel: batch norms use the statistics of the whole global batch"},
    {"train.bucket_mb", T_FLOAT, "4", NULL, "data-parallel: gradients are summed over the ranks in buckets of this size"},
    {"train.label_smoothing", T_FLOAT, "0", NULL, "cross-entropy label smoothing"},
    {"train.log_every", T_INT, "50", NULL, "steps between metric lines"},
    {"train.save_every", T_INT, "0", NULL, "steps between mid-epoch checkpoints (0: at epoch ends only)"},
    {"optim.type", T_ENUM, "sgd", "sgd|adam|adamw", "optimizer"},
    {"optim.lr", T_FLOAT, "0.1", NULL, "peak learning rate"},
    {"optim.momentum", T_FLOAT, "0.9", NULL, "SGD momentum"},
    {"optim.nesterov", T_BOOL, "false", NULL, "Nesterov momentum"},
    {"optim.wd", T_FLOAT, "5e-4", NULL, "weight decay"},
    {"optim.wd_exempt", T_BOOL, "false", NULL, "no weight decay on batch-norm parameters and biases"},
    {"optim.beta1", T_FLOAT, "0.9", NULL, "Adam beta1"},
    {"optim.beta2", T_FLOAT, "0.999", NULL, "Adam beta2"},
    {"optim.eps", T_FLOAT, "1e-8", NULL, "Adam epsilon"},
    {"optim.schedule", T_ENUM, "cosine", "constant|step|multistep|cosine|poly", "learning-rate schedule over epochs"},
    {"optim.schedule_unit", T_ENUM, "step", "step|epoch", "update the rate every step (fractional epochs) or epoch"},
    {"optim.warmup_epochs", T_FLOAT, "0", NULL, "linear warm-up length"},
    {"optim.warmup_start", T_FLOAT, "0.1", NULL, "warm-up starts at this fraction of lr"},
    {"optim.step_size", T_FLOAT, "30", NULL, "step schedule: epochs between decays"},
    {"optim.gamma", T_FLOAT, "0.1", NULL, "step/multistep decay factor"},
    {"optim.milestones", T_LIST, "", NULL, "multistep: epochs at which to decay"},
    {"optim.min_lr", T_FLOAT, "0", NULL, "cosine: final learning rate"},
    {"optim.power", T_FLOAT, "1", NULL, "poly: exponent"},
    {"optim.clip_norm", T_FLOAT, "0", NULL, "clip the global gradient norm to this (0: off)"},
    {"compress.methods", T_STR, "none", NULL, "compression methods, applied in this order: admm, prune, kd, twn, bwn (or none)"},
    {"compress.layers", T_STR, "default", NULL,
     "weights to quantize: glob patterns of parameter names, or default (every conv and linear weight but the first "
     "convolution and the last linear layer)"},
    {"compress.exclude", T_STR, "", NULL, "glob patterns of weights to leave alone"},
    {"compress.codebook", T_STR, "ternary", NULL, "ADMM codebook: binary, ternary, pm2 {0,±1,±2}, pm4 {0,±1,±2,±4}, pow2_N"},
    {"compress.codebook_layers", T_STR, "", NULL, "per-layer codebooks: pattern=codebook, ..."},
    {"compress.scale", T_ENUM, "layer", "layer|channel", "ADMM: one scale alpha per layer or per output channel"},
    {"compress.rho", T_FLOAT, "5e-3", NULL, "ADMM penalty rho at the start"},
    {"compress.rho_growth", T_FLOAT, "1.1", NULL, "rho is multiplied by this at every G/U update"},
    {"compress.admm_interval", T_INT, "0", NULL, "steps between ADMM's G and U updates (0: one epoch)"},
    {"compress.admm_forward", T_ENUM, "float", "float|quantized",
     "ADMM's W-step: loss gradient at the float W (Leng et al.) or at Proj(W), straight through to W"},
    {"compress.admm_final_epochs", T_FLOAT, "0", NULL,
     "ADMM: the last N epochs train the quantized network straight through, without the penalty"},
    {"compress.extragradient", T_BOOL, "false", NULL, "ADMM's W-step by extragradient (two gradients per step)"},
    {"compress.sparsity", T_FLOAT, "0.9", NULL, "pruning: final sparsity of every pruned layer"},
    {"compress.sparsity_init", T_FLOAT, "0", NULL, "pruning: sparsity where the cubic schedule starts"},
    {"compress.sparsity_layers", T_STR, "", NULL, "per-layer final sparsity: pattern=value, ..."},
    {"compress.prune_layers", T_STR, "default", NULL, "weights to prune (patterns as compress.layers)"},
    {"compress.prune_start", T_FLOAT, "0", NULL, "pruning starts at this epoch"},
    {"compress.prune_epochs", T_FLOAT, "0", NULL, "epochs the cubic schedule spans (0: one-shot pruning at the start)"},
    {"compress.prune_every", T_INT, "0", NULL, "steps between mask updates (0: a quarter epoch)"},
    {"compress.granularity", T_ENUM, "weight", "weight|channel", "prune single weights or whole output channels"},
    {"compress.importance", T_ENUM, "magnitude", "magnitude|taylor", "rank by |w| or by accumulated |g*w|"},
    {"compress.teacher", T_STR, "", NULL, "distillation: the teacher's checkpoint"},
    {"compress.teacher_cfg", T_STR, "", NULL, "the teacher's configuration (default: the one stored in its checkpoint)"},
    {"compress.kd_alpha", T_FLOAT, "0.5", NULL, "distillation: weight of the cross-entropy (1 - alpha on T^2 KL)"},
    {"compress.kd_temperature", T_FLOAT, "4", NULL, "distillation temperature T"},
    {"detect.ratios", T_LIST, "2,3", NULL, "detectors: default boxes' aspect ratios a > 1 (each gives a and 1/a)"},
    {"detect.first_scale", T_FLOAT, "0.1", NULL, "detectors: scale of the first (finest) map's default boxes"},
    {"detect.min_scale", T_FLOAT, "0.2", NULL, "detectors: scale of the second map's boxes"},
    {"detect.max_scale", T_FLOAT, "0.88", NULL, "detectors: scale of the last map's boxes"},
    {"detect.head_channels", T_INT, "0", NULL, "LRSSD: width of the shared head (0: 128 x model.width)"},
    {"detect.predictor", T_ENUM, "separable", "separable|dense",
     "LRSSD: the shared prediction layer, 3x3 depthwise + BN + 1x1 or one dense 3x3 convolution"},
    {"detect.match_iou", T_FLOAT, "0.5", NULL, "training: a default box takes a ground truth it overlaps by more"},
    {"detect.neg_pos", T_FLOAT, "3", NULL, "training: hard negatives per positive"},
    {"detect.expand_max", T_FLOAT, "4", NULL, "ssd augmentation: largest zoom-out (canvas side / image side)"},
    {"detect.nms_iou", T_FLOAT, "0.45", NULL, "evaluation: per-class non-maximum suppression threshold"},
    {"detect.score_min", T_FLOAT, "0.01", NULL, "evaluation: detections scoring less are dropped"},
    {"detect.top_k", T_INT, "200", NULL, "evaluation: detections kept per image"},
    {"quantize.method", T_ENUM, "round", "round|optimal|none",
     "bin/quantize: min-max round to nearest, the optimal projection, or none (folding and equalization only)"},
    {"quantize.scale", T_ENUM, "layer", "layer|channel", "bin/quantize: one scale per tensor or per output channel"},
    {"quantize.fold_bn", T_BOOL, "false", NULL, "bin/quantize: fold batch norms into the convolutions first, as deployment does"},
    {"quantize.dfq", T_BOOL, "false", NULL, "bin/quantize: data-free quantization (BN folding, cross-layer equalization, bias correction)"},
    {"quantize.bias_correction", T_BOOL, "true", NULL, "bin/quantize with dfq: correct the biases from the BN statistics"},
};
#define N_KEYS (int)(sizeof schema / sizeof schema[0])

static int key_index(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(schema[i].name, name)) return i;
    return -1;
}

void nb_cfg_init(nb_cfg *c) {
    memset(c, 0, sizeof *c);
    c->values = nb_xcalloc(N_KEYS, sizeof *c->values);
    for (int i = 0; i < N_KEYS; i++) snprintf(c->values[i].value, NB_CFG_VALUE_MAX, "%s", schema[i].def);
}

void nb_cfg_free(nb_cfg *c) {
    free(c->values);
    c->values = NULL;
}

static int fail(nb_cfg *c, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(nb_cfg *c, const char *file, int line, const char *fmt, ...) {
    int off = line > 0 ? snprintf(c->err, sizeof c->err, "%s:%d: ", file, line) : snprintf(c->err, sizeof c->err, "%s: ", file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + off, sizeof c->err - (size_t)off, fmt, ap);
    va_end(ap);
    return -1;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* The known key (within `section`, or a section name when key is NULL) closest to what was written. */
static const char *nearest(const char *section, const char *key, char *buf, size_t n) {
    int best = 1 << 30;
    buf[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const char *dot = strchr(schema[i].name, '.');
        size_t sl = (size_t)(dot - schema[i].name);
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)sl, schema[i].name);
        int d;
        if (!key) {
            d = edit_distance(section, sec);
            if (d < best) best = d, snprintf(buf, n, "%s", sec);
        } else {
            d = edit_distance(key, dot + 1) + (strcmp(section, sec) ? 2 : 0);
            if (d < best) best = d, snprintf(buf, n, "%s", schema[i].name);
        }
    }
    return buf;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static int check_value(nb_cfg *c, int k, const char *v, const char *file, int line) {
    const key_spec *s = &schema[k];
    char *end;
    errno = 0;
    switch (s->type) {
    case T_INT: {
        long long x = strtoll(v, &end, 10);
        (void)x;
        if (!*v || *end || errno) return fail(c, file, line, "%s = '%s': expected an integer", s->name, v);
        break;
    }
    case T_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return fail(c, file, line, "%s = '%s': expected a number", s->name, v);
        break;
    }
    case T_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false") && strcmp(v, "1") && strcmp(v, "0") && strcmp(v, "yes") &&
            strcmp(v, "no"))
            return fail(c, file, line, "%s = '%s': expected true or false", s->name, v);
        break;
    case T_ENUM: {
        const char *p = s->choices;
        size_t vl = strlen(v);
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == vl && !strncmp(p, v, l)) return 0;
            p = bar ? bar + 1 : NULL;
        }
        return fail(c, file, line, "%s = '%s': expected one of %s", s->name, v, s->choices);
    }
    case T_LIST: {
        const char *p = v;
        while (*p) {
            strtod(p, &end);
            if (end == p) return fail(c, file, line, "%s = '%s': expected comma-separated numbers", s->name, v);
            p = end;
            while (isspace((unsigned char)*p)) p++;
            if (*p == ',') p++;
            else if (*p) return fail(c, file, line, "%s = '%s': expected comma-separated numbers", s->name, v);
            while (isspace((unsigned char)*p)) p++;
        }
        break;
    }
    case T_STR: break;
    }
    return 0;
}

static int set(nb_cfg *c, const char *section, const char *key, const char *value, const char *file, int line) {
    char full[192];
    snprintf(full, sizeof full, "%s.%s", section, key);
    int k = key_index(full);
    if (k < 0) {
        char near[128];
        nearest(section, key, near, sizeof near);
        return fail(c, file, line, "unknown key '%s' in [%s]; did you mean '%s'?", key, section, near);
    }
    if (strlen(value) >= NB_CFG_VALUE_MAX) return fail(c, file, line, "value of %s is too long", full);
    if (check_value(c, k, value, file, line)) return -1;
    nb_cfg_value *v = &c->values[k];
    snprintf(v->value, sizeof v->value, "%s", value);
    snprintf(v->file, sizeof v->file, "%s", file);
    v->line = line;
    return 0;
}

static bool known_section(const char *s) {
    size_t l = strlen(s);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(schema[i].name, s, l) && schema[i].name[l] == '.') return true;
    return false;
}

static int parse(nb_cfg *c, const char *text, const char *file, int depth);

static int load_file(nb_cfg *c, const char *path, int depth) {
    if (depth > 8) return fail(c, path, 0, "includes nest more than 8 deep (an include cycle?)");
    FILE *f = fopen(path, "rb");
    if (!f) return fail(c, path, 0, "cannot open config file: %s", strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = nb_xmalloc((size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    fclose(f);
    text[got] = 0;
    int rc = parse(c, text, path, depth);
    free(text);
    return rc;
}

static int parse(nb_cfg *c, const char *text, const char *file, int depth) {
    char section[64] = "";
    int line_no = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[2048];
        line_no++;
        if (len >= sizeof line) return fail(c, file, line_no, "line too long");
        memcpy(line, p, len);
        line[len] = 0;
        p = eol ? eol + 1 : p + len;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1]) return fail(c, file, line_no, "malformed section header '%s'", s);
            *close = 0;
            char *name = trim(s + 1);
            if (!known_section(name)) {
                char near[64];
                nearest(name, NULL, near, sizeof near);
                return fail(c, file, line_no, "unknown section [%s]; did you mean [%s]?", name, near);
            }
            snprintf(section, sizeof section, "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) return fail(c, file, line_no, "expected 'key = value', got '%s'", s);
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        if (!strcmp(key, "include")) {
            char inc[NB_CFG_PATH_MAX * 2];
            if (value[0] == '/') {
                snprintf(inc, sizeof inc, "%s", value);
            } else {
                /* relative to the including file */
                const char *slash = strrchr(file, '/');
                if (slash) snprintf(inc, sizeof inc, "%.*s/%s", (int)(slash - file), file, value);
                else snprintf(inc, sizeof inc, "%s", value);
            }
            if (load_file(c, inc, depth + 1)) return -1;
            continue;
        }
        if (!section[0]) return fail(c, file, line_no, "key '%s' outside any [section]", key);
        if (set(c, section, key, value, file, line_no)) return -1;
    }
    return 0;
}

int nb_cfg_load(nb_cfg *c, const char *path) {
    snprintf(c->path, sizeof c->path, "%s", path);
    return load_file(c, path, 0);
}

int nb_cfg_load_string(nb_cfg *c, const char *text, const char *name) { return parse(c, text, name, 0); }

int nb_cfg_override(nb_cfg *c, const char *assignment) {
    const char *eq = strchr(assignment, '='), *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        return fail(c, "command line", 0, "override '%s' is not of the form section.key=value", assignment);
    char section[64], key[128];
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    if (!known_section(section)) {
        char near[64];
        nearest(section, NULL, near, sizeof near);
        return fail(c, "command line", 0, "unknown section '%s' in '%s'; did you mean '%s'?", section, assignment, near);
    }
    char value[NB_CFG_VALUE_MAX];
    snprintf(value, sizeof value, "%s", eq + 1);
    return set(c, section, trim(key), trim(value), "command line", 0);
}

static const nb_cfg_value *get(const nb_cfg *c, const char *key) {
    int k = key_index(key);
    if (k < 0) nb_panic(__FILE__, __LINE__, "configuration key not in the schema");
    return &c->values[k];
}

const char *nb_cfg_str(const nb_cfg *c, const char *key) { return get(c, key)->value; }
int64_t nb_cfg_int(const nb_cfg *c, const char *key) { return strtoll(get(c, key)->value, NULL, 10); }
double nb_cfg_float(const nb_cfg *c, const char *key) { return strtod(get(c, key)->value, NULL); }

bool nb_cfg_bool(const nb_cfg *c, const char *key) {
    const char *v = get(c, key)->value;
    return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
}

int nb_cfg_floats(const nb_cfg *c, const char *key, double *out, int max) {
    const char *p = get(c, key)->value;
    int n = 0;
    char *end;
    while (*p && n < max) {
        out[n++] = strtod(p, &end);
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
    return n;
}

bool nb_cfg_is_set(const nb_cfg *c, const char *key) { return get(c, key)->file[0] != 0; }

void nb_cfg_write(const nb_cfg *c, FILE *f) {
    fprintf(f, "# resolved configuration of %s: every key, with where its value came from\n", c->path[0] ? c->path : "(string)");
    char section[64] = "";
    for (int i = 0; i < N_KEYS; i++) {
        const char *dot = strchr(schema[i].name, '.');
        if (strncmp(section, schema[i].name, (size_t)(dot - schema[i].name)) || section[dot - schema[i].name]) {
            snprintf(section, sizeof section, "%.*s", (int)(dot - schema[i].name), schema[i].name);
            fprintf(f, "\n[%s]\n", section);
        }
        const nb_cfg_value *v = &c->values[i];
        if (v->line > 0) fprintf(f, "%s = %s  # %s:%d\n", dot + 1, v->value, v->file, v->line);
        else if (v->file[0]) fprintf(f, "%s = %s  # %s\n", dot + 1, v->value, v->file);
        else fprintf(f, "%s = %s  # default\n", dot + 1, v->value);
    }
}

char *nb_cfg_to_string(const nb_cfg *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    nb_cfg_write(c, f);
    fclose(f);
    return buf;
}

void nb_cfg_print_schema(FILE *f) {
    for (int i = 0; i < N_KEYS; i++)
        fprintf(f, "  %-24s %-10s %s%s%s\n", schema[i].name, schema[i].def[0] ? schema[i].def : "\"\"", schema[i].help,
                schema[i].choices ? "; one of " : "", schema[i].choices ? schema[i].choices : "");
}
