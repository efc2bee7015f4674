/* SPDX-License-Identifier: Apache-2.0 */
/* kmsenv rewrap and inspect on wrapped private keys (tools/wrapped.c). */
#ifndef KMSENV_TOOLS_WRAPPED_H
#define KMSENV_TOOLS_WRAPPED_H

#include <stddef.h>
#include <stdio.h>

/* Prints what the public header of the wrapped key in buf says (type,
 * purpose, created, SHA-256 of the public key, the KEKs), never a secret;
 * no keyring call. 0 on success, 1 with the error printed. */
int kmsenv_wrapped_inspect(const char *prog, const char *path,
                           const unsigned char *buf, size_t len, FILE *out);

/* Rewraps the wrapped key in buf under keyring (KEKs separated by ';')
 * through the provider: one unwrap, the container key wrapped under the
 * new KEKs (ReEncrypt where possible; a local wrap of a key a rewrap
 * failed for only with allow_local), the public header unchanged. The new
 * file content, in the same form (form "PEM" or "DER"), goes to *out
 * (OPENSSL_free it). 1, or 0 with the error printed. */
int kmsenv_wrapped_rewrap(const char *prog, const char *path,
                          const unsigned char *buf, size_t len,
                          const char *form, const char *keyring,
                          int allow_local, unsigned char **out, size_t *outlen,
                          size_t *nkeks);

#endif
