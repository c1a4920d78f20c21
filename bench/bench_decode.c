/* Image-folder input throughput on one thread: decode (DCT-scaled JPEG, PNG), RandomResizedCrop to SIZE,
 * flip and normalise, exactly as the loader's workers do, over the files given. Prints one JSON line.
 * usage: bench_decode SIZE PASSES FILE... */
#include <stdio.h>
#include <stdlib.h>

#include "bench/clock.h"
#include "datasets/dataset.h"
#include "datasets/folder.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_decode SIZE PASSES FILE...\n");
        return 2;
    }
    int S = atoi(argv[1]), passes = atoi(argv[2]);
    nb_dataset ds = {.n = argc - 3, .c = 3, .h = S, .w = S, .files = argv + 3};
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    nb_folder_crop crop = {.random_resized = true, .scale_min = 0.08, .flip = true, .mean = mean, .std = std};
    float *out = malloc(sizeof(float) * 3 * (size_t)S * S);
    char err[256];
    int64_t done = 0, failed = 0;
    double t0 = bench_now();
    for (int p = 0; p < passes; p++)
        for (int64_t i = 0; i < ds.n; i++) {
            nb_rng r = nb_rng_make(1, (uint64_t)(p * ds.n + i));
            if (nb_folder_sample(&ds, i, &crop, &r, out, err, sizeof err)) failed++;
            else done++;
        }
    double dt = bench_now() - t0;
    printf("{\"images\": %lld, \"failed\": %lld, \"img_per_s\": %.1f}\n", (long long)done, (long long)failed, done / dt);
    free(out);
    return failed ? 1 : 0;
}
