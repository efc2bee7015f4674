/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the pure layers (kmsenv_core): encryption context,
 * XAES-256-GCM, records, keysets and the file: keyring. No provider is
 * involved: libctx is NULL, so everything runs on OpenSSL's default provider.
 *
 * Every test vector printed in docs/FORMATS.md is checked here byte for byte,
 * twice: against the library, and against an independent reference
 * implementation in this file that follows the text of FORMATS.md (ref_*).
 * The expected hex strings below must stay identical to the ones in the
 * document; the last checks verify that (run from the repo root, or from a
 * build whose __FILE__ is absolute).
 *
 * Usage: test_envelope [-v]   (-v prints every computed vector)
 * Output: "ok N - name" / "not ok N - name" lines, then "P passed, F failed".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "envelope/context.h"
#include "envelope/keyset.h"
#include "envelope/record.h"
#include "envelope/xaes.h"
#include "kms/aws.h"
#include "kms/keyring.h"
#include "kms/policy.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* ------------------------------------------------------------------------ */
/* Expected vectors (identical copies live in docs/FORMATS.md)               */
/* ------------------------------------------------------------------------ */

/* C2SP XAES-256-GCM, K = 01*32, N = "ABCDEFGHIJKLMNOPQRSTUVWX" */
#define XAES1_L "7298caa565031eadc6ce23d23ea66378"
#define XAES1_K1 "e531954aca063d5b8d9c47a47d4cc6f0"
#define XAES1_M1 "000158004142434445464748494a4b4c"
#define XAES1_M2 "000258004142434445464748494a4b4c"
#define XAES1_KX                                                               \
    "c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b"
#define XAES1_CT "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"
/* C2SP XAES-256-GCM, K = 03*32, same N, AAD "c2sp.org/XAES-256-GCM" */
#define XAES3_L "91c08762876dccf9ba204a33768fa5fe"
#define XAES3_K1 "23810ec50edb99f374409466ed1f4b7b"
#define XAES3_KX                                                               \
    "e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8"
#define XAES3_CT "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"
/* C2SP accumulated randomized test, 10 000 iterations */
#define XAES_SHAKE_FIRST "7f9c2ba4e88f827d616045507605853e"
#define XAES_ACC_10K                                                           \
    "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939"

/* Context: "table=cards,row=42" */
#define CTX_VEC_TEXT "table=cards,row=42"
#define CTX_VEC_HEX                                                            \
    "00020003726f770002343200057461626c65000563617264"                         \
    "73"
/* Context with escapes: note=a\,b\=c\\d,x=   (value "a,b=c\d", empty x) */
#define CTX_ESC_TEXT "note=a\\,b\\=c\\\\d,x="
#define CTX_ESC_HEX "000200046e6f74650007612c623d635c640001780000"
/* The empty context */
#define CTX_EMPTY_HEX "0000"

/* Record vector */
#define REC_AAD_HEX                                                            \
    "4b450100000001808182838485868788898a8b8c8d8e8f9091929394959697f0"         \
    "f1f2f3f4f5f6f7f8f9fafbfcfdfeff00020003726f770002343200057461626c"         \
    "6500056361726473"
#define REC_KX_HEX                                                             \
    "460c2aa643370400bf3ffae7094a178603fca1b4e7190c1791bfe77bfa5e6121"
#define REC_HEX                                                                \
    "4b450100000001808182838485868788898a8b8c8d8e8f9091929394959697a2"         \
    "18185f6b16500ca221981c195a90113b10894cc418c0cb50b97cc99b77ba5a"

/* file: keyring vector */
#define FILE_FP_HEX "f970f15f2534a15411780bc2e4dc8bc9"
#define FILE_KEKCTX_HEX                                                        \
    "0002000d6b6d73656e763a6b6579736574002066306631663266336634663566"         \
    "36663766386639666166626663666466656666000e6b6d73656e763a70757270"         \
    "6f736500066b6579736574"
#define FILE_BLOB_HEX                                                          \
    "01b0b1b2b3b4b5b6b7b8b9babba674a3d64dd4743b991362fc9659c790349651"         \
    "f744c9e8d59620faf98b3e5e76c64c8c96499c3870072901a9581c2ffd"

/* Keyset vector (DER) */
#define KS_HEX                                                                 \
    "048201054b4d53454e564b5301f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000000"         \
    "006553f100010000000200020000000102000000006553f10000000002010000"         \
    "00006555428001001466696c653a2f6574632f6b6d73656e762f6b656b10f970"         \
    "f15f2534a15411780bc2e4dc8bc9003d01b0b1b2b3b4b5b6b7b8b9babba674a3"         \
    "d64dd4743b991362fc9659c790349651f744c9e8d59620faf98b3e5e76c64c8c"         \
    "96499c3870072901a9581c2ffda0a1a2a3a4a5a6a7a8a9aaabd78e043ce6ee9a"         \
    "2a71664bf585b13ef9ff06e7d4f87a933afac5f481f5df60e77ab65060e47502"         \
    "86c07382b572c109e6d27d3555dfcc2427e249a7de4de3ebaf626bf35bf6925f"         \
    "40ef0db5705e887f85"

#include "harness.h"

/* Drains the error queue; true if any entry had kmsenv reason r. */
static int saw_reason(int r)
{
    unsigned long e;
    int seen = 0;

    while ((e = ERR_get_error()) != 0)
        if (ERR_GET_LIB(e) == ERR_LIB_USER && ERR_GET_REASON(e) == r)
            seen = 1;
    return seen;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);

    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void tohex(char *out, const unsigned char *in, size_t n)
{
    static const char d[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into a fresh buffer; *len receives its length. */
static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2, i;
    unsigned char *p = xmalloc(n);

    for (i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "bad hex constant\n");
            exit(2);
        }
        p[i] = (unsigned char)(hi << 4 | lo);
    }
    *len = n;
    return p;
}

static int hex_eq(const unsigned char *got, size_t len, const char *expect)
{
    char *h = xmalloc(2 * len + 1);
    int ok;

    tohex(h, got, len);
    ok = strcmp(h, expect) == 0;
    free(h);
    return ok;
}

/* Checks a computed value against its expected hex (and prints it with -v
 * or on mismatch, so new vectors can be pasted into FORMATS.md). */
static int vec_at(int line, const char *name, const unsigned char *got,
                  size_t len, const char *expect)
{
    char *h = xmalloc(2 * len + 1);
    int ok;

    tohex(h, got, len);
    ok = strcmp(h, expect) == 0;
    if (opt_verbose || !ok)
        printf("# %s = %s\n", name, h);
    if (!ok)
        printf("#   expected %s\n", expect);
    free(h);
    return check_at(ok, line, "vector %s", name);
}
#define VEC(name, got, len, expect)                                            \
    vec_at(__LINE__, (name), (got), (len), (expect))

static void fill(unsigned char *p, unsigned start, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(start + i);
}

/* ------------------------------------------------------------------------ */
/* Fixed inputs of the FORMATS.md vectors                                    */
/* ------------------------------------------------------------------------ */

static unsigned char V_KEY1[32];        /* 00 01 .. 1f: data key of version 1 */
static unsigned char V_KEY2[32];        /* 20 21 .. 3f: data key of version 2 */
static unsigned char V_KSK[32];         /* 40 41 .. 5f: keyset key */
static unsigned char V_KEK[32];         /* 60 61 .. 7f: file: KEK */
static unsigned char V_REC_NONCE[24];   /* 80 81 .. 97 */
static unsigned char V_SEAL_NONCE[12];  /* a0 a1 .. ab */
static unsigned char V_WRAP_NONCE[12];  /* b0 b1 .. bb */
static unsigned char V_KSID[16];        /* f0 f1 .. ff */
#define V_CREATED1 UINT64_C(1700000000) /* 2023-11-14T22:13:20Z */
#define V_CREATED2 UINT64_C(1700086400) /* one day later */
#define V_SPEC "file:/etc/kmsenv/kek"
#define V_PLAINTEXT "4111111111111111"

static void init_vectors(void)
{
    fill(V_KEY1, 0x00, 32);
    fill(V_KEY2, 0x20, 32);
    fill(V_KSK, 0x40, 32);
    fill(V_KEK, 0x60, 32);
    fill(V_REC_NONCE, 0x80, 24);
    fill(V_SEAL_NONCE, 0xa0, 12);
    fill(V_WRAP_NONCE, 0xb0, 12);
    fill(V_KSID, 0xf0, 16);
}

/* ------------------------------------------------------------------------ */
/* Reference implementation of FORMATS.md (independent of the library)      */
/* ------------------------------------------------------------------------ */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} BUF;

static void b_put(BUF *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void b_u8(BUF *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    b_put(b, &c, 1);
}

static void b_u16(BUF *b, unsigned v)
{
    b_u8(b, (v >> 8) & 0xff);
    b_u8(b, v & 0xff);
}

static void b_u32(BUF *b, uint32_t v)
{
    b_u16(b, (unsigned)(v >> 16));
    b_u16(b, (unsigned)(v & 0xffff));
}

static void b_u64(BUF *b, uint64_t v)
{
    b_u32(b, (uint32_t)(v >> 32));
    b_u32(b, (uint32_t)v);
}

static void b_free(BUF *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static void ref_aes(const unsigned char key[32], const unsigned char *in,
                    unsigned char *out, int len)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;

    if (c == NULL ||
        !EVP_EncryptInit_ex2(c, EVP_aes_256_ecb(), key, NULL, NULL) ||
        !EVP_CIPHER_CTX_set_padding(c, 0) ||
        !EVP_EncryptUpdate(c, out, &outl, in, len) || outl != len) {
        fprintf(stderr, "AES-256-ECB failed\n");
        exit(2);
    }
    EVP_CIPHER_CTX_free(c);
}

/* C2SP XAES-256-GCM key derivation, straight from the spec text. */
static void ref_xaes(const unsigned char key[32], const unsigned char n[24],
                     unsigned char l[16], unsigned char k1[16],
                     unsigned char m1[16], unsigned char m2[16],
                     unsigned char kx[32])
{
    static const unsigned char zero[16];
    unsigned char x[32];
    int i;

    ref_aes(key, zero, l, 16);
    for (i = 0; i < 16; i++)
        k1[i] = (unsigned char)(l[i] << 1 | (i < 15 ? l[i + 1] >> 7 : 0));
    if (l[0] & 0x80)
        k1[15] ^= 0x87;
    m1[0] = 0x00, m1[1] = 0x01, m1[2] = 0x58, m1[3] = 0x00;
    m2[0] = 0x00, m2[1] = 0x02, m2[2] = 0x58, m2[3] = 0x00;
    memcpy(m1 + 4, n, 12);
    memcpy(m2 + 4, n, 12);
    for (i = 0; i < 16; i++) {
        x[i] = m1[i] ^ k1[i];
        x[16 + i] = m2[i] ^ k1[i];
    }
    ref_aes(key, x, kx, 32);
}

/* AES-256-GCM with a 96-bit IV and a 16-byte tag. enc: out = ct, tag
 * written; !enc: out = pt, returns 0 if the tag does not verify. */
static int ref_gcm(int enc, const unsigned char key[32],
                   const unsigned char iv[12], const unsigned char *aad,
                   size_t aadlen, const unsigned char *in, size_t inlen,
                   unsigned char *out, unsigned char tag[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    unsigned char fin[16];
    int outl = 0, ok;

    ok = c != NULL &&
         EVP_CipherInit_ex2(c, EVP_aes_256_gcm(), key, iv, enc, NULL) &&
         (aadlen == 0 || EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen)) &&
         (inlen == 0 || EVP_CipherUpdate(c, out, &outl, in, (int)inlen));
    if (ok && enc)
        ok = EVP_CipherFinal_ex(c, fin, &outl) &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
    else if (ok)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) &&
             EVP_CipherFinal_ex(c, fin, &outl) > 0;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* Canonical context encoding of pairs already in bytewise key order. */
static void ref_ctx(BUF *b, const char *const *kv, size_t npairs)
{
    size_t i;

    b_u16(b, (unsigned)npairs);
    for (i = 0; i < npairs; i++) {
        b_u16(b, (unsigned)strlen(kv[2 * i]));
        b_put(b, kv[2 * i], strlen(kv[2 * i]));
        b_u16(b, (unsigned)strlen(kv[2 * i + 1]));
        b_put(b, kv[2 * i + 1], strlen(kv[2 * i + 1]));
    }
}

/* Record: "KE" 01 | version | nonce | ct | tag. Returns the AAD and Kx too. */
static void ref_record(const unsigned char vkey[32], uint32_t version,
                       const unsigned char ksid[16],
                       const unsigned char *ctxenc, size_t ctxlen,
                       const unsigned char nonce[24], const unsigned char *pt,
                       size_t ptlen, BUF *rec, BUF *aad, unsigned char kx[32])
{
    unsigned char l[16], k1[16], m1[16], m2[16], tag[16];
    unsigned char *ct = xmalloc(ptlen);

    b_u8(rec, 'K');
    b_u8(rec, 'E');
    b_u8(rec, 0x01);
    b_u32(rec, version);
    b_put(rec, nonce, 24);
    b_put(aad, rec->p, 31);
    b_put(aad, ksid, 16);
    b_put(aad, ctxenc, ctxlen);
    ref_xaes(vkey, nonce, l, k1, m1, m2, kx);
    if (!ref_gcm(1, kx, nonce + 12, aad->p, aad->len, pt, ptlen, ct, tag)) {
        fprintf(stderr, "reference GCM failed\n");
        exit(2);
    }
    b_put(rec, ct, ptlen);
    b_put(rec, tag, 16);
    free(ct);
}

/* file: keyring fingerprint: SHA-256("kmsenv-kek-fingerprint-v1" NUL || KEK),
 * first 16 bytes. */
static void ref_fp(const unsigned char kek[32], unsigned char fp[16])
{
    static const char label[] = "kmsenv-kek-fingerprint-v1"; /* 25 chars */
    unsigned char in[26 + 32], md[32];
    unsigned int mdlen = 0;

    memcpy(in, label, 25);
    in[25] = 0x00; /* the terminating NUL is part of the input */
    memcpy(in + 26, kek, 32);
    if (!EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL)) {
        fprintf(stderr, "SHA-256 failed\n");
        exit(2);
    }
    memcpy(fp, md, 16);
}

