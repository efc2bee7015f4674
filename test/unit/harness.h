/* SPDX-License-Identifier: Apache-2.0 */
/* The C unit tests' shared harness: TAP-style "ok N - ..." lines, failures
 * with their line and the OpenSSL error queue, and the closing
 * "N passed, N failed" line that CI reads. Header-only: each test program
 * is one translation unit. */
#ifndef KMSENV_TEST_HARNESS_H
#define KMSENV_TEST_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

static int n_tests, n_passed, n_failed, opt_verbose;
/* Set to clear the error queue after every check, passed or not. */
static int harness_clear_errors;
static char errtext[8192];

/* All error data of the queue, joined (then cleared). */
__attribute__((unused)) static const char *take_errors(void)
{
    const char *data, *file, *func;
    int line, flags;
    size_t len = 0;

    errtext[0] = '\0';
    while (ERR_get_error_all(&file, &line, &func, &data, &flags) != 0) {
        int n = snprintf(errtext + len, sizeof(errtext) - len, "%s%s",
                         len > 0 ? " | " : "",
                         (flags & ERR_TXT_STRING) ? data : "?");
        if (n > 0 && len + (size_t)n < sizeof(errtext))
            len += (size_t)n;
    }
    return errtext;
}

/* The reason of the newest kmsenv error on the queue (0 if none). Outside
 * a provider, kmsenv raises under ERR_LIB_USER. */
__attribute__((unused)) static int last_reason(void)
{
    unsigned long e = ERR_peek_last_error();

    return e != 0 && ERR_GET_LIB(e) == ERR_LIB_USER ? ERR_GET_REASON(e) : 0;
}

__attribute__((format(printf, 3, 4), unused)) static int
check_at(int ok, int line, const char *fmt, ...)
{
    va_list ap;

    n_tests++;
    printf("%s %d - ", ok ? "ok" : "not ok", n_tests);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (ok) {
        n_passed++;
    } else {
        n_failed++;
        printf("#   failed at line %d\n", line);
        printf("#   errors: %s\n", take_errors());
    }
    if (harness_clear_errors)
        ERR_clear_error();
    fflush(stdout);
    return ok;
}

#define CHECK(cond, ...) check_at((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

/* Prints the closing line; the exit status of main. */
__attribute__((unused)) static int harness_done(void)
{
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}

#endif
