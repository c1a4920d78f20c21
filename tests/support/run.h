/* Running nibble's programs from tests: the binaries of the build under test (NB_BIN_DIR), their exit
 * status and everything they printed. */
#ifndef NB_RUN_H
#define NB_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    int status; /* exit code, or 128 + signal */
    char out[16384];
    char err[16384];
} run_result;

/* argv[0] is a program name such as "train"; it is looked up in $NB_BIN_DIR (default build/rel/bin). */
void run_prog(run_result *r, const char *const *argv);
/* Any other program (python3, node), looked up on PATH unless argv[0] has a slash. */
void run_cmd(run_result *r, const char *const *argv);
/* Start without waiting (stderr to errfile); returns the pid. */
pid_t spawn_prog(const char *const *argv, const char *errfile);
int wait_prog(pid_t pid);
/* NODE_PATH for scripts/ort_run.js: onnxruntime-node where `make test` installed it (NB_ORT_NODE_PATH, else
 * build/ort/node_modules). */
void use_ort_node_path(void);
/* A fresh, empty /tmp/nibble-test-<name>-<pid> in dir (size n); 0 on success. */
int make_test_dir(char *dir, size_t n, const char *name);
/* Write text into dir/name (fails the current test when it cannot). */
void write_test_file(const char *dir, const char *name, const char *text);
/* rm -rf dir; 0 on success. */
int remove_test_dir(const char *dir);
/* Whole file into a malloc'd buffer (NULL if missing); *n gets the size. */
char *read_file(const char *path, size_t *n);

#endif