/* file: wrap blob: 01 | nonce 12 | GCM(KEK, nonce, AAD, pt) | tag 16 with
 * AAD = "kmsenv-file-wrap-v1" NUL || canonical context encoding. */
static void ref_file_blob(const unsigned char kek[32],
                          const unsigned char nonce[12],
                          const unsigned char *ctxenc, size_t ctxlen,
                          const unsigned char *pt, size_t ptlen, BUF *blob)
{
    static const char label[] = "kmsenv-file-wrap-v1"; /* 19 chars */
    BUF aad = {0};
    unsigned char *ct = xmalloc(ptlen), tag[16];

    b_put(&aad, label, 19);
    b_u8(&aad, 0x00);
    b_put(&aad, ctxenc, ctxlen);
    if (!ref_gcm(1, kek, nonce, aad.p, aad.len, pt, ptlen, ct, tag)) {
        fprintf(stderr, "reference GCM failed\n");
        exit(2);
    }
    b_u8(blob, 0x01);
    b_put(blob, nonce, 12);
    b_put(blob, ct, ptlen);
    b_put(blob, tag, 16);
    b_free(&aad);
    free(ct);
}

typedef struct {
    uint32_t id;
    uint8_t state;
    uint64_t created;
} RVER;

typedef struct {
    const char *spec;
    size_t speclen;
    const unsigned char *fp;
    size_t fplen;
    const unsigned char *blob;
    size_t bloblen;
} RWRAP;

/* A keyset as FORMATS.md lays it out; fields can be made invalid on
 * purpose. */
typedef struct {
    const char *magic; /* 8 bytes */
    unsigned fmt;
    const unsigned char *id;
    uint64_t created;
    unsigned alg;
    uint32_t primary;
    long nver_field; /* value written for nver; -1: nver */
    size_t nver;
    const RVER *ver;
    long nwrap_field; /* -1: nwrap */
    size_t nwrap;
    const RWRAP *wrap;
    const unsigned char *keys; /* nver * 32 bytes */
    const unsigned char *ksk;
    const unsigned char *nonce;
    long sealed_adjust; /* extra (+) or missing (-) bytes at the end */
} KSDESC;

static void ref_der_header(BUF *b, size_t l)
{
    b_u8(b, 0x04);
    if (l < 0x80) {
        b_u8(b, (unsigned)l);
    } else if (l <= 0xff) {
        b_u8(b, 0x81);
        b_u8(b, (unsigned)l);
    } else if (l <= 0xffff) {
        b_u8(b, 0x82);
        b_u16(b, (unsigned)l);
    } else if (l <= 0xffffff) {
        b_u8(b, 0x83);
        b_u8(b, (unsigned)(l >> 16));
        b_u16(b, (unsigned)(l & 0xffff));
    } else {
        b_u8(b, 0x84);
        b_u32(b, (uint32_t)l);
    }
}

static void ref_keyset(const KSDESC *d, BUF *der)
{
    BUF body = {0};
    size_t i, aadlen, klen = d->nver * 32;
    unsigned char *ct = xmalloc(klen), tag[16];

    b_put(&body, d->magic, 8);
    b_u8(&body, d->fmt);
    b_put(&body, d->id, 16);
    b_u64(&body, d->created);
    b_u8(&body, d->alg);
    b_u32(&body, d->primary);
    b_u16(&body,
          (unsigned)(d->nver_field >= 0 ? (size_t)d->nver_field : d->nver));
    for (i = 0; i < d->nver; i++) {
        b_u32(&body, d->ver[i].id);
        b_u8(&body, d->ver[i].state);
        b_u64(&body, d->ver[i].created);
    }
    b_u8(&body,
         (unsigned)(d->nwrap_field >= 0 ? (size_t)d->nwrap_field : d->nwrap));
    for (i = 0; i < d->nwrap; i++) {
        b_u16(&body, (unsigned)d->wrap[i].speclen);
        b_put(&body, d->wrap[i].spec, d->wrap[i].speclen);
        b_u8(&body, (unsigned)d->wrap[i].fplen);
        b_put(&body, d->wrap[i].fp, d->wrap[i].fplen);
        b_u16(&body, (unsigned)d->wrap[i].bloblen);
        b_put(&body, d->wrap[i].blob, d->wrap[i].bloblen);
    }
    aadlen = body.len;
    if (!ref_gcm(1, d->ksk, d->nonce, body.p, aadlen, d->keys, klen, ct, tag)) {
        fprintf(stderr, "reference GCM failed\n");
        exit(2);
    }
    b_put(&body, d->nonce, 12);
    b_put(&body, ct, klen);
    b_put(&body, tag, 16);
    for (i = 0; d->sealed_adjust > 0 && i < (size_t)d->sealed_adjust; i++)
        b_u8(&body, 0);
    if (d->sealed_adjust < 0)
        body.len -= (size_t)(-d->sealed_adjust);
    ref_der_header(der, body.len);
    b_put(der, body.p, body.len);
    b_free(&body);
    free(ct);
}

/* ------------------------------------------------------------------------ */
/* Temp files                                                                */
/* ------------------------------------------------------------------------ */

static char tmpdir[64];

static void tmp_path(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", tmpdir, name);
}

static int write_file(const char *path, const void *data, size_t len,
                      mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n;

    if (fd < 0)
        return 0;
    n = write(fd, data, len);
    if (fchmod(fd, mode) != 0 || close(fd) != 0 || n != (ssize_t)len)
        return 0;
    return 1;
}

static const char *const tmp_files[] = {
    "kek", "kek2", "kek-0640", "kek-0604", "kek-short", "kek-long", "missing"};

