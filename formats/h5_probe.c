/* The containment of libhdf5 for files from elsewhere (h5_probe.h): a child process walks the file first.
 *
 * libhdf5 1.10 (Debian's) crashes on some malformed files and loops for ever on others, inside its own
 * metadata parsing (fuzz/README.md: a corrupt local heap copied from address 0, a corrupt global heap read in
 * a loop); nibble cannot repair libhdf5, and a checksum does not help against a file made to pass it. So a
 * forked child opens the file and touches what a reader can reach: every group's links, every object's
 * attributes (variable-length strings included), every dataset's dataspace and type, and the data of the
 * datasets as far as a budget allows. libhdf5 is deterministic: a file the child walked through is one the
 * parent's own reads, a subset of the walk, get through too. A child that dies or outlives its time is a
 * refused file, with a message, instead of a crashed or hung nibble. */
#include "formats/h5_probe.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/check.h"
#include "formats/h5_file.h"

/* Data the walk reads in all: datasets past it are walked without their data (the crashes seen are in
 * metadata; a data set of many gigabytes should not be read twice) */
#define PROBE_DATA_BUDGET ((uint64_t)512 << 20)

typedef struct {
    uint64_t budget; /* data bytes the walk may still read */
} walk;

static void read_attr(hid_t a) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (t >= 0 && n > 0 && n <= 4096) {
        if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) {
            /* the config attribute: a variable-length string, read from the global heap */
            char **v = calloc((size_t)n, sizeof *v);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t)); /* as the readers ask: a conversion between sets reads nothing */
            if (v && H5Aread(a, mt, v) >= 0)
                for (hssize_t i = 0; i < n; i++) H5free_memory(v[i]);
            H5Tclose(mt);
            free(v);
        } else {
            hid_t nt = H5Tget_native_type(t, H5T_DIR_DEFAULT);
            size_t sz = nt >= 0 ? H5Tget_size(nt) : 0;
            void *buf = sz && sz <= 4096 ? calloc((size_t)n, sz) : NULL;
            if (buf) H5Aread(a, nt, buf);
            free(buf);
            if (nt >= 0) H5Tclose(nt);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
}

static herr_t visit_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
    (void)info;
    (void)op;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a >= 0) {
        read_attr(a);
        H5Aclose(a);
    }
    return 0; /* on: a broken attribute is the parent's to report */
}

static void read_dataset(hid_t f, hid_t d, walk *w) {
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    hid_t nt = t >= 0 ? H5Tget_native_type(t, H5T_DIR_DEFAULT) : -1;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t sz = nt >= 0 ? H5Tget_size(nt) : 0;
    uint64_t bytes = n > 0 && sz > 0 && sz <= 64 ? (uint64_t)n * sz : 0;
    /* what no file could hold is not read; the bound is looser than nb_h5_storage_holds, which the data set
     * reader applies, because the checkpoint readers read any dataset of the element count they expect */
    nb_h5_storage st = nb_h5_storage_of(f, d);
    bool plausible = st.stored <= st.file_size && bytes <= st.stored * 1100u;
    if (bytes && plausible && bytes <= w->budget && H5Tget_class(t) != H5T_STRING && H5Tget_class(t) != H5T_VLEN) {
        void *buf = malloc((size_t)bytes);
        if (buf) {
            H5Dread(d, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            w->budget -= bytes;
        }
        free(buf);
    }
    if (nt >= 0) H5Tclose(nt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
}

static herr_t visit_object(hid_t root, const char *name, const H5O_info_t *info, void *op) {
    walk *w = op;
    hid_t o = H5Oopen(root, name, H5P_DEFAULT);
    if (o < 0) return 0;
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, visit_attr, NULL);
    if (info->type == H5O_TYPE_DATASET) read_dataset(root, o, w);
    H5Oclose(o);
    return 0;
}

/* Under a sanitizer (the fuzz targets), its report would end in the fuzzer's death callback, which records a
 * crash of the whole run: the child's faults are libhdf5's, contained, and reported by the parent */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* The child's walk; it ends the process */
_Noreturn static void child_walk(const char *path) {
    /* the parent's handlers and files are not the child's: no atexit flushes (_exit), default signals */
    const int sigs[] = {SIGINT, SIGTERM, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], SIG_DFL);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
    hid_t f = nb_h5_open_quiet(path);
    if (f >= 0) {
        walk w = {PROBE_DATA_BUDGET};
        H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_object, &w, H5O_INFO_BASIC);
        H5Fclose(f);
    }
    _exit(0); /* an unopenable file is the parent's to report, with its own message */
}

