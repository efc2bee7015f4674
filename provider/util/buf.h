/* SPDX-License-Identifier: Apache-2.0 */
/* The one growable buffer: bytes (p) or text (data, the same memory), always
 * NUL-terminated. secure != 0 keeps it in OPENSSL_secure_* memory, cleansed
 * whenever it moves and on free (every buffer that can hold a secret). A
 * zeroed KMSENV_BUF is an empty plain buffer. */
#ifndef KMSENV_UTIL_BUF_H
#define KMSENV_UTIL_BUF_H

#include <stddef.h>

typedef struct {
    union {
        unsigned char *p; /* the bytes */
        char *data;       /* the same bytes as NUL-terminated text */
    };
    size_t len, cap; /* cap includes room for the NUL */
    int secure;      /* OPENSSL_secure_* memory */
    int failed;      /* set by the first write that did not fit (memory) */
} KMSENV_BUF;

void kmsenv_buf_init(KMSENV_BUF *b, int secure);
/* Appends n bytes and returns where to write them, or NULL (b->failed). */
unsigned char *kmsenv_buf_reserve(KMSENV_BUF *b, size_t n);
/* Return 1, or 0 when out of memory (b->failed). */
int kmsenv_buf_append(KMSENV_BUF *b, const void *p, size_t n);
int kmsenv_buf_appendf(KMSENV_BUF *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Empties b (cleansed), keeping its memory. */
void kmsenv_buf_reset(KMSENV_BUF *b);
/* Frees (cleansed when secure) and leaves an empty buffer of the same
 * kind. */
void kmsenv_buf_free(KMSENV_BUF *b);

#endif