static void tmp_cleanup(void)
{
    char p[128];
    size_t i;

    if (tmpdir[0] == '\0')
        return;
    for (i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++) {
        tmp_path(p, sizeof(p), tmp_files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Helpers around the library                                                */
/* ------------------------------------------------------------------------ */

/* Parses text into a context and returns its canonical encoding as hex
 * (malloc'd), or NULL if parsing or encoding failed. */
static char *ctx_hex(const char *text)
{
    KMSENV_CONTEXT c;
    KMSENV_BUF w;
    char *h = NULL;

    kmsenv_ctx_init(&c);
    kmsenv_buf_init(&w, 0);
    if (kmsenv_ctx_parse(&c, text, strlen(text)) && kmsenv_ctx_encode(&c, &w)) {
        h = xmalloc(2 * w.len + 1);
        tohex(h, w.p, w.len);
    }
    kmsenv_buf_free(&w);
    kmsenv_ctx_free(&c);
    return h;
}

/* Parse must fail with KMSENV_R_BAD_CONTEXT. */
static int ctx_rejects(const char *text)
{
    KMSENV_CONTEXT c;
    KMSENV_BUF w;
    int ok;

    kmsenv_ctx_init(&c);
    kmsenv_buf_init(&w, 0);
    ok = kmsenv_ctx_parse(&c, text, strlen(text)) && kmsenv_ctx_encode(&c, &w);
    ok = !ok && last_reason() == KMSENV_R_BAD_CONTEXT;
    kmsenv_buf_free(&w);
    kmsenv_ctx_free(&c);
    ERR_clear_error();
    return ok;
}

static int ctx_enc(const char *text, KMSENV_BUF *w)
{
    KMSENV_CONTEXT c;
    int ok;

    kmsenv_ctx_init(&c);
    kmsenv_buf_init(w, 0);
    ok = kmsenv_ctx_parse(&c, text, strlen(text)) && kmsenv_ctx_encode(&c, w);
    kmsenv_ctx_free(&c);
    return ok;
}

static int rec_key(KMSENV_REC_KEY *rk, const unsigned char key[32],
                   uint32_t version)
{
    KMSENV_XAES x;
    int ok;

    memset(rk, 0, sizeof(*rk));
    if (!kmsenv_xaes_init(&x, NULL, key))
        return 0;
    ok = kmsenv_rec_key_init(rk, NULL, version, &x);
    kmsenv_xaes_cleanup(&x);
    return ok;
}

/* Opens rec under the context given as text. */
static int rec_open_text(KMSENV_REC_KEY *rk, const unsigned char ksid[16],
                         const char *ctxtext, const unsigned char *rec,
                         size_t reclen, unsigned char *out, size_t *outlen)
{
    KMSENV_BUF w;
    int ok;

    if (!ctx_enc(ctxtext, &w)) {
        kmsenv_buf_free(&w);
        return 0;
    }
    ok = kmsenv_record_open(rk, ksid, w.p, w.len, rec, reclen, out, outlen);
    kmsenv_buf_free(&w);
    return ok;
}

static int set_secret(KMSENV_SECRET *s, const unsigned char *p, size_t n)
{
    if (!kmsenv_secret_alloc(s, n))
        return 0;
    memcpy(s->data, p, n);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* 1. XAES-256-GCM                                                           */
/* ------------------------------------------------------------------------ */

static int xaes_seal(const unsigned char key[32], const unsigned char n[24],
                     const unsigned char *aad, size_t aadlen,
                     const unsigned char *pt, size_t ptlen, unsigned char *out,
                     unsigned char kx_out[32])
{
    KMSENV_XAES x;
    unsigned char kx[32];
    int ok;

    if (!kmsenv_xaes_init(&x, NULL, key))
        return 0;
    ok = kmsenv_xaes_derive(&x, n, kx) &&
         ref_gcm(1, kx, n + 12, aad, aadlen, pt, ptlen, out, out + ptlen);
    if (kx_out != NULL)
        memcpy(kx_out, kx, 32);
    kmsenv_xaes_cleanup(&x);
    OPENSSL_cleanse(kx, sizeof(kx));
    return ok;
}

static int xaes_open(const unsigned char key[32], const unsigned char n[24],
                     const unsigned char *aad, size_t aadlen,
                     const unsigned char *ct, size_t ctlen, unsigned char *out)
{
    KMSENV_XAES x, y;
    unsigned char kx[32], tag[16];
    int ok;

    if (ctlen < 16 || !kmsenv_xaes_init(&x, NULL, key))
        return 0;
    /* go through a copy to exercise kmsenv_xaes_dup */
    ok = kmsenv_xaes_dup(&y, &x);
    kmsenv_xaes_cleanup(&x);
    if (!ok)
        return 0;
    memcpy(tag, ct + ctlen - 16, 16);
    ok = kmsenv_xaes_derive(&y, n, kx) &&
         ref_gcm(0, kx, n + 12, aad, aadlen, ct, ctlen - 16, out, tag);
    kmsenv_xaes_cleanup(&y);
    OPENSSL_cleanse(kx, sizeof(kx));
    return ok;
}

static void test_xaes_vector(const char *name, unsigned keybyte,
                             const char *aad, const char *exp_l,
                             const char *exp_k1, const char *exp_kx,
                             const char *exp_ct)
{
    static const unsigned char n[24] = "ABCDEFGHIJKLMNOPQRSTUVWX";
    static const unsigned char pt[12] = "XAES-256-GCM";
    unsigned char key[32], l[16], k1[16], m1[16], m2[16], kx[32], rkx[32];
    unsigned char ct[12 + 16], back[12];
    KMSENV_XAES x;
    char label[64];
    int ok;

    memset(key, (int)keybyte, sizeof(key));
    ok = kmsenv_xaes_init(&x, NULL, key);
    CHECK(ok, "%s: kmsenv_xaes_init", name);
    if (!ok)
        return;
    snprintf(label, sizeof(label), "%s K1 (kmsenv_xaes_init)", name);
    VEC(label, x.k1, 16, exp_k1);
    kmsenv_xaes_cleanup(&x);

    ref_xaes(key, n, l, k1, m1, m2, rkx);
    snprintf(label, sizeof(label), "%s L (reference)", name);
    VEC(label, l, 16, exp_l);
    snprintf(label, sizeof(label), "%s K1 (reference)", name);
    VEC(label, k1, 16, exp_k1);
    snprintf(label, sizeof(label), "%s M1", name);
    VEC(label, m1, 16, XAES1_M1);
    snprintf(label, sizeof(label), "%s M2", name);
    VEC(label, m2, 16, XAES1_M2);
    snprintf(label, sizeof(label), "%s Kx (reference)", name);
    VEC(label, rkx, 32, exp_kx);

    ok = xaes_seal(key, n, (const unsigned char *)aad, strlen(aad), pt,
                   sizeof(pt), ct, kx);
    CHECK(ok, "%s: seal", name);
    snprintf(label, sizeof(label), "%s Kx (kmsenv_xaes_derive)", name);
    VEC(label, kx, 32, exp_kx);
    snprintf(label, sizeof(label), "%s ciphertext", name);
    VEC(label, ct, sizeof(ct), exp_ct);
    CHECK(xaes_open(key, n, (const unsigned char *)aad, strlen(aad), ct,
                    sizeof(ct), back) &&
              memcmp(back, pt, sizeof(pt)) == 0,
          "%s: open returns the plaintext", name);
    ct[0] ^= 1;
    CHECK(!xaes_open(key, n, (const unsigned char *)aad, strlen(aad), ct,
                     sizeof(ct), back),
          "%s: open rejects a modified ciphertext", name);
}

/* C2SP "Accumulated randomized tests", 10 000 iterations. SHAKE-128 output is
 * prefix-consistent, so the whole RNG stream is squeezed at once (OpenSSL 3.0
 * has no incremental squeeze). */
static void test_xaes_accumulated(void)
{
    const size_t iters = 10000, per = 32 + 24 + 1 + 255 + 1 + 255;
    EVP_MD *shake = EVP_MD_fetch(NULL, "SHAKE128", NULL);
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *d = EVP_MD_CTX_new();
    unsigned char *stream = xmalloc(iters * per), *p = stream;
    unsigned char ct[255 + 16], back[255], out[32];
    size_t i;
    int ok, all_open = 1;

    ok = shake != NULL && s != NULL && d != NULL &&
         EVP_DigestInit_ex2(s, shake, NULL) &&
         EVP_DigestFinalXOF(s, stream, iters * per) &&
         EVP_DigestInit_ex2(d, shake, NULL);
    CHECK(ok, "SHAKE-128 available for the accumulated XAES test");
    if (ok) {
        VEC("SHAKE-128 stream start", stream, 16, XAES_SHAKE_FIRST);
        for (i = 0; i < iters && ok; i++) {
            const unsigned char *key = p, *n = p + 32, *pt, *aad;
            size_t ptlen, aadlen;

            p += 56;
            ptlen = *p++;
            pt = p;
            p += ptlen;
            aadlen = *p++;
            aad = p;
            p += aadlen;
            ok = xaes_seal(key, n, aad, aadlen, pt, ptlen, ct, NULL) &&
                 EVP_DigestUpdate(d, ct, ptlen + 16);
            if (ok && (!xaes_open(key, n, aad, aadlen, ct, ptlen + 16, back) ||
                       (ptlen > 0 && memcmp(back, pt, ptlen) != 0)))
                all_open = 0;
        }
        ok = ok && EVP_DigestFinalXOF(d, out, sizeof(out));
        CHECK(ok && all_open, "accumulated test: 10000 seal/open round trips");
        VEC("XAES-256-GCM accumulated 10000", out, 32, XAES_ACC_10K);
    }
    free(stream);
    EVP_MD_CTX_free(s);
    EVP_MD_CTX_free(d);
    EVP_MD_free(shake);
}

static void test_xaes(void)
{
    test_xaes_vector("XAES key 01", 0x01, "", XAES1_L, XAES1_K1, XAES1_KX,
                     XAES1_CT);
    test_xaes_vector("XAES key 03", 0x03, "c2sp.org/XAES-256-GCM", XAES3_L,
                     XAES3_K1, XAES3_KX, XAES3_CT);
    test_xaes_accumulated();
}

/* ------------------------------------------------------------------------ */
/* 2. Encryption context                                                     */
/* ------------------------------------------------------------------------ */

static void test_context(void)
{
    static const char *const vec_pairs[] = {"row", "42", "table", "cards"};
    static const char *const esc_pairs[] = {"note", "a,b=c\\d", "x", ""};
    char *a, *b, big[5000], desc[128];
    KMSENV_CONTEXT c, c2;
    KMSENV_BUF w;
    BUF r = {0};

    /* vectors */
    kmsenv_ctx_init(&c);
    kmsenv_buf_init(&w, 0);
    CHECK(kmsenv_ctx_parse(&c, CTX_VEC_TEXT, strlen(CTX_VEC_TEXT)) &&
              kmsenv_ctx_encode(&c, &w),
          "context: parse and encode '%s'", CTX_VEC_TEXT);
    VEC("context table=cards,row=42", w.p, w.len, CTX_VEC_HEX);
    ref_ctx(&r, vec_pairs, 2);
    VEC("context table=cards,row=42 (reference)", r.p, r.len, CTX_VEC_HEX);
    b_free(&r);
    kmsenv_ctx_describe(&c, desc, sizeof(desc));
    CHECK(strcmp(desc, "row=42,table=cards") == 0,
          "context: describe lists the sorted pairs");
    kmsenv_buf_free(&w);
    kmsenv_ctx_free(&c);

    CHECK(ctx_enc(CTX_ESC_TEXT, &w), "context: parse escapes");
    VEC("context with escapes", w.p, w.len, CTX_ESC_HEX);
    kmsenv_buf_free(&w);
    ref_ctx(&r, esc_pairs, 2);
    VEC("context with escapes (reference)", r.p, r.len, CTX_ESC_HEX);
    b_free(&r);

    CHECK(ctx_enc("", &w), "context: empty text parses");
    VEC("empty context", w.p, w.len, CTX_EMPTY_HEX);
    kmsenv_buf_free(&w);
    kmsenv_ctx_init(&c);
    CHECK(kmsenv_ctx_parse(&c, NULL, 0) && c.n == 0,
          "context: NULL text is empty");
    kmsenv_ctx_free(&c);

    /* order independence */
    a = ctx_hex("table=cards,row=42");
    b = ctx_hex("row=42,table=cards");
    CHECK(a != NULL && b != NULL && strcmp(a, b) == 0,
          "context: pair order does not matter");
    free(a);
    free(b);
    kmsenv_ctx_init(&c);
    a = ctx_hex("a=1,b=2");
    CHECK(kmsenv_ctx_parse(&c, "b=2", strlen("b=2")) &&
              kmsenv_ctx_parse(&c, "a=1", strlen("a=1")) && c.n == 2 &&
              a != NULL,
          "context: parse accumulates across calls");
    kmsenv_buf_init(&w, 0);
    CHECK(kmsenv_ctx_encode(&c, &w) && a != NULL && hex_eq(w.p, w.len, a),
          "context: accumulated pairs encode like one text");
    free(a);
    kmsenv_buf_free(&w);
    kmsenv_ctx_free(&c);

    /* a failed parse changes nothing, even after valid leading pairs */
    kmsenv_ctx_init(&c);
    CHECK(kmsenv_ctx_parse(&c, "t=1", strlen("t=1")) &&
              !kmsenv_ctx_parse(&c, "x=1,bad", 7) && c.n == 1 &&
              strcmp(c.pairs[0].key, "t") == 0,
          "context: failed parse is all or nothing");
    ERR_clear_error();
    kmsenv_ctx_free(&c);

    /* bytewise order: 'B' (42) < 'a' (61) < "ab" < UTF-8 "\xc3\xa9" */
    a = ctx_hex("\xc3\xa9=4,ab=3,a=2,B=1");
    CHECK(a != NULL && strcmp(a, "0004"
                                 "000142"
                                 "000131"
                                 "000161"
                                 "000132"
                                 "00026162"
                                 "000133"
                                 "0002c3a9"
                                 "000134") == 0,
          "context: keys sort bytewise (unsigned), prefix first");
    free(a);

    /* escapes */
    a = ctx_hex("k\\,1=v\\=x\\\\y");
    CHECK(a != NULL && strcmp(a, "0001"
                                 "00036b2c31"
                                 "0005763d785c79") == 0,
          "context: \\, \\= \\\\ escapes in keys and values");
    free(a);
    a = ctx_hex("k=\\q");
    CHECK(a != NULL && strcmp(a, "0001"
                                 "00016b"
                                 "000171") == 0,
          "context: backslash before any other character yields it literally");
    free(a);
    a = ctx_hex("a=b=c");
    CHECK(a != NULL && strcmp(a, "0001"
                                 "000161"
                                 "0003623d63") == 0,
          "context: unescaped '=' inside a value is part of the value");
    free(a);
    a = ctx_hex("a=");
    CHECK(a != NULL && strcmp(a, "0001"
                                 "000161"
                                 "0000") == 0,
          "context: empty value allowed");
    free(a);
    a = ctx_hex("a b= c ");
    CHECK(a != NULL && strcmp(a, "0001"
                                 "0003612062"
                                 "0003206320") == 0,
          "context: whitespace is significant");
    free(a);

    /* duplicates */
    a = ctx_hex("a=1,a=1");
    CHECK(a != NULL && strcmp(a, "0001"
                                 "000161"
                                 "000131") == 0,
          "context: duplicate key with the same value is one pair");
    free(a);
    CHECK(ctx_rejects("a=1,a=2"), "context: duplicate key with another value");
    kmsenv_ctx_init(&c);
    CHECK(kmsenv_ctx_parse(&c, "a=1", strlen("a=1")) &&
              !kmsenv_ctx_parse(&c, "a=2", strlen("a=2")),
          "context: conflicting value across parse calls rejected");
    ERR_clear_error();
    kmsenv_ctx_free(&c);

    /* reserved prefixes and syntax errors */
    CHECK(ctx_rejects("kmsenv:keyset=x"), "context: reserved prefix kmsenv:");
    CHECK(ctx_rejects("aws:x=1"), "context: reserved prefix aws:");
    CHECK(ctx_rejects("a=1,kmsenv\\:purpose=keyset"),
          "context: reserved prefix checked after unescaping");
    a = ctx_hex("KMSENV:x=1,kmsenv=2,awsx=3");
    CHECK(a != NULL, "context: prefixes are case-sensitive and need the colon");
    free(a);
    CHECK(ctx_rejects("=v"), "context: empty key");
    CHECK(ctx_rejects("a=1,=v"), "context: empty key after a comma");
    CHECK(ctx_rejects("a=1,"), "context: trailing comma");
    CHECK(ctx_rejects(",a=1"), "context: leading comma");
    CHECK(ctx_rejects("a=1,,b=2"), "context: empty item");
    CHECK(ctx_rejects("a"), "context: missing '='");
    CHECK(ctx_rejects("a=1,b"), "context: missing '=' in second pair");
    CHECK(ctx_rejects("a=1\\"), "context: dangling backslash in value");
    CHECK(ctx_rejects("a\\"), "context: dangling backslash in key");

    /* size limits: key 1..1024, value 0..4096, encoding <= 8192 */
    memset(big, 'k', 1024);
    strcpy(big + 1024, "=v");
    a = ctx_hex(big);
    CHECK(a != NULL, "context: 1024-byte key accepted");
    free(a);
    memset(big, 'k', 1025);
    strcpy(big + 1025, "=v");
    CHECK(ctx_rejects(big), "context: 1025-byte key rejected");
    big[0] = 'k', big[1] = '=';
    memset(big + 2, 'v', 4096);
    big[4098] = '\0';
    a = ctx_hex(big);
    CHECK(a != NULL, "context: 4096-byte value accepted");
    free(a);
    memset(big + 2, 'v', 4097);
    big[4099] = '\0';
    CHECK(ctx_rejects(big), "context: 4097-byte value rejected");
    kmsenv_ctx_init(&c);
    memset(big, 'v', 4096);
    big[4096] = '\0';
    kmsenv_buf_init(&w, 0);
    /* 2 + (2+1+2+4096) + (2+1+2+4086) = 8194 > 8192 */
    CHECK(kmsenv_ctx_add(&c, "a", big) && kmsenv_ctx_add(&c, "b", big + 10) &&
              !kmsenv_ctx_encode(&c, &w) &&
              last_reason() == KMSENV_R_BAD_CONTEXT,
          "context: encoding over 8192 bytes rejected");
    ERR_clear_error();
    kmsenv_buf_free(&w);
    kmsenv_ctx_free(&c);
    kmsenv_ctx_init(&c);
    kmsenv_buf_init(&w, 0);
    /* 2 + (2+1+2+4096) + (2+1+2+4084) = 8192 */
    CHECK(kmsenv_ctx_add(&c, "a", big) && kmsenv_ctx_add(&c, "b", big + 12) &&
              kmsenv_ctx_encode(&c, &w) && w.len == 8192,
          "context: encoding of exactly 8192 bytes accepted");
    kmsenv_buf_free(&w);

    /* hostile text: length-bounded, NUL refused, size refused while
     * parsing (not after 100,000 pairs pile up) */
    {
        static const char nul[] = "user=alice\0,doc=7";
        KMSENV_CONTEXT h;
        char *exact = malloc(9), *many;
        size_t i, n = 100000, len;

        kmsenv_ctx_init(&h);
        CHECK(!kmsenv_ctx_parse(&h, nul, sizeof(nul) - 1) && h.n == 0 &&
                  last_reason() == KMSENV_R_BAD_CONTEXT,
              "context: NUL inside the text rejected (no truncation)");
        ERR_clear_error();
        memcpy(exact, "a=1,b=22", 8); /* no terminator: ASan checks the bound */
        CHECK(exact != NULL && kmsenv_ctx_parse(&h, exact, 8) && h.n == 2 &&
                  strcmp(h.pairs[1].value, "22") == 0,
              "context: text read by its length only");
        kmsenv_ctx_free(&h);
        CHECK(kmsenv_ctx_parse(&h, exact, 3) && h.n == 1 &&
                  strcmp(h.pairs[0].value, "1") == 0,
              "context: length cuts the text");
        kmsenv_ctx_free(&h);
        free(exact);
        many = malloc(n * 12);
        for (i = 0, len = 0; many != NULL && i < n; i++)
            len += (size_t)sprintf(many + len, "%s%zu=v", i ? "," : "", i);
        CHECK(many != NULL && !kmsenv_ctx_parse(&h, many, len) && h.n == 0 &&
                  last_reason() == KMSENV_R_BAD_CONTEXT,
              "context: 100,000 pairs refused by the parser at the size "
              "limit");
        ERR_clear_error();
        free(many);
    }

    /* copy */
    CHECK(kmsenv_ctx_copy(&c2, &c) && c2.n == 2 &&
              strcmp(c2.pairs[0].key, "a") == 0 &&
              strcmp(c2.pairs[1].value, big + 12) == 0,
          "context: copy");
    kmsenv_ctx_free(&c2);
    kmsenv_ctx_free(&c);
}

/* ------------------------------------------------------------------------ */
/* 3. Records                                                                */
/* ------------------------------------------------------------------------ */

static void test_record_vector(void)
{
    static const char *const vec_pairs[] = {"row", "42", "table", "cards"};
    KMSENV_REC_KEY rk;
    KMSENV_BUF w;
    BUF ctx = {0}, ref = {0}, aad = {0};
    unsigned char kx[32], rec[16 + KMSENV_REC_OVERHEAD], out[16];
    unsigned char rec2[sizeof(rec)];
    size_t reclen = 0, outlen = 0;
    uint32_t ver = 0;
    int ok;

    kmsenv_buf_init(&w, 0);
    ref_ctx(&ctx, vec_pairs, 2);
    ref_record(V_KEY1, 1, V_KSID, ctx.p, ctx.len, V_REC_NONCE,
               (const unsigned char *)V_PLAINTEXT, 16, &ref, &aad, kx);
    VEC("record AAD (reference)", aad.p, aad.len, REC_AAD_HEX);
    VEC("record derived key Kx (reference)", kx, 32, REC_KX_HEX);
    VEC("record (reference)", ref.p, ref.len, REC_HEX);

    ok = rec_key(&rk, V_KEY1, 1) && ctx_enc(CTX_VEC_TEXT, &w);
    CHECK(ok, "record: key and context set up");
    ok = ok && kmsenv_record_seal(&rk, NULL, V_KSID, w.p, w.len, V_REC_NONCE,
                                  (const unsigned char *)V_PLAINTEXT, 16, rec,
                                  &reclen);
    CHECK(ok && reclen == sizeof(rec), "record: seal with a fixed nonce");
    VEC("record (kmsenv_record_seal)", rec, reclen, REC_HEX);
    CHECK(kmsenv_record_peek(rec, reclen, &ver) && ver == 1,
          "record: peek reads version 1");
    CHECK(kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec, reclen, out,
                             &outlen) &&
              outlen == 16 && memcmp(out, V_PLAINTEXT, 16) == 0,
          "record: vector opens to its plaintext");
    /* the GCM context is re-keyed per record: a failed open must not
     * disturb the next seal or open on the same key state */
    memcpy(rec2, rec, reclen);
    rec2[reclen - 1] ^= 1;
    ok = ok && !kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec2, reclen, out,
                                   &outlen);
    ERR_clear_error();
    ok = ok &&
         kmsenv_record_seal(&rk, NULL, V_KSID, w.p, w.len, V_REC_NONCE,
                            (const unsigned char *)V_PLAINTEXT, 16, rec2,
                            &reclen) &&
         memcmp(rec2, rec, reclen) == 0 &&
         kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec2, reclen, out,
                            &outlen) &&
         memcmp(out, V_PLAINTEXT, 16) == 0;
    CHECK(ok, "record: after a failed open, the same key state reseals the "
              "vector byte for byte and opens it");
    kmsenv_buf_free(&w);
    kmsenv_rec_key_cleanup(&rk);
    b_free(&ctx);
    b_free(&ref);
    b_free(&aad);
}

/* The AAD (header || keyset id || context) takes one code path for context
 * encodings up to 512 bytes and another above; both must match the reference
 * for every size, up to the 8192-byte maximum. */
static void test_record_context_sizes(void)
{
    static const size_t vlens[] = {0, 100, 504, 505, 506, 507, 1000, 4096};
    KMSENV_REC_KEY rk;
    unsigned char kx[32], rec[16 + KMSENV_REC_OVERHEAD], out[16];
    char *v = xmalloc(4097);
    size_t i, reclen = 0, outlen = 0;

    if (!CHECK(rec_key(&rk, V_KEY1, 1), "record: key for context-size tests"))
        goto end;
    for (i = 0; i <= sizeof(vlens) / sizeof(vlens[0]); i++) {
        KMSENV_CONTEXT c;
        KMSENV_BUF w;
        BUF ref = {0}, aad = {0};
        int ok;

        kmsenv_ctx_init(&c);
        kmsenv_buf_init(&w, 0);
        if (i < sizeof(vlens) / sizeof(vlens[0])) {
            memset(v, 'v', vlens[i]);
            v[vlens[i]] = '\0';
            ok = vlens[i] == 0 || kmsenv_ctx_add(&c, "k", v);
        } else { /* the maximum: 2 + 4101 + 4089 = 8192 bytes */
            memset(v, 'v', 4096);
            v[4096] = '\0';
            ok = kmsenv_ctx_add(&c, "a", v) && kmsenv_ctx_add(&c, "b", v + 12);
        }
        ok = ok && kmsenv_ctx_encode(&c, &w);
        if (ok) {
            ref_record(V_KEY1, 1, V_KSID, w.p, w.len, V_REC_NONCE,
                       (const unsigned char *)V_PLAINTEXT, 16, &ref, &aad, kx);
            ok = kmsenv_record_seal(&rk, NULL, V_KSID, w.p, w.len, V_REC_NONCE,
                                    (const unsigned char *)V_PLAINTEXT, 16, rec,
                                    &reclen) &&
                 reclen == ref.len && memcmp(rec, ref.p, reclen) == 0 &&
                 kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec, reclen, out,
                                    &outlen) &&
                 memcmp(out, V_PLAINTEXT, 16) == 0;
            if (ok && w.len > 2) { /* and the last context byte matters */
                w.p[w.len - 1] ^= 1;
                ok = !kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec, reclen,
                                         out, &outlen);
                ERR_clear_error();
            }
        }
        CHECK(ok,
              "record: %zu-byte context encoding (AAD %zu bytes) matches "
              "the reference",
              w.len, 47 + w.len);
        b_free(&ref);
        b_free(&aad);
        kmsenv_buf_free(&w);
        kmsenv_ctx_free(&c);
    }
