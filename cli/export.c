/* bin/export CKPT [CFG] -o MODEL.onnx [--opset N] [--fold-bn] [--float] [--keep-channels] [--softmax] [--mnn]
 * [section.key=value ...]: the checkpoint's model as ONNX for ONNX Runtime, MNN, TensorRT and the like. Layers that compression
 * quantized are stored as their integer codes (int8; int4 from --opset 21) followed by DequantizeLinear with
 * their scales; channels that channel pruning zeroed are removed. The architecture comes from the checkpoint's
 * own configuration unless CFG is given. A full-integer checkpoint (quantizers under quant/: qat, bin/quantize
 * with quantize.activations) becomes QuantizeLinear/DequantizeLinear around every quantized op, int8 weights
 * and int32 biases, batch norms folded: ONNX Runtime runs it with integer kernels (--float: the float
 * network alone). --mnn writes the forms MNN's converter reads correctly and, for a full-integer checkpoint,
 * MNN's compression-parameter file beside the model (MODEL.mnn.json: its int8 layers; deploy/mnn_params.h).
 *
 * bin/export --check MODEL.onnx: read an ONNX file back and describe it (inputs, outputs, node counts, size,
 * how each weight is stored).
 *
 * Encrypted models (deploy/model_crypt.h: XChaCha20-Poly1305, authenticated): --encrypt KEYFILE writes the
 * export encrypted (the plaintext stays in memory); bin/export --new-key KEYFILE makes a key (mode 0600,
 * never over an existing file); bin/export --decrypt KEYFILE IN -o OUT restores the model (OUT "-": standard
 * output, for a pipe into an engine). A wrong key or a changed file is refused and nothing is written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/select.h"
#include "compress/qsim.h"
#include "core/check.h"
#include "deploy/export.h"
#include "deploy/model_crypt.h"
#include "deploy/onnx_inspect.h"
#include "setup/assemble.h"
#include "setup/checkpoint.h"

static int usage(void) {
    fprintf(stderr, "usage: bin/export CKPT [CFG] -o MODEL.onnx [--opset N] [--fold-bn] [--float] [--keep-channels] "
                    "[--softmax] [--mnn] [--encrypt KEYFILE] [section.key=value ...]\n"
                    "       bin/export --check MODEL.onnx\n"
                    "       bin/export --new-key KEYFILE\n"
                    "       bin/export --decrypt KEYFILE MODEL.enc -o MODEL.onnx   (-o -: to standard output)\n");
    return 2;
}

static int fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "nibble: error: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* a new random key in a file only its owner reads; an existing file is never replaced (it may be the key of
 * models already deployed) */
