/* SPDX-License-Identifier: Apache-2.0 */
/* Text from hostile places (a keyset's KEK spec, a KMS error message, a
 * file name) reaches errors, the debug log and `-text` output: control
 * bytes, DEL and non-ASCII bytes are written as \xNN, so none of it can
 * drive a terminal. */
#ifndef KMSENV_UTIL_TEXT_H
#define KMSENV_UTIL_TEXT_H

#include <stddef.h>

/* Escapes inlen bytes of in into out (always terminated; cut with "..."
 * when out is too small). Returns out. */
char *kmsenv_escape(char *out, size_t outlen, const char *in, size_t inlen);

#endif
