/* SPDX-License-Identifier: Apache-2.0 */
/* ECDH with a wrapped EC private key: derive on the inner key with the
 * default provider's implementation; the peer is a public key (imported
 * into our EC keymgmt, or one of ours); ctx params forwarded. Each
 * derive starts from a dup of the key's template (keys/privkey.h). */
#include "ossl/params.h"
#include "envelope/wrapkey.h"
#include "keys/privkey.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

static OSSL_FUNC_keyexch_newctx_fn kx_newctx;
static OSSL_FUNC_keyexch_init_fn kx_init;
static OSSL_FUNC_keyexch_set_peer_fn kx_set_peer;
static OSSL_FUNC_keyexch_derive_fn kx_derive;
static OSSL_FUNC_keyexch_freectx_fn kx_freectx;
static OSSL_FUNC_keyexch_dupctx_fn kx_dupctx;
static OSSL_FUNC_keyexch_set_ctx_params_fn kx_set_ctx_params;
static OSSL_FUNC_keyexch_settable_ctx_params_fn kx_settable_ctx_params;
static OSSL_FUNC_keyexch_get_ctx_params_fn kx_get_ctx_params;
static OSSL_FUNC_keyexch_gettable_ctx_params_fn kx_gettable_ctx_params;

typedef struct {
    KMSENV_PROV *prov;
    KMSENV_KEYOBJ *k;
    EVP_PKEY_CTX *pctx;
} KX_CTX;

static void *kx_newctx(void *provctx)
{
    KX_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER((KMSENV_PROV *)provctx);
    if (c != NULL)
        c->prov = provctx;
    return c;
}

static void kx_freectx(void *ctx)
{
    KX_CTX *c = ctx;

    if (c == NULL)
        return;
    EVP_PKEY_CTX_free(c->pctx);
    kmsenv_keyobj_free(c->k);
    OPENSSL_free(c);
}

static void *kx_dupctx(void *ctx)
{
    KX_CTX *c = ctx, *d = kx_newctx(c->prov);

    if (d == NULL)
        return NULL;
    if (c->pctx != NULL && (d->pctx = EVP_PKEY_CTX_dup(c->pctx)) == NULL) {
        kx_freectx(d);
        return NULL;
    }
    if (c->k != NULL && kmsenv_keyobj_up_ref(c->k))
        d->k = c->k;
    return d;
}

static int kx_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
    KX_CTX *c = ctx;
    KMSENV_KEYOBJ *k = provkey;

    KMSENV_ENTER(c->prov);
    if (k == NULL || k->kind != KMSENV_KIND_PRIVKEY ||
        k->pk.type != KMSENV_WK_EC || k->pk.priv == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "ECDH needs a kmsenv EC key with its private part");
        return 0;
    }
    EVP_PKEY_CTX_free(c->pctx);
    kmsenv_keyobj_free(c->k);
    kmsenv_keyobj_up_ref(k);
    c->k = k;
    /* A dup of the key's template: no fetch per operation. */
    if ((c->pctx = kmsenv_privkey_op_ctx(k, KMSENV_PK_DERIVE, NULL)) == NULL)
        return 0;
    if (params != NULL && params->key != NULL &&
        EVP_PKEY_CTX_set_params(c->pctx, (OSSL_PARAM *)params) <= 0) {
        char names[160];

        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s: ECDH parameters refused (%s)",
                     k->name, kmsenv_param_names(params, names, sizeof(names)));
        return 0;
    }
    return 1;
}

static int kx_set_peer(void *ctx, void *provkey)
{
    KX_CTX *c = ctx;
    KMSENV_KEYOBJ *peer = provkey;

    if (c->pctx == NULL || peer == NULL || peer->kind != KMSENV_KIND_PRIVKEY ||
        peer->pk.pub == NULL)
        return 0;
    return EVP_PKEY_derive_set_peer_ex(c->pctx, peer->pk.pub, 1) > 0;
}

static int kx_derive(void *ctx, unsigned char *secret, size_t *secretlen,
                     size_t outlen)
{
    KX_CTX *c = ctx;

    if (c->pctx == NULL)
        return 0;
    if (secret != NULL)
        *secretlen = outlen;
    return EVP_PKEY_derive(c->pctx, secret, secretlen) > 0;
}

static int kx_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    KX_CTX *c = ctx;

    if (params == NULL || params->key == NULL)
        return 1;
    return c->pctx != NULL &&
           EVP_PKEY_CTX_set_params(c->pctx, (OSSL_PARAM *)params) > 0;
}

static int kx_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    KX_CTX *c = ctx;

    return c->pctx != NULL && EVP_PKEY_CTX_get_params(c->pctx, params) > 0;
}

static const OSSL_PARAM *kx_list(void *ctx, void *provctx, int settable)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    KX_CTX *c = ctx;
    KMSENV_PROV *prov = provctx;
    OSSL_LIB_CTX *lc;
    EVP_KEYEXCH *x;
    const OSSL_PARAM *p;

    if (c != NULL && c->pctx != NULL)
        return settable ? EVP_PKEY_CTX_settable_params(c->pctx)
                        : EVP_PKEY_CTX_gettable_params(c->pctx);
    if (prov == NULL || (lc = kmsenv_inner_libctx(&prov->keys)) == NULL ||
        (x = EVP_KEYEXCH_fetch(lc, "ECDH", NULL)) == NULL)
        return none;
    p = settable ? EVP_KEYEXCH_settable_ctx_params(x)
                 : EVP_KEYEXCH_gettable_ctx_params(x);
    EVP_KEYEXCH_free(x);
    return p != NULL ? p : none;
}

static const OSSL_PARAM *kx_settable_ctx_params(void *ctx, void *provctx)
{
    return kx_list(ctx, provctx, 1);
}

static const OSSL_PARAM *kx_gettable_ctx_params(void *ctx, void *provctx)
{
    return kx_list(ctx, provctx, 0);
}

const OSSL_DISPATCH kmsenv_ecdh_keyexch_functions[] = {
    {OSSL_FUNC_KEYEXCH_NEWCTX, (void (*)(void))kx_newctx},
    {OSSL_FUNC_KEYEXCH_INIT, (void (*)(void))kx_init},
    {OSSL_FUNC_KEYEXCH_SET_PEER, (void (*)(void))kx_set_peer},
    {OSSL_FUNC_KEYEXCH_DERIVE, (void (*)(void))kx_derive},
    {OSSL_FUNC_KEYEXCH_FREECTX, (void (*)(void))kx_freectx},
    {OSSL_FUNC_KEYEXCH_DUPCTX, (void (*)(void))kx_dupctx},
    {OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, (void (*)(void))kx_set_ctx_params},
    {OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS,
     (void (*)(void))kx_settable_ctx_params},
    {OSSL_FUNC_KEYEXCH_GET_CTX_PARAMS, (void (*)(void))kx_get_ctx_params},
    {OSSL_FUNC_KEYEXCH_GETTABLE_CTX_PARAMS,
     (void (*)(void))kx_gettable_ctx_params},
    {0, NULL}};
