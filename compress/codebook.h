/* Low-bit codebooks {α·q : q ∈ ±levels} and the projection of a weight vector onto them (ADMM's G-step):
 * the α and codes that minimise ||v - α·q||². The projection is exact, not only a fixed point of alternating
 * α = <v,q>/<q,q> with nearest-level q: as α falls, each |v_i|/α crosses the midpoints between levels in a
 * known order, so sweeping those crossings visits every assignment that can be optimal, and within each the
 * best α is closed-form. Also the naive baselines: round-to-nearest with a min-max scale, and TWN's and BWN's
 * closed forms. All of it runs on host arrays. */
#ifndef NB_CODEBOOK_H
#define NB_CODEBOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_CODEBOOK_MAX_LEVELS 8

typedef struct {
    char name[24];  /* binary, ternary, pm2, pm4, pow2_N */
    bool zero;      /* 0 is a level (all but binary) */
    int n_levels;   /* positive magnitudes, ascending */
    int levels[NB_CODEBOOK_MAX_LEVELS];
    int bits;       /* bits a code needs, sign included */
    int uniform_max; /* int8, int4: every integer in [-uniform_max, uniform_max] (levels unused), else 0 */
} nb_codebook;

/* binary {±1}, ternary {0,±1}, pm2 {0,±1,±2}, pm4 {0,±1,±2,±4}, pow2_N {0,±1,±2,...,±2^N} (N = 1..6), and
 * the uniform int8 {-127..127} and int4 {-7..7} of ordinary fixed-point deployment. 0, or -1 when the name
 * is none of these. */
int nb_codebook_parse(const char *name, nb_codebook *cb);

/* The optimal projection of v[0..n) onto cb: returns α (> 0, or 0 when v is all zeros) and writes the codes
 * (signed levels) when codes is not NULL. For the uniform codebooks (hundreds of levels) the exact sweep
 * gives way to alternating α = <v,q>/<q,q> and q = round(v/α) from the min-max scale, keeping the best α
 * seen: a local optimum, never worse than min-max rounding. */
float nb_project_optimal(const nb_codebook *cb, const float *v, int64_t n, int8_t *codes);

/* Round to nearest with a min-max scale: α = max|v| / largest level, codes = nearest level of v/α. */
float nb_project_round(const nb_codebook *cb, const float *v, int64_t n, int8_t *codes);

/* TWN (Li & Liu 2016): threshold 0.7·mean|v|, α = mean |v| above it. BWN (Rastegari et al. 2016): α =
 * mean|v|, codes sign(v). Only for the ternary and binary codebooks. */
float nb_project_twn(const float *v, int64_t n, int8_t *codes);
float nb_project_bwn(const float *v, int64_t n, int8_t *codes);

/* ||v - α·codes||² */
double nb_project_error(const float *v, int64_t n, float alpha, const int8_t *codes);

#endif
