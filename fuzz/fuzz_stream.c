/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the enc stream state machine (envelope/stream.c,
 * docs/FORMATS.md §7), with the keys of the §7.5 vector (DEK 11 x 32 for
 * key version 7, 33 x 32 for version 1, any other version unknown; keyset
 * id 22 x 16, context app=test).
 *
 * Input: flags (1 byte), a seed (8 bytes) that draws the update sizes
 * (0 .. 8 KiB), then the payload.
 *  - flags bit 0 clear: the payload is a stream, decrypted in updates of the
 *    drawn sizes and again in one update;
 *  - bit 0 set: the payload is plaintext, encrypted in updates of the drawn
 *    sizes (salt from the seed), then (bit 1) one byte flipped or (bit 2)
 *    the stream cut at a drawn length, and decrypted in drawn updates.
 *
 * Invariants checked (abort on violation):
 *  - every call gets exactly the EVP budget (update: inl + 32, final: 32)
 *    in its own heap buffer, so ASan sees any write past it; encrypting,
 *    an update writes at most inl + 20 and final at most 32; decrypting, an
 *    update at most inl + 31 and final at most 16 (§7.3, §7.4);
 *  - the release bound (§7.4): after every update, the plaintext of the
 *    current frame returned before its tag was checked is at most n - 32;
 *  - a failing call returns nothing and leaves in its buffer only the
 *    fill pattern or zeros (what it wrote is wiped); every later call
 *    fails and writes nothing; every failure raises an error;
 *  - the verdict and the plaintext do not depend on the update sizes (the
 *    drawn split against one update);
 *  - round trip: an untouched stream decrypts to its plaintext, a flipped
 *    byte or a cut stream fails. */
#include "envelope/context.h"
#include "envelope/stream.h"
#include "fuzz_common.h"
#include "util/buf.h"

#include <openssl/crypto.h>

#define FILL 0xa5
#define MAX_UPDATE 8192

static unsigned char ksid[16];
static KMSENV_BUF ctxenc;

