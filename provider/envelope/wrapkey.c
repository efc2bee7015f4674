/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/wrapkey.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char *const type_names[] = {NULL, "RSA", "RSA-PSS", "EC",
                                         "ED25519"};

const char *kmsenv_wk_type_name(int type)
{
    return type >= KMSENV_WK_RSA && type <= KMSENV_WK_ED25519 ? type_names[type]
                                                              : NULL;
}

int kmsenv_wk_type_from_name(const char *name)
{
    int t;

    for (t = KMSENV_WK_RSA; t <= KMSENV_WK_ED25519; t++)
        if (OPENSSL_strcasecmp(name, type_names[t]) == 0)
            return t;
    return 0;
}

void kmsenv_wrapkey_init(KMSENV_WRAPKEY *wk)
{
    memset(wk, 0, sizeof(*wk));
}

static void clear_pending(KMSENV_WRAPKEY *wk)
{
    OPENSSL_free(wk->aad);
    OPENSSL_free(wk->sealed);
    wk->aad = wk->sealed = NULL;
    wk->aadlen = wk->sealedlen = 0;
}

void kmsenv_wrapkey_free(KMSENV_WRAPKEY *wk)
{
    OPENSSL_free(wk->spki);
    kmsenv_wraps_free(wk->wrap, wk->nwrap);
    kmsenv_secret_free(&wk->ck);
    kmsenv_secret_free(&wk->pkcs8);
    clear_pending(wk);
    kmsenv_wrapkey_init(wk);
}

int kmsenv_wrapkey_sniff(const unsigned char *der, size_t len)
{
    const unsigned char *body;
    size_t bl;

    return kmsenv_der_unwrap(der, len, &body, &bl) && bl >= 8 &&
           memcmp(body, KMSENV_WK_MAGIC, 8) == 0;
}

int kmsenv_wrapkey_peek_type(const unsigned char *der, size_t len)
{
    const unsigned char *body;
    size_t bl;

    if (!kmsenv_der_unwrap(der, len, &body, &bl) || bl < 10 ||
        memcmp(body, KMSENV_WK_MAGIC, 8) != 0 || body[8] != KMSENV_WK_FORMAT ||
        kmsenv_wk_type_name(body[9]) == NULL)
        return 0;
    return body[9];
}

#define BAD(...)                                                               \
    do {                                                                       \
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET, __VA_ARGS__);                        \
        goto err;                                                              \
    } while (0)

int kmsenv_wrapkey_decode(KMSENV_WRAPKEY *wk, const unsigned char *der,
                          size_t len, const char *name)
{
    const unsigned char *body, *q;
    size_t bodylen, pl;
    KMSENV_RD r;
    uint8_t fmt;

    kmsenv_wrapkey_init(wk);
    if (!kmsenv_der_unwrap(der, len, &body, &bodylen) || bodylen < 8 ||
        memcmp(body, KMSENV_WK_MAGIC, 8) != 0)
        BAD("%s: not a kmsenv wrapped private key (bad DER wrapper or magic)",
            name);
    kmsenv_rd_init(&r, body + 8, bodylen - 8);
    fmt = kmsenv_rd_u8(&r);
    if (r.ok && fmt != KMSENV_WK_FORMAT)
        BAD("%s: unsupported wrapped key format %u (this build reads %d)", name,
            fmt, KMSENV_WK_FORMAT);
    wk->type = kmsenv_rd_u8(&r);
    wk->created = kmsenv_rd_u64(&r);
    pl = kmsenv_rd_u8(&r);
    q = kmsenv_rd_bytes(&r, pl);
    if (q == NULL || pl == 0 || memchr(q, 0, pl) != NULL)
        BAD("%s: wrapped key truncated or bad purpose in header", name);
    memcpy(wk->purpose, q, pl);
    wk->purpose[pl] = '\0';
    if (kmsenv_wk_type_name(wk->type) == NULL)
        BAD("%s: unknown wrapped key type %u", name, wk->type);
    wk->spkilen = kmsenv_rd_u16(&r);
    q = kmsenv_rd_bytes(&r, wk->spkilen);
    if (q == NULL || wk->spkilen == 0)
        BAD("%s: wrapped key truncated in its public key", name);
    if ((wk->spki = OPENSSL_memdup(q, wk->spkilen)) == NULL)
        goto oom;
    if (!kmsenv_wraps_read(&r, &wk->wrap, &wk->nwrap, name))
        goto err;
    wk->aadlen = (size_t)(r.p - body);
    wk->sealedlen = r.left;
    if (wk->sealedlen <= KMSENV_SEAL_OVERHEAD ||
        wk->sealedlen > KMSENV_SEAL_OVERHEAD + KMSENV_WK_MAX_PKCS8)
        BAD("%s: sealed private key section has %zu bytes (expected %d..%d)",
            name, wk->sealedlen, KMSENV_SEAL_OVERHEAD + 1,
            KMSENV_SEAL_OVERHEAD + KMSENV_WK_MAX_PKCS8);
    wk->aad = OPENSSL_memdup(body, wk->aadlen);
    wk->sealed = OPENSSL_memdup(r.p, wk->sealedlen);
    if (wk->aad == NULL || wk->sealed == NULL)
        goto oom;
    return 1;
oom:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "decoding wrapped key %s", name);
err:
    kmsenv_wrapkey_free(wk);
    return 0;
}

