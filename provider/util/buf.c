/* SPDX-License-Identifier: Apache-2.0 */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

void kmsenv_buf_init(KMSENV_BUF *b, int secure)
{
    memset(b, 0, sizeof(*b));
    b->secure = secure;
}

/* Room for extra more bytes and the NUL. */
static int grow(KMSENV_BUF *b, size_t extra)
{
    size_t need, cap;
    unsigned char *q;

    if (b->failed || extra > ((size_t)-1) / 4 - b->len) {
        b->failed = 1;
        return 0;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 1;
    cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need)
        cap *= 2;
    if (!b->secure) {
        q = OPENSSL_realloc(b->p, cap);
    } else if ((q = OPENSSL_secure_malloc(cap)) != NULL && b->p != NULL) {
        memcpy(q, b->p, b->len);
        OPENSSL_secure_clear_free(b->p, b->cap);
    }
    if (q == NULL) {
        b->failed = 1;
        return 0;
    }
    b->p = q;
    b->cap = cap;
    return 1;
}

unsigned char *kmsenv_buf_reserve(KMSENV_BUF *b, size_t n)
{
    unsigned char *q;

    if (!grow(b, n))
        return NULL;
    q = b->p + b->len;
    b->len += n;
    b->p[b->len] = '\0';
    return q;
}

int kmsenv_buf_append(KMSENV_BUF *b, const void *p, size_t n)
{
    unsigned char *q = kmsenv_buf_reserve(b, n);

    if (q != NULL && n > 0)
        memcpy(q, p, n);
    return q != NULL;
}

int kmsenv_buf_appendf(KMSENV_BUF *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !grow(b, (size_t)n))
        return 0;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 1;
}

void kmsenv_buf_reset(KMSENV_BUF *b)
{
    if (b->p != NULL) {
        OPENSSL_cleanse(b->p, b->len);
        b->p[0] = '\0';
    }
    b->len = 0;
}

void kmsenv_buf_free(KMSENV_BUF *b)
{
    int secure = b->secure;

    if (secure)
        OPENSSL_secure_clear_free(b->p, b->cap);
    else
        OPENSSL_free(b->p);
    kmsenv_buf_init(b, secure);
}
