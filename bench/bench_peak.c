/* The machine's single-precision arithmetic ceiling: fused multiply-adds on registers only (twelve independent
 * chains, enough to hide the FMA latency on both ports), on every OpenMP thread, with the widest vectors the
 * CPU has. Training throughput is read against this number: a step's convolutions cannot run faster than
 * the FMA units, so a speed-up target is only reachable if it stays under this ceiling. Prints one JSON line.
 * usage: bench_peak [SECONDS_PER_TRY] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

/* Twelve accumulators written out by hand: as an array, gcc keeps them in memory and the loop measures
 * store-to-load forwarding instead of the FMA units. */
#define FMA12(fma)                                                                                                     \
    do {                                                                                                               \
        a0 = fma(a0, m, c), a1 = fma(a1, m, c), a2 = fma(a2, m, c), a3 = fma(a3, m, c);                                \
        a4 = fma(a4, m, c), a5 = fma(a5, m, c), a6 = fma(a6, m, c), a7 = fma(a7, m, c);                                \
        a8 = fma(a8, m, c), a9 = fma(a9, m, c), a10 = fma(a10, m, c), a11 = fma(a11, m, c);                            \
    } while (0)

#define FMA_CHAINS(vec, set1, fma, add, first_lane)                                                                     \
    vec m = set1(0.999999f), c = set1(1e-7f);                                                                          \
    vec a0 = set1(1), a1 = set1(2), a2 = set1(3), a3 = set1(4), a4 = set1(5), a5 = set1(6);                            \
    vec a6 = set1(7), a7 = set1(8), a8 = set1(9), a9 = set1(10), a10 = set1(11), a11 = set1(12);                       \
    for (long k = 0; k < iters; k++) FMA12(fma);                                                                       \
    vec s = add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7)));                                         \
    s = add(s, add(add(a8, a9), add(a10, a11)));                                                                       \
    return first_lane(s)

typedef struct {
    const char *isa;
    int lanes;
    float (*run)(long);
} fma_kernel;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static float chains_avx512(long iters) {
    FMA_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps);
}

__attribute__((target("avx2,fma"))) static float first_lane_256(__m256 v) { return _mm_cvtss_f32(_mm256_castps256_ps128(v)); }

__attribute__((target("avx2,fma"))) static float chains_avx2(long iters) {
    FMA_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, first_lane_256);
}

/* Without FMA a multiply and an add issue separately; counted as two operations, as FMA is. */
static inline __m128 mul_add_128(__m128 a, __m128 m, __m128 c) { return _mm_add_ps(_mm_mul_ps(a, m), c); }
static float chains_sse(long iters) { FMA_CHAINS(__m128, _mm_set1_ps, mul_add_128, _mm_add_ps, _mm_cvtss_f32); }

static fma_kernel widest_kernel(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return (fma_kernel){"avx512", 16, chains_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return (fma_kernel){"avx2+fma", 8, chains_avx2};
    return (fma_kernel){"sse", 4, chains_sse};
}

#else
/* Elsewhere: the compiler's own vectors of 4 floats, with the multiply-add it picks for the target. */
typedef float vec4 __attribute__((vector_size(16)));
static inline vec4 set1_4(float v) { return (vec4){v, v, v, v}; }
static inline vec4 mul_add_4(vec4 a, vec4 m, vec4 c) { return a * m + c; }
static inline vec4 add_4(vec4 a, vec4 b) { return a + b; }
static inline float first_lane_4(vec4 v) { return v[0]; }
static float chains_generic(long iters) { FMA_CHAINS(vec4, set1_4, mul_add_4, add_4, first_lane_4); }

static fma_kernel widest_kernel(void) { return (fma_kernel){"generic", 4, chains_generic}; }
#endif

/* Seconds for one try of `iters` iterations on every thread. */
static double try_once(fma_kernel k, long iters, int *threads) {
    float sink = 0;
    int nt = 1;
    double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    {
        sink += k.run(iters);
#pragma omp single
        nt = omp_get_num_threads();
    }
    double dt = omp_get_wtime() - t0;
    *threads = nt;
    /* the result feeds the output so the chains cannot be optimised away */
    return sink == 0.12345f ? dt + 1e-9 : dt;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    if (!(seconds > 0)) {
        fprintf(stderr, "bench_peak: SECONDS_PER_TRY must be a positive number, not '%s'\n", argv[1]);
        return 2;
    }
    fma_kernel k = widest_kernel();
    int threads = 1;
    /* size the tries from a short one, then keep the fastest of five: frequency ramps and neighbours only
     * ever make a try slower */
    long iters = 1000000;
    double short_try = try_once(k, iters, &threads);
    long sized = (long)(seconds / short_try * (double)iters);
    if (sized > iters) iters = sized;
    double fastest = 0;
    for (int t = 0; t < 5; t++) {
        double dt = try_once(k, iters, &threads);
        if (t == 0 || dt < fastest) fastest = dt;
    }
    double flops = (double)iters * 12 * k.lanes * 2 * threads; /* twelve chains, two operations per FMA */
    printf("{\"isa\": \"%s\", \"threads\": %d, \"peak_gflop_per_s\": %.1f}\n", k.isa, threads, flops / fastest / 1e9);
    return 0;
}