end:
    kmsenv_rec_key_cleanup(&rk);
    free(v);
}

/* Nonces come from a per-key pool of KMSENV_REC_NONCE_POOL: across several
 * refills, every record still gets a nonce of its own. */
static void test_record_nonce_pool(void)
{
    enum { N = 3 * KMSENV_REC_NONCE_POOL + 5 };
    static unsigned char nonces[N][KMSENV_XAES_NONCE_LEN];
    unsigned char key[32], rec[KMSENV_REC_OVERHEAD + 1];
    KMSENV_REC_KEY rk;
    size_t i, j, l;
    int ok = 1, distinct = 1;

    RAND_bytes(key, sizeof(key));
    if (!CHECK(rec_key(&rk, key, 1), "record pool: key"))
        return;
    for (i = 0; i < N && ok; i++) {
        ok = kmsenv_record_seal(&rk, NULL, V_KSID, NULL, 0, NULL,
                                (const unsigned char *)"x", 1, rec, &l);
        memcpy(nonces[i], rec + 7, KMSENV_XAES_NONCE_LEN);
    }
    for (i = 0; i < N; i++)
        for (j = i + 1; j < N; j++)
            if (memcmp(nonces[i], nonces[j], KMSENV_XAES_NONCE_LEN) == 0)
                distinct = 0;
    CHECK(ok && distinct,
          "record pool: %d records across pool refills, all "
          "nonces distinct",
          N);
    kmsenv_rec_key_cleanup(&rk);
}

static void test_record_roundtrips(void)
{
    static const size_t sizes[] = {0, 1, 4096, 1u << 20};
    KMSENV_REC_KEY rk;
    KMSENV_BUF w;
    unsigned char key[32];
    size_t i;

    RAND_bytes(key, sizeof(key));
    if (!CHECK(rec_key(&rk, key, 7) && ctx_enc("tenant=acme,table=users", &w),
               "record: random key, version 7"))
        return;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], l1 = 0, l2 = 0, ol = 0;
        unsigned char *pt = xmalloc(n), *r1 = xmalloc(n + KMSENV_REC_OVERHEAD);
        unsigned char *r2 = xmalloc(n + KMSENV_REC_OVERHEAD), *out = xmalloc(n);
        uint32_t v = 0;
        int ok;

        RAND_bytes(pt, (int)(n > 0 ? n : 1));
        ok = kmsenv_record_seal(&rk, NULL, V_KSID, w.p, w.len, NULL, pt, n, r1,
                                &l1) &&
             kmsenv_record_seal(&rk, NULL, V_KSID, w.p, w.len, NULL, pt, n, r2,
                                &l2);
        CHECK(ok && l1 == n + KMSENV_REC_OVERHEAD && l2 == l1 &&
                  memcmp(r1, "KE\x01\x00\x00\x00\x07", 7) == 0,
              "record: seal %zu bytes (length %zu = n + 47, header)", n, l1);
        CHECK(ok && memcmp(r1 + 7, r2 + 7, 24) != 0,
              "record: %zu bytes: two seals use different random nonces", n);
        CHECK(
            ok && kmsenv_record_peek(r1, l1, &v) && v == 7 &&
                kmsenv_record_open(&rk, V_KSID, w.p, w.len, r1, l1, out, &ol) &&
                ol == n && (n == 0 || memcmp(out, pt, n) == 0),
            "record: %zu bytes round trip", n);
        free(pt);
        free(r1);
        free(r2);
        free(out);
    }
    kmsenv_buf_free(&w);
    kmsenv_rec_key_cleanup(&rk);
}

static void test_record_tamper(void)
{
    KMSENV_REC_KEY rk, rk2, rk1b;
    KMSENV_BUF w;
    unsigned char rec[5 + KMSENV_REC_OVERHEAD], bad[sizeof(rec) + 1];
    unsigned char out[sizeof(rec)], ks2[16], key2[32];
    size_t reclen = 0, ol = 0, i;
    uint32_t v;
    int all, ok;

    if (!CHECK(rec_key(&rk, V_KEY1, 1) && ctx_enc("a=1,b=2", &w) &&
                   kmsenv_record_seal(&rk, NULL, V_KSID, w.p, w.len, NULL,
                                      (const unsigned char *)"hello", 5, rec,
                                      &reclen),
               "record: small record for tamper tests"))
        return;
    CHECK(kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec, reclen, out, &ol) &&
              ol == 5 && memcmp(out, "hello", 5) == 0,
          "record: untampered small record opens");

    all = 1;
    for (i = 0; i < reclen; i++) {
        memcpy(bad, rec, reclen);
        bad[i] ^= 0x01;
        memset(out, 0xee, sizeof(out));
        if (kmsenv_record_open(&rk, V_KSID, w.p, w.len, bad, reclen, out,
                               &ol)) {
            printf("#   flip of byte %zu was accepted\n", i);
            all = 0;
        }
        ERR_clear_error();
    }
    CHECK(all,
          "record: every single-byte flip (xor 0x01) of a %zu-byte "
          "record fails to open",
          reclen);

    all = 1;
    for (i = 0; i < reclen; i++) {
        if (kmsenv_record_open(&rk, V_KSID, w.p, w.len, rec, i, out, &ol)) {
            printf("#   truncation to %zu bytes was accepted\n", i);
            all = 0;
        }
        ERR_clear_error();
    }
    memcpy(bad, rec, reclen);
    bad[reclen] = 0;
    ok = kmsenv_record_open(&rk, V_KSID, w.p, w.len, bad, reclen + 1, out, &ol);
    CHECK(all && !ok, "record: every truncation and one appended byte fail");
    ERR_clear_error();

    memcpy(bad, rec, reclen);
    bad[reclen - 1] ^= 0x80;
    memset(out, 0xee, sizeof(out));
    ok = kmsenv_record_open(&rk, V_KSID, w.p, w.len, bad, reclen, out, &ol);
    for (i = 0, all = 1; i < 5; i++)
        if (out[i] != 0)
            all = 0;
    CHECK(!ok && last_reason() == KMSENV_R_RECORD_AUTH_FAILED && all,
          "record: failed open reports RECORD_AUTH_FAILED and zeroes out");
    ERR_clear_error();

    CHECK(!rec_open_text(&rk, V_KSID, "a=1,b=3", rec, reclen, out, &ol),
          "record: wrong context value fails");
    CHECK(!rec_open_text(&rk, V_KSID, "a=1,b=2,c=3", rec, reclen, out, &ol),
          "record: extra context pair fails");
    CHECK(!rec_open_text(&rk, V_KSID, "a=1", rec, reclen, out, &ol),
          "record: missing context pair fails");
    CHECK(!rec_open_text(&rk, V_KSID, "", rec, reclen, out, &ol),
          "record: empty context fails");
    CHECK(!rec_open_text(&rk, V_KSID, "A=1,b=2", rec, reclen, out, &ol),
          "record: context keys are case-sensitive");
    CHECK(rec_open_text(&rk, V_KSID, "b=2,a=1", rec, reclen, out, &ol),
          "record: same context in another order opens");
    CHECK(!kmsenv_record_open(&rk, V_KSID, NULL, 0, rec, reclen, out, &ol),
          "record: no context encoding at all fails");
    ERR_clear_error();
    memcpy(ks2, V_KSID, 16);
    ks2[15] ^= 1;
    CHECK(!kmsenv_record_open(&rk, ks2, w.p, w.len, rec, reclen, out, &ol),
          "record: another keyset id fails");
    ERR_clear_error();
    memcpy(key2, V_KEY1, 32);
    key2[0] ^= 1;
    CHECK(rec_key(&rk2, key2, 1) &&
              !kmsenv_record_open(&rk2, V_KSID, w.p, w.len, rec, reclen, out,
                                  &ol),
          "record: another version key fails");
    kmsenv_rec_key_cleanup(&rk2);
    CHECK(rec_key(&rk1b, V_KEY1, 2) &&
              !kmsenv_record_open(&rk1b, V_KSID, w.p, w.len, rec, reclen, out,
                                  &ol),
          "record: key state for another version refuses the record");
    kmsenv_rec_key_cleanup(&rk1b);

    CHECK(!kmsenv_record_peek(rec, KMSENV_REC_OVERHEAD - 1, &v) &&
              last_reason() == KMSENV_R_BAD_RECORD,
          "record: peek rejects records shorter than 47 bytes");
    ERR_clear_error();
    memcpy(bad, rec, reclen);
    bad[0] = 'k';
    CHECK(!kmsenv_record_peek(bad, reclen, &v), "record: peek checks magic");
    ERR_clear_error();
    memcpy(bad, rec, reclen);
    bad[2] = 0x02;
    CHECK(!kmsenv_record_peek(bad, reclen, &v),
          "record: peek rejects format 0x02");
    ERR_clear_error();

    kmsenv_buf_free(&w);
    kmsenv_rec_key_cleanup(&rk);
}