static int new_key(const char *path) {
    unsigned char key[NB_MODEL_KEY_BYTES];
    char hex[2 * NB_MODEL_KEY_BYTES + 2];
    if (sodium_init() < 0) return fail("%s: libsodium could not be initialised%s", path, "");
    crypto_secretstream_xchacha20poly1305_keygen(key);
    sodium_bin2hex(hex, sizeof hex - 1, key, sizeof key);
    strcat(hex, "\n");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return fail("%s: cannot create the key file: %s (an existing key file is never overwritten)", path,
                            strerror(errno));
    size_t n = strlen(hex);
    int ok = write(fd, hex, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
    if (!ok) {
        unlink(path);
        return fail("%s: writing the key failed: %s", path, strerror(errno));
    }
    printf("wrote a new key to %s (keep it secret: whoever has it can decrypt the models encrypted with it)\n", path);
    return 0;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

static int decrypt(const char *key_path, const char *in, const char *out) {
    unsigned char key[NB_MODEL_KEY_BYTES];
    if (nb_model_key_read(key_path, key))
        return fail("%s: not a key file (64 hex digits, as bin/export --new-key writes)%s", key_path, "");
    size_t n;
    unsigned char *enc = read_all(in, &n), *plain;
    if (!enc) return fail("%s: cannot read: %s", in, strerror(errno));
    size_t len;
    int c = nb_model_decrypt(key, enc, n, &plain, &len);
    sodium_memzero(key, sizeof key);
    free(enc);
    if (c != NB_CRYPT_OK) return fail("%s: %s; nothing was written", in, nb_crypt_error(c));
    int rc = 0;
    if (!strcmp(out, "-")) {
        rc = fwrite(plain, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : fail("%s: %s", "standard output",
                                                                                    strerror(errno));
    } else {
        nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
        rc = nb_export_write_file(ctx, out, plain, len) ? 1 : 0;
        nb_ctx_free(ctx);
        if (!rc) fprintf(stderr, "decrypted %s: %zu bytes to %s\n", in, len, out);
    }
    nb_model_plaintext_free(plain, len);
    return rc;
}

static void list(char *buf, size_t n, const nb_setting_list *l, int channels) {
    const double *v = l->v;
    int k = l->n < 16 ? l->n : 16;
    buf[0] = 0;
    for (int c = 0; c < channels; c++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%g", c ? "," : "", v[k == 1 ? 0 : c < k ? c : k - 1]);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--check")) {
        nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
        nb_onnx_summary s;
        nb_onnx_inspect(ctx, argv[2], stdout, &s);
        nb_ctx_free(ctx);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--new-key")) return new_key(argv[2]);
    if (argc == 6 && !strcmp(argv[1], "--decrypt") && !strcmp(argv[4], "-o")) return decrypt(argv[2], argv[3], argv[5]);
    if (argc > 1 && !strcmp(argv[1], "--decrypt")) return usage();
    const char *ckpt = NULL, *cfg_path = NULL, *out = NULL, *key_path = NULL;
    nb_export_opts o = {.opset = 17};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--opset") && i + 1 < argc) {
            char *end;
            o.opset = (int)strtol(argv[++i], &end, 10);
            if (*end) return usage();
        } else if (!strcmp(a, "--fold-bn")) {
            o.fold_bn = true;
        } else if (!strcmp(a, "--float")) {
            o.float_weights = true;
        } else if (!strcmp(a, "--softmax")) {
            o.softmax = true;
        } else if (!strcmp(a, "--keep-channels")) {
            o.keep_channels = true;
        } else if (!strcmp(a, "--mnn")) {
            o.mnn = true;
        } else if (!strcmp(a, "--encrypt") && i + 1 < argc) {
            key_path = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "nibble: error: unknown option %s\n", a);
            return usage();
        } else if (strchr(a, '=')) {
            continue; /* overrides, applied below */
        } else if (!ckpt) {
            ckpt = a;
        } else if (!cfg_path) {
            cfg_path = a;
        } else {
            return usage();
        }
    }
    if (!ckpt || !out) return usage();
    unsigned char key[NB_MODEL_KEY_BYTES];
    if (key_path) {
        if (o.mnn)
            return fail("--encrypt and --mnn: MNN's converter reads the plain ONNX file; encrypt the .mnn model it "
                        "writes instead%s%s", "", "");
        if (nb_model_key_read(key_path, key))
            return fail("%s: not a key file (64 hex digits; make one with bin/export --new-key %s)", key_path,
                        key_path);
        o.encrypt_key = key;
    }
    char mnn_params[1100]; /* MODEL.mnn.json beside MODEL.onnx */
    size_t stem = strlen(out) > 5 && !strcmp(out + strlen(out) - 5, ".onnx") ? strlen(out) - 5 : strlen(out);
    snprintf(mnn_params, sizeof mnn_params, "%.*s.mnn.json", (int)stem, out);
    if (o.mnn) o.mnn_params = mnn_params;
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    int rc = nb_cfg_for_checkpoint(ctx, &cfg, ckpt, cfg_path, argc - 1, argv + 1);
    if (rc) {
        fprintf(stderr, "nibble: error: %s\n", cfg.err);
        return 1;
    }
    /* export is a host job: the weights are read back to the CPU whatever device trained them */
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    nb_model *m = nb_model_for(ctx, s);
    nb_ckpt_load_model(ctx, ckpt, &m->params, NB_NAMES_ALL);
    nb_qweights q;
    nb_qweights_open(ctx, &q, ckpt);
    /* a full-integer checkpoint (quantizers under quant/) exports as the integer network, batch norms folded */
    if (nb_qsim_for_checkpoint(m, s, ckpt, &o.qsim)) return 1;
    if (o.qsim && o.float_weights) {
        nb_qsim_free(o.qsim);
        o.qsim = NULL;
    }
    if (o.qsim) o.fold_bn = true;
    char mean[256], std[256], doc[800];
    int C = m->spec.in_channels, S = m->spec.input_size;
    list(mean, sizeof mean, &s->data.mean, C);
    list(std, sizeof std, &s->data.std, C);
    char out_shape[64]; /* a detector's raw output: 4 box offsets and the class scores of every default box */
    if (m->priors)
        snprintf(out_shape, sizeof out_shape, "[N, 4 + %d, %d]", m->spec.num_classes, nb_priors(m->priors, NULL, 0));
    else
        snprintf(out_shape, sizeof out_shape, "[N, %d]", m->spec.num_classes);
    snprintf(doc, sizeof doc,
             "input: float32 [N, %d, %d, %d] (NCHW, N free); pixel values scaled to [0, 1], then (x - mean[c]) / "
             "std[c] with mean = [%s], std = [%s]; output %s: float32 %s",
             C, S, S, mean, std, o.softmax ? "probabilities (softmax of the logits)" : "logits (no softmax)", out_shape);
    const char *meta[] = {"nibble.mean", mean, "nibble.std", std, "nibble.checkpoint", ckpt, NULL};
    o.input_doc = doc;
    o.meta = meta;
    nb_export_report r;
    if (nb_export_onnx(m, &q, &o, out, &r)) return 1; /* the error is reported; the context exits */
    if (key_path) sodium_memzero(key, sizeof key);
    printf("wrote %s%s: %lld bytes, %lld nodes, opset %d; %d layers as int%d codes (%s), %lld weights float; "
           "%lld of %lld prunable channels removed; %.2f%% of the weights are zero; %d batch norms folded\n",
           out, key_path ? " (encrypted; bin/export --decrypt restores it)" : "", (long long)r.bytes,
           (long long)r.nodes, o.opset, r.quantized_layers, r.int_bits ? r.int_bits : 8,
           r.methods[0] ? r.methods : "none", (long long)r.float_weights, (long long)r.channels_removed,
           (long long)r.prunable_channels,
           r.quantized_weights + r.float_weights
               ? 100.0 * (double)r.zero_weights / (double)(r.quantized_weights + r.float_weights)
               : 0.0,
           r.folded_bn);
    if (o.qsim && !o.mnn)
        printf("full integer: %lld QuantizeLinear/DequantizeLinear pairs on activations, %lld int32 biases\n",
               (long long)r.activation_qdq, (long long)r.int32_biases);
    if (o.mnn && r.mnn_layers)
        printf("MNN: %d int8 layers in %s; convert with\n  MNNConvert -f ONNX --modelFile %s --MNNModel MODEL.mnn "
               "--bizCode nibble --compressionParamsFile %s\n",
               r.mnn_layers, mnn_params, out, mnn_params);
    else if (o.mnn) {
        /* an earlier export's file would describe another network */
        if (unlink(mnn_params) == 0) printf("MNN: removed %s, an earlier export's\n", mnn_params);
        printf("MNN: no activation grids, so no compression-parameter file; convert with\n  MNNConvert -f ONNX "
               "--modelFile %s --MNNModel MODEL.mnn --bizCode nibble\n", out);
    }
    nb_qsim_free(o.qsim);
    nb_qweights_close(&q);
    nb_model_free(m);
    free(s);
    nb_cfg_free(&cfg);
    nb_ctx_free(ctx);
    return 0;
}
