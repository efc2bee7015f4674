/* SPDX-License-Identifier: Apache-2.0 */
/* Signatures with wrapped private keys: RSA (PKCS#1 v1.5 and PSS), ECDSA,
 * Ed25519; sign/verify and digest-sign/verify, with dupctx. Each runs on
 * the object's inner key (keys/privkey.h) with the default provider's
 * implementation in the provider-private library context, on a dup of the
 * key's template for the operation (no fetch per operation); ctx params
 * are forwarded, so padding, salt length, the AlgorithmIdentifier and the
 * rest come from the default provider. No KMS call here: the key was
 * unwrapped once, at load. */
#include "ossl/params.h"
#include "envelope/wrapkey.h"
#include "keys/privkey.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <string.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

static OSSL_FUNC_signature_freectx_fn sig_freectx;
static OSSL_FUNC_signature_dupctx_fn sig_dupctx;
static OSSL_FUNC_signature_sign_init_fn sig_sign_init;
static OSSL_FUNC_signature_sign_fn sig_sign;
static OSSL_FUNC_signature_verify_init_fn sig_verify_init;
static OSSL_FUNC_signature_verify_fn sig_verify;
static OSSL_FUNC_signature_digest_sign_init_fn sig_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn sig_digest_update;
static OSSL_FUNC_signature_digest_sign_final_fn sig_digest_sign_final;
static OSSL_FUNC_signature_digest_sign_fn sig_digest_sign;
static OSSL_FUNC_signature_digest_verify_init_fn sig_digest_verify_init;
static OSSL_FUNC_signature_digest_verify_final_fn sig_digest_verify_final;
static OSSL_FUNC_signature_digest_verify_fn sig_digest_verify;
static OSSL_FUNC_signature_get_ctx_params_fn sig_get_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn sig_set_ctx_params;

typedef struct {
    KMSENV_PROV *prov;
    int type; /* enum kmsenv_wk_type of this implementation */
    KMSENV_KEYOBJ *k;
    EVP_MD_CTX *mctx;   /* digest-sign/verify: a shell around pctx */
    EVP_PKEY_CTX *pctx; /* the inner operation (owned, also with mctx) */
} SIG_CTX;

static void *sig_newctx_type(void *provctx, int type)
{
    SIG_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER((KMSENV_PROV *)provctx);
    if (c != NULL) {
        c->prov = provctx;
        c->type = type;
    }
    return c;
}

static void reset(SIG_CTX *c)
{
    EVP_MD_CTX_free(c->mctx); /* keeps pctx (EVP_MD_CTX_set_pkey_ctx) */
    EVP_PKEY_CTX_free(c->pctx);
    c->mctx = NULL;
    c->pctx = NULL;
    kmsenv_keyobj_free(c->k);
    c->k = NULL;
}

static void sig_freectx(void *ctx)
{
    if (ctx == NULL)
        return;
    reset(ctx);
    OPENSSL_free(ctx);
}

/* An EVP_MD_CTX around pctx (a digest-sign/verify inner context), which
 * it does not own. Final is final: when our caller wants to go on after
 * it, EVP dups this context (sig_dupctx) first, so the inner EVP need not
 * dup pctx once more. */
static EVP_MD_CTX *digest_shell(EVP_PKEY_CTX *pctx)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();

    if (m != NULL) {
        EVP_MD_CTX_set_pkey_ctx(m, pctx);
        EVP_MD_CTX_set_flags(m, EVP_MD_CTX_FLAG_FINALISE);
    }
    return m;
}

static void *sig_dupctx(void *ctx)
{
    SIG_CTX *c = ctx, *d = OPENSSL_zalloc(sizeof(*d));

    if (d == NULL)
        return NULL;
    KMSENV_ENTER(c->prov);
    d->prov = c->prov;
    d->type = c->type;
    if (c->pctx != NULL && (d->pctx = EVP_PKEY_CTX_dup(c->pctx)) == NULL)
        goto err;
    if (c->mctx != NULL && (d->mctx = digest_shell(d->pctx)) == NULL)
        goto err;
    if (c->k != NULL && kmsenv_keyobj_up_ref(c->k))
        d->k = c->k;
    return d;
err:
    sig_freectx(d);
    return NULL;
}

/* Takes the key for an operation: the private key for signing, the public
 * key for verifying. NULL (error raised) if the object has not got it. */
