/* The containment of libhdf5 for files from elsewhere (h5_probe.h): a child process walks the file first.
 *
 * libhdf5 1.10 (Debian's) crashes on some malformed files and loops for ever on others, inside its own
 * metadata parsing (fuzz/README.md: a corrupt local heap copied from address 0, a corrupt global heap read in
 * a loop); nibble cannot repair libhdf5, and a checksum does not help against a file made to pass it. So a
 * forked child opens the file and touches what a reader can reach: every group's links, every object's
 * attributes (variable-length strings included), every dataset's dataspace and type, and the data of the
 * datasets as far as a budget allows. libhdf5 is deterministic: a file the child walked through is one the
 * parent's own reads, a subset of the walk, get through too. A child that dies or outlives its time is a
 * refused file, with a message, instead of a crashed or hung nibble. The walk reads data in its own type and
 * whole; the readers' conversions and partial reads are not repeated, and a fault of libhdf5's only there
 * is not contained (the readers check each dataset's stored size first). The child (the walker) is forked
 * at a context's first file and walks the later ones too, as long as libhdf5 holds nothing open in it. */
#include "formats/h5_probe.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

/* An attribute's values, read as the readers read them: a variable-length string (the config attribute,
 * from the global heap) and a fixed-length one in their own character set (a conversion between sets reads
 * nothing), anything else in its native type */
static void read_attr(hid_t a) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (t >= 0 && n > 0 && n <= 4096) {
        if (H5Tget_class(t) == H5T_STRING) {
            bool vlen = H5Tis_variable_str(t) > 0;
            size_t sz = vlen ? sizeof(char *) : H5Tget_size(t);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, vlen ? H5T_VARIABLE : sz);
            H5Tset_cset(mt, H5Tget_cset(t));
            /* nb_ckpt_read_config reads fixed-length strings of up to 16 MB */
            void *v = sz && (uint64_t)sz * (uint64_t)n <= ((uint64_t)1 << 24) ? calloc((size_t)n, sz) : NULL;
            if (v && H5Aread(a, mt, v) >= 0 && vlen)
                for (hssize_t i = 0; i < n; i++) H5free_memory(((char **)v)[i]);
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
 * crash of the whole run: the walker's faults are libhdf5's, contained, and reported by the parent */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void walk_file(const char *path) {
    hid_t f = nb_h5_open_quiet(path);
    if (f >= 0) {
        walk w = {PROBE_DATA_BUDGET};
        H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_object, &w, H5O_INFO_BASIC);
        /* the attribute a reader opens by name, looked up by name too: the iteration above stops at the first
         * attribute libhdf5 cannot open, and a lookup by name takes its own path through the object header
         * (fuzz/upstream/checkpoint/config-by-name-loop: the walk went through, the reader looped) */
        if (H5Aexists(f, "config") > 0) {
            hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
            if (a >= 0) {
                read_attr(a);
                H5Aclose(a);
            }
        }
        H5Fclose(f);
    }
    /* an unopenable file is the parent's to report, with its own message */
}

