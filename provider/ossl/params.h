/* SPDX-License-Identifier: Apache-2.0 */
/* String OSSL_PARAMs read by their data_size, never as C strings: a
 * UTF8_STRING need not be NUL-terminated, and a NUL inside would silently
 * cut the text (a context "user=alice\0,doc=7" read as "user=alice"). */
#ifndef KMSENV_OSSL_PARAMS_H
#define KMSENV_OSSL_PARAMS_H

#include <stddef.h>
#include <openssl/core.h>

/* The text of a UTF8_STRING param: *s points into the param
 * and is not terminated; *len excludes one terminating NUL that some
 * callers count in data_size. Any other NUL is an error, as is another
 * type. Raises an error naming what on failure. */
int kmsenv_param_text(const OSSL_PARAM *p, const char *what, const char **s,
                      size_t *len);
/* The same, copied into a NUL-terminated OPENSSL_malloc'd string. */
int kmsenv_param_strdup(const OSSL_PARAM *p, const char *what, char **out);
/* The keys of params, comma-separated and escaped, into buf (cut with "..."
 * when long), for errors that say which parameters were refused. */
const char *kmsenv_param_names(const OSSL_PARAM *params, char *buf, size_t n);

#endif
