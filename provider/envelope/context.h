/* SPDX-License-Identifier: Apache-2.0 */
/* Encryption context: a set of key=value pairs bound as AAD.
 * Text form:  key=value[,key=value...]; '\' escapes ',', '=' and '\'.
 * Canonical encoding (docs/FORMATS.md): u16 count, then the pairs sorted by
 * key bytes, each as u16 len || key || u16 len || value. */
#ifndef KMSENV_ENVELOPE_CONTEXT_H
#define KMSENV_ENVELOPE_CONTEXT_H

#include <stddef.h>
#include "util/bytes.h"

#define KMSENV_CTX_MAX_ENCODED 8192

typedef struct {
    char *key;
    char *value;
} KMSENV_PAIR;

typedef struct {
    KMSENV_PAIR *pairs; /* kept sorted by key */
    size_t n, cap;
    size_t enclen; /* canonical encoding size, kept current by ctx_add */
} KMSENV_CONTEXT;

void kmsenv_ctx_init(KMSENV_CONTEXT *c);
void kmsenv_ctx_free(KMSENV_CONTEXT *c);
int kmsenv_ctx_copy(KMSENV_CONTEXT *dst, const KMSENV_CONTEXT *src);
/* Adds one pair. Same key with the same value is a no-op; same key with
 * another value is an error. */
int kmsenv_ctx_add(KMSENV_CONTEXT *c, const char *key, const char *value);
/* Parses len bytes of user text and accumulates pairs; all or nothing. A
 * NUL byte anywhere is an error, and parsing stops as soon as the context
 * would exceed KMSENV_CTX_MAX_ENCODED. Keys starting with "kmsenv:" or
 * "aws:" are reserved and refused. */
int kmsenv_ctx_parse(KMSENV_CONTEXT *c, const char *text, size_t len);
int kmsenv_ctx_encode(const KMSENV_CONTEXT *c, KMSENV_BUF *w);
/* Human-readable form for error messages (never secret). */
void kmsenv_ctx_describe(const KMSENV_CONTEXT *c, char *buf, size_t len);

#endif
