/* Whole-file writes through a temporary file and a rename (file_write.h). */
#include "formats/file_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"

int nb_write_file_atomic(nb_ctx *ctx, const char *path, const void *bytes, size_t n, const char *what) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    NB_REQUIRE(ctx, fd >= 0, -1, path, "cannot write the %s: cannot create %s: %s", what, tmp, strerror(errno));
    /* the first error's errno, before close and unlink can change it */
    int err = 0;
    for (size_t done = 0; done < n && !err;) {
        ssize_t w = write(fd, (const char *)bytes + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) err = w < 0 ? errno : EIO;
        else done += (size_t)w;
    }
    /* the data must be on disk before the name points at it */
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        NB_FAIL(ctx, path, "cannot write the %s: %s; an earlier file of this name is unchanged", what, strerror(err));
        return -1;
    }
    return 0;
}