static EVP_PKEY *take_key(SIG_CTX *c, void *provkey, int private)
{
    KMSENV_KEYOBJ *k = provkey;
    EVP_PKEY *pk;

    if (k == NULL || k->kind != KMSENV_KIND_PRIVKEY ||
        (k->pk.type != c->type &&
         !(c->type == KMSENV_WK_RSA && k->pk.type == KMSENV_WK_RSA_PSS))) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "not a kmsenv %s key",
                     kmsenv_wk_type_name(c->type));
        return NULL;
    }
    pk = private ? k->pk.priv : k->pk.pub;
    if (pk == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: %s key has no private part here (a public key "
                     "cannot sign)",
                     k->name, kmsenv_wk_type_name(c->type));
        return NULL;
    }
    reset(c);
    kmsenv_keyobj_up_ref(k);
    c->k = k;
    return pk;
}

/* Applies the caller's init params to the new inner context (the default
 * implementation's init does the same after resetting the context, which
 * the dup of a fresh template already is). */
static int apply_params(SIG_CTX *c, const OSSL_PARAM params[])
{
    if (params == NULL || params->key == NULL ||
        EVP_PKEY_CTX_set_params(c->pctx, (OSSL_PARAM *)params) > 0)
        return 1;
    {
        char names[160];

        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: signature parameters refused by the default "
                     "implementation (%s)",
                     c->k->name,
                     kmsenv_param_names(params, names, sizeof(names)));
    }
    return 0;
}

static int op_init(SIG_CTX *c, void *provkey, const OSSL_PARAM params[],
                   int sign)
{
    KMSENV_ENTER(c->prov);
    if (take_key(c, provkey, sign) == NULL ||
        (c->pctx = kmsenv_privkey_op_ctx(
             c->k, sign ? KMSENV_PK_SIGN : KMSENV_PK_VERIFY, NULL)) == NULL)
        return 0;
    return apply_params(c, params);
}

static int sig_sign_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    return op_init(ctx, provkey, params, 1);
}

static int sig_verify_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    return op_init(ctx, provkey, params, 0);
}

static int sig_sign(void *ctx, unsigned char *sig, size_t *siglen,
                    size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    SIG_CTX *c = ctx;

    if (c->pctx == NULL)
        return 0;
    if (sig != NULL)
        *siglen = sigsize;
    return EVP_PKEY_sign(c->pctx, sig, siglen, tbs, tbslen) > 0;
}

static int sig_verify(void *ctx, const unsigned char *sig, size_t siglen,
                      const unsigned char *tbs, size_t tbslen)
{
    SIG_CTX *c = ctx;

    return c->pctx != NULL &&
           EVP_PKEY_verify(c->pctx, sig, siglen, tbs, tbslen) > 0;
}

static int digest_init(SIG_CTX *c, const char *mdname, void *provkey,
                       const OSSL_PARAM params[], int sign)
{
    KMSENV_ENTER(c->prov);
    if (take_key(c, provkey, sign) == NULL ||
        (c->pctx = kmsenv_privkey_op_ctx(
             c->k, sign ? KMSENV_PK_DIGEST_SIGN : KMSENV_PK_DIGEST_VERIFY,
             mdname)) == NULL ||
        (c->mctx = digest_shell(c->pctx)) == NULL)
        return 0;
    return apply_params(c, params);
}

static int sig_digest_sign_init(void *ctx, const char *mdname, void *provkey,
                                const OSSL_PARAM params[])
{
    return digest_init(ctx, mdname, provkey, params, 1);
}

static int sig_digest_verify_init(void *ctx, const char *mdname, void *provkey,
                                  const OSSL_PARAM params[])
{
    return digest_init(ctx, mdname, provkey, params, 0);
}

/* The same update serves signing and verifying. */
static int sig_digest_update(void *ctx, const unsigned char *data,
                             size_t datalen)
{
    SIG_CTX *c = ctx;

    return c->mctx != NULL && EVP_DigestUpdate(c->mctx, data, datalen) > 0;
}

static int sig_digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen,
                                 size_t sigsize)
{
    SIG_CTX *c = ctx;

    if (c->mctx == NULL)
        return 0;
    if (sig != NULL)
        *siglen = sigsize;
    return EVP_DigestSignFinal(c->mctx, sig, siglen) > 0;
}

static int sig_digest_verify_final(void *ctx, const unsigned char *sig,
                                   size_t siglen)
{
    SIG_CTX *c = ctx;

    return c->mctx != NULL && EVP_DigestVerifyFinal(c->mctx, sig, siglen) > 0;
}

