/* Subprocess helpers for the CLI tests. */
#include "tests/support/run.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void prog_path(char *out, size_t n, const char *name) {
    const char *dir = getenv("NB_BIN_DIR");
    snprintf(out, n, "%s/%s", dir && dir[0] ? dir : "build/rel/bin", name);
}

static void slurp(int fd, char *buf, size_t cap) {
    size_t got = 0;
    ssize_t r;
    char sink[4096];
    while ((r = read(fd, got + 1 < cap ? buf + got : sink, got + 1 < cap ? cap - 1 - got : sizeof sink)) > 0)
        if (got + 1 < cap) got += (size_t)r;
    buf[got] = 0;
}

/* Under NB_TEST_DEVICE=cuda the programs that run models are pointed at the GPU too (a later override wins
 * over the configuration file). Called in the child, just before exec. */
static const char *const *with_device(const char *const *argv) {
    static const char *ext[128];
    const char *dev = getenv("NB_TEST_DEVICE");
    if (!dev || strcmp(dev, "cuda") || (strcmp(argv[0], "train") && strcmp(argv[0], "eval") && strcmp(argv[0], "predict")))
        return argv;
    int n = 0;
    while (argv[n] && n < 120) {
        ext[n] = argv[n];
        n++;
    }
    if (n > 1 && argv[1][0] == '-') return argv; /* --help-config and the like take no overrides */
    ext[n++] = "train.device=cuda";
    ext[n] = NULL;
    return ext;
}

static int decode(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

/* path: the program to exec; NULL to look argv[0] up on PATH */
static void run_exec(run_result *r, const char *path, const char *const *argv) {
    char ef[] = "/tmp/nibble-run-errXXXXXX";
    int efd = mkstemp(ef);
    int po[2];
    if (pipe(po) != 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(efd, 2);
        close(po[0]);
        if (path)
            execv(path, (char *const *)with_device(argv));
        else
            execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot exec %s\n", path ? path : argv[0]);
        _exit(127);
    }
    close(po[1]);
    slurp(po[0], r->out, sizeof r->out);
    close(po[0]);
    int st;
    waitpid(pid, &st, 0);
    r->status = decode(st);
    lseek(efd, 0, SEEK_SET);
    slurp(efd, r->err, sizeof r->err);
    close(efd);
    unlink(ef);
}

void run_prog(run_result *r, const char *const *argv) {
    char path[512];
    prog_path(path, sizeof path, argv[0]);
    run_exec(r, path, argv);
}

void run_cmd(run_result *r, const char *const *argv) { run_exec(r, NULL, argv); }

pid_t spawn_prog(const char *const *argv, const char *errfile) {
    char path[512];
    prog_path(path, sizeof path, argv[0]);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execv(path, (char *const *)with_device(argv));
        _exit(127);
    }
    return pid;
}

int wait_prog(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    return decode(st);
}

char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    buf[got] = 0;
    if (n) *n = got;
    return buf;
}

int make_test_dir(char *dir, size_t n, const char *name) {
    snprintf(dir, n, "/tmp/nibble-test-%s-%d", name, (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int remove_test_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

void write_test_file(const char *dir, const char *name, const char *text) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", p);
        abort();
    }
}

void use_ort_node_path(void) {
    const char *ort = getenv("NB_ORT_NODE_PATH");
    setenv("NODE_PATH", ort && ort[0] ? ort : "build/ort/node_modules", 1);
}