/* ------------------------------------------------------------------------ */
/* 4. file: keyring                                                          */
/* ------------------------------------------------------------------------ */

static char kek_path[128], kek2_path[128];

static int setup_tmp(void)
{
    char p[128];
    unsigned char kek2[32], k33[33];

    strcpy(tmpdir, "/tmp/kmsenv-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        tmpdir[0] = '\0';
        return 0;
    }
    tmp_path(kek_path, sizeof(kek_path), "kek");
    tmp_path(kek2_path, sizeof(kek2_path), "kek2");
    fill(kek2, 0x61, 32);
    fill(k33, 0x60, 33);
    tmp_path(p, sizeof(p), "kek-0640");
    if (!write_file(p, V_KEK, 32, 0640))
        return 0;
    tmp_path(p, sizeof(p), "kek-0604");
    if (!write_file(p, V_KEK, 32, 0604))
        return 0;
    tmp_path(p, sizeof(p), "kek-short");
    if (!write_file(p, V_KEK, 31, 0600))
        return 0;
    tmp_path(p, sizeof(p), "kek-long");
    if (!write_file(p, k33, 33, 0600))
        return 0;
    return write_file(kek_path, V_KEK, 32, 0600) &&
           write_file(kek2_path, kek2, 32, 0600);
}

static int open_spec_fails(const char *spec, int reason)
{
    KMSENV_KEYRING *kr = NULL;
    int ok;

    ok = !kmsenv_keyring_open(NULL, spec, &kr) && kr == NULL &&
         (reason == 0 || saw_reason(reason));
    kmsenv_keyring_free(kr);
    ERR_clear_error();
    return ok;
}

/* Opening file:<tmpdir>/<name> must fail with reason. */
static int open_file_fails(const char *name, int reason)
{
    char spec[512];

    snprintf(spec, sizeof(spec), "file:%s/%s", tmpdir, name);
    return open_spec_fails(spec, reason);
}

static void test_file_keyring(void)
{
    static const char *const kekctx_pairs[] = {
        "kmsenv:keyset", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", "kmsenv:purpose",
        "keyset"};
    char spec[512], spec2[1024];
    unsigned char fp[16];
    KMSENV_CONTEXT kc, kc2;
    KMSENV_BUF w;
    KMSENV_KEYRING *kr = NULL, *kr2 = NULL;
    KMSENV_WRAP ww, *wraps = NULL;
    KMSENV_SECRET out = {NULL, 0}, dk = {NULL, 0};
    BUF ref = {0}, blob = {0};
    size_t nwraps = 0;
    int ok;

    /* spec vectors */
    ref_fp(V_KEK, fp);
    VEC("file: KEK fingerprint (reference)", fp, 16, FILE_FP_HEX);
    ok = kmsenv_keyring_keyset_context(&kc, V_KSID, "keyset");
    kmsenv_buf_init(&w, 0);
    CHECK(ok && kmsenv_ctx_encode(&kc, &w),
          "file: kmsenv_keyring_keyset_context");
    VEC("file: KEK context encoding", w.p, w.len, FILE_KEKCTX_HEX);
    ref_ctx(&ref, kekctx_pairs, 2);
    VEC("file: KEK context encoding (reference)", ref.p, ref.len,
        FILE_KEKCTX_HEX);
    ref_file_blob(V_KEK, V_WRAP_NONCE, w.p, w.len, V_KSK, 32, &blob);
    VEC("file: wrap blob (reference)", blob.p, blob.len, FILE_BLOB_HEX);
    kmsenv_buf_free(&w);

    /* the library's view of the same KEK file */
    snprintf(spec, sizeof(spec), "file:%s", kek_path);
    ok = kmsenv_keyring_open(NULL, spec, &kr);
    CHECK(ok && kr->n == 1 && strcmp(kr->kek[0]->spec, spec) == 0,
          "file: keyring opens a 0600 32-byte KEK file");
    if (!ok)
        goto end;
    VEC("file: KEK fingerprint (file keyring)", kr->kek[0]->fp,
        kr->kek[0]->fplen, FILE_FP_HEX);

    /* the spec-computed blob is accepted by the code */
    memset(&ww, 0, sizeof(ww));
    ww.spec = spec;
    memcpy(ww.fp, fp, 16);
    ww.fplen = 16;
    ww.blob = blob.p;
    ww.bloblen = blob.len;
    ok = kmsenv_keyring_unwrap(NULL, &ww, 1, NULL, &kc, 32, &out, "vector");
    CHECK(ok && out.len == 32 && memcmp(out.data, V_KSK, 32) == 0,
          "file: kmsenv_keyring_unwrap accepts the spec-computed blob");
    kmsenv_secret_free(&out);
    ww.fplen = 0; /* no fingerprint recorded: unwrap still works */
    CHECK(kmsenv_keyring_unwrap(NULL, &ww, 1, NULL, &kc, 32, &out, "vector") &&
              memcmp(out.data, V_KSK, 32) == 0,
          "file: unwrap without a recorded fingerprint");
    kmsenv_secret_free(&out);
    ww.fplen = 16;

    /* wrong context, wrong length, corrupt blob, wrong KEK */
    kmsenv_keyring_keyset_context(&kc2, V_KSID, "other");
    CHECK(!kmsenv_keyring_unwrap(NULL, &ww, 1, NULL, &kc2, 32, &out, "v") &&
              out.data == NULL && saw_reason(KMSENV_R_UNWRAP_FAILED),
          "file: unwrap under another context fails");
    kmsenv_ctx_free(&kc2);
    CHECK(!kmsenv_keyring_unwrap(NULL, &ww, 1, NULL, &kc, 31, &out, "v"),
          "file: unwrap expecting another key length fails");
    ERR_clear_error();
    blob.p[0] = 0x02;
    CHECK(!kmsenv_keyring_unwrap(NULL, &ww, 1, NULL, &kc, 32, &out, "v"),
          "file: blob version byte other than 0x01 rejected");
    ERR_clear_error();
    blob.p[0] = 0x01;
    blob.p[20] ^= 0x01;
    CHECK(!kmsenv_keyring_unwrap(NULL, &ww, 1, NULL, &kc, 32, &out, "v"),
          "file: modified blob rejected");
    ERR_clear_error();
    blob.p[20] ^= 0x01;
    snprintf(spec2, sizeof(spec2), "%s=file:%s", spec, kek2_path);
    CHECK(!kmsenv_keyring_unwrap(NULL, &ww, 1, spec2, &kc, 32, &out, "v") &&
              saw_reason(KMSENV_R_WRONG_KEK),
          "file: another KEK file (fingerprint mismatch) gives WRONG_KEK");
    ww.fplen = 0;
    CHECK(!kmsenv_keyring_unwrap(NULL, &ww, 1, spec2, &kc, 32, &out, "v") &&
              saw_reason(KMSENV_R_UNWRAP_FAILED),
          "file: another KEK without recorded fingerprint fails to unwrap");
    ww.fplen = 16;

    /* generate/unwrap through the library's own wrap (random nonce) */
    ok = kmsenv_keyring_generate(kr, &kc, 32, &dk, &wraps, &nwraps);
    CHECK(ok && nwraps == 1 && wraps[0].bloblen == 61 &&
              wraps[0].blob[0] == 0x01 && wraps[0].fplen == 16 &&
              memcmp(wraps[0].fp, fp, 16) == 0 &&
              strcmp(wraps[0].spec, spec) == 0,
          "file: generate: blob is 01|nonce|ct|tag (61 bytes), fp recorded");
    if (ok) {
        unsigned char back[32], tag[16];
        static const char label[] = "kmsenv-file-wrap-v1";
        BUF aad = {0};

        kmsenv_buf_init(&w, 0);
        kmsenv_ctx_encode(&kc, &w);
        b_put(&aad, label, sizeof(label)); /* includes the NUL */
        b_put(&aad, w.p, w.len);
        memcpy(tag, wraps[0].blob + 45, 16);
        CHECK(ref_gcm(0, V_KEK, wraps[0].blob + 1, aad.p, aad.len,
                      wraps[0].blob + 13, 32, back, tag) &&
                  memcmp(back, dk.data, 32) == 0,
              "file: library blob decrypts with the spec's reference code");
        b_free(&aad);
        kmsenv_buf_free(&w);
        CHECK(kmsenv_keyring_unwrap(NULL, wraps, nwraps, NULL, &kc, 32, &out,
                                    "generated") &&
                  memcmp(out.data, dk.data, 32) == 0,
              "file: generated key unwraps");
        kmsenv_secret_free(&out);
    }
    kmsenv_wraps_free(wraps, nwraps);
    kmsenv_secret_free(&dk);

    /* two KEKs: wraps under both; failover when the first is gone */
    snprintf(spec2, sizeof(spec2), "file:%s ; file:%s", kek_path, kek2_path);
    ok = kmsenv_keyring_open(NULL, spec2, &kr2) &&
         kmsenv_keyring_generate(kr2, &kc, 32, &dk, &wraps, &nwraps);
    CHECK(ok && kr2->n == 2 && nwraps == 2 &&
              memcmp(wraps[0].fp, wraps[1].fp, 16) != 0,
          "file: two-KEK keyring wraps under both");
    if (ok) {
        char redirect[1024];

        snprintf(redirect, sizeof(redirect), "file:%s=file:%s/missing",
                 kek_path, tmpdir);
        CHECK(kmsenv_keyring_unwrap(NULL, wraps, nwraps, redirect, &kc, 32,
                                    &out, "failover") &&
                  memcmp(out.data, dk.data, 32) == 0 && ERR_peek_error() == 0,
              "file: unwrap fails over to the second copy, clean error queue");
        kmsenv_secret_free(&out);
    }
    kmsenv_wraps_free(wraps, nwraps);
    kmsenv_secret_free(&dk);
    kmsenv_keyring_free(kr2);

    /* KEK file rules */
    CHECK(open_file_fails("kek-0640", KMSENV_R_KEK_PERMISSIONS),
          "file: mode 0640 rejected (group can read)");
    CHECK(open_file_fails("kek-0604", KMSENV_R_KEK_PERMISSIONS),
          "file: mode 0604 rejected (others can read)");
    CHECK(open_file_fails("kek-short", KMSENV_R_KEK_UNAVAILABLE),
          "file: 31-byte KEK file rejected");
    CHECK(open_file_fails("kek-long", KMSENV_R_KEK_UNAVAILABLE),
          "file: 33-byte KEK file rejected");
    CHECK(open_file_fails("missing", KMSENV_R_KEK_UNAVAILABLE),
          "file: missing KEK file rejected");
    snprintf(spec2, sizeof(spec2), "file:%s", tmpdir);
    CHECK(open_spec_fails(spec2, KMSENV_R_KEK_UNAVAILABLE),
          "file: a directory is not a KEK file");
    CHECK(open_spec_fails("file:", KMSENV_R_BAD_KEYRING_SPEC),
          "file: 'file:' without a path rejected");
    CHECK(open_spec_fails("nosuch:x", KMSENV_R_BAD_KEYRING_SPEC),
          "keyring: unknown scheme rejected");
    CHECK(!kmsenv_keyring_open(NULL, "", &kr2) &&
              last_reason() == KMSENV_R_NO_KEYRING,
          "keyring: empty spec gives NO_KEYRING");
    ERR_clear_error();
    CHECK(open_spec_fails(" ; ", KMSENV_R_BAD_KEYRING_SPEC),
          "keyring: spec naming no KEK rejected");

end:
    kmsenv_keyring_free(kr);
    kmsenv_ctx_free(&kc);
    b_free(&ref);
    b_free(&blob);
}

