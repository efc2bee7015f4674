/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded big-endian readers/writers for the envelope formats. */
#ifndef KMSENV_UTIL_BYTES_H
#define KMSENV_UTIL_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

typedef struct {
    const unsigned char *p;
    size_t left;
    int ok; /* cleared on the first short read */
} KMSENV_RD;

void kmsenv_rd_init(KMSENV_RD *r, const unsigned char *p, size_t len);
uint8_t kmsenv_rd_u8(KMSENV_RD *r);
uint16_t kmsenv_rd_u16(KMSENV_RD *r);
uint32_t kmsenv_rd_u32(KMSENV_RD *r);
uint64_t kmsenv_rd_u64(KMSENV_RD *r);
const unsigned char *kmsenv_rd_bytes(KMSENV_RD *r, size_t n);

/* Big-endian writers appending to a buffer (util/buf.h); a write that does
 * not fit sets b->failed, and later writes do nothing. */
void kmsenv_wr_u8(KMSENV_BUF *b, uint8_t v);
void kmsenv_wr_u16(KMSENV_BUF *b, uint16_t v);
void kmsenv_wr_u32(KMSENV_BUF *b, uint32_t v);
void kmsenv_wr_u64(KMSENV_BUF *b, uint64_t v);
void kmsenv_wr_bytes(KMSENV_BUF *b, const void *p, size_t n);

void kmsenv_put_u32(unsigned char *p, uint32_t v);
uint32_t kmsenv_get_u32(const unsigned char *p);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void kmsenv_hex(char *out, const unsigned char *in, size_t n);
/* Value of one hex digit (either case), or -1. */
int kmsenv_hexval(int c);

#endif
