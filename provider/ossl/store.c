/* SPDX-License-Identifier: Apache-2.0 */
/* STORE for the kmsenv: URI scheme.
 *
 *   kmsenv:PATH[?keyring=SPEC]   the keyset at PATH (PEM or DER)
 *   kmsenv:[?keyring=SPEC]       the configured default keyset
 *                                (provider "keyset" / KMSENV_KEYSET)
 *
 * PATH and SPEC are percent-decoded (%3F for a literal '?', %26 for '&');
 * %00 and malformed escapes are refused. keyring=SPEC unwraps with the KEKs
 * of SPEC instead of those recorded in the keyset: SPEC is a keyring spec,
 * its KEKs separated by ';' (or %3B), tried in order until one unwraps.
 *
 * PATH may also hold a wrapped private key (kmsenv wrap): it loads as a key
 * of its type (RSA, RSA-PSS, EC, ED25519), unwrapped once.
 *
 * Only keys live here: when OSSL_STORE_expect() asks for anything else
 * (certificates, parameters ...), nothing is read or unwrapped. Asked for a
 * public key, a wrapped private key gives the public key of its header
 * (no unwrap); a keyset has none. */
#include "keys/loader.h"
#include "keys/keyobj.h"
#include "keys/privkey.h"
#include "envelope/wrapkey.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/store.h>

static OSSL_FUNC_store_open_fn st_open;
static OSSL_FUNC_store_set_ctx_params_fn st_set_ctx_params;
static OSSL_FUNC_store_settable_ctx_params_fn st_settable_ctx_params;
static OSSL_FUNC_store_load_fn st_load;
static OSSL_FUNC_store_eof_fn st_eof;
static OSSL_FUNC_store_close_fn st_close;

typedef struct {
    KMSENV_PROV *prov;
    char *path;
    char *keyring; /* ?keyring=SPEC, decoded, or NULL */
    int skip;      /* OSSL_STORE_expect() asked for something else */
    int pubkey;    /* OSSL_STORE_expect() asked for a public key */
    int loaded;
} STORE_CTX;

static void st_close_ctx(STORE_CTX *c)
{
    if (c == NULL)
        return;
    OPENSSL_free(c->path);
    OPENSSL_free(c->keyring);
    OPENSSL_free(c);
}

#define BAD_URI(...)                                                           \
    do {                                                                       \
        KMSENV_RAISE(KMSENV_R_BAD_URI, __VA_ARGS__);                           \
        goto err;                                                              \
    } while (0)

static void *st_open(void *provctx, const char *uri)
{
    KMSENV_PROV *prov = provctx;
    STORE_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER(prov);

    if (c == NULL)
        return NULL;
    c->prov = prov;
    if (!kmsenv_uri_parse(uri, &c->path, &c->keyring))
        goto err;
    if (*c->path == '\0') {
        OPENSSL_free(c->path);
        c->path = prov->keyset != NULL ? OPENSSL_strdup(prov->keyset) : NULL;
        if (c->path == NULL)
            BAD_URI("%s names no keyset and none is configured (provider "
                    "'keyset' or KMSENV_KEYSET)",
                    uri);
    }
    return c;
err:
    st_close_ctx(c);
    return NULL;
}

static const OSSL_PARAM *st_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL), OSSL_PARAM_END};
    return p;
}

/* Keysets are private keys: expecting anything else loads nothing (and
 * costs no keyring call); a wrapped private key also answers a public key
 * request, from its header. */
static int st_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
    STORE_CTX *c = loaderctx;
    const OSSL_PARAM *p =
        OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
    int expect;

    KMSENV_ENTER(c->prov);

    if (p != NULL) {
        if (!OSSL_PARAM_get_int(p, &expect))
            return 0;
        c->pubkey = expect == OSSL_STORE_INFO_PUBKEY;
        c->skip = expect != 0 && expect != OSSL_STORE_INFO_PKEY && !c->pubkey;
    }
    return 1;
}

static int st_load(void *loaderctx, OSSL_CALLBACK *object_cb,
                   void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                   void *pw_cbarg)
{
    STORE_CTX *c = loaderctx;
    KMSENV_KEYOBJ *k = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    int ok = 0;

    KMSENV_ENTER(c->prov);

    if (c->skip || c->loaded)
        return 0;
    c->loaded = 1;
    if (!kmsenv_loader_read_file(c->path, &der, &len))
        return 0;
    if (!c->pubkey)
        k = kmsenv_loader_load(&c->prov->keys, der, len, c->path, c->keyring);
    else if (kmsenv_wrapkey_sniff(der, len)) /* no unwrap */
        k = kmsenv_privkey_load_public(&c->prov->keys, der, len);
    OPENSSL_free(der);
    if (k != NULL) {
        OSSL_PARAM params[4];
        int type = OSSL_OBJECT_PKEY;
        const char *dtype = k->kind == KMSENV_KIND_PRIVKEY
                                ? kmsenv_wk_type_name(k->pk.type)
                                : KMSENV_KEYSET_NAME;

        params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
        params[1] = OSSL_PARAM_construct_utf8_string(
            OSSL_OBJECT_PARAM_DATA_TYPE, (char *)dtype, 0);
        params[2] = OSSL_PARAM_construct_octet_string(
            OSSL_OBJECT_PARAM_REFERENCE, &k, sizeof(k));
        params[3] = OSSL_PARAM_construct_end();
        ok = object_cb(params, object_cbarg);
    }
    kmsenv_keyobj_free(k);
    return ok;
}

static int st_eof(void *loaderctx)
{
    STORE_CTX *c = loaderctx;

    return c->skip || c->loaded;
}

static int st_close(void *loaderctx)
{
    st_close_ctx(loaderctx);
    return 1;
}

const OSSL_DISPATCH kmsenv_store_functions[] = {
    {OSSL_FUNC_STORE_OPEN, (void (*)(void))st_open},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS,
     (void (*)(void))st_settable_ctx_params},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))st_set_ctx_params},
    {OSSL_FUNC_STORE_LOAD, (void (*)(void))st_load},
    {OSSL_FUNC_STORE_EOF, (void (*)(void))st_eof},
    {OSSL_FUNC_STORE_CLOSE, (void (*)(void))st_close},
    {0, NULL}};