/* ------------------------------------------------------------------------ */
/* 5. Keysets                                                                */
/* ------------------------------------------------------------------------ */

static unsigned char v_fp[16], *v_blob;
static size_t v_bloblen;
static unsigned char v_keys[64];
static const RVER v_vers[2] = {{1, KMSENV_STATE_DECRYPT_ONLY, V_CREATED1},
                               {2, KMSENV_STATE_PRIMARY, V_CREATED2}};
static RWRAP v_wrap;

static KSDESC vector_desc(void)
{
    KSDESC d;

    memset(&d, 0, sizeof(d));
    d.magic = "KMSENVKS";
    d.fmt = 1;
    d.id = V_KSID;
    d.created = V_CREATED1;
    d.alg = 1;
    d.primary = 2;
    d.nver_field = -1;
    d.nver = 2;
    d.ver = v_vers;
    d.nwrap_field = -1;
    d.nwrap = 1;
    d.wrap = &v_wrap;
    d.keys = v_keys;
    d.ksk = V_KSK;
    d.nonce = V_SEAL_NONCE;
    return d;
}

static void setup_keyset_vector(void)
{
    size_t l;

    ref_fp(V_KEK, v_fp);
    v_blob = unhex(FILE_BLOB_HEX, &l);
    v_bloblen = l;
    memcpy(v_keys, V_KEY1, 32);
    memcpy(v_keys + 32, V_KEY2, 32);
    v_wrap.spec = V_SPEC;
    v_wrap.speclen = strlen(V_SPEC);
    v_wrap.fp = v_fp;
    v_wrap.fplen = 16;
    v_wrap.blob = v_blob;
    v_wrap.bloblen = v_bloblen;
}

/* Decodes DER and unseals it with the vector KSK. */
static int decode_unseal(const unsigned char *der, size_t len,
                         const unsigned char ksk[32], KMSENV_KEYSET *ks)
{
    if (!kmsenv_keyset_decode(ks, der, len, "test"))
        return 0;
    if (!set_secret(&ks->ksk, ksk, 32) ||
        !kmsenv_keyset_unseal(ks, NULL, "test")) {
        kmsenv_keyset_free(ks);
        return 0;
    }
    return 1;
}

static int desc_decodes(const KSDESC *d)
{
    BUF der = {0};
    KMSENV_KEYSET ks;
    int ok;

    ref_keyset(d, &der);
    ok = kmsenv_keyset_decode(&ks, der.p, der.len, "test");
    if (ok)
        kmsenv_keyset_free(&ks);
    else
        ok = -last_reason();
    ERR_clear_error();
    b_free(&der);
    return ok;
}
#define DESC_REJECTED(d) (desc_decodes(&(d)) == -KMSENV_R_BAD_KEYSET)

static void test_keyset_vector(void)
{
    KMSENV_KEYSET ks, ks2;
    KMSENV_BUF der;
    KMSENV_CONTEXT kc;
    KMSENV_REC_KEY rk;
    KSDESC d = vector_desc();
    BUF ref = {0};
    unsigned char *vder = NULL, rec_pt[16];
    size_t vlen = 0, ol = 0;
    char redirect[1024];
    int ok, idx;

    ref_keyset(&d, &ref);
    VEC("keyset (reference)", ref.p, ref.len, KS_HEX);

    /* the library builds the same bytes */
    kmsenv_keyset_init(&ks);
    memcpy(ks.id, V_KSID, 16);
    ks.created = V_CREATED1;
    ks.alg = KMSENV_KS_ALG_XAES256GCM;
    ok = kmsenv_keyset_add_version(&ks, NULL, V_KEY1, V_CREATED1) &&
         kmsenv_keyset_add_version(&ks, NULL, V_KEY2, V_CREATED2) &&
         set_secret(&ks.ksk, V_KSK, 32);
    ks.wrap = OPENSSL_zalloc(sizeof(*ks.wrap));
    if (ok && ks.wrap != NULL) {
        ks.nwrap = 1;
        ks.wrap[0].spec = OPENSSL_strdup(V_SPEC);
        memcpy(ks.wrap[0].fp, v_fp, 16);
        ks.wrap[0].fplen = 16;
        ks.wrap[0].blob = OPENSSL_memdup(v_blob, v_bloblen);
        ks.wrap[0].bloblen = v_bloblen;
    }
    kmsenv_buf_init(&der, 0);
    ok = ok && ks.wrap != NULL &&
         kmsenv_keyset_encode(&ks, NULL, V_SEAL_NONCE, &der);
    CHECK(ok, "keyset: encode the vector keyset");
    VEC("keyset (kmsenv_keyset_encode)", der.p, der.len, KS_HEX);
    kmsenv_buf_free(&der);
    kmsenv_keyset_free(&ks);

    /* end to end: decode the published bytes, unwrap the KSK through the
     * file: keyring (recorded spec redirected to the temp KEK), unseal, and
     * open the record vector with version 1 */
    vder = unhex(KS_HEX, &vlen);
    CHECK(kmsenv_keyset_sniff(vder, vlen), "keyset: sniff recognises it");
    ok = kmsenv_keyset_decode(&ks, vder, vlen, "vector");
    CHECK(ok && ks.nver == 2 && ks.primary == 2 && ks.created == V_CREATED1 &&
              ks.alg == 1 && memcmp(ks.id, V_KSID, 16) == 0 &&
              ks.ver[0].id == 1 &&
              ks.ver[0].state == KMSENV_STATE_DECRYPT_ONLY &&
              ks.ver[0].created == V_CREATED1 && ks.ver[1].id == 2 &&
              ks.ver[1].state == KMSENV_STATE_PRIMARY &&
              ks.ver[1].created == V_CREATED2 && ks.nwrap == 1 &&
              strcmp(ks.wrap[0].spec, V_SPEC) == 0 && ks.wrap[0].fplen == 16 &&
              memcmp(ks.wrap[0].fp, v_fp, 16) == 0 &&
              ks.wrap[0].bloblen == v_bloblen && ks.aadlen == vlen - 4 - 92 &&
              ks.sealedlen == 92,
          "keyset: vector decodes to the documented fields");
    if (!ok)
        goto end;
    snprintf(redirect, sizeof(redirect), "%s=file:%s", V_SPEC, kek_path);
    ok = kmsenv_keyring_keyset_context(&kc, ks.id, "keyset") &&
         kmsenv_keyring_unwrap(NULL, ks.wrap, ks.nwrap, redirect, &kc, 32,
                               &ks.ksk, "vector");
    kmsenv_ctx_free(&kc);
    CHECK(ok && memcmp(ks.ksk.data, V_KSK, 32) == 0,
          "keyset: file: keyring unwraps the KSK (spec redirected)");
    {
        KMSENV_SECRET k2 = {NULL, 0};

        snprintf(redirect, sizeof(redirect),
                 "file:/elsewhere=file:/nope; "
                 "*=file:%s",
                 kek_path);
        ok = ok && kmsenv_keyring_keyset_context(&kc, ks.id, "keyset") &&
             kmsenv_keyring_unwrap(NULL, ks.wrap, ks.nwrap, redirect, &kc, 32,
                                   &k2, "vector") &&
             memcmp(k2.data, V_KSK, 32) == 0;
        kmsenv_ctx_free(&kc);
        kmsenv_secret_free(&k2);
        CHECK(ok, "keyset: redirect '*=TO' maps every recorded KEK");
        snprintf(redirect, sizeof(redirect), "*=file:%s", kek2_path);
        ok = ok && kmsenv_keyring_keyset_context(&kc, ks.id, "keyset");
        CHECK(ok &&
                  !kmsenv_keyring_unwrap(NULL, ks.wrap, ks.nwrap, redirect, &kc,
                                         32, &k2, "vector") &&
                  saw_reason(KMSENV_R_WRONG_KEK),
              "keyset: redirect '*=' to another KEK gives WRONG_KEK");
        kmsenv_ctx_free(&kc);
    }
    ok = ok && kmsenv_keyset_unseal(&ks, NULL, "vector");
    CHECK(ok && ks.keys.len == 64 &&
              memcmp(kmsenv_keyset_key(&ks, 0), V_KEY1, 32) == 0 &&
              memcmp(kmsenv_keyset_key(&ks, 1), V_KEY2, 32) == 0 &&
              ks.aad == NULL && ks.sealed == NULL,
          "keyset: unseal yields the version keys in version order");
    idx = kmsenv_keyset_find(&ks, 1);
    CHECK(idx == 0 && kmsenv_keyset_find(&ks, 2) == 1 &&
              kmsenv_keyset_find(&ks, 3) == -1,
          "keyset: find");
    if (ok && idx == 0) {
        KMSENV_XAES x;
        unsigned char *rec;
        size_t reclen;
        KMSENV_BUF w;

        rec = unhex(REC_HEX, &reclen);
        ok = kmsenv_xaes_init(&x, NULL, kmsenv_keyset_key(&ks, idx)) &&
             kmsenv_rec_key_init(&rk, NULL, ks.ver[idx].id, &x) &&
             ctx_enc(CTX_VEC_TEXT, &w);
        kmsenv_xaes_cleanup(&x);
        CHECK(ok &&
                  kmsenv_record_open(&rk, ks.id, w.p, w.len, rec, reclen,
                                     rec_pt, &ol) &&
                  ol == 16 && memcmp(rec_pt, V_PLAINTEXT, 16) == 0,
              "keyset + record vectors: version 1 of the keyset opens the "
              "record");
        kmsenv_buf_free(&w);
        kmsenv_rec_key_cleanup(&rk);
        free(rec);
    }
    /* re-encoding the unsealed keyset with the same nonce reproduces it */
    kmsenv_buf_init(&der, 0);
    CHECK(ok && kmsenv_keyset_encode(&ks, NULL, V_SEAL_NONCE, &der) &&
              der.len == vlen && memcmp(der.p, vder, vlen) == 0,
          "keyset: decode -> unseal -> encode is byte-identical");
    kmsenv_buf_free(&der);

    /* wrong KSK */
    CHECK(kmsenv_keyset_decode(&ks2, vder, vlen, "v") &&
              set_secret(&ks2.ksk, V_KEK, 32) &&
              !kmsenv_keyset_unseal(&ks2, NULL, "v") &&
              last_reason() == KMSENV_R_KEYSET_TAMPERED &&
              ks2.keys.data == NULL,
          "keyset: unseal under another KSK fails (KEYSET_TAMPERED)");
    ERR_clear_error();
    kmsenv_secret_free(&ks2.ksk);
    CHECK(set_secret(&ks2.ksk, V_KSK, 32) &&
              kmsenv_keyset_unseal(&ks2, NULL, "v"),
          "keyset: a failed unseal can be retried with the right KSK");
    kmsenv_keyset_free(&ks2);

end:
    kmsenv_keyset_free(&ks);
    free(vder);
    b_free(&ref);
}

