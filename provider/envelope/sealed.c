/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/sealed.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define CONTAINER_KEY_LEN 32

void kmsenv_wrap_free(KMSENV_WRAP *w)
{
    OPENSSL_free(w->spec);
    OPENSSL_free(w->blob);
    memset(w, 0, sizeof(*w));
}

void kmsenv_wraps_free(KMSENV_WRAP *w, size_t n)
{
    size_t i;

    for (i = 0; w != NULL && i < n; i++)
        kmsenv_wrap_free(&w[i]);
    OPENSSL_free(w);
}

int kmsenv_wrap_copy(KMSENV_WRAP *dst, const KMSENV_WRAP *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->spec = OPENSSL_strdup(src->spec);
    dst->blob = OPENSSL_memdup(src->blob, src->bloblen);
    if (dst->spec == NULL || dst->blob == NULL) {
        kmsenv_wrap_free(dst);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "copying wrapped key");
        return 0;
    }
    memcpy(dst->fp, src->fp, src->fplen);
    dst->fplen = src->fplen;
    dst->bloblen = src->bloblen;
    return 1;
}

int kmsenv_der_unwrap(const unsigned char *der, size_t len,
                      const unsigned char **body, size_t *bodylen)
{
    size_t n, hl, i, l = 0;

    if (len < 2 || der[0] != 0x04)
        return 0;
    if (der[1] < 0x80) {
        l = der[1];
        hl = 2;
    } else {
        n = der[1] & 0x7f;
        if (n == 0 || n > 4 || len < 2 + n || der[2] == 0)
            return 0;
        for (i = 0; i < n; i++)
            l = (l << 8) | der[2 + i];
        if (l < 0x80 || (n > 1 && l < ((size_t)1 << (8 * (n - 1)))))
            return 0; /* not minimal: not DER */
        hl = 2 + n;
    }
    if (len - hl != l)
        return 0;
    *body = der + hl;
    *bodylen = l;
    return 1;
}

void kmsenv_der_wrap_header(KMSENV_BUF *w, size_t l)
{
    kmsenv_wr_u8(w, 0x04);
    if (l < 0x80) {
        kmsenv_wr_u8(w, (uint8_t)l);
    } else if (l <= 0xff) {
        kmsenv_wr_u8(w, 0x81);
        kmsenv_wr_u8(w, (uint8_t)l);
    } else if (l <= 0xffff) {
        kmsenv_wr_u8(w, 0x82);
        kmsenv_wr_u16(w, (uint16_t)l);
    } else if (l <= 0xffffff) {
        kmsenv_wr_u8(w, 0x83);
        kmsenv_wr_u8(w, (uint8_t)(l >> 16));
        kmsenv_wr_u16(w, (uint16_t)l);
    } else {
        kmsenv_wr_u8(w, 0x84);
        kmsenv_wr_u32(w, (uint32_t)l);
    }
}

#define BAD(...)                                                               \
    do {                                                                       \
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET, __VA_ARGS__);                        \
        goto err;                                                              \
    } while (0)

int kmsenv_wraps_read(KMSENV_RD *r, KMSENV_WRAP **wraps, size_t *n,
                      const char *name)
{
    KMSENV_WRAP *ws = NULL;
    const unsigned char *q;
    size_t i, nw = kmsenv_rd_u8(r);

    *wraps = NULL;
    *n = 0;
    if (!r->ok || nw == 0 || nw > KMSENV_MAX_WRAPS)
        BAD("%s: no valid wrapped key list", name);
    if ((ws = OPENSSL_zalloc(nw * sizeof(*ws))) == NULL)
        goto oom;
    for (i = 0; i < nw; i++) {
        KMSENV_WRAP *w = &ws[i];
        size_t sl = kmsenv_rd_u16(r);

        q = kmsenv_rd_bytes(r, sl);
        if (q == NULL || sl == 0 || memchr(q, 0, sl) != NULL)
            BAD("%s: bad KEK spec in wrapped key %zu", name, i + 1);
        if ((w->spec = OPENSSL_strndup((const char *)q, sl)) == NULL)
            goto oom;
        w->fplen = kmsenv_rd_u8(r);
        q = kmsenv_rd_bytes(r, w->fplen);
        if (q != NULL)
            memcpy(w->fp, q, w->fplen);
        w->bloblen = kmsenv_rd_u16(r);
        q = kmsenv_rd_bytes(r, w->bloblen);
        if (q == NULL || w->bloblen == 0)
            BAD("%s: truncated in wrapped key %zu", name, i + 1);
        if ((w->blob = OPENSSL_memdup(q, w->bloblen)) == NULL)
            goto oom;
    }
    *wraps = ws;
    *n = nw;
    return 1;
oom:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "decoding %s", name);
err:
    kmsenv_wraps_free(ws, nw);
    return 0;
}

