/* nb_settings_read: every row of setup/settings.h, from its checked text into its typed field. The
 * conversions are the config layer's own (strtoll, strtod, the boolean words), so a value reads the same here
 * as wherever the text is shown. */
#include "setup/settings.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_INT, F_FLOAT, F_BOOL, F_STR, F_ENUM, F_LIST } field_type;

typedef struct {
    const char *key, *choices;
    field_type type;
    size_t offset;
} field;

#define NB_FIELD_ROW(section, key, type, def, choices, help) \
    {#section "." #key, choices, F_##type, offsetof(nb_settings, section.key)},
static const field fields[] = {NB_SETTINGS(NB_FIELD_ROW)};
#undef NB_FIELD_ROW

static int choice_index(const char *choices, const char *v) {
    size_t vl = strlen(v);
    int i = 0;
    for (const char *p = choices; p && *p; i++) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && !strncmp(p, v, l)) return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1; /* the parser accepts no other value */
}

static void read_list(const char *p, nb_setting_list *l) {
    l->n = 0;
    char *end;
    while (*p && l->n < NB_SETTING_LIST_MAX) {
        l->v[l->n++] = strtod(p, &end);
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
}

void nb_settings_read(const nb_cfg *cfg, nb_settings *s) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const field *f = &fields[i];
        void *at = (char *)s + f->offset;
        const char *v = nb_cfg_str(cfg, f->key);
        switch (f->type) {
        case F_INT: *(int64_t *)at = strtoll(v, NULL, 10); break;
        case F_FLOAT: *(double *)at = strtod(v, NULL); break;
        case F_BOOL: *(bool *)at = nb_cfg_bool(cfg, f->key); break;
        case F_STR: snprintf((char *)at, NB_CFG_VALUE_MAX, "%s", v); break;
        case F_ENUM: {
            nb_setting_enum *e = at;
            e->id = choice_index(f->choices, v);
            snprintf(e->name, sizeof e->name, "%s", v);
            break;
        }
        case F_LIST: read_list(v, at); break;
        }
    }
}
