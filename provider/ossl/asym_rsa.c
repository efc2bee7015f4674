/* SPDX-License-Identifier: Apache-2.0 */
/* RSA encryption with wrapped private keys: decrypt (TLS 1.2 RSA key
 * exchange) on the inner key, with the default provider's implementation
 * and its constant-time PKCS#1 / TLS padding checks; the ctx params
 * (padding, TLS client and negotiated versions, OAEP settings, implicit
 * rejection where the default provider has it) are forwarded. Encrypt uses
 * the public key. Each operation starts from a dup of the key's template
 * (keys/privkey.h): no fetch per TLS handshake. */
#include "ossl/params.h"
#include "envelope/wrapkey.h"
#include "keys/privkey.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

static OSSL_FUNC_asym_cipher_newctx_fn ra_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn ra_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn ra_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn ra_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn ra_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn ra_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn ra_decrypt;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn ra_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn ra_settable_ctx_params;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn ra_get_ctx_params;
static OSSL_FUNC_asym_cipher_gettable_ctx_params_fn ra_gettable_ctx_params;

typedef struct {
    KMSENV_PROV *prov;
    KMSENV_KEYOBJ *k;
    EVP_PKEY_CTX *pctx;
} RA_CTX;

static void *ra_newctx(void *provctx)
{
    RA_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER((KMSENV_PROV *)provctx);
    if (c != NULL)
        c->prov = provctx;
    return c;
}

static void ra_freectx(void *ctx)
{
    RA_CTX *c = ctx;

    if (c == NULL)
        return;
    EVP_PKEY_CTX_free(c->pctx);
    kmsenv_keyobj_free(c->k);
    OPENSSL_free(c);
}

static void *ra_dupctx(void *ctx)
{
    RA_CTX *c = ctx, *d = ra_newctx(c->prov);

    if (d == NULL)
        return NULL;
    if (c->pctx != NULL && (d->pctx = EVP_PKEY_CTX_dup(c->pctx)) == NULL) {
        ra_freectx(d);
        return NULL;
    }
    if (c->k != NULL && kmsenv_keyobj_up_ref(c->k))
        d->k = c->k;
    return d;
}

static int ra_init(RA_CTX *c, void *provkey, const OSSL_PARAM params[],
                   int decrypt)
{
    KMSENV_KEYOBJ *k = provkey;
    EVP_PKEY *pk;

    KMSENV_ENTER(c->prov);
    if (k == NULL || k->kind != KMSENV_KIND_PRIVKEY ||
        k->pk.type != KMSENV_WK_RSA) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "not a kmsenv RSA key");
        return 0;
    }
    if ((pk = decrypt ? k->pk.priv : k->pk.pub) == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: no private part here (a public key cannot decrypt)",
                     k->name);
        return 0;
    }
    EVP_PKEY_CTX_free(c->pctx);
    kmsenv_keyobj_free(c->k);
    kmsenv_keyobj_up_ref(k);
    c->k = k;
    /* A dup of the key's template: no fetch per operation. */
    if ((c->pctx = kmsenv_privkey_op_ctx(
             k, decrypt ? KMSENV_PK_DECRYPT : KMSENV_PK_ENCRYPT, NULL)) == NULL)
        return 0;
    if (params != NULL && params->key != NULL &&
        EVP_PKEY_CTX_set_params(c->pctx, (OSSL_PARAM *)params) <= 0) {
        char names[160];

        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: RSA %s parameters refused (%s)", k->name,
                     decrypt ? "decryption" : "encryption",
                     kmsenv_param_names(params, names, sizeof(names)));
        return 0;
    }
    return 1;
}

static int ra_encrypt_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    return ra_init(ctx, provkey, params, 0);
}

static int ra_decrypt_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    return ra_init(ctx, provkey, params, 1);
}

static int ra_encrypt(void *ctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    RA_CTX *c = ctx;

    if (c->pctx == NULL)
        return 0;
    if (out != NULL)
        *outlen = outsize;
    return EVP_PKEY_encrypt(c->pctx, out, outlen, in, inlen) > 0;
}

/* The default implementation's result as is: with TLS padding it returns
 * success and a random premaster on bad padding (constant time). */
static int ra_decrypt(void *ctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    RA_CTX *c = ctx;

    if (c->pctx == NULL)
        return 0;
    if (out != NULL)
        *outlen = outsize;
    return EVP_PKEY_decrypt(c->pctx, out, outlen, in, inlen) > 0;
}

static int ra_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    RA_CTX *c = ctx;

    if (params == NULL || params->key == NULL)
        return 1;
    return c->pctx != NULL &&
           EVP_PKEY_CTX_set_params(c->pctx, (OSSL_PARAM *)params) > 0;
}

static int ra_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    RA_CTX *c = ctx;

    return c->pctx != NULL && EVP_PKEY_CTX_get_params(c->pctx, params) > 0;
}

static const OSSL_PARAM *ra_list(void *ctx, void *provctx, int settable)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    RA_CTX *c = ctx;
    KMSENV_PROV *prov = provctx;
    OSSL_LIB_CTX *lc;
    EVP_ASYM_CIPHER *a;
    const OSSL_PARAM *p;

    if (c != NULL && c->pctx != NULL)
        return settable ? EVP_PKEY_CTX_settable_params(c->pctx)
                        : EVP_PKEY_CTX_gettable_params(c->pctx);
    if (prov == NULL || (lc = kmsenv_inner_libctx(&prov->keys)) == NULL ||
        (a = EVP_ASYM_CIPHER_fetch(lc, "RSA", NULL)) == NULL)
        return none;
    p = settable ? EVP_ASYM_CIPHER_settable_ctx_params(a)
                 : EVP_ASYM_CIPHER_gettable_ctx_params(a);
    EVP_ASYM_CIPHER_free(a); /* the lists are static in the default provider */
    return p != NULL ? p : none;
}

static const OSSL_PARAM *ra_settable_ctx_params(void *ctx, void *provctx)
{
    return ra_list(ctx, provctx, 1);
}

static const OSSL_PARAM *ra_gettable_ctx_params(void *ctx, void *provctx)
{
    return ra_list(ctx, provctx, 0);
}

const OSSL_DISPATCH kmsenv_rsa_asym_cipher_functions[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))ra_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))ra_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))ra_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))ra_encrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))ra_encrypt},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))ra_decrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))ra_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))ra_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,
     (void (*)(void))ra_gettable_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))ra_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,
     (void (*)(void))ra_settable_ctx_params},
    {0, NULL}};
