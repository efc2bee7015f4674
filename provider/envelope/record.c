/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/record.h"
#include "util/bytes.h"
#include "util/err.h"

#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

int kmsenv_rec_key_init_with(KMSENV_REC_KEY *k, EVP_CIPHER *gcm,
                             uint32_t version, const KMSENV_XAES *xaes)
{
    memset(k, 0, sizeof(*k));
    k->version = version;
    if (gcm == NULL || !EVP_CIPHER_up_ref(gcm)) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                     "AES-256-GCM unavailable (is the default provider "
                     "loaded?)");
        return 0;
    }
    k->gcm = gcm;
    if (!kmsenv_xaes_dup(&k->xaes, xaes) ||
        (k->gctx = EVP_CIPHER_CTX_new()) == NULL) {
        kmsenv_rec_key_cleanup(k);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "record working key");
        return 0;
    }
    return 1;
}

int kmsenv_rec_key_init(KMSENV_REC_KEY *k, OSSL_LIB_CTX *libctx,
                        uint32_t version, const KMSENV_XAES *xaes)
{
    EVP_CIPHER *gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", NULL);
    int ok = kmsenv_rec_key_init_with(k, gcm, version, xaes);

    EVP_CIPHER_free(gcm);
    return ok;
}

void kmsenv_rec_key_cleanup(KMSENV_REC_KEY *k)
{
    kmsenv_xaes_cleanup(&k->xaes);
    EVP_CIPHER_CTX_free(k->gctx);
    EVP_CIPHER_free(k->gcm);
    memset(k, 0, sizeof(*k));
}

int kmsenv_record_peek(const unsigned char *in, size_t inlen, uint32_t *version)
{
    if (inlen < KMSENV_REC_OVERHEAD || in[0] != KMSENV_REC_MAGIC0 ||
        in[1] != KMSENV_REC_MAGIC1) {
        KMSENV_RAISE(KMSENV_R_BAD_RECORD,
                     "not a kmsenv record (%zu bytes; a record starts with "
                     "\"KE\" and is at least %d bytes)",
                     inlen, KMSENV_REC_OVERHEAD);
        return 0;
    }
    if (in[2] != KMSENV_REC_FORMAT) {
        KMSENV_RAISE(KMSENV_R_BAD_RECORD, "unsupported record format %u",
                     in[2]);
        return 0;
    }
    *version = kmsenv_get_u32(in + 3);
    return 1;
}

/* Keys the GCM context for this record and feeds the AAD. */
static int start(KMSENV_REC_KEY *k, int enc, const unsigned char *hdr,
                 const unsigned char keyset_id[16], const unsigned char *ctxenc,
                 size_t ctxenclen)
{
    unsigned char kx[32], aad[KMSENV_REC_HDR_LEN + KMSENV_KEYSET_ID_LEN + 512];
    const EVP_CIPHER *cipher;
    int ok, outl;

    /* Once keyed, re-init with a NULL cipher: only key and IV change,
     * which avoids tearing down the cipher state per record. */
    cipher = EVP_CIPHER_CTX_get0_cipher(k->gctx) == NULL ? k->gcm : NULL;
    ok = kmsenv_xaes_derive(&k->xaes, hdr + 7, kx) &&
         EVP_CipherInit_ex2(k->gctx, cipher, kx, hdr + 7 + 12, enc, NULL);
    OPENSSL_cleanse(kx, sizeof(kx));
    if (!ok)
        return 0;
    if (ctxenclen <= 512) { /* the usual case: one AAD update */
        memcpy(aad, hdr, KMSENV_REC_HDR_LEN);
        memcpy(aad + KMSENV_REC_HDR_LEN, keyset_id, KMSENV_KEYSET_ID_LEN);
        if (ctxenclen > 0)
            memcpy(aad + KMSENV_REC_HDR_LEN + KMSENV_KEYSET_ID_LEN, ctxenc,
                   ctxenclen);
        return EVP_CipherUpdate(
            k->gctx, NULL, &outl, aad,
            (int)(KMSENV_REC_HDR_LEN + KMSENV_KEYSET_ID_LEN + ctxenclen));
    }
    return EVP_CipherUpdate(k->gctx, NULL, &outl, hdr, KMSENV_REC_HDR_LEN) &&
           EVP_CipherUpdate(k->gctx, NULL, &outl, keyset_id,
                            KMSENV_KEYSET_ID_LEN) &&
           EVP_CipherUpdate(k->gctx, NULL, &outl, ctxenc, (int)ctxenclen);
}