/* n bytes from fd, or false at its end or on an error */
static bool read_all(int fd, void *buf, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

/* Walks a walker does before it makes way for a fresh one: libhdf5 leaks a little on the error paths of
 * malformed files, and the walker's memory should not grow without end */
#define WALKER_WALKS 4096

/* The walker: a copy of the parent made at its first file, which walks one path after another (a 4-byte
 * length and the path in, one byte out: 'r' when it can take another, 'x' when it ends after this one).
 * A fork per file cost more than the walk of a small file. It is kept only while libhdf5 holds nothing open
 * in it: an object left open (one the parent had open when it forked, or one a malformed file's walk could
 * not close) would be found again by libhdf5's own lookup of open files, by inode, and the next walk of a
 * file rewritten in place would read that instead. It ends when the parent's end of the socket closes. */
_Noreturn static void walker(int fd) {
    /* the parent's handlers and files are not the walker's: no atexit flushes (_exit), default signals;
     * Ctrl-C is the parent's to handle (it saves a checkpoint), not a reason for the walker to die */
    const int sigs[] = {SIGTERM, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], SIG_DFL);
    signal(SIGINT, SIG_IGN);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
    bool keep = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0;
    char path[4097];
    for (int walks = 0;; walks++) {
        uint32_t n;
        if (!read_all(fd, &n, sizeof n) || n >= sizeof path || !read_all(fd, path, n)) _exit(0);
        path[n] = 0;
        walk_file(path);
        keep = keep && walks + 1 < WALKER_WALKS && H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0;
        char reply = keep ? 'r' : 'x';
        if (write(fd, &reply, 1) != 1 || !keep) _exit(0);
    }
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

/* The walk's outcome: 0 (through), WALK_TIMED_OUT, or the walker's wait status; -1 when it could not run.
 * WALK_NOT_YET marks a record made before its walk. */
#define WALK_TIMED_OUT (-2)
#define WALK_NOT_YET (-3)

static int spawn_walker(nb_ctx *ctx, const char *path, const char *what) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        NB_FAIL(ctx, path, "cannot start the process that checks the %s before reading it: %s", what, strerror(errno));
        return -1;
    }
    fflush(NULL); /* nothing buffered is written twice */
    pid_t parent = getpid();
    bool parent_main = syscall(SYS_gettid) == parent;
    pid_t pid = fork();
    if (pid < 0) {
        NB_FAIL(ctx, path, "cannot start the process that checks the %s before reading it: %s", what, strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* only the walker's own socket and stdio stay open: a copy of another context's walker socket would
         * keep that walker from seeing its parent's end close */
        int keep = sv[1];
        if (keep > 3) close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0u, 0);
        /* a walker caught in one of libhdf5's loops when the parent is killed would loop on alone; the signal
         * follows the death of the forking thread, so it is asked for only from the main one */
        if (parent_main) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        walker(keep);
    }
    close(sv[1]);
    ctx->walker_pid = pid;
    ctx->walker_fd = sv[0];
    return 0;
}

/* The walker's wait status once it has ended (killed first when kill_it); no walker afterwards */
static int reap_walker(nb_ctx *ctx, bool kill_it) {
    int status = 0;
    if (kill_it) kill(ctx->walker_pid, SIGKILL);
    close(ctx->walker_fd);
    while (waitpid(ctx->walker_pid, &status, 0) < 0 && errno == EINTR) {}
    ctx->walker_pid = 0;
    ctx->walker_fd = -1;
    return status;
}

/* path to the walker, started when none runs or when the one there has ended since its last file */
static int send_path(nb_ctx *ctx, const char *path, const char *what) {
    size_t len = strlen(path);
    if (len > 4096) {
        NB_FAIL(ctx, path, "the path of this %s is longer than 4096 bytes", what);
        return -1;
    }
    unsigned char msg[4 + 4096];
    uint32_t n = (uint32_t)len;
    memcpy(msg, &n, sizeof n);
    memcpy(msg + 4, path, len);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ctx->walker_pid <= 0 && spawn_walker(ctx, path, what) != 0) return -1;
        if (send(ctx->walker_fd, msg, 4 + len, MSG_NOSIGNAL) == (ssize_t)(4 + len)) return 0;
        reap_walker(ctx, true); /* it ended while it waited (a signal): a fresh one takes the file */
    }
    NB_FAIL(ctx, path, "cannot hand the %s to the process that checks it: %s", what, strerror(errno));
    return -1;
}

static int run_walk(nb_ctx *ctx, const char *path, const char *what, double limit) {
    if (send_path(ctx, path, what) != 0) return -1;
    double t0 = now_s();
    for (;;) {
        double left = limit - (now_s() - t0);
        if (left <= 0) {
            reap_walker(ctx, true);
            return WALK_TIMED_OUT;
        }
        struct pollfd p = {.fd = ctx->walker_fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) {
            NB_FAIL(ctx, path, "lost the process that checks the %s: %s", what, strerror(errno));
            reap_walker(ctx, true);
            return -1;
        }
        if (r <= 0) continue; /* a signal, or the time is up (checked above) */
        char reply;
        ssize_t got;
        while ((got = read(ctx->walker_fd, &reply, 1)) < 0 && errno == EINTR) {}
        if (got == 1 && (reply == 'r' || reply == 'x')) {
            if (reply == 'x') reap_walker(ctx, false);
            return 0;
        }
        /* the socket ended before the reply: the walker died in libhdf5 (an exit with 0 too: it did not finish) */
        int status = reap_walker(ctx, false);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? W_EXITCODE(1, 0) : status;
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