/* Seconds the walk of a file of `bytes` may take: NB_H5_PROBE_SECONDS, or 20 and one more per 25 MB */
static double probe_seconds(uint64_t bytes) {
    const char *e = getenv("NB_H5_PROBE_SECONDS");
    if (e && *e) {
        double v = strtod(e, NULL);
        if (v > 0) return v;
    }
    return 20.0 + (double)bytes / 1048576.0 / 25.0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The walk's outcome: 0 (through), WALK_TIMED_OUT, or the child's wait status; -1 when it could not run.
 * WALK_NOT_YET marks a record made before its walk. */
#define WALK_TIMED_OUT (-2)
#define WALK_NOT_YET (-3)
static int run_walk(nb_ctx *ctx, const char *path, const char *what, double limit) {
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        NB_FAIL(ctx, path, "cannot start the process that checks the %s before reading it: %s", what, strerror(errno));
        return -1;
    }
    if (pid == 0) child_walk(path);
    double t0 = now_s();
    int status = 0;
    struct timespec nap = {0, 200000}; /* 0.2 ms, doubling to 20 ms: a small file's walk ends in a few */
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : status;
        if (r < 0 && errno != EINTR) {
            NB_FAIL(ctx, path, "lost the process that checks the %s: %s", what, strerror(errno));
            return -1;
        }
        if (now_s() - t0 > limit) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return WALK_TIMED_OUT;
        }
        nanosleep(&nap, NULL);
        if (nap.tv_nsec < 20000000) nap.tv_nsec *= 2;
    }
}

/* ctx's record of path as it is now on disk, made (WALK_NOT_YET) if it has none; NULL when the
 * file cannot be looked at (its open reports that) */
static nb_file_check *record_of(nb_ctx *ctx, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return NULL;
    nb_file_check id = {.dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino, .size = (uint64_t)st.st_size,
                        .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, .outcome = WALK_NOT_YET};
    int n = ctx->n_checked, cap = (int)(sizeof ctx->checked / sizeof *ctx->checked);
    for (int i = 0; i < n; i++) {
        nb_file_check *c = &ctx->checked[i];
        if (c->dev == id.dev && c->ino == id.ino && c->size == id.size && c->mtime_ns == id.mtime_ns) return c;
    }
    if (n == cap) { /* the oldest goes */
        memmove(ctx->checked, ctx->checked + 1, sizeof *ctx->checked * (size_t)(cap - 1));
        n--;
    }
    ctx->checked[n] = id;
    ctx->n_checked = n + 1;
    return &ctx->checked[n];
}

int nb_h5_probe(nb_ctx *ctx, const char *path, const char *what) {
    nb_file_check *rec = record_of(ctx, path);
    if (!rec) return 0; /* missing or unreadable: the open says so */
    double limit = probe_seconds(rec->size);
    if (rec->outcome == WALK_NOT_YET) {
        int outcome = run_walk(ctx, path, what, limit);
        if (outcome == -1) return -1;
        rec->outcome = outcome;
    }
    int status = rec->outcome;
    if (status == 0) return 0;
    if (status == WALK_TIMED_OUT) {
        NB_FAIL(ctx, path, "libhdf5 did not finish reading this %s in %.0f s: a malformed HDF5 file sends libhdf5 "
                "1.10 into an endless loop; the file is refused (NB_H5_PROBE_SECONDS sets the limit)", what, limit);
        return -1;
    }
    if (WIFSIGNALED(status))
        NB_FAIL(ctx, path, "libhdf5 crashed (signal %d, %s) reading this %s: it is a malformed HDF5 file, refused",
                WTERMSIG(status), strsignal(WTERMSIG(status)), what);
    else
        NB_FAIL(ctx, path, "libhdf5 failed reading this %s (its checking process exited with status %d): a malformed "
                "HDF5 file, refused", what, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
}