/* EVP takes int lengths: feed large buffers in chunks. */
static int update(EVP_CIPHER_CTX *c, unsigned char *out,
                  const unsigned char *in, size_t len)
{
    while (len > 0) {
        int chunk = len > (1 << 30) ? (1 << 30) : (int)len, outl = 0;
        if (!EVP_CipherUpdate(c, out, &outl, in, chunk) || outl != chunk)
            return 0;
        in += chunk;
        out += chunk;
        len -= (size_t)chunk;
    }
    return 1;
}

/* The next random nonce from k's pool, refilled from the DRBG (each nonce
 * is used once: taken from the end, then wiped from the pool). */
static int next_nonce(KMSENV_REC_KEY *k, OSSL_LIB_CTX *libctx,
                      unsigned char out[KMSENV_XAES_NONCE_LEN])
{
    long pid = (long)getpid();
    unsigned char *n;

    if (k->pool_left == 0 || k->pool_pid != pid) {
        if (RAND_bytes_ex(libctx, k->pool, sizeof(k->pool), 0) <= 0) {
            k->pool_left = 0;
            KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "random nonce generation");
            return 0;
        }
        k->pool_left = KMSENV_REC_NONCE_POOL;
        k->pool_pid = pid;
    }
    n = k->pool + --k->pool_left * KMSENV_XAES_NONCE_LEN;
    memcpy(out, n, KMSENV_XAES_NONCE_LEN);
    memset(n, 0, KMSENV_XAES_NONCE_LEN);
    return 1;
}

int kmsenv_record_seal(KMSENV_REC_KEY *k, OSSL_LIB_CTX *libctx,
                       const unsigned char keyset_id[16],
                       const unsigned char *ctxenc, size_t ctxenclen,
                       const unsigned char *nonce, const unsigned char *in,
                       size_t inlen, unsigned char *out, size_t *outlen)
{
    unsigned char *hdr = out;
    int outl = 0;

    if ((uint64_t)inlen > (UINT64_C(1) << 36) - 32) { /* GCM: 2^36 - 32 */
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "record too large (%zu bytes)",
                     inlen);
        return 0;
    }
    hdr[0] = KMSENV_REC_MAGIC0;
    hdr[1] = KMSENV_REC_MAGIC1;
    hdr[2] = KMSENV_REC_FORMAT;
    kmsenv_put_u32(hdr + 3, k->version);
    if (nonce != NULL)
        memcpy(hdr + 7, nonce, KMSENV_XAES_NONCE_LEN);
    else if (!next_nonce(k, libctx, hdr + 7))
        return 0;
    if (!start(k, 1, hdr, keyset_id, ctxenc, ctxenclen) ||
        !update(k->gctx, out + KMSENV_REC_HDR_LEN, in, inlen) ||
        !EVP_EncryptFinal_ex(k->gctx, out + KMSENV_REC_HDR_LEN + inlen,
                             &outl) ||
        !EVP_CIPHER_CTX_ctrl(k->gctx, EVP_CTRL_GCM_GET_TAG, KMSENV_REC_TAG_LEN,
                             out + KMSENV_REC_HDR_LEN + inlen)) {
        OPENSSL_cleanse(out, inlen + KMSENV_REC_OVERHEAD);
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "record encryption");
        return 0;
    }
    *outlen = inlen + KMSENV_REC_OVERHEAD;
    return 1;
}

int kmsenv_record_open(KMSENV_REC_KEY *k, const unsigned char keyset_id[16],
                       const unsigned char *ctxenc, size_t ctxenclen,
                       const unsigned char *in, size_t inlen,
                       unsigned char *out, size_t *outlen)
{
    size_t ctlen;
    uint32_t version;
    unsigned char tag[KMSENV_REC_TAG_LEN];
    int outl = 0, ok;

    if (!kmsenv_record_peek(in, inlen, &version))
        return 0;
    if (version != k->version) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "record version mismatch");
        return 0;
    }
    ctlen = inlen - KMSENV_REC_OVERHEAD;
    memcpy(tag, in + inlen - KMSENV_REC_TAG_LEN, sizeof(tag));
    ok = start(k, 0, in, keyset_id, ctxenc, ctxenclen) &&
         update(k->gctx, out, in + KMSENV_REC_HDR_LEN, ctlen) &&
         EVP_CIPHER_CTX_ctrl(k->gctx, EVP_CTRL_GCM_SET_TAG, KMSENV_REC_TAG_LEN,
                             tag) &&
         EVP_DecryptFinal_ex(k->gctx, out + ctlen, &outl) > 0;
    if (!ok) {
        OPENSSL_cleanse(out, ctlen);
        KMSENV_RAISE(KMSENV_R_RECORD_AUTH_FAILED,
                     "record (version %u, %zu bytes) did not authenticate",
                     version, inlen);
        return 0;
    }
    *outlen = ctlen;
    return 1;
}
