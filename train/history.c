/* metrics.jsonl reading and trimming. The file is nibble's own output, one flat JSON object per line, so a
 * key lookup by name is all the parsing it needs. */
#include "train/history.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"

static double field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    if (!p) return NAN;
    p += strlen(pat);
    if (!strncmp(p, "nan", 3) || !strncmp(p, "-nan", 4)) return NAN;
    return strtod(p, NULL);
}

void nb_history_add_step(nb_history *h, double epoch, double loss) {
    if (h->n_steps == h->cap_steps) {
        h->cap_steps = h->cap_steps ? h->cap_steps * 2 : 256;
        h->step_epoch = nb_xrealloc(h->step_epoch, sizeof(double) * (size_t)h->cap_steps);
        h->step_loss = nb_xrealloc(h->step_loss, sizeof(double) * (size_t)h->cap_steps);
    }
    h->step_epoch[h->n_steps] = epoch;
    h->step_loss[h->n_steps++] = loss;
}

void nb_history_add_epoch(nb_history *h, double epoch, double train_top1, double val_loss, double val_top1) {
    if (h->n_epochs == h->cap_epochs) {
        h->cap_epochs = h->cap_epochs ? h->cap_epochs * 2 : 64;
        size_t b = sizeof(double) * (size_t)h->cap_epochs;
        h->epoch = nb_xrealloc(h->epoch, b);
        h->train_top1 = nb_xrealloc(h->train_top1, b);
        h->val_loss = nb_xrealloc(h->val_loss, b);
        h->val_top1 = nb_xrealloc(h->val_top1, b);
    }
    int i = h->n_epochs++;
    h->epoch[i] = epoch;
    h->train_top1[i] = train_top1;
    h->val_loss[i] = val_loss;
    h->val_top1[i] = val_top1;
}

int nb_history_load(nb_history *h, const char *path, int64_t last_step) {
    memset(h, 0, sizeof *h);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        double step = field(line, "step");
        if (isnan(step) || step > (double)last_step) continue;
        if (strstr(line, "\"type\": \"epoch\""))
            nb_history_add_epoch(h, field(line, "epoch"), field(line, "train_top1"), field(line, "val_loss"),
                                 field(line, "val_top1"));
        else
            nb_history_add_step(h, field(line, "epoch"), field(line, "train_loss"));
        if (o) fputs(line, o);
    }
    fclose(f);
    /* the file is replaced only by a complete copy (a full disk leaves it as it was) */
    if (o && (ferror(o) | fclose(o)) == 0) rename(tmp, path);
    else if (o) unlink(tmp);
    return 0;
}

void nb_history_free(nb_history *h) {
    free(h->step_epoch);
    free(h->step_loss);
    free(h->epoch);
    free(h->train_top1);
    free(h->val_loss);
    free(h->val_top1);
    memset(h, 0, sizeof *h);
}
