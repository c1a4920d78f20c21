/* Fuzz target: the idx reader (MNIST and Fashion-MNIST files, raw or gzip). The input is an image file and a
 * label file separated by "\n--\n"; its first byte chooses which of the two are gzip-compressed here before
 * the reader sees them (bit 0 the images, bit 1 the labels), so the fuzzer explores the idx format through
 * zlib's reader as well as raw; bit 2 asks for a prefix of 3 images (data.limit). */
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "datasets/dataset.h"
#include "fuzz/support/fuzz_files.h"

static const char *put(const char *name, const uint8_t *data, size_t len, int gz) {
    if (!gz) return fz_write(name, data, len);
    const char *path = fz_path(name);
    gzFile f = gzopen(path, "wb1");
    if (!f || (len && gzwrite(f, data, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) abort();
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int flags = data[0];
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data + 1, size - 1, part, len, 2);
    const char *images = put("x-images-idx3-ubyte.gz", part[0], len[0], flags & 1);
    const char *labels = put("x-labels-idx1-ubyte.gz", n > 1 ? part[1] : part[0], n > 1 ? len[1] : 0, flags & 2);
    nb_dataset ds;
    if (nb_dataset_load_idx(fz_ctx(), &ds, images, labels, flags & 4 ? 3 : 0) == 0) nb_dataset_free(&ds);
    return 0;
}
