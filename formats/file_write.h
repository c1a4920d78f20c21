/* Writing a whole file so that no failure leaves a broken one: the bytes go to PATH.tmp.<pid>, are flushed and
 * synced, and only then renamed over PATH. A full disk, a file-size limit (EFBIG: nibble's contexts ignore
 * SIGXFSZ), a read-only or vanished directory: an error naming PATH and the reason, the temporary file removed
 * and an earlier PATH exactly as it was. Checkpoints, exports and decrypted models are written through here. */
#ifndef NB_FILE_WRITE_H
#define NB_FILE_WRITE_H

#include <stddef.h>

#include "core/context.h"

/* what names the kind of file in the message ("checkpoint", "model"). 0, or -1 after reporting. */
int nb_write_file_atomic(nb_ctx *ctx, const char *path, const void *bytes, size_t n, const char *what);

#endif
