/* Fuzz target: reading an ONNX file back (bin/export --check, deploy/onnx_inspect.h). */
#include <stdio.h>
#include <stdlib.h>

#include "deploy/onnx_inspect.h"
#include "fuzz/support/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    const char *path = fz_write("model.onnx", data, size);
    nb_onnx_summary s;
    nb_onnx_inspect(fz_ctx(), path, sink, &s);
    return 0;
}