static void test_keyset_tamper(void)
{
    KMSENV_KEYSET ks;
    unsigned char *der, *bad;
    size_t len, i, hl = 4;
    int all = 1;

    der = unhex(KS_HEX, &len);
    if (!CHECK(len > 4 + 100 && der[1] == 0x82,
               "keyset: vector uses a 2-byte DER length"))
        return;
    bad = xmalloc(len + 8);
    for (i = 0; i < len; i++) {
        memcpy(bad, der, len);
        bad[i] ^= 0x01;
        if (decode_unseal(bad, len, V_KSK, &ks)) {
            printf("#   flip of byte %zu was accepted\n", i);
            kmsenv_keyset_free(&ks);
            all = 0;
        }
        ERR_clear_error();
    }
    CHECK(all,
          "keyset: every single-byte flip of the %zu-byte vector fails "
          "decode or unseal",
          len);

    all = 1;
    for (i = 0; i < len; i++) {
        if (decode_unseal(der, i, V_KSK, &ks)) {
            printf("#   truncation to %zu bytes was accepted\n", i);
            kmsenv_keyset_free(&ks);
            all = 0;
        }
        ERR_clear_error();
    }
    CHECK(all, "keyset: every truncation fails");

    /* truncating the body while fixing up the DER length */
    all = 1;
    for (i = 9; i < len - hl; i++) {
        size_t bl = i;
        size_t off = 0;
        bad[off++] = 0x04;
        if (bl < 0x80) {
            bad[off++] = (unsigned char)bl;
        } else if (bl <= 0xff) {
            bad[off++] = 0x81;
            bad[off++] = (unsigned char)bl;
        } else {
            bad[off++] = 0x82;
            bad[off++] = (unsigned char)(bl >> 8);
            bad[off++] = (unsigned char)bl;
        }
        memcpy(bad + off, der + hl, bl);
        if (decode_unseal(bad, off + bl, V_KSK, &ks)) {
            printf("#   body truncated to %zu bytes was accepted\n", bl);
            kmsenv_keyset_free(&ks);
            all = 0;
        }
        ERR_clear_error();
    }
    CHECK(all, "keyset: every body truncation with a consistent DER length "
               "fails");

    memcpy(bad, der, len);
    bad[len] = 0;
    CHECK(!kmsenv_keyset_decode(&ks, bad, len + 1, "t"),
          "keyset: trailing byte after the DER value rejected");
    ERR_clear_error();

    /* non-minimal DER lengths */
    bad[0] = 0x04, bad[1] = 0x83, bad[2] = 0x00;
    memcpy(bad + 3, der + 2, len - 2);
    CHECK(!kmsenv_keyset_decode(&ks, bad, len + 1, "t"),
          "keyset: non-minimal 3-byte DER length rejected");
    ERR_clear_error();
    bad[0] = 0x04, bad[1] = 0x84, bad[2] = 0x00, bad[3] = 0x00;
    memcpy(bad + 4, der + 2, len - 2);
    CHECK(!kmsenv_keyset_decode(&ks, bad, len + 2, "t"),
          "keyset: non-minimal 4-byte DER length rejected");
    ERR_clear_error();
    bad[0] = 0x05;
    memcpy(bad + 1, der + 1, len - 1);
    CHECK(!kmsenv_keyset_decode(&ks, bad, len, "t") &&
              !kmsenv_keyset_sniff(bad, len),
          "keyset: DER tag other than OCTET STRING rejected");
    ERR_clear_error();
    free(bad);
    free(der);
}

static void test_keyset_validation(void)
{
    KSDESC d;
    RVER vers[3];
    RWRAP wraps[17];
    static const char nul_spec[] = "file:/a\0b";
    unsigned char fp65[255];
    size_t i;

    d = vector_desc();
    CHECK(desc_decodes(&d) == 1, "keyset validation: baseline decodes");

    /* a small keyset (body < 128 bytes) uses the short DER form */
    {
        static const RVER one[1] = {{1, KMSENV_STATE_PRIMARY, 0}};
        static const RWRAP w1 = {"x", 1, NULL, 0, (const unsigned char *)"b",
                                 1};
        BUF der = {0};
        KMSENV_KEYSET ks;
        d = vector_desc();
        d.nver = 1, d.ver = one, d.primary = 1, d.wrap = &w1;
        ref_keyset(&d, &der);
        CHECK(der.len == 2 + 121 && der.p[1] == 121 &&
                  decode_unseal(der.p, der.len, V_KSK, &ks),
              "keyset validation: 121-byte body with short-form length");
        kmsenv_keyset_free(&ks);
        b_u8(&der, 0);
        der.p[1] = 0x81;
        memmove(der.p + 3, der.p + 2, 121);
        der.p[2] = 121;
        CHECK(!kmsenv_keyset_decode(&ks, der.p, 2 + 1 + 121, "t"),
              "keyset validation: long-form length below 128 rejected");
        ERR_clear_error();
        b_free(&der);
    }

    d = vector_desc();
    d.magic = "KMSENVKT";
    CHECK(DESC_REJECTED(d), "keyset validation: wrong magic");
    d = vector_desc();
    d.fmt = 2;
    CHECK(DESC_REJECTED(d), "keyset validation: format 2");
    d.fmt = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: format 0");
    d = vector_desc();
    d.alg = 2;
    CHECK(DESC_REJECTED(d), "keyset validation: algorithm 2");
    d.alg = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: algorithm 0");
    d = vector_desc();
    d.nver = 0, d.nver_field = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: zero versions");
    d = vector_desc();
    d.nver_field = 4097;
    CHECK(DESC_REJECTED(d), "keyset validation: 4097 versions");

    memcpy(vers, v_vers, sizeof(v_vers));
    d = vector_desc();
    d.ver = vers;
    vers[0].id = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: version id 0");
    vers[0].id = 2;
    CHECK(DESC_REJECTED(d), "keyset validation: duplicate version ids");
    vers[0].id = 3;
    CHECK(DESC_REJECTED(d), "keyset validation: descending version ids");
    vers[0].id = 1;
    vers[0].state = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: state 0");
    vers[0].state = 4;
    CHECK(DESC_REJECTED(d), "keyset validation: state 4");
    vers[0].state = KMSENV_STATE_PRIMARY;
    CHECK(DESC_REJECTED(d), "keyset validation: two primary versions");
    vers[0].state = KMSENV_STATE_DISABLED;
    vers[1].state = KMSENV_STATE_DECRYPT_ONLY;
    CHECK(DESC_REJECTED(d), "keyset validation: no primary version");
    vers[1].state = KMSENV_STATE_DISABLED;
    CHECK(DESC_REJECTED(d), "keyset validation: all versions disabled");
    vers[0].state = KMSENV_STATE_PRIMARY;
    CHECK(DESC_REJECTED(d), "keyset validation: primary field names another "
                            "version");
    d.primary = 1;
    CHECK(desc_decodes(&d) == 1,
          "keyset validation: primary v1 + disabled v2 is valid");
    d = vector_desc();
    d.primary = 3;
    CHECK(DESC_REJECTED(d), "keyset validation: primary field names no "
                            "version");

    d = vector_desc();
    d.nwrap = 0, d.nwrap_field = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: no wrapped KSK");
    for (i = 0; i < 17; i++)
        wraps[i] = v_wrap;
    d.wrap = wraps;
    d.nwrap = 16, d.nwrap_field = -1;
    CHECK(desc_decodes(&d) == 1, "keyset validation: 16 wrapped KSKs valid");
    d.nwrap = 17;
    CHECK(DESC_REJECTED(d), "keyset validation: 17 wrapped KSKs");
    d = vector_desc();
    d.wrap = wraps;
    wraps[0].speclen = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: empty KEK spec");
    wraps[0].spec = nul_spec;
    wraps[0].speclen = sizeof(nul_spec) - 1;
    CHECK(DESC_REJECTED(d), "keyset validation: NUL byte in KEK spec");
    wraps[0] = v_wrap;
    memset(fp65, 0xaa, sizeof(fp65));
    wraps[0].fp = fp65;
    wraps[0].fplen = 64;
    CHECK(desc_decodes(&d) == 1, "keyset validation: 64-byte fingerprint ok");
    wraps[0].fplen = 255;
    CHECK(desc_decodes(&d) == 1,
          "keyset validation: 255-byte fingerprint (an ARN) ok");
    wraps[0].fplen = 0;
    CHECK(desc_decodes(&d) == 1, "keyset validation: empty fingerprint ok");
    wraps[0] = v_wrap;
    wraps[0].bloblen = 0;
    CHECK(DESC_REJECTED(d), "keyset validation: empty wrap blob");

    d = vector_desc();
    d.sealed_adjust = 1;
    CHECK(DESC_REJECTED(d), "keyset validation: sealed section one byte long");
    d.sealed_adjust = -1;
    CHECK(DESC_REJECTED(d), "keyset validation: sealed section one byte short");
    d.sealed_adjust = 32;
    CHECK(DESC_REJECTED(d),
          "keyset validation: sealed section with an extra key");
}

static int add_test_wrap(KMSENV_KEYSET *ks)
{
    ks->wrap = OPENSSL_zalloc(sizeof(*ks->wrap));
    if (ks->wrap == NULL)
        return 0;
    ks->nwrap = 1;
    ks->wrap[0].spec = OPENSSL_strdup("file:/nowhere");
    ks->wrap[0].blob = OPENSSL_memdup("blob", 4);
    ks->wrap[0].bloblen = 4;
    return ks->wrap[0].spec != NULL && ks->wrap[0].blob != NULL;
}

static int reencode_ok(const KMSENV_KEYSET *ks)
{
    KMSENV_BUF der;
    KMSENV_KEYSET back;
    size_t i;
    int ok;

    kmsenv_buf_init(&der, 0);
    ok = kmsenv_keyset_encode(ks, NULL, NULL, &der) &&
         decode_unseal(der.p, der.len, ks->ksk.data, &back);
    if (ok) {
        ok = back.nver == ks->nver && back.primary == ks->primary &&
             memcmp(back.keys.data, ks->keys.data, ks->nver * 32) == 0;
        for (i = 0; ok && i < ks->nver; i++)
            ok = back.ver[i].id == ks->ver[i].id &&
                 back.ver[i].state == ks->ver[i].state &&
                 back.ver[i].created == ks->ver[i].created;
        kmsenv_keyset_free(&back);
    }
    kmsenv_buf_free(&der);
    return ok;
}

static void test_keyset_rules(void)
{
    KMSENV_KEYSET ks;
    unsigned char ksk[32];
    int ok;

    kmsenv_keyset_init(&ks);
    RAND_bytes(ks.id, 16);
    RAND_bytes(ksk, 32);
    ks.alg = KMSENV_KS_ALG_XAES256GCM;
    ks.created = 100;
    ok = set_secret(&ks.ksk, ksk, 32) && add_test_wrap(&ks) &&
         kmsenv_keyset_add_version(&ks, NULL, NULL, 100);
    CHECK(ok && ks.nver == 1 && ks.ver[0].id == 1 &&
              ks.ver[0].state == KMSENV_STATE_PRIMARY && ks.primary == 1 &&
              ks.ver[0].created == 100,
          "keyset rules: first version is 1 and primary");
    if (!ok)
        goto end;
    CHECK(kmsenv_keyset_add_version(&ks, NULL, NULL, 200) && ks.nver == 2 &&
              ks.ver[1].id == 2 && ks.ver[1].state == KMSENV_STATE_PRIMARY &&
              ks.primary == 2 && ks.ver[0].state == KMSENV_STATE_DECRYPT_ONLY &&
              memcmp(kmsenv_keyset_key(&ks, 0), kmsenv_keyset_key(&ks, 1),
                     32) != 0,
          "keyset rules: rotate adds v2 as primary, demotes v1 to "
          "decrypt-only, fresh random key");
    CHECK(reencode_ok(&ks), "keyset rules: round trip after rotate");
    CHECK(!kmsenv_keyset_set_state(&ks, 2, KMSENV_STATE_DISABLED) &&
              last_reason() == KMSENV_R_BAD_PARAMETER &&
              ks.ver[1].state == KMSENV_STATE_PRIMARY,
          "keyset rules: cannot disable the primary");
    ERR_clear_error();
    CHECK(!kmsenv_keyset_set_state(&ks, 2, KMSENV_STATE_DECRYPT_ONLY) &&
              ks.ver[1].state == KMSENV_STATE_PRIMARY,
          "keyset rules: cannot demote the primary directly");
    ERR_clear_error();
    CHECK(kmsenv_keyset_set_state(&ks, 2, KMSENV_STATE_PRIMARY),
          "keyset rules: primary -> primary is a no-op");
    CHECK(kmsenv_keyset_set_state(&ks, 1, KMSENV_STATE_DISABLED) &&
              ks.ver[0].state == KMSENV_STATE_DISABLED && ks.primary == 2,
          "keyset rules: disable a decrypt-only version");
    CHECK(reencode_ok(&ks), "keyset rules: round trip with a disabled version");
    CHECK(kmsenv_keyset_set_state(&ks, 1, KMSENV_STATE_DECRYPT_ONLY) &&
              ks.ver[0].state == KMSENV_STATE_DECRYPT_ONLY,
          "keyset rules: re-enable a disabled version");
    CHECK(kmsenv_keyset_set_state(&ks, 1, KMSENV_STATE_PRIMARY) &&
              ks.primary == 1 && ks.ver[0].state == KMSENV_STATE_PRIMARY &&
              ks.ver[1].state == KMSENV_STATE_DECRYPT_ONLY,
          "keyset rules: promoting v1 demotes v2 to decrypt-only");
    CHECK(reencode_ok(&ks), "keyset rules: round trip after promotion");
    CHECK(!kmsenv_keyset_set_state(&ks, 9, KMSENV_STATE_DISABLED) &&
              last_reason() == KMSENV_R_UNKNOWN_VERSION,
          "keyset rules: unknown version");
    ERR_clear_error();
    CHECK(kmsenv_keyset_add_version(&ks, NULL, NULL, 300) && ks.nver == 3 &&
              ks.ver[2].id == 3 && ks.primary == 3 &&
              ks.ver[0].state == KMSENV_STATE_DECRYPT_ONLY &&
              ks.ver[1].state == KMSENV_STATE_DECRYPT_ONLY,
          "keyset rules: rotate again: v3 primary, v1 demoted");
    CHECK(kmsenv_keyset_set_state(&ks, 2, KMSENV_STATE_DISABLED) &&
              kmsenv_keyset_set_state(&ks, 2, KMSENV_STATE_PRIMARY) &&
              ks.primary == 2 && ks.ver[2].state == KMSENV_STATE_DECRYPT_ONLY,
          "keyset rules: a disabled version can be made primary directly");
    CHECK(reencode_ok(&ks), "keyset rules: round trip after that");
    CHECK(!kmsenv_keyset_set_state(&ks, 1, 0) &&
              last_reason() == KMSENV_R_BAD_PARAMETER &&
              !kmsenv_keyset_set_state(&ks, 1, 4) &&
              !kmsenv_keyset_set_state(&ks, 99, 0) &&
              ks.ver[0].state == KMSENV_STATE_DECRYPT_ONLY,
          "keyset rules: set_state refuses states outside 1..3");
    ERR_clear_error();
    CHECK(kmsenv_state_from_name("primary") == KMSENV_STATE_PRIMARY &&
              kmsenv_state_from_name("decrypt-only") ==
                  KMSENV_STATE_DECRYPT_ONLY &&
              kmsenv_state_from_name("disabled") == KMSENV_STATE_DISABLED &&
              kmsenv_state_from_name("enabled") == 0 &&
              strcmp(kmsenv_state_name(KMSENV_STATE_DISABLED), "disabled") ==
                  0 &&
              strcmp(kmsenv_state_name(0), "invalid") == 0,
          "keyset rules: state names");
end:
    kmsenv_keyset_free(&ks);
}

