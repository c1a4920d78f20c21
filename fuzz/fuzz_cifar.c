/* Fuzz target: CIFAR binaries (data.format = cifar). The input is a test file: CIFAR-10's test_batch.bin when
 * the first byte is even, CIFAR-100's test.bin when odd; bit 1 asks for a prefix of 2 images. */
#include <unistd.h>

#include "datasets/dataset.h"
#include "fuzz/support/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unlink(fz_path("test_batch.bin"));
    unlink(fz_path("test.bin"));
    fz_write(data[0] & 1 ? "test.bin" : "test_batch.bin", data + 1, size - 1);
    nb_dataset ds;
    if (nb_dataset_load_cifar(fz_ctx(), &ds, fz_path(""), false, data[0] & 2 ? 2 : 0) == 0) nb_dataset_free(&ds);
    return 0;
}
