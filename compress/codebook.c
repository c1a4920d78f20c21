/* Codebooks and projections onto them. */
#include "compress/codebook.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nb_codebook_parse(const char *name, nb_codebook *cb) {
    memset(cb, 0, sizeof *cb);
    snprintf(cb->name, sizeof cb->name, "%s", name);
    int n = -1;
    if (!strcmp(name, "binary")) {
        cb->levels[cb->n_levels++] = 1;
        cb->bits = 1;
        return 0;
    }
    if (!strcmp(name, "int8") || !strcmp(name, "int4")) {
        cb->zero = true;
        cb->bits = name[3] == '8' ? 8 : 4;
        cb->uniform_max = (1 << (cb->bits - 1)) - 1;
        return 0;
    }
    if (!strcmp(name, "ternary")) n = 0;
    else if (!strcmp(name, "pm2")) n = 1;
    else if (!strcmp(name, "pm4")) n = 2;
    else if (!strncmp(name, "pow2_", 5)) {
        char *end;
        long v = strtol(name + 5, &end, 10);
        if (*end || v < 1 || v > 6) return -1;
        n = (int)v;
    } else {
        return -1;
    }
    cb->zero = true;
    for (int i = 0; i <= n; i++) cb->levels[cb->n_levels++] = 1 << i;
    /* codes span -2^n .. 2^n: 2(n+1)+1 values */
    int values = 2 * cb->n_levels + 1;
    while ((1 << cb->bits) < values) cb->bits++;
    return 0;
}

/* The magnitudes a code can take, ascending: 0 first where the codebook has it. */
static int magnitudes(const nb_codebook *cb, double *m) {
    int k = 0;
    if (cb->zero) m[k++] = 0.0;
    for (int i = 0; i < cb->n_levels; i++) m[k++] = cb->levels[i];
    return k;
}

static int nearest(const double *m, int k, double r) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (fabs(r - m[j]) < fabs(r - m[best])) best = j;
    return best;
}

static void encode(const nb_codebook *cb, const float *v, int64_t n, float alpha, int8_t *codes) {
    if (cb->uniform_max) {
        for (int64_t i = 0; i < n; i++) {
            double q = alpha > 0 ? nearbyint(fabs((double)v[i]) / alpha) : 0.0;
            int lvl = q > cb->uniform_max ? cb->uniform_max : (int)q;
            codes[i] = (int8_t)(v[i] < 0 ? -lvl : lvl);
        }
        return;
    }
    double m[NB_CODEBOOK_MAX_LEVELS + 1];
    int k = magnitudes(cb, m);
    for (int64_t i = 0; i < n; i++) {
        int lvl = alpha > 0 ? (int)m[nearest(m, k, fabs((double)v[i]) / alpha)] : (int)m[0];
        codes[i] = (int8_t)(v[i] < 0 ? -lvl : lvl);
    }
}

static int by_magnitude_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static float project_uniform(const nb_codebook *cb, const float *v, int64_t n, int8_t *codes) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(v[i]));
    float alpha = amax / (float)cb->uniform_max, best = alpha;
    int8_t *q = malloc((size_t)n);
    double best_err = INFINITY;
    for (int it = 0; it < 20 && alpha > 0; it++) {
        encode(cb, v, n, alpha, q);
        double err = nb_project_error(v, n, alpha, q), vq = 0.0, qq = 0.0;
        if (err < best_err) best_err = err, best = alpha;
        for (int64_t i = 0; i < n; i++) vq += (double)v[i] * q[i], qq += (double)q[i] * q[i];
        float next = qq > 0 ? (float)(vq / qq) : alpha;
        if (next == alpha) break;
        alpha = next;
    }
    free(q);
    if (codes) encode(cb, v, n, best, codes);
    return best;
}