int kmsenv_wrapkey_unseal(KMSENV_WRAPKEY *wk, OSSL_LIB_CTX *libctx,
                          const char *name)
{
    if (wk->sealed == NULL || wk->ck.data == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "wrapped key %s not decoded", name);
        return 0;
    }
    if (!kmsenv_unseal(libctx, &wk->ck, wk->aad, wk->aadlen, wk->sealed,
                       wk->sealedlen, &wk->pkcs8)) {
        KMSENV_RAISE(KMSENV_R_KEYSET_TAMPERED,
                     "%s: wrapped private key failed authentication under "
                     "its container key (tampered or corrupt file)",
                     name);
        return 0;
    }
    clear_pending(wk);
    return 1;
}

int kmsenv_wrapkey_encode(const KMSENV_WRAPKEY *wk, OSSL_LIB_CTX *libctx,
                          const unsigned char *nonce, KMSENV_BUF *der)
{
    KMSENV_BUF b;
    size_t aadlen, pl = strlen(wk->purpose);
    int ok;

    if (wk->pkcs8.data == NULL || wk->ck.data == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "wrapped key not open; cannot encode");
        return 0;
    }
    /* Never write what kmsenv_wrapkey_decode would refuse. */
    if (kmsenv_wk_type_name(wk->type) == NULL || pl == 0 || pl > 255 ||
        wk->spkilen == 0 || wk->spkilen > 0xffff || wk->pkcs8.len == 0 ||
        wk->pkcs8.len > KMSENV_WK_MAX_PKCS8) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "wrapped key cannot be encoded (type %u, public key %zu "
                     "bytes, private key %zu bytes)",
                     wk->type, wk->spkilen, wk->pkcs8.len);
        return 0;
    }
    if (!kmsenv_wraps_check(wk->wrap, wk->nwrap))
        return 0;
    kmsenv_buf_init(&b, 0);
    kmsenv_wr_bytes(&b, KMSENV_WK_MAGIC, 8);
    kmsenv_wr_u8(&b, KMSENV_WK_FORMAT);
    kmsenv_wr_u8(&b, wk->type);
    kmsenv_wr_u64(&b, wk->created);
    kmsenv_wr_u8(&b, (uint8_t)pl);
    kmsenv_wr_bytes(&b, wk->purpose, pl);
    kmsenv_wr_u16(&b, (uint16_t)wk->spkilen);
    kmsenv_wr_bytes(&b, wk->spki, wk->spkilen);
    kmsenv_wraps_write(&b, wk->wrap, wk->nwrap);
    aadlen = b.len;
    ok = !b.failed;
    if (ok) {
        unsigned char *aad = OPENSSL_memdup(b.p, aadlen);

        ok = aad != NULL && kmsenv_seal(libctx, &wk->ck, nonce, aad, aadlen,
                                        wk->pkcs8.data, wk->pkcs8.len, &b);
        OPENSSL_free(aad);
    }
    if (ok) {
        kmsenv_der_wrap_header(der, b.len);
        kmsenv_wr_bytes(der, b.p, b.len);
        ok = !der->failed;
    }
    kmsenv_buf_free(&b);
    if (!ok)
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "sealing wrapped private key");
    return ok;
}

int kmsenv_wrapkey_context(KMSENV_CONTEXT *ectx, OSSL_LIB_CTX *libctx,
                           const unsigned char *spki, size_t spkilen,
                           const char *purpose)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];
    EVP_MD *sha = EVP_MD_fetch(libctx, "SHA2-256", NULL);
    int ok = sha != NULL && EVP_Digest(spki, spkilen, md, &mdlen, sha, NULL) &&
             mdlen == sizeof(md);

    EVP_MD_free(sha);
    kmsenv_ctx_init(ectx);
    if (!ok) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                     "SHA-256 unavailable (is the default provider loaded?)");
        return 0;
    }
    kmsenv_hex(hex, md, sizeof(md));
    if (!kmsenv_ctx_add(ectx, "kmsenv:pubkey", hex) ||
        !kmsenv_ctx_add(ectx, "kmsenv:purpose", purpose)) {
        kmsenv_ctx_free(ectx);
        return 0;
    }
    return 1;
}
