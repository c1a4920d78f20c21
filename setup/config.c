/* The configuration parser, checking every key against the rows of setup/settings.h. */
#include "setup/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"
#include "setup/settings.h"

typedef enum { T_INT, T_FLOAT, T_STR, T_BOOL, T_ENUM, T_LIST } key_type;

typedef struct {
    const char *name; /* section.key */
    key_type type;
    const char *def;
    const char *choices; /* T_ENUM: "a|b|c" */
    const char *help;
} key_spec;

/* the rows of setup/settings.h, in their order */
#define NB_SCHEMA_ROW(section, key, type, def, choices, help) {#section "." #key, T_##type, def, choices, help},
static const key_spec schema[] = {NB_SETTINGS(NB_SCHEMA_ROW)};
#undef NB_SCHEMA_ROW
#define N_KEYS (int)(sizeof schema / sizeof schema[0])

static int key_index(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(schema[i].name, name)) return i;
    return -1;
}

void nb_cfg_init(nb_cfg *c) {
    memset(c, 0, sizeof *c);
    c->values = nb_xcalloc(N_KEYS, sizeof *c->values);
    for (int i = 0; i < N_KEYS; i++) snprintf(c->values[i].value, NB_CFG_VALUE_MAX, "%s", schema[i].def);
}

void nb_cfg_free(nb_cfg *c) {
    free(c->values);
    c->values = NULL;
}

static int fail(nb_cfg *c, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(nb_cfg *c, const char *file, int line, const char *fmt, ...) {
    int off = line > 0 ? snprintf(c->err, sizeof c->err, "%s:%d: ", file, line) : snprintf(c->err, sizeof c->err, "%s: ", file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + off, sizeof c->err - (size_t)off, fmt, ap);
    va_end(ap);
    return -1;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* The known key (within `section`, or a section name when key is NULL) closest to what was written. */
static const char *nearest(const char *section, const char *key, char *buf, size_t n) {
    int best = 1 << 30;
    buf[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const char *dot = strchr(schema[i].name, '.');
        size_t sl = (size_t)(dot - schema[i].name);
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)sl, schema[i].name);
        int d;
        if (!key) {
            d = edit_distance(section, sec);
            if (d < best) best = d, snprintf(buf, n, "%s", sec);
        } else {
            d = edit_distance(key, dot + 1) + (strcmp(section, sec) ? 2 : 0);
            if (d < best) best = d, snprintf(buf, n, "%s", schema[i].name);
        }
    }
    return buf;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static int check_value(nb_cfg *c, int k, const char *v, const char *file, int line) {
    const key_spec *s = &schema[k];
    char *end;
    errno = 0;
    switch (s->type) {
    case T_INT: {
        long long x = strtoll(v, &end, 10);
        (void)x;
        if (!*v || *end || errno) return fail(c, file, line, "%s = '%s': expected an integer", s->name, v);
        break;
    }
    case T_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return fail(c, file, line, "%s = '%s': expected a number", s->name, v);
        break;
    }
    case T_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false") && strcmp(v, "1") && strcmp(v, "0") && strcmp(v, "yes") &&
            strcmp(v, "no"))
            return fail(c, file, line, "%s = '%s': expected true or false", s->name, v);
        break;
    case T_ENUM: {
        const char *p = s->choices;
        size_t vl = strlen(v);
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == vl && !strncmp(p, v, l)) return 0;
            p = bar ? bar + 1 : NULL;
        }
        return fail(c, file, line, "%s = '%s': expected one of %s", s->name, v, s->choices);
    }
    case T_LIST: {
        const char *p = v;
        while (*p) {
            strtod(p, &end);
            if (end == p) return fail(c, file, line, "%s = '%s': expected comma-separated numbers", s->name, v);
            p = end;
            while (isspace((unsigned char)*p)) p++;
            if (*p == ',') p++;
            else if (*p) return fail(c, file, line, "%s = '%s': expected comma-separated numbers", s->name, v);
            while (isspace((unsigned char)*p)) p++;
        }
        break;
    }
    case T_STR: break;
    }
    return 0;
}

