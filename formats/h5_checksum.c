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

/* The digest of f's bytes after the userblock, streamed (a checkpoint can be larger than what should be held
 * twice in memory); -1 on a read error or a file no longer than its userblock */
static int digest_file(FILE *f, char hex[2 * crypto_generichash_BYTES + 1]) {
    crypto_generichash_state st;
    unsigned char buf[1 << 16], out[crypto_generichash_BYTES];
    if (sodium_init() < 0 || crypto_generichash_init(&st, NULL, 0, sizeof out) || fseek(f, NB_H5_USERBLOCK, SEEK_SET))
        return -1;
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crypto_generichash_update(&st, buf, n);
        total += n;
    }
    if (ferror(f) || total == 0) return -1;
    crypto_generichash_final(&st, out, sizeof out);
    sodium_bin2hex(hex, 2 * sizeof out + 1, out, sizeof out);
    return 0;
}

void nb_h5_seal_image(unsigned char *image, size_t n) {
    char hex[2 * crypto_generichash_BYTES + 1];
    digest(image + NB_H5_USERBLOCK, n - NB_H5_USERBLOCK, hex);
    memset(image, 0, NB_H5_USERBLOCK);
    snprintf((char *)image, NB_H5_USERBLOCK, "%s%s\n", magic, hex);
}

int nb_h5_seal(nb_ctx *ctx, const char *path) {
    FILE *f = fopen(path, "r+b");
    NB_REQUIRE(ctx, f, -1, path, "cannot reopen to write its checksum: %s", strerror(errno));
    char hex[2 * crypto_generichash_BYTES + 1], block[NB_H5_USERBLOCK] = {0};
    int rc = digest_file(f, hex);
    if (rc == 0) {
        snprintf(block, sizeof block, "%s%s\n", magic, hex);
        rc = fseek(f, 0, SEEK_SET) || fwrite(block, 1, sizeof block, f) != sizeof block ? -1 : 0;
    }
    if (fclose(f) != 0) rc = -1;
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
    char hex[2 * crypto_generichash_BYTES + 1] = "";
    int rc = got == sizeof block ? digest_file(f, hex) : -1;
    fclose(f);
    const char *stored = block + sizeof magic - 1;
    if (rc == 0 && memcmp(stored, hex, sizeof hex - 1) == 0) return 1;
    NB_FAIL(ctx, path,
            "checksum mismatch: the file changed after nibble wrote it (damaged in transit, truncated or edited); "
            "libhdf5 is not given it\n  hint: copy it again from where it was made");
    return -1;
}
