/* bin/train CFG [section.key=value ...] [--resume] [--summary]: train (or resume, or describe) the model a
 * configuration file names. Ctrl-C saves last.h5 and prints the command that resumes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "train/trainer.h"

static volatile sig_atomic_t interrupted; /* the one piece of process state: a signal handler can only set a flag */

static void on_sigint(int sig) {
    (void)sig;
    if (interrupted) _exit(130); /* a second Ctrl-C does not wait for the checkpoint */
    interrupted = 1;
}

static int usage(void) {
    fprintf(stderr, "usage: bin/train CFG [section.key=value ...] [--resume] [--summary]\n"
                    "       bin/train --help-config     list every configuration key\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *cfg_path = NULL;
    bool resume = false, summary = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) resume = true;
        else if (!strcmp(argv[i], "--summary")) summary = true;
        else if (!strcmp(argv[i], "--help-config")) {
            nb_cfg_print_schema(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage() - 2;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "bin/train: unknown option %s\n", argv[i]);
            return usage();
        } else if (!cfg_path && !strchr(argv[i], '=')) cfg_path = argv[i];
    }
    if (!cfg_path) return usage();
    nb_cfg cfg;
    nb_cfg_init(&cfg);
    int rc = nb_cfg_load(&cfg, cfg_path);
    for (int i = 1; i < argc && rc == 0; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=')) rc = nb_cfg_override(&cfg, argv[i]);
    if (rc) {
        fprintf(stderr, "nibble: error: %s\n", cfg.err);
        nb_cfg_free(&cfg);
        return 1;
    }
    nb_ctx *ctx = nb_ctx_from_cfg(&cfg, false); /* errors print and exit 1 */
    if (summary) {
        nb_model *m = nb_model_from_cfg(ctx, &cfg);
        nb_print_summary(ctx, m, stdout);
        nb_model_free(m);
        nb_ctx_free(ctx);
        nb_cfg_free(&cfg);
        return 0;
    }
    nb_trainer t;
    nb_trainer_setup(&t, ctx, &cfg, resume);
    signal(SIGINT, on_sigint);
    t.stop = &interrupted;
    rc = nb_trainer_run(&t);
    nb_trainer_free(&t);
    nb_ctx_free(ctx);
    nb_cfg_free(&cfg);
    return rc == 1 ? 130 : rc ? 1 : 0;
}