static void test_keyset_random_roundtrip(void)
{
    KMSENV_KEYSET ks, back;
    KMSENV_KEYRING *kr = NULL;
    KMSENV_CONTEXT kc, kc2;
    KMSENV_BUF der;
    char spec[512];
    size_t i;
    int ok;

    kmsenv_keyset_init(&ks);
    kmsenv_keyset_init(&back);
    kmsenv_ctx_init(&kc);
    kmsenv_ctx_init(&kc2);
    kmsenv_buf_init(&der, 0);
    RAND_bytes(ks.id, 16);
    ks.alg = KMSENV_KS_ALG_XAES256GCM;
    ks.created = 1234567890;
    snprintf(spec, sizeof(spec), "file:%s;file:%s", kek_path, kek2_path);
    ok = kmsenv_keyring_open(NULL, spec, &kr) &&
         kmsenv_keyring_keyset_context(&kc, ks.id, "keyset") &&
         kmsenv_keyring_generate(kr, &kc, 32, &ks.ksk, &ks.wrap, &ks.nwrap);
    for (i = 0; ok && i < 5; i++)
        ok = kmsenv_keyset_add_version(&ks, NULL, NULL, 1234567890 + i);
    ok = ok && kmsenv_keyset_set_state(&ks, 2, KMSENV_STATE_DISABLED) &&
         kmsenv_keyset_encode(&ks, NULL, NULL, &der);
    CHECK(ok, "keyset: create (two KEKs, 5 versions) and encode");
    if (!ok)
        goto end;
    ok = kmsenv_keyset_decode(&back, der.p, der.len, "rt") &&
         kmsenv_keyring_keyset_context(&kc2, back.id, "keyset") &&
         kmsenv_keyring_unwrap(NULL, back.wrap, back.nwrap, NULL, &kc2, 32,
                               &back.ksk, "rt") &&
         kmsenv_keyset_unseal(&back, NULL, "rt");
    CHECK(ok && back.nver == 5 && back.primary == 5 && back.nwrap == 2 &&
              memcmp(back.id, ks.id, 16) == 0 && back.created == ks.created &&
              memcmp(back.ksk.data, ks.ksk.data, 32) == 0 &&
              memcmp(back.keys.data, ks.keys.data, 5 * 32) == 0 &&
              back.ver[1].state == KMSENV_STATE_DISABLED &&
              back.ver[3].state == KMSENV_STATE_DECRYPT_ONLY &&
              back.ver[4].created == 1234567894 &&
              strcmp(back.wrap[1].spec, ks.wrap[1].spec) == 0,
          "keyset: encode -> decode -> unwrap -> unseal round trip");
    kmsenv_keyset_free(&back);
    CHECK(kmsenv_keyset_decode(&back, der.p, der.len, "rt") &&
              !kmsenv_keyset_unseal(&back, NULL, "rt") &&
              last_reason() == KMSENV_R_INTERNAL,
          "keyset: unseal without a KSK is refused");
    ERR_clear_error();
    kmsenv_keyset_free(&back);
end:
    kmsenv_ctx_free(&kc);
    kmsenv_ctx_free(&kc2);
    kmsenv_keyring_free(kr);
    kmsenv_buf_free(&der);
    kmsenv_keyset_free(&ks);
}

static void test_keyset_large(void)
{
    KMSENV_KEYSET ks;
    size_t i;
    int ok, refused;

    /* 1500 versions: body 155 + 45 * 1500 = 67655 bytes (>= 65536) */
    kmsenv_keyset_init(&ks);
    ks.alg = KMSENV_KS_ALG_XAES256GCM;
    ok = set_secret(&ks.ksk, V_KSK, 32) && add_test_wrap(&ks);
    for (i = 0; ok && i < 1500; i++)
        ok = kmsenv_keyset_add_version(&ks, NULL, NULL, i);
    CHECK(ok && ks.nver == 1500 && ks.primary == 1500,
          "keyset: 1500 versions added");
    {
        KMSENV_BUF der;

        kmsenv_buf_init(&der, 0);
        CHECK(ok && kmsenv_keyset_encode(&ks, NULL, NULL, &der) &&
                  der.len == 5 + 67591 && der.p[0] == 0x04 &&
                  der.p[1] == 0x83 && der.p[2] == 0x01 && der.p[3] == 0x08 &&
                  der.p[4] == 0x07,
              "keyset: 67591-byte content (40 + 45*1500 + 1 + 22 + 28) gets "
              "the minimal DER length 83 010807");
        kmsenv_buf_free(&der);
    }
    CHECK(ok && reencode_ok(&ks),
          "keyset: 1500-version keyset (DER length >= 65536) round-trips");
    for (; ok && ks.nver < KMSENV_KS_MAX_VERSIONS;)
        ok = kmsenv_keyset_add_version(&ks, NULL, NULL, ks.nver);
    refused = ok && !kmsenv_keyset_add_version(&ks, NULL, NULL, 0);
    CHECK(ok && refused && ks.nver == KMSENV_KS_MAX_VERSIONS &&
              ks.primary == KMSENV_KS_MAX_VERSIONS,
          "keyset: version 4097 refused");
    ERR_clear_error();
    kmsenv_keyset_free(&ks);
}

/* ------------------------------------------------------------------------ */
/* 6. FORMATS.md carries the same vectors                                    */
/* ------------------------------------------------------------------------ */

static char *read_doc(void)
{
    static const char tail[] = "test/unit/test_envelope.c";
    const char *src = __FILE__;
    size_t sl = strlen(src), tl = strlen(tail), n = 0, cap = 1 << 16;
    char path[4096], *buf, *out;
    FILE *f = fopen("docs/FORMATS.md", "r");
    int c;

    if (f == NULL && sl >= tl && strcmp(src + sl - tl, tail) == 0 &&
        sl - tl + 16 < sizeof(path)) {
        memcpy(path, src, sl - tl);
        strcpy(path + (sl - tl), "docs/FORMATS.md");
        f = fopen(path, "r");
    }
    if (f == NULL)
        return NULL;
    buf = xmalloc(cap);
    while ((c = fgetc(f)) != EOF) {
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
            continue; /* vectors may be wrapped over lines */
        if (n + 1 >= cap) {
            cap *= 2;
            out = realloc(buf, cap);
            if (out == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = out;
        }
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_doc_vectors(void)
{
    static const struct {
        const char *name, *hex;
    } v[] = {
        {"XAES1_L", XAES1_L},
        {"XAES1_K1", XAES1_K1},
        {"XAES1_KX", XAES1_KX},
        {"XAES1_CT", XAES1_CT},
        {"XAES3_L", XAES3_L},
        {"XAES3_K1", XAES3_K1},
        {"XAES3_KX", XAES3_KX},
        {"XAES3_CT", XAES3_CT},
        {"XAES_ACC_10K", XAES_ACC_10K},
        {"CTX_VEC_HEX", CTX_VEC_HEX},
        {"CTX_ESC_HEX", CTX_ESC_HEX},
        {"REC_AAD_HEX", REC_AAD_HEX},
        {"REC_KX_HEX", REC_KX_HEX},
        {"REC_HEX", REC_HEX},
        {"FILE_FP_HEX", FILE_FP_HEX},
        {"FILE_KEKCTX_HEX", FILE_KEKCTX_HEX},
        {"FILE_BLOB_HEX", FILE_BLOB_HEX},
        {"KS_HEX", KS_HEX},
    };
    char *doc = read_doc();
    size_t i;

    CHECK(doc != NULL, "docs/FORMATS.md readable");
    if (doc == NULL)
        return;
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        CHECK(v[i].hex[0] != '\0' && strstr(doc, v[i].hex) != NULL,
              "docs/FORMATS.md carries vector %s", v[i].name);
    CHECK(strstr(doc, CTX_ESC_TEXT) != NULL && strstr(doc, CTX_VEC_TEXT),
          "docs/FORMATS.md carries the context vector texts");
    free(doc);
}

/* aws-kms: policy entries: checked by the key id Decrypt will name, exact
 * or by prefix; file: entries are covered end to end by
 * test/16-kek-policy.t. */
static int allowed(const char *policy, const char *spec,
                   const unsigned char *fp, size_t fplen)
{
    KMSENV_AWS_CONF conf;
    KMSENV_KMS_ENV env;
    size_t i;

    memset(&conf, 0, sizeof(conf));
    memset(&env, 0, sizeof(env));
    conf.cfg.region = (char *)"us-east-1";
    env.allowed_keks = policy;
    for (i = 0; i < KMSENV_KEK_NMETHODS; i++)
        if (kmsenv_kek_methods[i] == &kmsenv_aws_kek_method)
            env.conf[i] = &conf;
    return kmsenv_kek_allowed(&env, spec, fp, fplen, "k");
}

static void test_kek_policy(void)
{
    static const char arn[] =
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab";
    const unsigned char *fp = (const unsigned char *)arn;
    size_t n = sizeof(arn) - 1;

    CHECK(kmsenv_kek_allowed(NULL, "aws-kms:alias/x", fp, n, "k") &&
              allowed(NULL, "aws-kms:alias/x", fp, n) &&
              allowed("", "aws-kms:alias/x", fp, n),
          "policy: none set allows everything");
    CHECK(allowed("aws-kms:arn:aws:kms:us-east-1:111122223333:key/",
                  "aws-kms:alias/app", fp, n),
          "policy: ARN prefix matches the recorded ARN, not the alias spec");
    CHECK(!allowed("aws-kms:arn:aws:kms:us-east-1:999922223333:",
                   "aws-kms:alias/app", fp, n) &&
              last_reason() == KMSENV_R_KEK_NOT_ALLOWED,
          "policy: another account's prefix refuses");
    ERR_clear_error();
    CHECK(allowed("file:/nonexistent/;aws-kms:"
                  "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab",
                  "aws-kms:1234abcd-12ab", fp, n),
          "policy: exact ARN entry, second in the list");
    CHECK(
        !allowed("aws-kms:arn:aws:kms:us-east-1:111122223333:key/1234abcd-12a",
                 "aws-kms:x", fp, n),
        "policy: an exact entry is not a prefix");
    ERR_clear_error();
    CHECK(!allowed("aws-kms:alias/app", "aws-kms:alias/app", fp, n),
          "policy: an alias entry does not cover the ARN Decrypt names");
    ERR_clear_error();
    CHECK(allowed("aws-kms:alias/app", "aws-kms:alias/app", NULL, 0),
          "policy: without a recorded ARN the spec is checked (generate)");
    /* A spec in another region than its recorded ARN: Decrypt names the
     * spec (an attacker's alias ARN), so the recorded ARN must not pass. */
    CHECK(!allowed("aws-kms:arn:aws:kms:us-east-1:111122223333:",
                   "aws-kms:arn:aws:kms:eu-west-1:444455556666:alias/evil", fp,
                   n),
          "policy: a recorded ARN of another region does not vouch for the "
          "spec");
    ERR_clear_error();
    CHECK(!allowed("0123456789abcdef0123456789abcdef", "aws-kms:alias/app", fp,
                   n),
          "policy: fingerprint entries are for file: KEKs only");
    ERR_clear_error();
}

int main(int argc, char **argv)
{
    int tmp_ok;

    if (argc > 1 && strcmp(argv[1], "-v") == 0)
        opt_verbose = 1;
    harness_clear_errors = 1;
    init_vectors();

    test_xaes();
    test_context();
    test_record_vector();
    test_record_context_sizes();
    test_record_roundtrips();
    test_record_nonce_pool();
    test_record_tamper();

    atexit(tmp_cleanup); /* also on exit(2) from a helper */
    tmp_ok = setup_tmp();
    CHECK(tmp_ok, "temporary KEK files created under %s", tmpdir);
    if (tmp_ok) {
        setup_keyset_vector();
        test_file_keyring();
        test_keyset_vector();
        test_keyset_tamper();
        test_keyset_validation();
        test_keyset_rules();
        test_keyset_random_roundtrip();
        free(v_blob);
    }
    tmp_cleanup();
    test_keyset_large();
    test_doc_vectors();
    test_kek_policy();

    return harness_done();
}
