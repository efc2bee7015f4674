/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: records (docs/FORMATS.md §2): kmsenv_record_peek and
 * kmsenv_record_open on arbitrary bytes, with the fixed keys of the
 * FORMATS.md vectors (versions 1 and 2 of the §3.5 keyset).
 *
 * Invariants checked:
 *  - peek and open never crash, and every failure raises an error;
 *  - open succeeds only on what seal produced: a record that opens is
 *    sealed again from its plaintext with the nonce of its header, and
 *    must come out byte for byte identical (seal is deterministic given
 *    the nonce), under whichever keyset id and context it opened;
 *  - a record that opens under one (keyset id, context) opens under no
 *    other;
 *  - round trip: the input as plaintext seals and opens back, and the
 *    sealed record with one bit flipped does not open. */
#include "envelope/context.h"
#include "envelope/record.h"
#include "envelope/xaes.h"
#include "fuzz_common.h"
#include "util/bytes.h"

#define NKEYS 2
#define NBIND 4

static KMSENV_REC_KEY keys[NKEYS];
/* (keyset id, context) pairs a record may be bound to. */
static struct {
    unsigned char id[KMSENV_KEYSET_ID_LEN];
    KMSENV_BUF ctx;
} bind[NBIND];

static void init_bindings(void)
{
    static const char *const ctx_text[NBIND] = {
        "table=cards,row=42", "", "table=cards,row=43", NULL /* large */};
    char big[700];
    size_t i;

    memset(big, 'v', sizeof(big));
    memcpy(big, "blob=", 5);
    big[sizeof(big) - 1] = '\0';
    for (i = 0; i < NBIND; i++) {
        KMSENV_CONTEXT c;
        const char *t = ctx_text[i] != NULL ? ctx_text[i] : big;

        fuzz_unhex(i == 1 ? "f0f1f2f3f4f5f6f7f8f9fafbfcfdfe00"
                          : "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                   bind[i].id, KMSENV_KEYSET_ID_LEN);
        kmsenv_ctx_init(&c);
        kmsenv_buf_init(&bind[i].ctx, 0);
        FUZZ_CHECK(kmsenv_ctx_parse(&c, t, strlen(t)));
        FUZZ_CHECK(kmsenv_ctx_encode(&c, &bind[i].ctx));
        kmsenv_ctx_free(&c);
    }
    FUZZ_CHECK(bind[3].ctx.len > 512); /* the multi-update AAD path */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const hex[NKEYS] = {
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"};
    size_t i;

    for (i = 0; i < NKEYS; i++) {
        unsigned char k[32];
        KMSENV_XAES x;

        fuzz_unhex(hex[i], k, sizeof(k));
        FUZZ_CHECK(kmsenv_xaes_init(&x, NULL, k));
        FUZZ_CHECK(kmsenv_rec_key_init(&keys[i], NULL, (uint32_t)i + 1, &x));
        kmsenv_xaes_cleanup(&x);
    }
    init_bindings();
    return 0;
}

/* Seals pt under key k / binding b with nonce; returns the record. */
static unsigned char *seal(KMSENV_REC_KEY *k, size_t b,
                           const unsigned char *nonce, const unsigned char *pt,
                           size_t ptlen, size_t *outlen)
{
    unsigned char *out = malloc(ptlen + KMSENV_REC_OVERHEAD);

    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(kmsenv_record_seal(k, NULL, bind[b].id, bind[b].ctx.p,
                                  bind[b].ctx.len, nonce, pt, ptlen, out,
                                  outlen));
    FUZZ_CHECK(*outlen == ptlen + KMSENV_REC_OVERHEAD);
    return out;
}

static int open_as(KMSENV_REC_KEY *k, size_t b, const unsigned char *in,
                   size_t inlen, unsigned char *out, size_t *outlen)
{
    int ok;

    ERR_clear_error();
    ok = kmsenv_record_open(k, bind[b].id, bind[b].ctx.p, bind[b].ctx.len, in,
                            inlen, out, outlen);
    FUZZ_CHECK(ok || ERR_peek_error() != 0);
    ERR_clear_error();
    return ok;
}

static void fuzz_open(const uint8_t *data, size_t size)
{
    unsigned char *out = malloc(size + 1);
    uint32_t version = 0;
    size_t b, outlen, opened = 0;
    KMSENV_REC_KEY *k;

    FUZZ_CHECK(out != NULL);
    ERR_clear_error();
    if (!kmsenv_record_peek(data, size, &version)) {
        FUZZ_CHECK(ERR_peek_error() != 0);
        FUZZ_CHECK(size < KMSENV_REC_OVERHEAD || data[0] != 'K' ||
                   data[1] != 'E' || data[2] != KMSENV_REC_FORMAT);
        ERR_clear_error();
        free(out);
        return;
    }
    FUZZ_CHECK(size >= KMSENV_REC_OVERHEAD &&
               version == kmsenv_get_u32(data + 3));
    if (version < 1 || version > NKEYS) {
        /* open under a key of another version refuses */
        FUZZ_CHECK(!open_as(&keys[0], 0, data, size, out, &outlen));
        free(out);
        return;
    }
    k = &keys[version - 1];
    FUZZ_CHECK(!open_as(&keys[version % NKEYS], 0, data, size, out, &outlen));
    for (b = 0; b < NBIND; b++) {
        unsigned char *again;
        size_t againlen;

        outlen = (size_t)-1;
        if (!open_as(k, b, data, size, out, &outlen)) {
            size_t i, n = size - KMSENV_REC_OVERHEAD;

            for (i = 0; i < n; i++) /* nothing usable is left in out */
                FUZZ_CHECK(out[i] == 0);
            continue;
        }
        opened++;
        FUZZ_CHECK(outlen == size - KMSENV_REC_OVERHEAD);
        again = seal(k, b, data + 7, out, outlen, &againlen);
        FUZZ_CHECK(againlen == size && memcmp(again, data, size) == 0);
        free(again);
    }
    FUZZ_CHECK(opened <= 1);
    free(out);
}

static void fuzz_roundtrip(const uint8_t *data, size_t size)
{
    unsigned char nonce[KMSENV_XAES_NONCE_LEN], *rec, *pt;
    size_t reclen, ptlen, b = size % NBIND, bit;
    KMSENV_REC_KEY *k = &keys[size % NKEYS];

    memset(nonce, 0, sizeof(nonce));
    memcpy(nonce, data, size < sizeof(nonce) ? size : sizeof(nonce));
    rec = seal(k, b, size % 3 == 0 ? NULL : nonce, data, size, &reclen);
    pt = malloc(size + 1);
    FUZZ_CHECK(pt != NULL);
    FUZZ_CHECK(open_as(k, b, rec, reclen, pt, &ptlen));
    FUZZ_CHECK(ptlen == size && (size == 0 || memcmp(pt, data, size) == 0));
    bit = (size > 0 ? data[size - 1] * 131u + size : 0) % (reclen * 8);
    rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    FUZZ_CHECK(!open_as(k, b, rec, reclen, pt, &ptlen));
    free(pt);
    free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_open(data, size);
    fuzz_roundtrip(data, size);
    return 0;
}
