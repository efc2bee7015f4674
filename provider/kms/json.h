/* SPDX-License-Identifier: Apache-2.0 */
/* A small, strict JSON reader for the flat objects AWS answers with (KMS,
 * ECS, IMDS): it validates the whole document and decodes the wanted
 * top-level string members straight into secure memory, so no general
 * parser ever holds a secret (a data key's base64, a secret access key). */
#ifndef KMSENV_KMS_JSON_H
#define KMSENV_KMS_JSON_H

#include <stddef.h>
#include "util/secmem.h"

/* A wanted member: its string value, decoded, in secure memory
 * (NUL-terminated; len excludes the NUL). */
typedef struct {
    const char *name;
    KMSENV_SECRET val;
    int present;
} KMSENV_JFIELD;

/* Parses one JSON object and decodes the string members named in f into
 * secure memory. Returns 1, or 0 if the document is malformed or a wanted
 * member is not a string (nothing raised), or -1 on allocation failure
 * (raised). Other members are validated and skipped. A member given twice
 * keeps the last value (the earlier one is cleansed). */
int kmsenv_json_fields(const char *doc, size_t len, KMSENV_JFIELD *f,
                       size_t nf);
/* The same; nul_ok: a \u0000 in a wanted value is kept (val.len counts it)
 * instead of making the document malformed. For text that is only shown,
 * escaped, never used as a C string (KMS error messages). */
int kmsenv_json_fields_ex(const char *doc, size_t len, KMSENV_JFIELD *f,
                          size_t nf, int nul_ok);
void kmsenv_jfields_free(KMSENV_JFIELD *f, size_t nf);

/* Writes code point cp as UTF-8 (1..4 bytes) at o. */
size_t kmsenv_utf8_put(char *o, unsigned cp);

#endif
