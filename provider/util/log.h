/* SPDX-License-Identifier: Apache-2.0 */
/* KMSENV_DEBUG logging: "file:/path,level:N" or "level:N" (stderr).
 * Level 1 logs errors and keyring calls, level 2 adds operation traces.
 * Only metadata is ever logged: ids, versions, fingerprints, sizes. */
#ifndef KMSENV_UTIL_LOG_H
#define KMSENV_UTIL_LOG_H

void kmsenv_log_init(const char *spec);
int kmsenv_log_enabled(int level);
void kmsenv_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kmsenv_log_close(void);

#define KMSENV_DEBUG(...) kmsenv_log(2, __VA_ARGS__)

#endif