static int sig_digest_sign(void *ctx, unsigned char *sig, size_t *siglen,
                           size_t sigsize, const unsigned char *tbs,
                           size_t tbslen)
{
    SIG_CTX *c = ctx;

    if (c->mctx == NULL)
        return 0;
    if (sig != NULL)
        *siglen = sigsize;
    return EVP_DigestSign(c->mctx, sig, siglen, tbs, tbslen) > 0;
}

static int sig_digest_verify(void *ctx, const unsigned char *sig, size_t siglen,
                             const unsigned char *tbs, size_t tbslen)
{
    SIG_CTX *c = ctx;

    return c->mctx != NULL &&
           EVP_DigestVerify(c->mctx, sig, siglen, tbs, tbslen) > 0;
}

static int sig_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    SIG_CTX *c = ctx;

    return c->pctx != NULL && EVP_PKEY_CTX_get_params(c->pctx, params) > 0;
}

static int sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    SIG_CTX *c = ctx;

    if (params == NULL || params->key == NULL)
        return 1;
    return c->pctx != NULL &&
           EVP_PKEY_CTX_set_params(c->pctx, (OSSL_PARAM *)params) > 0;
}

/* The default implementation's lists (fetched once per process and type;
 * they are static in the default provider). */
static const OSSL_PARAM *default_list(SIG_CTX *c, void *provctx, int type,
                                      int settable)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    static const char *const alg[] = {NULL, "RSA", "RSA", "ECDSA", "ED25519"};
    KMSENV_PROV *prov = provctx;
    OSSL_LIB_CTX *lc;
    EVP_SIGNATURE *s;
    const OSSL_PARAM *p;

    if (c != NULL && c->pctx != NULL)
        return settable ? EVP_PKEY_CTX_settable_params(c->pctx)
                        : EVP_PKEY_CTX_gettable_params(c->pctx);
    if (prov == NULL || (lc = kmsenv_inner_libctx(&prov->keys)) == NULL ||
        (s = EVP_SIGNATURE_fetch(lc, alg[type], NULL)) == NULL)
        return none;
    p = settable ? EVP_SIGNATURE_settable_ctx_params(s)
                 : EVP_SIGNATURE_gettable_ctx_params(s);
    EVP_SIGNATURE_free(s); /* the default provider stays loaded */
    return p != NULL ? p : none;
}

#define SIGNATURE(tag, TYPE)                                                   \
    static void *sig_newctx_##tag(void *provctx, const char *propq)            \
    {                                                                          \
        return sig_newctx_type(provctx, TYPE);                                 \
    }                                                                          \
    static const OSSL_PARAM *sig_settable_##tag(void *ctx, void *provctx)      \
    {                                                                          \
        return default_list(ctx, provctx, TYPE, 1);                            \
    }                                                                          \
    static const OSSL_PARAM *sig_gettable_##tag(void *ctx, void *provctx)      \
    {                                                                          \
        return default_list(ctx, provctx, TYPE, 0);                            \
    }                                                                          \
    const OSSL_DISPATCH kmsenv_##tag##_signature_functions[] = {               \
        {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_newctx_##tag},        \
        {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},            \
        {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},              \
        {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sig_sign_init},        \
        {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign},                  \
        {OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))sig_verify_init},    \
        {OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))sig_verify},              \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,                                 \
         (void (*)(void))sig_digest_sign_init},                                \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE,                               \
         (void (*)(void))sig_digest_update},                                   \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL,                                \
         (void (*)(void))sig_digest_sign_final},                               \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))sig_digest_sign},    \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,                               \
         (void (*)(void))sig_digest_verify_init},                              \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,                             \
         (void (*)(void))sig_digest_update},                                   \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,                              \
         (void (*)(void))sig_digest_verify_final},                             \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY,                                    \
         (void (*)(void))sig_digest_verify},                                   \
        {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,                                   \
         (void (*)(void))sig_get_ctx_params},                                  \
        {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,                              \
         (void (*)(void))sig_gettable_##tag},                                  \
        {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,                                   \
         (void (*)(void))sig_set_ctx_params},                                  \
        {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,                              \
         (void (*)(void))sig_settable_##tag},                                  \
        {0, NULL}}

SIGNATURE(rsa, KMSENV_WK_RSA);
SIGNATURE(ecdsa, KMSENV_WK_EC);
SIGNATURE(ed25519, KMSENV_WK_ED25519);