static int keyfn(void *arg, const unsigned char *hdr, uint32_t version,
                 unsigned char key[32])
{
    unsigned char dek[32];

    (void)arg;
    if (version != 7 && version != 1) {
        ERR_raise_data(ERR_LIB_USER, ERR_R_PASSED_INVALID_ARGUMENT,
                       "no key version %u", version);
        return 0;
    }
    memset(dek, version == 7 ? 0x11 : 0x33, sizeof(dek));
    return kmsenv_stream_derive(NULL, dek, hdr, ksid, ctxenc.p, ctxenc.len,
                                key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    KMSENV_CONTEXT c;

    (void)argc, (void)argv;
    memset(ksid, 0x22, sizeof(ksid));
    kmsenv_ctx_init(&c);
    kmsenv_buf_init(&ctxenc, 0);
    FUZZ_CHECK(kmsenv_ctx_parse(&c, "app=test", 8));
    FUZZ_CHECK(kmsenv_ctx_encode(&c, &ctxenc));
    kmsenv_ctx_free(&c);
    return 0;
}

static uint64_t rng;
static size_t draw(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    if (rng % 8 == 0)
        return 0;
    return 1 + (size_t)((rng >> 8) % ((size_t)1 << ((rng >> 40) % 14)));
}

typedef struct {
    unsigned char *p;
    size_t len;
} OUT;

static void out_add(OUT *o, const unsigned char *p, size_t n)
{
    if (n == 0)
        return;
    o->p = realloc(o->p, o->len + n);
    FUZZ_CHECK(o->p != NULL);
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

/* A failed call: nothing returned, its buffer only FILL or wiped, an
 * error raised; then the stream refuses anything more. */
static void check_failed(KMSENV_STREAM *s, const unsigned char *buf,
                         size_t size, size_t outl)
{
    unsigned char more[KMSENV_STREAM_BLOCK + 1];
    size_t i, ol = 1;

    FUZZ_CHECK(outl == 0);
    for (i = 0; i < size; i++)
        FUZZ_CHECK(buf[i] == FILL || buf[i] == 0);
    FUZZ_CHECK(ERR_peek_error() != 0);
    memset(more, FILL, sizeof(more));
    FUZZ_CHECK(!kmsenv_stream_update(s, (const unsigned char *)"x", 1, more,
                                     sizeof(more), &ol));
    FUZZ_CHECK(ol == 0);
    ol = 1;
    FUZZ_CHECK(!kmsenv_stream_final(s, more, KMSENV_STREAM_BLOCK, &ol));
    FUZZ_CHECK(ol == 0);
    for (i = 0; i < sizeof(more); i++)
        FUZZ_CHECK(more[i] == FILL);
}

/* §7.4: of the frame being read, at most n - 32 bytes out unverified. */
static void check_bound(const KMSENV_STREAM *s)
{
    uint64_t lim = s->n > KMSENV_STREAM_HOLD ? s->n - KMSENV_STREAM_HOLD : 0;

    FUZZ_CHECK(s->frame_unverified <= lim);
}

/* Runs in through s in updates of drawn sizes (split) or one update; 1 and
 * the output in o, or 0 (checked as a failure). */
static int run(KMSENV_STREAM *s, int enc, const unsigned char *in, size_t len,
               int split, OUT *o)
{
    size_t off = 0, outl, slack = enc ? 20 : 31;
    unsigned char *buf;

    o->len = 0;
    do {
        size_t n = split ? draw() : len;

        if (n > len - off)
            n = len - off;
        buf = malloc(n + KMSENV_STREAM_BLOCK);
        FUZZ_CHECK(buf != NULL);
        memset(buf, FILL, n + KMSENV_STREAM_BLOCK);
        outl = (size_t)-1;
        if (!kmsenv_stream_update(s, in + off, n, buf, n + KMSENV_STREAM_BLOCK,
                                  &outl)) {
            check_failed(s, buf, n + KMSENV_STREAM_BLOCK, outl);
            free(buf);
            return 0;
        }
        FUZZ_CHECK(outl <= n + slack);
        if (!enc)
            check_bound(s);
        out_add(o, buf, outl);
        free(buf);
        off += n;
    } while (off < len);
    buf = malloc(KMSENV_STREAM_BLOCK);
    FUZZ_CHECK(buf != NULL);
    memset(buf, FILL, KMSENV_STREAM_BLOCK);
    outl = (size_t)-1;
    if (!kmsenv_stream_final(s, buf, KMSENV_STREAM_BLOCK, &outl)) {
        check_failed(s, buf, KMSENV_STREAM_BLOCK, outl);
        free(buf);
        return 0;
    }
    FUZZ_CHECK(outl <= (enc ? KMSENV_STREAM_BLOCK : 16));
    out_add(o, buf, outl);
    free(buf);
    return 1;
}

static int decrypt(const unsigned char *in, size_t len, int split, OUT *o)
{
    KMSENV_STREAM s;
    int ok;

    kmsenv_stream_init(&s);
    FUZZ_CHECK(kmsenv_stream_start_dec(&s, NULL, keyfn, NULL));
    ok = run(&s, 0, in, len, split, o);
    kmsenv_stream_cleanup(&s);
    ERR_clear_error();
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    OUT a = {NULL, 0}, b = {NULL, 0}, c = {NULL, 0};
    uint64_t seed = 0;
    const unsigned char *pl = data + 9;
    size_t pllen, i;
    int flags, ok;

    if (size < 9)
        return 0;
    flags = data[0];
    for (i = 1; i < 9; i++)
        seed = seed << 8 | data[i];
    pllen = size - 9;
    rng = seed | 1;
    if (!(flags & 1)) {
        ok = decrypt(pl, pllen, 1, &a);
        FUZZ_CHECK(decrypt(pl, pllen, 0, &b) == ok);
        if (ok)
            FUZZ_CHECK(a.len == b.len &&
                       (a.len == 0 || memcmp(a.p, b.p, a.len) == 0));
    } else {
        KMSENV_STREAM s;
        unsigned char salt[KMSENV_STREAM_SALT_LEN];
        int tampered = 0;

        memcpy(salt, data + 1, 8);
        memset(salt + 8, 0x5a, sizeof(salt) - 8);
        kmsenv_stream_init(&s);
        FUZZ_CHECK(kmsenv_stream_start_enc(&s, NULL, seed % 3 ? 7 : 1, salt,
                                           keyfn, NULL));
        FUZZ_CHECK(run(&s, 1, pl, pllen, 1, &c));
        kmsenv_stream_cleanup(&s);
        FUZZ_CHECK(c.len >= KMSENV_STREAM_HDR_LEN + KMSENV_STREAM_TAG_LEN);
        if (flags & 2) {
            c.p[(seed >> 16) % c.len] ^= (unsigned char)(1u << (seed % 8));
            tampered = 1;
        } else if (flags & 4) {
            c.len = (size_t)((seed >> 16) % c.len);
            tampered = 1;
        }
        ok = decrypt(c.p, c.len, 1, &a);
        FUZZ_CHECK(ok == !tampered);
        if (ok)
            FUZZ_CHECK(a.len == pllen &&
                       (pllen == 0 || memcmp(a.p, pl, pllen) == 0));
    }
    free(a.p), free(b.p), free(c.p);
    ERR_clear_error();
    return 0;
}
