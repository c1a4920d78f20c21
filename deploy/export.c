/* ONNX export (see export.h): the forward pass recorded on a batch of two zero images, lowered to the deploy
 * graph (deploy/lower.c), written as ONNX (deploy/onnx_emit.c) into a temporary file that is then renamed. */
#include "deploy/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"
#include "deploy/graph.h"
#include "deploy/model_crypt.h"
#include "deploy/onnx_emit.h"
#include "formats/file_write.h"

#define TRACE_BATCH 2 /* not 1, so that the batch dimension cannot be mistaken for a singleton one */

int nb_export_write_file(nb_ctx *ctx, const char *path, const uint8_t *buf, size_t bytes) {
    return nb_write_file_atomic(ctx, path, buf, bytes, "model");
}

/* the packed model, encrypted when o asks, to path */
static int write_model(nb_ctx *ctx, const nb_export_opts *o, const char *path, const uint8_t *packed, size_t bytes) {
    if (!o->encrypt_key) return nb_export_write_file(ctx, path, packed, bytes);
    unsigned char *enc;
    size_t len;
    int c = nb_model_encrypt(o->encrypt_key, packed, bytes, &enc, &len);
    NB_REQUIRE(ctx, c == NB_CRYPT_OK, -1, path, "cannot encrypt the model: %s", nb_crypt_error(c));
    int rc = nb_export_write_file(ctx, path, enc, len);
    free(enc);
    return rc;
}

int nb_export_onnx(nb_model *m, const nb_qweights *q, const nb_export_opts *o, const char *path, nb_export_report *r) {
    nb_ctx *ctx = m->ctx;
    memset(r, 0, sizeof *r);
    NB_REQUIRE(ctx, o->opset >= 13 && o->opset <= 21, -1, "export",
               "opset %d is not supported (13 to 21: per-channel DequantizeLinear needs 13, int4 weights 21)",
               o->opset);
    NB_REQUIRE(ctx, !o->qsim || o->fold_bn, -1, "export",
               "a full-integer network is exported with its batch norms folded (--fold-bn): they are in its weights");
    size_t mark;
    if (o->qsim) nb_qsim_set_exporting(o->qsim, true);
    nb_tensor *x, *y = nb_record_forward(m, TRACE_BATCH, &mark, &x);
    if (o->qsim) nb_qsim_set_exporting(o->qsim, false);
    nb_deploy_graph g;
    nb_lower_opts lo = {.fold_bn = o->fold_bn, .float_weights = o->float_weights, .keep_channels = o->keep_channels,
                        .qsim = o->qsim};
    int rc = y && nb_deploy_lower(m, x, y, q, &lo, &g) == 0 ? 0 : -1;
    if (rc == 0) {
        size_t bytes;
        char *mnn = NULL;
        uint8_t *packed = nb_onnx_emit(ctx, &g, o, r, &bytes, o->mnn ? &mnn : NULL);
        rc = packed ? write_model(ctx, o, path, packed, bytes) : -1;
        if (rc == 0 && mnn && o->mnn_params)
            rc = nb_export_write_file(ctx, o->mnn_params, (const uint8_t *)mnn, strlen(mnn));
        free(mnn);
        if (packed) sodium_memzero(packed, bytes); /* an encrypted export's plaintext leaves no copy behind */
        free(packed);
    }
    if (y) nb_deploy_free(&g);
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return rc;
}
