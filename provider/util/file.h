/* SPDX-License-Identifier: Apache-2.0 */
/* Opening files whose names come from hostile input (a keyset names its KEK
 * file; a URI names a keyset): never blocks (a FIFO or device is opened
 * O_NONBLOCK and then refused), requires a regular file, and never truncates
 * silently. Failures are described in why (nothing raised), so each caller
 * raises its own error naming the key and the file's role. */
#ifndef KMSENV_UTIL_FILE_H
#define KMSENV_UTIL_FILE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Returns an fd opened read-only, non-blocking and close-on-exec, with *st
 * filled, or -1 with why set (strerror, or "not a regular file ..."): callers
 * print "ROLE PATH: WHY". */
int kmsenv_open_regular(const char *path, struct stat *st, char *why,
                        size_t whylen);

/* Reads a whole regular file of at most max bytes into OPENSSL_malloc'd
 * memory (plain heap: never for secrets). A larger file is refused, not
 * truncated. Returns 1, or 0 with why set. */
int kmsenv_read_regular(const char *path, size_t max, unsigned char **buf,
                        size_t *len, char *why, size_t whylen);

/* One read(2) of at most n bytes, resumed after EINTR: the count (0 at the
 * end of the file), or -1 with why set ("read error: ..."). */
ssize_t kmsenv_read_some(int fd, void *buf, size_t n, char *why, size_t whylen);

#endif
