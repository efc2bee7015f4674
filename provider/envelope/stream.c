/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/stream.h"
#include "util/bytes.h"
#include "util/err.h"

#include <limits.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

enum { S_NONE, S_HDR, S_BND, S_DATA, S_TAG, S_DONE, S_ERR };

int kmsenv_stream_derive(OSSL_LIB_CTX *libctx, const unsigned char dek[32],
                         const unsigned char *hdr,
                         const unsigned char keyset_id[16],
                         const unsigned char *ctxenc, size_t ctxenclen,
                         unsigned char key[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(libctx, "HKDF", NULL);
    EVP_KDF_CTX *kc = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    size_t lablen = sizeof(KMSENV_STREAM_KDF_LABEL) - 1;
    size_t infolen = lablen + 16 + ctxenclen;
    unsigned char *info = OPENSSL_malloc(infolen);
    OSSL_PARAM p[5];
    int ok = 0;

    if (kc == NULL || info == NULL) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                     "HKDF-SHA256 unavailable (is the default provider "
                     "loaded?)");
        goto done;
    }
    memcpy(info, KMSENV_STREAM_KDF_LABEL, lablen);
    memcpy(info + lablen, keyset_id, 16);
    if (ctxenclen > 0)
        memcpy(info + lablen + 16, ctxenc, ctxenclen);
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
    p[1] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)dek, 32);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)hdr,
                                             KMSENV_STREAM_HDR_LEN);
    p[3] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, infolen);
    p[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kc, key, 32, p) <= 0) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "stream key derivation failed");
        goto done;
    }
    ok = 1;
done:
    OPENSSL_free(info);
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    return ok;
}

void kmsenv_stream_init(KMSENV_STREAM *s)
{
    memset(s, 0, sizeof(*s));
}

void kmsenv_stream_cleanup(KMSENV_STREAM *s)
{
    kmsenv_gcm_free(&s->g);
    OPENSSL_cleanse(s, sizeof(*s));
    s->state = S_NONE;
}

void kmsenv_stream_set_counter(KMSENV_STREAM *s, uint64_t c)
{
    s->counter = c;
}

void kmsenv_stream_set_evp_only(KMSENV_STREAM *s, int on)
{
    s->evp_only = on;
}

int kmsenv_stream_gcm_direct(const KMSENV_STREAM *s)
{
    return kmsenv_gcm_is_direct(&s->g);
}

static int fail(KMSENV_STREAM *s)
{
    OPENSSL_cleanse(s->hold, sizeof(s->hold));
    s->holdlen = 0;
    s->state = S_ERR;
    return 0;
}

/* Fetches GCM, asks for the key and sets it (the key never stays here
 * beyond the cipher context). */
static int set_key(KMSENV_STREAM *s)
{
    unsigned char *key = OPENSSL_secure_malloc(32);
    int ok = 0;

    if (key == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "stream key");
        return 0;
    }
    if (!s->keyfn(s->keyarg, s->hdr, s->version, key))
        goto done;
    if (!kmsenv_gcm_setup(&s->g, s->libctx, s->evp_only) ||
        !kmsenv_gcm_key(&s->g, key, s->enc)) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                     "AES-256-GCM unavailable (is the default provider "
                     "loaded?)");
        goto done;
    }
    ok = 1;
done:
    OPENSSL_secure_clear_free(key, 32);
    return ok;
}

static int start(KMSENV_STREAM *s, OSSL_LIB_CTX *libctx, int enc,
                 KMSENV_STREAM_KEYFN keyfn, void *arg)
{
    KMSENV_GCM g = s->g;
    int evp_only = s->evp_only;

    memset(s, 0, sizeof(*s));
    s->g = g, s->evp_only = evp_only; /* kept across restarts */
    s->enc = enc;
    s->libctx = libctx;
    s->keyfn = keyfn;
    s->keyarg = arg;
    return 1;
}

