/* bin/devices [cuda]: the backends this build can run on. With `cuda`, prints the GPU nibble would use and
 * exits 0, or prints why there is none and exits 1 (scripts/run-tests.sh decides from it whether the CUDA
 * pass of the test suite runs or is reported as skipped). */
#include <stdio.h>
#include <string.h>

#include "backend/select.h"
#include "core/backend.h"

int main(int argc, char **argv) {
    char why[512];
    bool cuda = nb_cuda_available(why, sizeof why);
    if (argc > 1 && !strcmp(argv[1], "cuda")) {
        puts(why);
        return cuda ? 0 : 1;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: bin/devices [cuda]\n");
        return 2;
    }
    printf("cpu: available\ncuda: %s%s\n", cuda ? "" : "unavailable: ", why);
    return 0;
}
