/* SPDX-License-Identifier: Apache-2.0 */
/* The enc stream state machine (envelope/stream.c, FORMATS.md §7): exact
 * EVP-sized output buffers (heap, so ASan sees one byte past), every size
 * around segment boundaries, random update mixes, truncation, reordering,
 * splicing, tampering, wrong key material, 64-bit counters, the vector. */
#include "envelope/stream.h"
#include "harness.h"
#include "util/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

typedef struct {
    unsigned char dek[32], ksid[16];
    const unsigned char *ctx;
    size_t ctxlen;
} KEYS;

static int keyfn(void *arg, const unsigned char *hdr, uint32_t version,
                 unsigned char key[32])
{
    KEYS *k = arg;

    (void)version;
    return kmsenv_stream_derive(NULL, k->dek, hdr, k->ksid, k->ctx, k->ctxlen,
                                key);
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xr(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* Update sizes: 0 = fixed chunk, else log-uniform 1 B .. 1 MiB. */
static size_t next_size(size_t chunk)
{
    if (chunk)
        return chunk;
    return 1 + (size_t)(xr() % ((size_t)1 << (xr() % 21)));
}

typedef struct {
    unsigned char *p;
    size_t len, cap;
} OUT;

static void out_add(OUT *o, const unsigned char *p, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2 + 64;
        o->p = realloc(o->p, o->cap);
    }
    if (n)
        memcpy(o->p + o->len, p, n);
    o->len += n;
}

static int max_over; /* largest outl - inl seen in an update */
/* Decrypt updates after which more than n - 32 bytes of the frame being
 * read had been returned before its tag was checked (FORMATS.md §7.4). */
static size_t bound_bad, bound_max;

/* Runs one direction with exact EVP budgets; 1 ok, 0 failed somewhere. */
static int run(KMSENV_STREAM *s, const unsigned char *in, size_t len,
               size_t chunk, OUT *o)
{
    size_t off = 0, outl;
    unsigned char *buf;

    o->len = 0;
    while (off < len) {
        size_t n = next_size(chunk);

        if (n > len - off)
            n = len - off;
        buf = malloc(n + KMSENV_STREAM_BLOCK);
        if (!kmsenv_stream_update(s, in + off, n, buf, n + KMSENV_STREAM_BLOCK,
                                  &outl)) {
            free(buf);
            return 0;
        }
        if ((int)(outl - n) > max_over && outl > n)
            max_over = (int)(outl - n);
        if (!s->enc) {
            uint64_t lim =
                s->n > KMSENV_STREAM_HOLD ? s->n - KMSENV_STREAM_HOLD : 0;

            bound_bad += s->frame_unverified > lim;
            if (s->frame_unverified > bound_max)
                bound_max = (size_t)s->frame_unverified;
        }
        out_add(o, buf, outl);
        free(buf);
        off += n;
    }
    buf = malloc(KMSENV_STREAM_BLOCK);
    if (!kmsenv_stream_final(s, buf, KMSENV_STREAM_BLOCK, &outl)) {
        free(buf);
        return 0;
    }
    out_add(o, buf, outl);
    free(buf);
    return 1;
}

static KEYS K1, K2;
static int evp_only; /* GCM through EVP_CIPHER_CTX, not gcm_direct */
static const unsigned char SALT[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static int enc(KEYS *k, const unsigned char *salt, uint64_t ctr,
               const unsigned char *in, size_t len, size_t chunk, OUT *o)
{
    KMSENV_STREAM s;
    int ok;

    kmsenv_stream_init(&s);
    kmsenv_stream_set_evp_only(&s, evp_only);
    ok = kmsenv_stream_start_enc(&s, NULL, 7, salt, keyfn, k);
    kmsenv_stream_set_counter(&s, ctr);
    ok = ok && run(&s, in, len, chunk, o);
    kmsenv_stream_cleanup(&s);
    return ok;
}

static int dec(KEYS *k, uint64_t ctr, const unsigned char *in, size_t len,
               size_t chunk, OUT *o)
{
    KMSENV_STREAM s;
    int ok;

    kmsenv_stream_init(&s);
    kmsenv_stream_set_evp_only(&s, evp_only);
    ok = kmsenv_stream_start_dec(&s, NULL, keyfn, k);
    kmsenv_stream_set_counter(&s, ctr);
    ok = ok && run(&s, in, len, chunk, o);
    kmsenv_stream_cleanup(&s);
    ERR_clear_error();
    return ok;
}

static int roundtrip(const unsigned char *pt, size_t len, size_t ce, size_t cd)
{
    OUT c = {0}, p = {0};
    int ok = enc(&K1, NULL, 0, pt, len, ce, &c) &&
             dec(&K1, 0, c.p, c.len, cd, &p) && p.len == len &&
             (len == 0 || memcmp(p.p, pt, len) == 0);

    free(c.p), free(p.p);
    return ok;
}

static void hexs(char *o, const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        sprintf(o + 2 * i, "%02x", p[i]);
}

int main(void)
{
    size_t big = 10u << 20, i, n, seg = 4096, bad, nb;
    unsigned char *pt = malloc(big);
    OUT c = {0}, p = {0}, c2 = {0};
    int ok;

    harness_clear_errors = 1;
    (void)opt_verbose;
    memset(K1.dek, 0x11, 32), memset(K1.ksid, 0x22, 16);
    K1.ctx = (const unsigned char *)"\x00\x01\x00\x03"
                                    "app\x00\x04"
                                    "test";
    K1.ctxlen = 13;
    K2 = K1;
    RAND_bytes(pt, (int)big);

    /* Test vector (FORMATS.md §7.6). */
    {
        static const char want[] = "0100000007"
                                   "0102030405060708090a0b";
        char hex[2 * 200 + 1];
        OUT v = {0};

        ok = enc(&K1, SALT, 0,
                 (const unsigned char *)"kmsenv stream test "
                                        "vector, forty-five "
                                        "bytes!!",
                 45, 40, &v);
        hexs(hex, v.p, v.len);
        CHECK(ok && v.len == 16 + (4 + 24 + 16) + (4 + 5 + 16) + (16 + 16),
              "vector encrypts (%zu bytes): %s", v.len, hex);
        CHECK(strncmp(hex, want, strlen(want)) == 0, "vector header");
        {
            FILE *f = fopen("docs/FORMATS.md", "r");
            char *doc = malloc(1 << 20);
            size_t dl = f ? fread(doc, 1, (1 << 20) - 1, f) : 0;

            doc[dl] = '\0';
            /* header | frame 0 | frame 1 | tail, one line each */
            static const size_t cut[] = {0, 32, 120, 170, 234};
            int parts = 0, j;

            for (j = 0; j < 4; j++) {
                char part[128];

                memcpy(part, hex + cut[j], cut[j + 1] - cut[j]);
                part[cut[j + 1] - cut[j]] = '\0';
                parts += strstr(doc, part) != NULL;
            }
            CHECK(f != NULL && parts == 4,
                  "docs/FORMATS.md holds the vector (%d of 4 parts)", parts);
            if (f)
                fclose(f);
            free(doc);
        }
        free(v.p);
    }

    /* Every size 0 .. 3 segments + 1 with enc's 4 KiB updates, both ways. */
    for (n = 0, bad = 0; n <= 3 * seg + 1; n++)
        if (!roundtrip(pt, n, seg, seg))
            bad++;
    CHECK(bad == 0,
          "every size 0..%zu round-trips with 4 KiB updates (%zu bad)",
          3 * seg + 1, bad);
    for (n = 0, bad = 0; n <= 3 * seg + 1; n += 1 + xr() % 61)
        if (!roundtrip(pt, n, 0, 0) || !roundtrip(pt, n, 1, 0) ||
            !roundtrip(pt, n, 0, 1))
            bad++;
    CHECK(bad == 0, "sizes 0..%zu round-trip with random and 1-byte updates",
          3 * seg + 1);
    CHECK(max_over <= KMSENV_STREAM_BLOCK,
          "no update wrote more than inl + %d (max %d)", KMSENV_STREAM_BLOCK,
          max_over);

    /* Random update mixes 1 B .. 1 MiB, 10 MiB, encrypt and decrypt. */
    for (i = 0, bad = 0; i < 4; i++)
        if (!roundtrip(pt, big - i * 7, 0, 0))
            bad++;
    CHECK(bad == 0, "10 MiB with random update mixes (1 B..1 MiB)");
    CHECK(roundtrip(pt, big, 1u << 20, 1u << 20) &&
              roundtrip(pt, big, 1u << 20, 1),
          "10 MiB in 1 MiB updates; decrypt 1 MiB and 1-byte updates");
    {
        /* An encrypt update above the frame limit is refused before
         * anything is written or changed, stating the limit; the caller
         * can split it and go on. A 10 MiB decrypt update works. */
        KMSENV_STREAM s;
        size_t lim = 1u << 20, w = 0, ol = 9;
        unsigned char *o = malloc(big + 64);
        const char *data = NULL;
        int flags = 0;

        kmsenv_stream_init(&s);
        ok = kmsenv_stream_start_enc(&s, NULL, 7, NULL, keyfn, &K1) &&
             kmsenv_stream_update(&s, pt, 5, o, 5 + 32, &ol);
        w = ol;
        ok = ok &&
             !kmsenv_stream_update(&s, pt + 5, lim + 1, o + w, lim + 1 + 32,
                                   &ol) &&
             ol == 0;
        ERR_peek_last_error_data(&data, &flags);
        CHECK(ok && data != NULL && strstr(data, "at most 1048576") != NULL,
              "an encrypt update of 1 MiB + 1 is refused stating the limit "
              "(%s)",
              data != NULL ? data : "no error");
        ERR_clear_error();
        ok = kmsenv_stream_update(&s, pt + 5, lim, o + w, lim + 32, &ol);
        w += ol;
        ok = ok && kmsenv_stream_update(&s, pt + 5 + lim, 1, o + w, 33, &ol);
        w += ol;
        ok = ok && kmsenv_stream_final(&s, o + w, 32, &ol);
        w += ol;
        kmsenv_stream_cleanup(&s);
        CHECK(ok && dec(&K1, 0, o, w, w, &p) && p.len == lim + 6 &&
                  memcmp(p.p, pt, lim + 6) == 0,
              "after the refusal the split updates make a good stream");
        free(p.p), p = (OUT){0};
        free(o);
        CHECK(roundtrip(pt, big, 1u << 20, big),
              "10 MiB decrypted in one update");
    }
    {
        /* A length field above the limit (tampered) is refused before any
         * byte of that frame is released. */
        OUT e = {0};
        KMSENV_STREAM s;
        size_t ol = 7, sz = 3u << 20;
        unsigned char *o = malloc(sz + 64);

        CHECK(enc(&K1, NULL, 0, pt, sz, 1u << 20, &e), "3 MiB stream");
        e.p[KMSENV_STREAM_HDR_LEN] |= 0x40; /* frame 0: n += 2^30 */
        kmsenv_stream_init(&s);
        ok = kmsenv_stream_start_dec(&s, NULL, keyfn, &K1) &&
             !kmsenv_stream_update(&s, e.p, e.len, o, e.len + 32, &ol) &&
             ol == 0 && last_reason() == KMSENV_R_BAD_RECORD;
        kmsenv_stream_cleanup(&s);
        CHECK(ok, "a tampered frame length above 1 MiB releases nothing");
        ERR_clear_error();
        free(e.p), free(o);
    }

    {
        /* Every write is checked against outsize: one byte short of what a
         * call needs fails with BUFFER_TOO_SMALL and writes nothing, for
         * the header + a frame, the tail at final, and a decrypt update. */
        KMSENV_STREAM s;
        unsigned char o[512], ct[512];
        size_t ol = 0, w = 0, need, j, clean;
        int r;

        kmsenv_stream_init(&s);
        r = kmsenv_stream_start_enc(&s, NULL, 7, NULL, keyfn, &K1);
        memset(o, 0xa5, sizeof(o));
        need = KMSENV_STREAM_HDR_LEN + KMSENV_STREAM_FRAME_OVERHEAD + 100 -
               KMSENV_STREAM_LAG;
        r = r && !kmsenv_stream_update(&s, pt, 100, o, need - 1, &ol) &&
            ol == 0 && last_reason() == KMSENV_R_BUFFER_TOO_SMALL;
        for (j = 0, clean = 1; j < sizeof(o); j++)
            clean &= o[j] == 0xa5 || o[j] == 0;
        kmsenv_stream_cleanup(&s);
        ERR_clear_error();
        CHECK(r && clean, "encrypt update one byte short: refused, nothing "
                          "left in the buffer");

        kmsenv_stream_init(&s);
        r = kmsenv_stream_start_enc(&s, NULL, 7, NULL, keyfn, &K1) &&
            kmsenv_stream_update(&s, pt, 100, ct, sizeof(ct), &ol);
        w = ol;
        r = r &&
            !kmsenv_stream_final(&s, ct + w, KMSENV_STREAM_LAG + 15, &ol) &&
            last_reason() == KMSENV_R_BUFFER_TOO_SMALL;
        kmsenv_stream_cleanup(&s);
        ERR_clear_error();
        CHECK(r, "final one byte short of the tail: refused");

        /* A good 100-byte stream, then decrypt it in one update with one
         * byte less than that update writes. */
        kmsenv_stream_init(&s);
        r = kmsenv_stream_start_enc(&s, NULL, 7, NULL, keyfn, &K1) &&
            kmsenv_stream_update(&s, pt, 100, ct, sizeof(ct), &ol);
        w = ol;
        r = r && kmsenv_stream_final(&s, ct + w, 32, &ol);
        w += ol;
        kmsenv_stream_cleanup(&s);
        kmsenv_stream_init(&s);
        r = r && kmsenv_stream_start_dec(&s, NULL, keyfn, &K1) &&
            kmsenv_stream_update(&s, ct, w, o, sizeof(o), &ol);
        need = ol;
        kmsenv_stream_cleanup(&s);
        kmsenv_stream_init(&s);
        memset(o, 0xa5, sizeof(o));
        r = r && need > 0 && kmsenv_stream_start_dec(&s, NULL, keyfn, &K1) &&
            !kmsenv_stream_update(&s, ct, w, o, need - 1, &ol) && ol == 0 &&
            last_reason() == KMSENV_R_BUFFER_TOO_SMALL;
        for (j = 0, clean = 1; j < sizeof(o); j++)
            clean &= o[j] == 0xa5 || o[j] == 0;
        kmsenv_stream_cleanup(&s);
        ERR_clear_error();
        CHECK(r && clean,
              "decrypt update one byte short (%zu): refused, "
              "nothing left in the buffer",
              need - 1);
    }

    /* A small stream of 3 frames + tail: truncation at every length,
     * tampering of every byte, extension. */
    CHECK(enc(&K1, NULL, 0, pt, 3 * 50 + 7, 50, &c), "small stream");
    for (n = 0, bad = 0; n < c.len; n++) {
        if (dec(&K1, 0, c.p, n, 0, &p) || dec(&K1, 0, c.p, n, 1, &p))
            bad++;
    }
    CHECK(bad == 0, "truncation at each of %zu lengths fails", c.len);
    for (n = 0, bad = 0; n < c.len; n++) {
        for (i = 0; i < 8; i += 7) {
            c.p[n] ^= (unsigned char)(1u << i);
            if (dec(&K1, 0, c.p, c.len, 0, &p) ||
                dec(&K1, 0, c.p, c.len, 13, &p))
                bad++;
            c.p[n] ^= (unsigned char)(1u << i);
        }
    }
    CHECK(bad == 0, "flipping any bit 0 or 7 of each of %zu bytes fails",
          c.len);
    out_add(&c, (const unsigned char *)"x", 1);
    CHECK(!dec(&K1, 0, c.p, c.len, 0, &p), "one extra byte fails");
    c.len--;
    {
        OUT e = c;
        unsigned char *dup = malloc(c.len * 2);

        memcpy(dup, c.p, c.len);
        memcpy(dup + c.len, c.p + 16, c.len - 16);
        e.p = dup, e.len = c.len * 2 - 16;
        CHECK(!dec(&K1, 0, e.p, e.len, 0, &p), "a stream's body twice fails");
        free(dup);
    }
    /* Reordering: frames 0 and 1 are both 4 + 50 - 16 ... same length:
     * the frames of updates of 50 are 50 bytes (after the first: 34). */
    {
        size_t f1 = 16 + 20 + 34, flen = 20 + 50;
        unsigned char *r = malloc(c.len);

        memcpy(r, c.p, c.len);
        memcpy(r + f1, c.p + f1 + flen, flen);
        memcpy(r + f1 + flen, c.p + f1, flen);
        CHECK(!dec(&K1, 0, r, c.len, 0, &p), "swapping segments 1 and 2 fails");
        /* Splicing: segment 1 of another stream (same key, other salt). */
        CHECK(enc(&K1, NULL, 0, pt + 1000, 3 * 50 + 7, 50, &c2) &&
                  c2.len == c.len,
              "second stream");
        memcpy(r, c.p, c.len);
        memcpy(r + f1, c2.p + f1, flen);
        CHECK(!dec(&K1, 0, r, c.len, 0, &p), "a segment spliced in fails");
        free(r);
    }
    CHECK(dec(&K1, 0, c.p, c.len, 0, &p) && p.len == 157 &&
              memcmp(p.p, pt, 157) == 0,
          "the untouched stream still decrypts");
    K2.ctx = (const unsigned char *)"\x00\x01\x00\x03"
                                    "app\x00\x04"
                                    "tesT";
    CHECK(!dec(&K2, 0, c.p, c.len, 0, &p), "wrong context fails");
    K2 = K1, K2.ctx = NULL, K2.ctxlen = 0;
    CHECK(!dec(&K2, 0, c.p, c.len, 0, &p), "missing context fails");
    K2 = K1, K2.ksid[0] ^= 1;
    CHECK(!dec(&K2, 0, c.p, c.len, 0, &p), "wrong keyset id fails");
    K2 = K1, K2.dek[31] ^= 1;
    CHECK(!dec(&K2, 0, c.p, c.len, 0, &p), "wrong data key fails");

    /* A failing call wipes everything it wrote, also the frames before
     * the bad one that it verified: the small stream (frames of 34, 50, 50,
     * 7 + 16 lag...) with the tag of its third frame broken, all in one
     * update into a buffer filled with a5. */
    {
        KMSENV_STREAM s;
        size_t outl = 1, f3 = 16 + (20 + 34) + (20 + 50) + 4 + 50 + 15;
        unsigned char *r = malloc(c.len), *o = malloc(c.len + 32);

        memcpy(r, c.p, c.len);
        r[f3] ^= 1;
        memset(o, 0xa5, c.len + 32);
        kmsenv_stream_init(&s);
        kmsenv_stream_start_dec(&s, NULL, keyfn, &K1);
        ok = kmsenv_stream_update(&s, r, c.len, o, c.len + 32, &outl);
        for (i = 0, nb = 0; i < c.len + 32; i++)
            nb += o[i] != 0xa5 && o[i] != 0;
        CHECK(!ok && outl == 0 && nb == 0,
              "a failing update leaves none of what it wrote (%zu bytes "
              "left)",
              nb);
        kmsenv_stream_cleanup(&s);
        ERR_clear_error();
        free(r), free(o);
    }

    /* A failing tag releases nothing of the segment's held bytes: tamper
     * the last ciphertext byte of a 5000-byte frame, decrypt in one call. */
    {
        KMSENV_STREAM s;
        size_t outl = 0, len;
        unsigned char *o;

        CHECK(enc(&K1, NULL, 0, pt, 5000 + 16, 5000 + 16, &c2), "one frame");
        c2.p[16 + 4 + 4999] ^= 1;
        len = 16 + 4 + 4000;
        o = malloc(len + 32);
        kmsenv_stream_init(&s);
        kmsenv_stream_start_dec(&s, NULL, keyfn, &K1);
        ok = kmsenv_stream_update(&s, c2.p, len, o, len + 32, &outl);
        CHECK(ok && outl == 4000, "unverified part of a frame released (%zu)",
              outl);
        ok = kmsenv_stream_update(&s, c2.p + len, c2.len - len, o,
                                  c2.len - len + 32, &outl);
        for (i = 0, nb = 0; i < c2.len - len + 32; i++)
            nb += o[i] == pt[4000 + (i % 1000)];
        CHECK(!ok && outl == 0, "tag failure: update fails, nothing returned");
        free(o);
        kmsenv_stream_cleanup(&s);
        ERR_clear_error();
    }

    CHECK(bound_bad == 0 && bound_max > 0,
          "after every decrypt update at most n - 32 bytes of the frame "
          "being read were out before its tag (%zu over; most: %zu)",
          bound_bad, bound_max);

    /* 64-bit counters: streams starting at 2^32 - 2 cross 2^32; a stream at
     * counter 2^32 differs from one at 0 (no 32-bit truncation); the
     * counter limit is enforced. */
    CHECK(enc(&K1, SALT, 0xfffffffeULL, pt, 1000, 100, &c) &&
              dec(&K1, 0xfffffffeULL, c.p, c.len, 7, &p) && p.len == 1000 &&
              memcmp(p.p, pt, 1000) == 0,
          "counters across 2^32 round-trip");
    CHECK(!dec(&K1, 0, c.p, c.len, 0, &p), "... and fail from counter 0");
    CHECK(enc(&K1, SALT, 1ULL << 32, pt, 100, 100, &c) &&
              enc(&K1, SALT, 0, pt, 100, 100, &c2) &&
              memcmp(c.p + 20, c2.p + 20, 30) != 0,
          "frame 2^32 has another nonce than frame 0");
    CHECK(enc(&K1, SALT, UINT64_MAX - 1, pt, 100, 100, &c) &&
              dec(&K1, UINT64_MAX - 1, c.p, c.len, 0, &p) && p.len == 100,
          "last frame counter 2^64-2, tail 2^64-1");
    CHECK(!enc(&K1, SALT, UINT64_MAX - 1, pt, 300, 100, &c),
          "a frame past 2^64-2 is refused");

    /* GCM: the default provider's functions are called directly, and
     * the EVP path (kept for providers without them) gives the same
     * bytes: either path decrypts the other's streams and rejects a
     * flipped bit. */
    {
        KMSENV_STREAM s;
        OUT d = {0}, e = {0}, q = {0};
        size_t sz = 3 * 4096 + 77;
        int direct;

        kmsenv_stream_init(&s);
        direct = kmsenv_stream_start_enc(&s, NULL, 7, SALT, keyfn, &K1) &&
                 kmsenv_stream_gcm_direct(&s);
        kmsenv_stream_cleanup(&s);
        CHECK(direct, "the default provider's AES-256-GCM is called directly");
        kmsenv_stream_init(&s);
        kmsenv_stream_set_evp_only(&s, 1);
        direct = !kmsenv_stream_start_enc(&s, NULL, 7, SALT, keyfn, &K1) ||
                 kmsenv_stream_gcm_direct(&s);
        kmsenv_stream_cleanup(&s);
        CHECK(!direct, "evp_only: GCM through EVP_CIPHER_CTX");
        ok = enc(&K1, SALT, 0, pt, sz, 4096, &d);
        evp_only = 1;
        ok = ok && enc(&K1, SALT, 0, pt, sz, 4096, &e);
        CHECK(ok && d.len == e.len && memcmp(d.p, e.p, d.len) == 0,
              "direct and EVP GCM give the same stream (%zu bytes)", d.len);
        CHECK(dec(&K1, 0, d.p, d.len, 0, &q) && q.len == sz &&
                  memcmp(q.p, pt, sz) == 0,
              "EVP GCM decrypts the direct path's stream");
        d.p[d.len / 2] ^= 1;
        CHECK(!dec(&K1, 0, d.p, d.len, 4096, &q), "EVP GCM: a flipped bit "
                                                  "fails");
        CHECK(roundtrip(pt, big / 4, 0, 0), "EVP GCM: random update mixes");
        evp_only = 0;
        CHECK(dec(&K1, 0, e.p, e.len, 4096, &q) && q.len == sz &&
                  memcmp(q.p, pt, sz) == 0,
              "direct GCM decrypts the EVP path's stream");
        free(d.p), free(e.p), free(q.p);
    }
    free(c.p), free(c2.p), free(p.p), free(pt);
    return harness_done();
}
