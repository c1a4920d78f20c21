/* Fuzz target: HDF5 data sets (data.format = hdf5: `images` and `labels`), the file as libhdf5 reads it from
 * disk. The first byte says whether labels are required (bit 0 clear) or optional (as bin/predict reads). */
#include "datasets/dataset.h"
#include "fuzz/support/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fz_write("data.h5", data + 1, size - 1);
    nb_dataset ds;
    if (nb_dataset_load_hdf5_ex(fz_ctx(), &ds, path, data[0] & 2 ? 5 : 0, !(data[0] & 1)) == 0) nb_dataset_free(&ds);
    return 0;
}
