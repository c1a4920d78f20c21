/* Fuzz target: JPEG and PNG decoding through nibble's wrappers (datasets/image_decode.h), as the folder and
 * VOC loaders call them: open reads the header, decode the pixels at a DCT scale the first byte chooses. */
#include <stdlib.h>

#include "datasets/image_decode.h"
#include "fuzz/support/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fz_write("image", data + 1, size - 1);
    char err[300];
    int w, h;
    nb_image_file *f = nb_image_open(path, &w, &h, err, sizeof err);
    if (!f) return 0;
    if (data[0] & 1) {
        nb_image_close(f);
        return 0;
    }
    nb_image im;
    double scale = (double)(1 + (data[0] >> 5)) / 8.0; /* 1/8 to 8/8 */
    if (nb_image_decode(f, scale, &im, err, sizeof err) == 0) {
        if (im.w <= 0 || im.h <= 0 || im.w > w || im.h > h) abort();
        nb_image_free(&im);
    }
    return 0;
}