int kmsenv_wraps_check(const KMSENV_WRAP *wraps, size_t n)
{
    size_t i;

    if (n == 0 || n > KMSENV_MAX_WRAPS) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%zu KEKs cannot be encoded (1..%d)", n, KMSENV_MAX_WRAPS);
        return 0;
    }
    for (i = 0; i < n; i++) {
        const KMSENV_WRAP *w = &wraps[i];
        size_t sl = w->spec != NULL ? strlen(w->spec) : 0;

        if (sl == 0 || sl > 0xffff || w->fplen > sizeof(w->fp) ||
            w->bloblen == 0 || w->bloblen > 0xffff) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                         "KEK entry %zu cannot be encoded (spec %zu bytes, "
                         "blob %zu bytes)",
                         i + 1, sl, w->bloblen);
            return 0;
        }
    }
    return 1;
}

void kmsenv_wraps_write(KMSENV_BUF *w, const KMSENV_WRAP *wraps, size_t n)
{
    size_t i;

    kmsenv_wr_u8(w, (uint8_t)n);
    for (i = 0; i < n; i++) {
        size_t sl = strlen(wraps[i].spec);

        kmsenv_wr_u16(w, (uint16_t)sl);
        kmsenv_wr_bytes(w, wraps[i].spec, sl);
        kmsenv_wr_u8(w, (uint8_t)wraps[i].fplen);
        kmsenv_wr_bytes(w, wraps[i].fp, wraps[i].fplen);
        kmsenv_wr_u16(w, (uint16_t)wraps[i].bloblen);
        kmsenv_wr_bytes(w, wraps[i].blob, wraps[i].bloblen);
    }
}

static EVP_CIPHER_CTX *gcm_start(OSSL_LIB_CTX *libctx, int enc,
                                 const KMSENV_SECRET *key,
                                 const unsigned char *nonce,
                                 const unsigned char *aad, size_t aadlen)
{
    EVP_CIPHER *gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl;

    if (gcm == NULL || c == NULL || key->len != CONTAINER_KEY_LEN ||
        aadlen > INT32_MAX ||
        !EVP_CipherInit_ex2(c, gcm, key->data, nonce, enc, NULL) ||
        !EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen)) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    EVP_CIPHER_free(gcm);
    return c;
}

int kmsenv_seal(OSSL_LIB_CTX *libctx, const KMSENV_SECRET *key,
                const unsigned char *nonce, const unsigned char *aad,
                size_t aadlen, const unsigned char *pt, size_t ptlen,
                KMSENV_BUF *out)
{
    unsigned char n[KMSENV_SEAL_NONCE_LEN], *ct;
    EVP_CIPHER_CTX *c = NULL;
    int outl = 0, ok = 0;

    if (nonce != NULL)
        memcpy(n, nonce, sizeof(n));
    else if (RAND_bytes_ex(libctx, n, sizeof(n), 0) <= 0)
        goto end;
    kmsenv_wr_bytes(out, n, sizeof(n));
    ct = kmsenv_buf_reserve(out, ptlen + KMSENV_SEAL_TAG_LEN);
    if (out->failed || ct == NULL || ptlen > INT32_MAX)
        goto end;
    c = gcm_start(libctx, 1, key, n, aad, aadlen);
    ok = c != NULL && EVP_CipherUpdate(c, ct, &outl, pt, (int)ptlen) &&
         EVP_EncryptFinal_ex(c, ct + ptlen, &outl) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, KMSENV_SEAL_TAG_LEN,
                             ct + ptlen);
end:
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "sealing (AES-256-GCM)");
    return ok;
}

int kmsenv_unseal(OSSL_LIB_CTX *libctx, const KMSENV_SECRET *key,
                  const unsigned char *aad, size_t aadlen,
                  const unsigned char *sealed, size_t sealedlen,
                  KMSENV_SECRET *pt)
{
    EVP_CIPHER_CTX *c;
    unsigned char tag[KMSENV_SEAL_TAG_LEN];
    size_t ptlen;
    int outl = 0, ok;

    if (sealedlen < KMSENV_SEAL_OVERHEAD ||
        sealedlen - KMSENV_SEAL_OVERHEAD > INT32_MAX)
        return 0;
    ptlen = sealedlen - KMSENV_SEAL_OVERHEAD;
    if (!kmsenv_secret_alloc(pt, ptlen))
        return 0;
    memcpy(tag, sealed + KMSENV_SEAL_NONCE_LEN + ptlen, sizeof(tag));
    c = gcm_start(libctx, 0, key, sealed, aad, aadlen);
    ok = c != NULL &&
         EVP_CipherUpdate(c, pt->data, &outl, sealed + KMSENV_SEAL_NONCE_LEN,
                          (int)ptlen) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, KMSENV_SEAL_TAG_LEN,
                             tag) &&
         EVP_DecryptFinal_ex(c, pt->data + ptlen, &outl) > 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        kmsenv_secret_free(pt);
    return ok;
}
