/* Choosing a model's task (see task.h). */
#include "task/task.h"

#include <stdlib.h>

nb_task *nb_task_for(nb_model *m, const nb_settings *s) {
    if (m->priors) return nb_task_detect(m);
    return nb_task_classify(m, (float)s->train.label_smoothing);
}

void nb_task_free(nb_task *t) {
    if (!t) return;
    if (t->destroy) t->destroy(t);
    free(t);
}
