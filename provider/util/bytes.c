/* SPDX-License-Identifier: Apache-2.0 */
#include "util/bytes.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

void kmsenv_rd_init(KMSENV_RD *r, const unsigned char *p, size_t len)
{
    r->p = p;
    r->left = len;
    r->ok = 1;
}

const unsigned char *kmsenv_rd_bytes(KMSENV_RD *r, size_t n)
{
    const unsigned char *q;

    if (!r->ok || r->left < n) {
        r->ok = 0;
        return NULL;
    }
    q = r->p;
    r->p += n;
    r->left -= n;
    return q;
}

uint8_t kmsenv_rd_u8(KMSENV_RD *r)
{
    const unsigned char *q = kmsenv_rd_bytes(r, 1);
    return q == NULL ? 0 : q[0];
}

uint16_t kmsenv_rd_u16(KMSENV_RD *r)
{
    const unsigned char *q = kmsenv_rd_bytes(r, 2);
    return q == NULL ? 0 : (uint16_t)((q[0] << 8) | q[1]);
}

uint32_t kmsenv_rd_u32(KMSENV_RD *r)
{
    const unsigned char *q = kmsenv_rd_bytes(r, 4);
    return q == NULL ? 0 : kmsenv_get_u32(q);
}

uint64_t kmsenv_rd_u64(KMSENV_RD *r)
{
    uint64_t hi = kmsenv_rd_u32(r);
    return (hi << 32) | kmsenv_rd_u32(r);
}

void kmsenv_wr_bytes(KMSENV_BUF *w, const void *p, size_t n)
{
    kmsenv_buf_append(w, p, n);
}

void kmsenv_wr_u8(KMSENV_BUF *w, uint8_t v)
{
    kmsenv_wr_bytes(w, &v, 1);
}

void kmsenv_wr_u16(KMSENV_BUF *w, uint16_t v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    kmsenv_wr_bytes(w, b, 2);
}

void kmsenv_wr_u32(KMSENV_BUF *w, uint32_t v)
{
    unsigned char b[4];
    kmsenv_put_u32(b, v);
    kmsenv_wr_bytes(w, b, 4);
}

void kmsenv_wr_u64(KMSENV_BUF *w, uint64_t v)
{
    kmsenv_wr_u32(w, (uint32_t)(v >> 32));
    kmsenv_wr_u32(w, (uint32_t)v);
}

void kmsenv_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

uint32_t kmsenv_get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

void kmsenv_hex(char *out, const unsigned char *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int kmsenv_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