int kmsenv_stream_start_enc(KMSENV_STREAM *s, OSSL_LIB_CTX *libctx,
                            uint32_t version, const unsigned char *salt,
                            KMSENV_STREAM_KEYFN keyfn, void *arg)
{
    start(s, libctx, 1, keyfn, arg);
    s->hdr[0] = KMSENV_STREAM_FORMAT;
    kmsenv_put_u32(s->hdr + 1, version);
    if (salt != NULL) {
        memcpy(s->hdr + 5, salt, KMSENV_STREAM_SALT_LEN);
    } else if (RAND_bytes_ex(libctx, s->hdr + 5, KMSENV_STREAM_SALT_LEN, 0) <=
               0) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "no random bytes for the salt");
        return fail(s);
    }
    s->hlen = KMSENV_STREAM_HDR_LEN;
    s->version = version;
    if (!set_key(s))
        return fail(s);
    s->state = S_DATA;
    return 1;
}

int kmsenv_stream_start_dec(KMSENV_STREAM *s, OSSL_LIB_CTX *libctx,
                            KMSENV_STREAM_KEYFN keyfn, void *arg)
{
    start(s, libctx, 0, keyfn, arg);
    s->state = S_HDR;
    return 1;
}

static int room(size_t w, size_t n, size_t outsize)
{
    if (n > outsize || w > outsize - n) {
        KMSENV_RAISE(KMSENV_R_BUFFER_TOO_SMALL,
                     "stream output buffer too small (%zu bytes, needs %zu)",
                     outsize, w + n);
        return 0;
    }
    return 1;
}

static int set_nonce(KMSENV_STREAM *s, int last)
{
    unsigned char iv[12];
    uint64_t c = s->counter;
    int i;

    for (i = 7; i >= 0; i--, c >>= 8)
        iv[i] = (unsigned char)c;
    kmsenv_put_u32(iv + 8, last ? 1 : 0);
    if (!kmsenv_gcm_iv(&s->g, iv)) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "stream segment init failed");
        return 0;
    }
    return 1;
}

static int gcm(KMSENV_STREAM *s, unsigned char *out, const unsigned char *in,
               size_t len)
{
    if (!kmsenv_gcm_update(&s->g, out, in, len)) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "AES-256-GCM failed");
        return 0;
    }
    return 1;
}

static int aad(KMSENV_STREAM *s, const unsigned char *a, size_t len)
{
    if (!kmsenv_gcm_aad(&s->g, a, len)) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "AES-256-GCM failed");
        return 0;
    }
    return 1;
}

static int seal_end(KMSENV_STREAM *s, unsigned char *tag)
{
    if (!kmsenv_gcm_seal(&s->g, tag)) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "AES-256-GCM failed");
        return 0;
    }
    return 1;
}

/* 1: tag good; 0: bad (error raised naming the segment). */
static int open_end(KMSENV_STREAM *s, const unsigned char *tag, int last)
{
    if (!kmsenv_gcm_open(&s->g, tag)) {
        KMSENV_RAISE(KMSENV_R_RECORD_AUTH_FAILED,
                     "stream %s %llu (key version %u) failed authentication: "
                     "tampered, truncated, reordered or spliced, or the wrong "
                     "keyset or context; discard all output",
                     last ? "end segment" : "segment",
                     (unsigned long long)s->counter, s->version);
        return 0;
    }
    return 1;
}

/* In-place use would let the output overrun input not yet read. */
static int overlap_ok(const unsigned char *in, size_t inl,
                      const unsigned char *out, size_t outsize)
{
    if (in == NULL || inl == 0 || out == NULL || outsize == 0)
        return 1;
    if (out >= in + inl || in >= out + outsize)
        return 1;
    if (out + 64 <= in)
        return 1;
    KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                 "KMSENV-AES-256-GCM: output overlaps input; use separate "
                 "buffers (or output at least 64 bytes before the input)");
    return 0;
}

