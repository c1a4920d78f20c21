/* What every fuzz target shares: a CPU context whose errors are recorded instead of ending the process (a
 * reader that reports bad input and returns is the behaviour under test; exit() would be a finding), a scratch
 * directory in memory (/dev/shm when there is one) for the readers that take paths, and the splitting of one
 * input into several files. */
#ifndef NB_FUZZ_FILES_H
#define NB_FUZZ_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "core/context.h"

/* The process's context (CPU, one thread, errors recorded), made on first use */
nb_ctx *fz_ctx(void);
/* Writes len bytes to <scratch>/<name> and returns that path (valid for the next
 * seven calls of fz_write and fz_path) */
const char *fz_write(const char *name, const uint8_t *data, size_t len);
/* The scratch directory's path joined with name (nothing written) */
const char *fz_path(const char *name);
/* Splits data at each "\n--\n" into at most max parts (the last takes the rest); returns how many. A fuzzer
 * finds the separator quickly from the seeds, so one input can hold a cfg and its include, or two files. */
int fz_split(const uint8_t *data, size_t len, const uint8_t **part, size_t *part_len, int max);

#endif
