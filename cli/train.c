/* bin/train CFG [section.key=value ...] [--resume] [--summary]: train (or resume, or describe) the model a
 * configuration file names. Ctrl-C (or SIGTERM, as a job scheduler sends it) saves last.h5 and prints the
 * command that resumes. Under mpirun (or srun)
 * the ranks train data-parallel: see train/dist.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/context.h"
#include "core/check.h"
#include "import/onnx_import.h"
#include "setup/assemble.h"
#include "train/trainer.h"

static volatile sig_atomic_t interrupted; /* the one piece of process state: a signal handler can only set a flag */
/* what to say when the job is torn down (mpirun's SIGTERM after another rank died): formatted before training,
 * because a signal handler may only write() */
static char on_term_message[1200];

static void on_sigterm(int sig) {
    (void)sig;
    ssize_t w = write(2, on_term_message, strlen(on_term_message));
    (void)w;
    _exit(143);
}

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

static int run(int argc, char **argv, nb_dist *dist) {
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
    nb_settings *s = nb_xmalloc(sizeof *s);
    nb_settings_read(&cfg, s);
    nb_ctx *ctx = nb_ctx_for(s, NB_DEVICE_AS_ASKED); /* errors print and exit 1 */
    if (summary) {
        nb_model *m = nb_model_for(ctx, s);
        if (nb_onnx_is_imported(m)) nb_onnx_describe(m, stdout);
        nb_print_summary(m, stdout);
        if (s->train.precision.id == NB_PRECISION_BF16)
            printf("train.precision = bf16: %s\n",
                   !nb_autocast_supported(ctx, NB_BF16) ? "this backend has no bf16 kernels (training refuses it)"
                   : nb_autocast_native(ctx, NB_BF16) ? "computed natively by this CPU (AVX-512 BF16 or AMX)"
                                                       : "emulated on this CPU (no AVX-512 BF16 or AMX): correct, but slower than fp32");
        nb_model_free(m);
        nb_ctx_free(ctx);
        free(s);
        nb_cfg_free(&cfg);
        return 0;
    }
    free(s);
    nb_trainer t;
    nb_trainer_setup(&t, ctx, &cfg, resume ? NB_RUN_RESUME : NB_RUN_NEW, dist);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint); /* alone: a scheduler's SIGTERM saves as Ctrl-C does (with ranks: below) */
    t.stop = &interrupted;
    if (nb_dist_size(dist) > 1 && t.writer) {
        snprintf(on_term_message, sizeof on_term_message,
                 "\nnibble: the job was stopped (another rank failed, or mpirun was signalled). %s/last.h5 is the "
                 "last complete checkpoint; resume with: mpirun -np %d bin/train %s --resume\n",
                 t.out, nb_dist_size(dist), cfg_path);
        signal(SIGTERM, on_sigterm);
    }
    rc = nb_trainer_run(&t);
    nb_trainer_free(&t);
    nb_ctx_free(ctx);
    nb_cfg_free(&cfg);
    return rc == 1 ? 130 : rc ? 1 : 0;
}

int main(int argc, char **argv) {
    nb_dist *dist = nb_dist_init(&argc, &argv);
    int rc = run(argc, argv, dist);
    nb_dist_finalize(dist);
    return rc;
}
