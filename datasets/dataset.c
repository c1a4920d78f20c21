/* What every dataset shares: releasing it, whichever reader made it. */
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "datasets/det_data.h"

void nb_dataset_free(nb_dataset *ds) {
    free(ds->images);
    free(ds->labels);
    for (int64_t i = 0; ds->files && i < ds->n; i++) free(ds->files[i]);
    free(ds->files);
    for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    if (ds->skipped) {
        pthread_mutex_destroy(&ds->skipped->mu);
        free(ds->skipped->bad);
        free(ds->skipped);
    }
    nb_det_data_free(ds->det);
    memset(ds, 0, sizeof *ds);
}