static int set(nb_cfg *c, const char *section, const char *key, const char *value, const char *file, int line) {
    char full[192];
    snprintf(full, sizeof full, "%s.%s", section, key);
    int k = key_index(full);
    if (k < 0) {
        char near[128];
        nearest(section, key, near, sizeof near);
        return fail(c, file, line, "unknown key '%s' in [%s]; did you mean '%s'?", key, section, near);
    }
    if (strlen(value) >= NB_CFG_VALUE_MAX) return fail(c, file, line, "value of %s is too long", full);
    /* the resolved cfg is written out as text (checkpoints carry it): a value must read back as itself */
    for (const char *p = value; *p; p++)
        if (*p == '#' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(c, file, line, "value of %s contains %s, which a cfg file cannot hold", full,
                        *p == '#' ? "'#' (it starts a comment)" : "a control character");
    if (check_value(c, k, value, file, line)) return -1;
    nb_cfg_value *v = &c->values[k];
    snprintf(v->value, sizeof v->value, "%s", value);
    snprintf(v->file, sizeof v->file, "%s", file);
    v->line = line;
    return 0;
}

static bool known_section(const char *s) {
    size_t l = strlen(s);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(schema[i].name, s, l) && schema[i].name[l] == '.') return true;
    return false;
}

static int parse(nb_cfg *c, const char *text, const char *file, int depth, bool from_file);

static int load_file(nb_cfg *c, const char *path, int depth) {
    if (depth > 8) return fail(c, path, 0, "includes nest more than 8 deep (an include cycle?)");
    FILE *f = fopen(path, "rb");
    if (!f) return fail(c, path, 0, "cannot open config file: %s", strerror(errno));
    /* a directory opens too (its size reads as anything); a cfg is a text file of a few KB */
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
        bool reg = S_ISREG(st.st_mode);
        fclose(f);
        return fail(c, path, 0, reg ? "is larger than 1 MB: not a config file" : "is not a regular file");
    }
    long n = (long)st.st_size;
    char *text = nb_xmalloc((size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    fclose(f);
    text[got] = 0;
    int rc = parse(c, text, path, depth, true);
    free(text);
    return rc;
}

/* Keys that name a file relative to the cfg that sets them (includes are resolved the same way) */
static bool relative_to_cfg(const char *section, const char *key) { return !strcmp(section, "model") && !strcmp(key, "onnx"); }

/* value, relative to file's directory, as an absolute path (checkpoints carry the resolved configuration, which
 * must still name the file when read from elsewhere); value itself when it is absolute or empty */
static void resolve_path(const char *file, const char *value, char *out, size_t n) {
    if (!value[0] || value[0] == '/') {
        snprintf(out, n, "%s", value);
        return;
    }
    char dir[NB_CFG_PATH_MAX], real[PATH_MAX];
    /* a path too long for the value is cut; the import then reports the file it cannot open */
    const char *slash = strrchr(file, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - file) : 1, slash ? file : ".");
    const char *base = realpath(dir, real) ? real : dir;
    if (snprintf(out, n, "%s/%s", base, value) >= (int)n) snprintf(out, n, "%s", value);
}

static int parse(nb_cfg *c, const char *text, const char *file, int depth, bool from_file) {
    char section[64] = "";
    int line_no = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[2048];
        line_no++;
        if (len >= sizeof line) return fail(c, file, line_no, "line too long");
        memcpy(line, p, len);
        line[len] = 0;
        p = eol ? eol + 1 : p + len;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1]) return fail(c, file, line_no, "malformed section header '%s'", s);
            *close = 0;
            char *name = trim(s + 1);
            if (!known_section(name)) {
                char near[64];
                nearest(name, NULL, near, sizeof near);
                return fail(c, file, line_no, "unknown section [%s]; did you mean [%s]?", name, near);
            }
            snprintf(section, sizeof section, "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) return fail(c, file, line_no, "expected 'key = value', got '%s'", s);
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        if (!strcmp(key, "include")) {
            char inc[NB_CFG_PATH_MAX * 2];
            if (value[0] == '/') {
                snprintf(inc, sizeof inc, "%s", value);
            } else {
                /* relative to the including file */
                const char *slash = strrchr(file, '/');
                if (slash) snprintf(inc, sizeof inc, "%.*s/%s", (int)(slash - file), file, value);
                else snprintf(inc, sizeof inc, "%s", value);
            }
            if (load_file(c, inc, depth + 1)) return -1;
            continue;
        }
        if (!section[0]) return fail(c, file, line_no, "key '%s' outside any [section]", key);
        char resolved[NB_CFG_VALUE_MAX];
        if (from_file && relative_to_cfg(section, key)) {
            resolve_path(file, value, resolved, sizeof resolved);
            value = resolved;
        }
        if (set(c, section, key, value, file, line_no)) return -1;
    }
    return 0;
}