static int enc_update(KMSENV_STREAM *s, const unsigned char *in, size_t inl,
                      unsigned char *out, size_t outsize, size_t *outl)
{
    size_t w = 0, a, n, fromlag, fromin;

    /* The whole call's output is checked before anything is written. */
    a = s->laglen + inl;
    if (!room(s->hdr_sent ? 0 : KMSENV_STREAM_HDR_LEN,
              a <= KMSENV_STREAM_LAG
                  ? 0
                  : a - KMSENV_STREAM_LAG + KMSENV_STREAM_FRAME_OVERHEAD,
              outsize))
        return 0;
    if (!s->hdr_sent) {
        memcpy(out, s->hdr, KMSENV_STREAM_HDR_LEN);
        w += KMSENV_STREAM_HDR_LEN;
        s->hdr_sent = 1;
    }
    if (a <= KMSENV_STREAM_LAG) {
        if (inl > 0)
            memcpy(s->lag + s->laglen, in, inl);
        s->laglen = a;
        *outl = w;
        return 1;
    }
    /* One frame of everything but the last KMSENV_STREAM_LAG bytes (at
     * most KMSENV_STREAM_MAX_FRAME: the caller checked inl). */
    n = a - KMSENV_STREAM_LAG;
    if (s->counter == KMSENV_STREAM_MAX_COUNTER) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "KMSENV-AES-256-GCM: stream segment limit (2^64-1) "
                     "reached");
        return 0;
    }
    if (!room(w, n + KMSENV_STREAM_FRAME_OVERHEAD, outsize))
        return 0;
    kmsenv_put_u32(out + w, (uint32_t)n);
    if (!set_nonce(s, 0) || !aad(s, out + w, KMSENV_STREAM_LEN_LEN))
        return 0;
    w += KMSENV_STREAM_LEN_LEN;
    fromlag = s->laglen < n ? s->laglen : n;
    fromin = n - fromlag;
    if (!gcm(s, out + w, s->lag, fromlag) ||
        !gcm(s, out + w + fromlag, in, fromin))
        return 0;
    w += n;
    if (!seal_end(s, out + w))
        return 0;
    w += KMSENV_STREAM_TAG_LEN;
    /* The new lag: what is left of the old one, then the rest of in. */
    memmove(s->lag, s->lag + fromlag, s->laglen - fromlag);
    s->laglen -= fromlag;
    memcpy(s->lag + s->laglen, in + fromin, inl - fromin);
    s->laglen += inl - fromin;
    s->counter++;
    *outl = w;
    return 1;
}

static int enc_final(KMSENV_STREAM *s, unsigned char *out, size_t outsize,
                     size_t *outl)
{
    size_t w = 0;

    if (!s->hdr_sent) {
        if (!room(w, KMSENV_STREAM_HDR_LEN, outsize))
            return 0;
        memcpy(out, s->hdr, KMSENV_STREAM_HDR_LEN);
        w += KMSENV_STREAM_HDR_LEN;
        s->hdr_sent = 1;
    }
    if (!room(w, s->laglen + KMSENV_STREAM_TAG_LEN, outsize) ||
        !set_nonce(s, 1) || !gcm(s, out + w, s->lag, s->laglen))
        return 0;
    w += s->laglen;
    if (!seal_end(s, out + w))
        return 0;
    w += KMSENV_STREAM_TAG_LEN;
    OPENSSL_cleanse(s->lag, sizeof(s->lag));
    s->laglen = 0;
    s->state = S_DONE;
    *outl = w;
    return 1;
}

/* A frame ends: its held plaintext goes to out, the rest bytes of p are
 * decrypted straight after it, and the tag is checked before the call
 * returns; on failure everything this call wrote of the frame is wiped. */
