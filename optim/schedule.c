/* Learning-rate schedules in closed form, matching torch.optim.lr_scheduler's StepLR, MultiStepLR,
 * CosineAnnealingLR, PolynomialLR and LinearLR warm-up chained by SequentialLR. */
#include <math.h>

#include "optim/optim.h"

const char *nb_sched_name(nb_sched_kind k) {
    switch (k) {
    case NB_SCHED_CONSTANT: return "constant";
    case NB_SCHED_STEP: return "step";
    case NB_SCHED_MULTISTEP: return "multistep";
    case NB_SCHED_COSINE: return "cosine";
    case NB_SCHED_POLY: return "poly";
    }
    return "?";
}

double nb_schedule_lr(const nb_schedule *s, double t) {
    double base = s->base_lr;
    if (s->warmup > 0 && t < s->warmup) {
        double f = s->warmup_start_factor + (1.0 - s->warmup_start_factor) * (t / s->warmup);
        return base * f;
    }
    double u = t - (s->warmup > 0 ? s->warmup : 0);
    double len = s->total - (s->warmup > 0 ? s->warmup : 0);
    switch (s->kind) {
    case NB_SCHED_CONSTANT: return base;
    case NB_SCHED_STEP: return s->step_size > 0 ? base * pow(s->gamma, floor(u / s->step_size)) : base;
    case NB_SCHED_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < s->n_milestones; i++)
            if (u >= s->milestones[i]) passed++;
        return base * pow(s->gamma, passed);
    }
    case NB_SCHED_COSINE:
        if (len <= 0) return base;
        if (u > len) u = len;
        return s->min_lr + (base - s->min_lr) * (1.0 + cos(M_PI * u / len)) / 2.0;
    case NB_SCHED_POLY:
        if (len <= 0) return base;
        if (u > len) u = len;
        return base * pow(1.0 - u / len, s->power);
    }
    return base;
}
