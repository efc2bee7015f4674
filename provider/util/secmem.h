/* SPDX-License-Identifier: Apache-2.0 */
/* Secret buffers: always OPENSSL_secure_* memory, always cleansed on free. */
#ifndef KMSENV_UTIL_SECMEM_H
#define KMSENV_UTIL_SECMEM_H

#include <stddef.h>

typedef struct {
    unsigned char *data; /* OPENSSL_secure_malloc'd */
    size_t len;
} KMSENV_SECRET;

int kmsenv_secret_alloc(KMSENV_SECRET *s, size_t len);
int kmsenv_secret_dup(KMSENV_SECRET *dst, const KMSENV_SECRET *src);
void kmsenv_secret_free(KMSENV_SECRET *s);

#endif
