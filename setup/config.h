/* Experiment configuration: INI-style .cfg files ([section], key = value, # comments, include = path),
 * checked against a schema of known keys with types and defaults, plus section.key=value overrides from the
 * command line. Errors name file:line and suggest the nearest valid key. */
#ifndef NB_CONFIG_H
#define NB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NB_CFG_VALUE_MAX 512
#define NB_CFG_PATH_MAX 512

typedef struct {
    char value[NB_CFG_VALUE_MAX];
    char file[NB_CFG_PATH_MAX]; /* where it was set ("" for the default, "command line" for overrides) */
    int line;
} nb_cfg_value;

typedef struct {
    nb_cfg_value *values; /* one per schema entry */
    char path[NB_CFG_PATH_MAX]; /* the top-level file */
    char err[1024];
} nb_cfg;

void nb_cfg_init(nb_cfg *c);
void nb_cfg_free(nb_cfg *c);
/* Parse a file (and its includes) over the current values. 0, or -1 with c->err set. */
int nb_cfg_load(nb_cfg *c, const char *path);
/* Parse text as if it were a file named `name` (used to read the config stored in a checkpoint). */
int nb_cfg_load_string(nb_cfg *c, const char *text, const char *name);
/* Apply "section.key=value". 0, or -1 with c->err set. */
int nb_cfg_override(nb_cfg *c, const char *assignment);

const char *nb_cfg_str(const nb_cfg *c, const char *key); /* "section.key"; aborts on a key not in the schema */
int64_t nb_cfg_int(const nb_cfg *c, const char *key);
double nb_cfg_float(const nb_cfg *c, const char *key);
bool nb_cfg_bool(const nb_cfg *c, const char *key);
/* Comma-separated numbers; returns the count (at most max). */
int nb_cfg_floats(const nb_cfg *c, const char *key, double *out, int max);
bool nb_cfg_is_set(const nb_cfg *c, const char *key); /* set by a file or override, not a default */

/* The fully resolved configuration, every key, with where each value came from as a comment. */
void nb_cfg_write(const nb_cfg *c, FILE *f);
char *nb_cfg_to_string(const nb_cfg *c); /* malloc'd */

/* The schema, for documentation (`bin/train --help-config`). */
void nb_cfg_print_schema(FILE *f);

#endif