int nb_cfg_load(nb_cfg *c, const char *path) {
    snprintf(c->path, sizeof c->path, "%s", path);
    return load_file(c, path, 0);
}

int nb_cfg_load_string(nb_cfg *c, const char *text, const char *name) { return parse(c, text, name, 0, false); }

int nb_cfg_override(nb_cfg *c, const char *assignment) {
    const char *eq = strchr(assignment, '='), *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        return fail(c, "command line", 0, "override '%s' is not of the form section.key=value", assignment);
    char section[64], key[128];
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    if (!known_section(section)) {
        char near[64];
        nearest(section, NULL, near, sizeof near);
        return fail(c, "command line", 0, "unknown section '%s' in '%s'; did you mean '%s'?", section, assignment, near);
    }
    char value[NB_CFG_VALUE_MAX];
    snprintf(value, sizeof value, "%s", eq + 1);
    return set(c, section, trim(key), trim(value), "command line", 0);
}

static const nb_cfg_value *get(const nb_cfg *c, const char *key) {
    int k = key_index(key);
    if (k < 0) nb_panic(__FILE__, __LINE__, "configuration key not in the schema");
    return &c->values[k];
}

const char *nb_cfg_str(const nb_cfg *c, const char *key) { return get(c, key)->value; }
int64_t nb_cfg_int(const nb_cfg *c, const char *key) { return strtoll(get(c, key)->value, NULL, 10); }
double nb_cfg_float(const nb_cfg *c, const char *key) { return strtod(get(c, key)->value, NULL); }

bool nb_cfg_bool(const nb_cfg *c, const char *key) {
    const char *v = get(c, key)->value;
    return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
}

int nb_cfg_floats(const nb_cfg *c, const char *key, double *out, int max) {
    const char *p = get(c, key)->value;
    int n = 0;
    char *end;
    while (*p && n < max) {
        out[n++] = strtod(p, &end);
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
    return n;
}

bool nb_cfg_is_set(const nb_cfg *c, const char *key) { return get(c, key)->file[0] != 0; }

void nb_cfg_write(const nb_cfg *c, FILE *f) {
    fprintf(f, "# resolved configuration of %s: every key, with where its value came from\n", c->path[0] ? c->path : "(string)");
    char section[64] = "";
    for (int i = 0; i < N_KEYS; i++) {
        const char *dot = strchr(schema[i].name, '.');
        if (strncmp(section, schema[i].name, (size_t)(dot - schema[i].name)) || section[dot - schema[i].name]) {
            snprintf(section, sizeof section, "%.*s", (int)(dot - schema[i].name), schema[i].name);
            fprintf(f, "\n[%s]\n", section);
        }
        const nb_cfg_value *v = &c->values[i];
        if (v->line > 0) fprintf(f, "%s = %s  # %s:%d\n", dot + 1, v->value, v->file, v->line);
        else if (v->file[0]) fprintf(f, "%s = %s  # %s\n", dot + 1, v->value, v->file);
        else fprintf(f, "%s = %s  # default\n", dot + 1, v->value);
    }
}

char *nb_cfg_to_string(const nb_cfg *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    nb_cfg_write(c, f);
    fclose(f);
    return buf;
}

void nb_cfg_print_schema(FILE *f) {
    int w = 0; /* the longest name sets the column, so that the defaults line up */
    for (int i = 0; i < N_KEYS; i++) w = (int)strlen(schema[i].name) > w ? (int)strlen(schema[i].name) : w;
    for (int i = 0; i < N_KEYS; i++)
        fprintf(f, "  %-*s %-10s %s%s%s\n", w, schema[i].name, schema[i].def[0] ? schema[i].def : "\"\"", schema[i].help,
                schema[i].choices ? "; one of " : "", schema[i].choices ? schema[i].choices : "");
}
