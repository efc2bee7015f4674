/* SPDX-License-Identifier: Apache-2.0 */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

int kmsenv_open_regular(const char *path, struct stat *st, char *why,
                        size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(why, whylen,
                 "is not a regular file (a FIFO, device or "
                 "directory is never read)");
        close(fd);
        return -1;
    }
    return fd;
}

int kmsenv_read_regular(const char *path, size_t max, unsigned char **buf,
                        size_t *len, char *why, size_t whylen)
{
    struct stat st;
    unsigned char *b;
    size_t got = 0;
    ssize_t n;
    int fd = kmsenv_open_regular(path, &st, why, whylen);

    *buf = NULL;
    *len = 0;
    if (fd < 0)
        return 0;
    if ((unsigned long long)st.st_size > max) {
        snprintf(why, whylen, "is %lld bytes, larger than the limit of %zu",
                 (long long)st.st_size, max);
        close(fd);
        return 0;
    }
    /* One byte more than the limit, to see a file that grew meanwhile. */
    if ((b = OPENSSL_malloc(max + 1)) == NULL) {
        snprintf(why, whylen, "out of memory");
        close(fd);
        return 0;
    }
    for (;;) {
        if ((n = kmsenv_read_some(fd, b + got, max + 1 - got, why, whylen)) < 0)
            goto err;
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max) {
            snprintf(why, whylen, "is larger than the limit of %zu bytes", max);
            goto err;
        }
    }
    close(fd);
    *buf = b;
    *len = got;
    return 1;
err:
    close(fd);
    OPENSSL_free(b);
    return 0;
}

ssize_t kmsenv_read_some(int fd, void *buf, size_t n, char *why, size_t whylen)
{
    ssize_t r;

    while ((r = read(fd, buf, n)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        snprintf(why, whylen, "read error: %s", strerror(errno));
    return r;
}
