/* The benchmarks' clock: monotonic seconds, and sorting a run's timings (the fastest or the median is read off
 * the sorted array). Static inline: each benchmark is a program of its own. */
#ifndef NB_BENCH_CLOCK_H
#define NB_BENCH_CLOCK_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp_seconds(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* times[0..n) in increasing order */
static inline void bench_sort_seconds(double *times, int n) { qsort(times, (size_t)n, sizeof *times, bench_cmp_seconds); }

#endif