static int end_frame(KMSENV_STREAM *s, const unsigned char *p, size_t rest,
                     const unsigned char *tag, unsigned char *out,
                     size_t outsize, size_t *w, size_t frame_w)
{
    size_t need = s->holdlen + rest;

    if (!room(*w, need, outsize))
        return 0;
    if (s->holdlen > 0)
        memcpy(out + *w, s->hold, s->holdlen);
    OPENSSL_cleanse(s->hold, s->holdlen);
    if (!gcm(s, out + *w + s->holdlen, p, rest) || !open_end(s, tag, 0)) {
        OPENSSL_cleanse(out + frame_w, *w + need - frame_w);
        *w = frame_w;
        s->holdlen = 0;
        return 0;
    }
    *w += need;
    s->pos = s->n;
    s->holdlen = s->taglen = 0;
    s->frame_unverified = 0;
    s->counter++;
    s->state = S_BND;
    return 1;
}

/* Decryption: feeds frame bytes (state S_DATA or S_TAG); returns how many
 * of len it consumed (stops at the frame's end), or -1. When the rest of
 * the frame and its tag are all in p, one GCM update decrypts it into out
 * (end_frame); otherwise one GCM update decrypts what p holds of the frame
 * into out, the bytes before the frame's last KMSENV_STREAM_HOLD are
 * released, and the others are moved to s->hold (and wiped from out). */
static long long feed_frame(KMSENV_STREAM *s, const unsigned char *p,
                            size_t len, unsigned char *out, size_t outsize,
                            size_t *w, size_t *frame_w)
{
    size_t used = 0, take;

    if (s->state == S_DATA) {
        size_t left = s->n - s->pos, direct = 0;
        size_t holdfrom =
            s->n > KMSENV_STREAM_HOLD ? s->n - KMSENV_STREAM_HOLD : 0;

        if (len >= left + KMSENV_STREAM_TAG_LEN) {
            if (!end_frame(s, p, left, p + left, out, outsize, w, *frame_w))
                return -1;
            return (long long)(left + KMSENV_STREAM_TAG_LEN);
        }
        /* The tag is not in this call: what is released now goes out
         * before its tag is checked. */
        take = len < left ? len : left;
        if (s->pos < holdfrom) {
            direct = holdfrom - s->pos;
            if (direct > take)
                direct = take;
        }
        /* out has room for take: a call writes at most what it consumed
         * plus one earlier frame's hold, and EVP gives inl + 32. */
        if (!room(*w, take, outsize) || !gcm(s, out + *w, p, take)) {
            OPENSSL_cleanse(out + *w, take <= outsize - *w ? take : 0);
            return -1;
        }
        if (take > direct) {
            memcpy(s->hold + s->holdlen, out + *w + direct, take - direct);
            OPENSSL_cleanse(out + *w + direct, take - direct);
        }
        *w += direct;
        s->released_unverified += direct;
        s->frame_unverified += direct;
        s->holdlen += take - direct;
        s->pos += (uint32_t)take;
        used = take;
        if (s->pos < s->n)
            return (long long)used;
        s->state = S_TAG;
    }
    /* S_TAG: the frame's data is all in; its tag comes in pieces. */
    take = KMSENV_STREAM_TAG_LEN - s->taglen;
    if (take > len - used)
        take = len - used;
    memcpy(s->tag + s->taglen, p + used, take);
    s->taglen += take;
    used += take;
    if (s->taglen == KMSENV_STREAM_TAG_LEN &&
        !end_frame(s, NULL, 0, s->tag, out, outsize, w, *frame_w))
        return -1;
    return (long long)used;
}

