/* bin/import MODEL.onnx [--classes N] [--in-channels C] [--size S]: the ONNX model as nibble imports it
 * (model.arch = onnx): each node and what it became (a nibble op with its output shape, folded at import, the
 * identity), the parameters under their names and shapes, what import made anew, then the layer table with
 * multiply-accumulates (bin/train --summary's). Classes, channels and size default to what the file declares
 * (224 where it leaves the size open); --classes or --in-channels other than the file's make its classifier or
 * first convolution anew, as model.num_classes and model.in_channels do. A file nibble cannot import: the
 * error naming the node, and exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/select.h"
#include "import/onnx_import.h"

static int usage(void) {
    fprintf(stderr, "usage: bin/import MODEL.onnx [--classes N] [--in-channels C] [--size S]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') return usage();
    const char *path = argv[1];
    int classes = 0, channels = 0, size = 0;
    for (int i = 2; i < argc; i++) {
        int *dst = !strcmp(argv[i], "--classes") ? &classes : !strcmp(argv[i], "--in-channels") ? &channels
                                                         : !strcmp(argv[i], "--size")          ? &size
                                                                                                : NULL;
        char *end;
        if (!dst || i + 1 >= argc) return usage();
        *dst = (int)strtol(argv[++i], &end, 10);
        if (*end || *dst <= 0) return usage();
    }
    nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU); /* errors print and exit 1 */
    nb_model_spec spec = {.arch = "onnx", .num_classes = 1000, .in_channels = 3, .input_size = 224, .width = 1.0f};
    if (nb_onnx_probe(ctx, path, &spec)) return 1;
    if (classes) spec.num_classes = classes;
    if (channels) spec.in_channels = channels;
    if (size) spec.input_size = size;
    nb_model *m = nb_onnx_import(ctx, &spec, path);
    if (!m) return 1;
    nb_onnx_describe(m, stdout);
    printf("\n");
    nb_print_summary(m, stdout);
    nb_model_free(m);
    nb_ctx_free(ctx);
    return 0;
}
