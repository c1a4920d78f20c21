/* Fuzz target: the cfg parser. One input holds a cfg file, a second file it may include (include = inc.cfg)
 * and command-line overrides, one per line, separated by "\n--\n". A cfg that loads must also survive its own
 * round trip: written out (nb_cfg_to_string, what checkpoints store) and read back, it gives the same
 * settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/support/fuzz_files.h"
#include "setup/config.h"
#include "setup/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3];
    size_t len[3];
    int n = fz_split(data, size, part, len, 3);
    fz_ctx();
    const char *inc = fz_write("inc.cfg", n > 1 ? part[1] : (const uint8_t *)"", n > 1 ? len[1] : 0);
    (void)inc;
    const char *main_cfg = fz_write("main.cfg", part[0], len[0]);
    nb_cfg c;
    nb_cfg_init(&c);
    int rc = nb_cfg_load(&c, main_cfg);
    if (rc == 0 && n > 2) {
        /* each line an override, as bin/train's arguments */
        char *ov = malloc(len[2] + 1);
        memcpy(ov, part[2], len[2]);
        ov[len[2]] = 0;
        for (char *line = strtok(ov, "\n"); line && rc == 0; line = strtok(NULL, "\n")) rc = nb_cfg_override(&c, line);
        free(ov);
    }
    if (rc == 0) {
        char *text = nb_cfg_to_string(&c);
        nb_cfg back;
        nb_cfg_init(&back);
        if (nb_cfg_load_string(&back, text, "round trip")) {
            fprintf(stderr, "a loaded cfg does not read back: %s\n--- written:\n%s\n", back.err, text);
            abort();
        }
        /* every value as it was (where each came from differs: the copy's origin is "round trip") */
        nb_settings *a = malloc(sizeof *a), *b = malloc(sizeof *b);
        memset(a, 0, sizeof *a);
        memset(b, 0, sizeof *b);
        nb_settings_read(&c, a);
        nb_settings_read(&back, b);
        char *ta = nb_cfg_to_string(&back);
        if (memcmp(a, b, sizeof *a)) {
            fprintf(stderr, "a cfg's round trip changes its settings:\n--- first:\n%s\n--- again:\n%s\n", text, ta);
            abort();
        }
        free(ta);
        free(a);
        free(b);
        free(text);
        nb_cfg_free(&back);
    }
    nb_cfg_free(&c);
    return 0;
}
