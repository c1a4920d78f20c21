/* The digest in a checksummed HDF5 file's userblock (h5_checksum.h): "nibble-blake2b-256 <64 hex digits>\n",
 * zero-padded to the userblock's size. */
#include "formats/h5_checksum.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static const char magic[] = "nibble-blake2b-256 ";

/* The digest of bytes[0, n) as hex */
static void digest(const unsigned char *bytes, size_t n, char hex[2 * crypto_generichash_BYTES + 1]) {
    unsigned char out[crypto_generichash_BYTES];
    if (sodium_init() < 0) abort(); /* cannot happen after the first call; libsodium needs no resources */
    crypto_generichash(out, sizeof out, bytes, n, NULL, 0);
    sodium_bin2hex(hex, 2 * sizeof out + 1, out, sizeof out);
}

/* path's bytes, malloc'd (NULL on a read error) */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, r;
    unsigned char *buf = malloc(cap);
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0)
        if ((len += r) == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = len;
    return buf;
}

void nb_h5_seal_image(unsigned char *image, size_t n) {
    char hex[2 * crypto_generichash_BYTES + 1];
    digest(image + NB_H5_USERBLOCK, n - NB_H5_USERBLOCK, hex);
    memset(image, 0, NB_H5_USERBLOCK);
    snprintf((char *)image, NB_H5_USERBLOCK, "%s%s\n", magic, hex);
}

int nb_h5_seal(nb_ctx *ctx, const char *path) {
    size_t n;
    unsigned char *image = slurp(path, &n);
    NB_REQUIRE(ctx, image && n > NB_H5_USERBLOCK, -1, path, "cannot read it back to write its checksum");
    nb_h5_seal_image(image, n);
    FILE *f = fopen(path, "r+b");
    int rc = f && fwrite(image, 1, NB_H5_USERBLOCK, f) == NB_H5_USERBLOCK ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(image);
    if (rc) NB_FAIL(ctx, path, "writing its checksum failed: %s", strerror(errno ? errno : EIO));
    return rc;
}

int nb_h5_verify(nb_ctx *ctx, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* libhdf5 reports the file it cannot open, as for any file */
    char block[NB_H5_USERBLOCK];
    size_t got = fread(block, 1, sizeof block, f);
    if (got < sizeof magic - 1 || memcmp(block, magic, sizeof magic - 1)) {
        fclose(f);
        return 0;
    }
    fclose(f);
    size_t n;
    unsigned char *image = got == sizeof block ? slurp(path, &n) : NULL;
    char hex[2 * crypto_generichash_BYTES + 1] = "";
    if (image && n > NB_H5_USERBLOCK) digest(image + NB_H5_USERBLOCK, n - NB_H5_USERBLOCK, hex);
    free(image);
    const char *stored = block + sizeof magic - 1;
    if (hex[0] && memcmp(stored, hex, sizeof hex - 1) == 0) return 1;
    NB_FAIL(ctx, path,
            "checksum mismatch: the file changed after nibble wrote it (damaged in transit, truncated or edited); "
            "libhdf5 is not given it\n  hint: copy it again from where it was made");
    return -1;
}