/* A frame starts with the length at lenp: checked, nonce and AAD set. */
static int begin_frame(KMSENV_STREAM *s, const unsigned char *lenp, size_t w,
                       size_t *frame_w)
{
    uint32_t n = kmsenv_get_u32(lenp);

    if (n == 0 || n > KMSENV_STREAM_MAX_FRAME) {
        KMSENV_RAISE(KMSENV_R_BAD_RECORD,
                     "stream segment %llu: bad length %u (1..%u; corrupt or "
                     "not a kmsenv stream)",
                     (unsigned long long)s->counter, n,
                     KMSENV_STREAM_MAX_FRAME);
        return 0;
    }
    if (s->counter == KMSENV_STREAM_MAX_COUNTER) {
        KMSENV_RAISE(KMSENV_R_BAD_RECORD,
                     "stream segment limit (2^64-1) exceeded");
        return 0;
    }
    if (!set_nonce(s, 0) || !aad(s, lenp, KMSENV_STREAM_LEN_LEN))
        return 0;
    s->n = n;
    s->pos = 0;
    s->holdlen = s->taglen = 0;
    s->frame_unverified = 0;
    s->state = S_DATA;
    *frame_w = w;
    return 1;
}

/* A frame starts at bnd (its boundary fell near the end of an earlier
 * update): its length, then its first bytes. */
static int start_frame(KMSENV_STREAM *s, unsigned char *out, size_t outsize,
                       size_t *w, size_t *frame_w)
{
    long long used;

    if (!begin_frame(s, s->bnd, *w, frame_w))
        return 0;
    used =
        feed_frame(s, s->bnd + KMSENV_STREAM_LEN_LEN,
                   s->bndlen - KMSENV_STREAM_LEN_LEN, out, outsize, w, frame_w);
    if (used < 0)
        return 0;
    used += KMSENV_STREAM_LEN_LEN;
    memmove(s->bnd, s->bnd + used, s->bndlen - (size_t)used);
    s->bndlen -= (size_t)used;
    return 1;
}

static int dec_update(KMSENV_STREAM *s, const unsigned char *in, size_t inl,
                      unsigned char *out, size_t outsize, size_t *outl)
{
    size_t w = 0, frame_w = 0, take;
    long long used;

    for (;;) {
        switch (s->state) {
        case S_HDR:
            if (inl == 0)
                goto out;
            take = KMSENV_STREAM_HDR_LEN - s->hlen;
            if (take > inl)
                take = inl;
            memcpy(s->hdr + s->hlen, in, take);
            s->hlen += take, in += take, inl -= take;
            if (s->hlen < KMSENV_STREAM_HDR_LEN)
                goto out;
            if (s->hdr[0] != KMSENV_STREAM_FORMAT) {
                KMSENV_RAISE(KMSENV_R_BAD_RECORD,
                             "not a kmsenv stream (format byte %02x, "
                             "expected %02x)",
                             s->hdr[0], KMSENV_STREAM_FORMAT);
                goto err;
            }
            s->version = kmsenv_get_u32(s->hdr + 1);
            if (!set_key(s))
                goto err;
            s->state = S_BND;
            break;
        case S_BND:
            /* More than 32 bytes after a boundary: a frame (a tail is at
             * most 32 bytes and ends the stream). */
            if (s->bndlen == 0 && inl > KMSENV_STREAM_BLOCK) {
                if (!begin_frame(s, in, w, &frame_w))
                    goto err;
                in += KMSENV_STREAM_LEN_LEN, inl -= KMSENV_STREAM_LEN_LEN;
                break;
            }
            if (s->bndlen <= KMSENV_STREAM_BLOCK) {
                if (inl == 0)
                    goto out;
                take = KMSENV_STREAM_BLOCK + 1 - s->bndlen;
                if (take > inl)
                    take = inl;
                memcpy(s->bnd + s->bndlen, in, take);
                s->bndlen += take, in += take, inl -= take;
                if (s->bndlen <= KMSENV_STREAM_BLOCK)
                    goto out;
            }
            if (!start_frame(s, out, outsize, &w, &frame_w))
                goto err;
            break;
        case S_DATA:
        case S_TAG:
            if (inl == 0)
                goto out;
            used = feed_frame(s, in, inl, out, outsize, &w, &frame_w);
            if (used < 0)
                goto err;
            in += used, inl -= (size_t)used;
            break;
        case S_DONE:
            if (inl == 0)
                goto out;
            KMSENV_RAISE(KMSENV_R_BAD_RECORD,
                         "data after the end of the stream");
            goto err;
        default:
            KMSENV_RAISE(KMSENV_R_INTERNAL, "stream not started or failed");
            goto err;
        }
    }
out:
    *outl = w;
    return 1;
err:
    /* A failing call leaves nothing it wrote. */
    OPENSSL_cleanse(out, w);
    return 0;
}

