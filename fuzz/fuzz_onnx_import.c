/* Fuzz target: the ONNX importer (model.arch = onnx): parse, check, fold constants, build and run the first
 * pass on two images, then one forward pass in training mode at batch 1 of the model it made. The file's
 * own input size is used where it fixes one (as bin/train does through nb_onnx_probe). */
#include <stdlib.h>

#include "fuzz/support/fuzz_files.h"
#include "import/onnx_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nb_ctx *ctx = fz_ctx();
    nb_model_spec spec = {.num_classes = 10, .in_channels = 1, .input_size = 8, .seed = 1};
    const char *path = fz_write("model.onnx", data, size);
    if (nb_onnx_probe(ctx, path, &spec)) return 0;
    spec.num_classes = 10; /* the classifier made anew when the file's differs, as a cfg asks */
    nb_model *m = nb_onnx_import_bytes(ctx, &spec, data, size, "model.onnx");
    if (!m) return 0;
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){1, spec.in_channels, spec.input_size, spec.input_size});
    if (x) m->forward(m, x, true);
    nb_scope_end(ctx, mark);
    nb_release(x);
    nb_model_free(m);
    return 0;
}
