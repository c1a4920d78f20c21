/* The fuzz targets' context, scratch directory and input splitting (fuzz_files.h). A harness is one process
 * running one target, so the context and directory are made once and kept for the process. */
#include "fuzz/support/fuzz_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "backend/select.h"

static nb_ctx *g_ctx;
static char g_dir[256];

static void recorded(void *user, const char *message) {
    (void)user;
    (void)message; /* the message is on the context (last_error); the reader returns its failure */
}

static void remove_dir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", g_dir);
}

static const char *dir(void) {
    if (g_dir[0]) return g_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/nibble-fuzz-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return g_dir;
}

nb_ctx *fz_ctx(void) {
    if (g_ctx) return g_ctx;
    /* HDF5 refuses a second open of a locked file; the scratch files are ours alone */
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    setenv("OMP_NUM_THREADS", "1", 0);
    /* libhdf5 keeps at most 64 KB of freed blocks per kind: its metadata cache (over 1 MB, made at every
     * open) then comes from fresh memory at each of a checkpoint's nine opens, which under AddressSanitizer
     * costs more than the reads; freed blocks kept (up to 64 MB) are reused instead */
    H5set_free_list_limits(64 << 20, 16 << 20, 16 << 20, 4 << 20, 16 << 20, 4 << 20);
    g_ctx = nb_ctx_new(NB_DEVICE_CPU);
    if (!g_ctx) abort();
    nb_ctx_set_error_handler(g_ctx, recorded, NULL);
    return g_ctx;
}

const char *fz_path(const char *name) {
    static char paths[8][512]; /* a ring: a target holds a few paths at once */
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", dir(), name);
    return path;
}

const char *fz_write(const char *name, const uint8_t *data, size_t len) {
    const char *path = fz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

int fz_split(const uint8_t *data, size_t len, const uint8_t **part, size_t *part_len, int max) {
    static const char sep[] = "\n--\n";
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; n < max - 1 && i + 4 <= len; i++) {
        if (memcmp(data + i, sep, 4) != 0) continue;
        part[n] = data + start;
        part_len[n++] = i - start;
        start = i + 4;
        i += 3;
    }
    part[n] = data + start;
    part_len[n++] = len - start;
    return n;
}