static int dec_final(KMSENV_STREAM *s, unsigned char *out, size_t outsize,
                     size_t *outl)
{
    unsigned char plain[KMSENV_STREAM_LAG];
    size_t m;

    if (s->state == S_DONE) {
        *outl = 0;
        return 1;
    }
    if (s->state != S_BND || s->bndlen < KMSENV_STREAM_TAG_LEN) {
        KMSENV_RAISE(KMSENV_R_BAD_RECORD,
                     "stream truncated (%s); discard all output",
                     s->state == S_HDR   ? "in its header"
                     : s->state == S_BND ? "before its end segment"
                                         : "inside a segment");
        return 0;
    }
    m = s->bndlen - KMSENV_STREAM_TAG_LEN; /* <= 16 (bndlen <= 32) */
    if (!room(0, m, outsize) || !set_nonce(s, 1) || !gcm(s, plain, s->bnd, m) ||
        !open_end(s, s->bnd + m, 1)) {
        OPENSSL_cleanse(plain, sizeof(plain));
        return 0;
    }
    memcpy(out, plain, m);
    OPENSSL_cleanse(plain, sizeof(plain));
    s->state = S_DONE;
    *outl = m;
    return 1;
}

int kmsenv_stream_update(KMSENV_STREAM *s, const unsigned char *in, size_t inl,
                         unsigned char *out, size_t outsize, size_t *outl)
{
    int ok;

    *outl = 0;
    if (s->state == S_ERR || s->state == S_NONE) {
        KMSENV_RAISE(KMSENV_R_INTERNAL,
                     "KMSENV-AES-256-GCM: stream not started or already "
                     "failed");
        return 0;
    }
    /* Too large: refused before anything is written or changed, so the
     * caller may split the update and go on. */
    if (inl >
        (s->enc ? KMSENV_STREAM_MAX_UPDATE : KMSENV_STREAM_MAX_DEC_UPDATE)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "KMSENV-AES-256-GCM: an %s update may be at most %zu "
                     "bytes (got %zu); split it",
                     s->enc ? "encrypt" : "decrypt",
                     s->enc ? (size_t)KMSENV_STREAM_MAX_UPDATE
                            : KMSENV_STREAM_MAX_DEC_UPDATE,
                     inl);
        return 0;
    }
    if (!overlap_ok(in, inl, out, outsize))
        return fail(s);
    if (s->enc && s->state == S_DONE) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "stream already finished");
        return fail(s);
    }
    ok = s->enc ? enc_update(s, in, inl, out, outsize, outl)
                : dec_update(s, in, inl, out, outsize, outl);
    return ok ? 1 : fail(s);
}

int kmsenv_stream_final(KMSENV_STREAM *s, unsigned char *out, size_t outsize,
                        size_t *outl)
{
    int ok;

    *outl = 0;
    if (s->state == S_ERR || s->state == S_NONE) {
        KMSENV_RAISE(KMSENV_R_INTERNAL,
                     "KMSENV-AES-256-GCM: stream not started or already "
                     "failed");
        return 0;
    }
    if (s->enc && s->state == S_DONE)
        return 1;
    ok = s->enc ? enc_final(s, out, outsize, outl)
                : dec_final(s, out, outsize, outl);
    return ok ? 1 : fail(s);
}