float nb_project_optimal(const nb_codebook *cb, const float *v, int64_t n, int8_t *codes) {
    if (n <= 0) return 0.0f;
    if (cb->uniform_max) return project_uniform(cb, v, n, codes);
    double m[NB_CODEBOOK_MAX_LEVELS + 1];
    int k = magnitudes(cb, m);
    float *a = malloc(sizeof(float) * (size_t)n);
    double svv = 0.0, sa = 0.0;
    for (int64_t i = 0; i < n; i++) {
        a[i] = fabsf(v[i]);
        svv += (double)a[i] * a[i];
        sa += a[i];
    }
    qsort(a, (size_t)n, sizeof(float), by_magnitude_desc);
    /* Every element starts at the lowest magnitude (alpha -> infinity). Element i moves from level j to j+1
     * when alpha falls below a_i * c_j, c_j = 2 / (m_j + m_{j+1}): with a sorted, each level's events come in
     * order, so a (k-1)-way merge visits all events in descending alpha. */
    double c[NB_CODEBOOK_MAX_LEVELS];
    for (int j = 0; j + 1 < k; j++) c[j] = 2.0 / (m[j] + m[j + 1]);
    int64_t next[NB_CODEBOOK_MAX_LEVELS] = {0}; /* next element to move from level j to j+1 */
    double svq = m[0] * sa, sqq = m[0] * m[0] * (double)n;
    double prev = INFINITY, best_f = svv, best_alpha = 0.0;
    for (;;) {
        /* the next event: the largest a_i * c_j among the lists (an element moves up one level at a time) */
        int jb = -1;
        double ab = -1.0;
        for (int j = 0; j + 1 < k; j++) {
            /* element next[j] can rise past level j only once it has reached it */
            if (next[j] >= n || (j > 0 && next[j] >= next[j - 1])) continue;
            double ev = (double)a[next[j]] * c[j];
            if (ev > ab) {
                ab = ev;
                jb = j;
            }
        }
        double lo = jb >= 0 ? ab : 0.0;
        if (sqq > 0.0) {
            double alpha = svq / sqq;
            if (alpha > prev) alpha = prev;
            if (alpha < lo) alpha = lo;
            double f = svv - 2.0 * alpha * svq + alpha * alpha * sqq;
            if (f < best_f && alpha > 0.0) {
                best_f = f;
                best_alpha = alpha;
            }
        }
        if (jb < 0) break;
        double ai = a[next[jb]];
        svq += ai * (m[jb + 1] - m[jb]);
        sqq += m[jb + 1] * m[jb + 1] - m[jb] * m[jb];
        next[jb]++;
        prev = ab;
    }
    free(a);
    float alpha = (float)best_alpha;
    if (codes) encode(cb, v, n, alpha, codes);
    return alpha;
}

float nb_project_round(const nb_codebook *cb, const float *v, int64_t n, int8_t *codes) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(v[i]));
    float alpha = amax / (float)(cb->uniform_max ? cb->uniform_max : cb->levels[cb->n_levels - 1]);
    if (codes) encode(cb, v, n, alpha, codes);
    return alpha;
}

float nb_project_twn(const float *v, int64_t n, int8_t *codes) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)v[i]);
    double delta = n ? 0.7 * s / (double)n : 0.0, sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)v[i]) > delta) {
            sum += fabs((double)v[i]);
            count++;
        }
    if (codes)
        for (int64_t i = 0; i < n; i++) codes[i] = (int8_t)(fabs((double)v[i]) > delta ? (v[i] < 0 ? -1 : 1) : 0);
    return count ? (float)(sum / (double)count) : 0.0f;
}

float nb_project_bwn(const float *v, int64_t n, int8_t *codes) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)v[i]);
    if (codes)
        for (int64_t i = 0; i < n; i++) codes[i] = (int8_t)(v[i] < 0 ? -1 : 1);
    return n ? (float)(s / (double)n) : 0.0f;
}

double nb_project_error(const float *v, int64_t n, float alpha, const int8_t *codes) {
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)v[i] - (double)alpha * codes[i];
        e += d * d;
    }
    return e;
}
