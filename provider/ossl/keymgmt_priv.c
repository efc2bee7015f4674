/* SPDX-License-Identifier: Apache-2.0 */
/* Opaque keymgmts for wrapped private keys, registered under the standard
 * names (RSA, RSA-PSS, EC, ED25519) with property provider=kmsenv, as
 * pkcs11-provider and tpm2-openssl do, so that libssl, X509 and the CLI
 * recognise the key's type. The shared logic is here; each type is one
 * line of the table at the end.
 *
 * - Public parameters are answered by the public key (in the provider's
 *   inner library context) through an allowlist; private ones never.
 * - Export gives the public parts only, and refuses any selection with the
 *   private key (so EVP's "export to the default provider" attempt fails
 *   and the operation comes to our implementation).
 * - Import takes public keys only (OpenSSL 3.0 cert/key matching imports
 *   the certificate's public key, also with selection ALL).
 * - Gen wraps a key: given as DER (param kmsenv-private-key, in memory) or
 *   generated inside the provider (bits / group), under keyring; or, with
 *   kmsenv-rewrap-key (a wrapped key's DER), rewraps that key under keyring
 *   (kmsenv rewrap; kmsenv-rewrap-allow-local-wrap as for keysets). */
#include "envelope/wrapkey.h"
#include "keys/privkey.h"
#include "ossl/params.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <string.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#define P_PRIVATE_KEY "kmsenv-private-key"
#define P_KEYRING "keyring"
#define P_REWRAP_KEY "kmsenv-rewrap-key"
#define P_REWRAP_LOCAL "kmsenv-rewrap-allow-local-wrap"

static OSSL_FUNC_keymgmt_free_fn pk_free;
static OSSL_FUNC_keymgmt_load_fn pk_load;
static OSSL_FUNC_keymgmt_dup_fn pk_dup;
static OSSL_FUNC_keymgmt_has_fn pk_has;
static OSSL_FUNC_keymgmt_match_fn pk_match;
static OSSL_FUNC_keymgmt_get_params_fn pk_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn pk_gettable_params;
static OSSL_FUNC_keymgmt_gen_set_params_fn pk_gen_set_params;
static OSSL_FUNC_keymgmt_gen_settable_params_fn pk_gen_settable_params;
static OSSL_FUNC_keymgmt_gen_fn pk_gen;
static OSSL_FUNC_keymgmt_gen_cleanup_fn pk_gen_cleanup;
static OSSL_FUNC_keymgmt_import_fn pk_import;
static OSSL_FUNC_keymgmt_import_types_fn pk_import_types;
static OSSL_FUNC_keymgmt_export_fn pk_export;
static OSSL_FUNC_keymgmt_export_types_fn pk_export_types;

/* A new empty object of type (import fills it). */
static void *pk_new_type(KMSENV_PROV *prov, int type)
{
    KMSENV_KEYOBJ *k;

    KMSENV_ENTER(prov);
    if ((k = kmsenv_keyobj_new(&prov->keys)) != NULL) {
        k->kind = KMSENV_KIND_PRIVKEY;
        k->pk.type = type;
        snprintf(k->name, sizeof(k->name), "%s key (empty)",
                 kmsenv_wk_type_name(type));
    }
    return k;
}

static void pk_free(void *keydata)
{
    kmsenv_keyobj_free(keydata);
}

static void *pk_load(const void *reference, size_t reference_sz)
{
    KMSENV_KEYOBJ *k;

    if (reference == NULL || reference_sz != sizeof(k))
        return NULL;
    k = *(KMSENV_KEYOBJ **)reference;
    if (k == NULL || k->kind != KMSENV_KIND_PRIVKEY)
        return NULL;
    *(KMSENV_KEYOBJ **)reference = NULL;
    return k;
}

static void *pk_dup(const void *keydata, int selection)
{
    KMSENV_KEYOBJ *k = (KMSENV_KEYOBJ *)keydata;

    KMSENV_ENTER_KEY(k);
    return kmsenv_keyobj_dup(k);
}

static int pk_has(const void *keydata, int selection)
{
    const KMSENV_KEYOBJ *k = keydata;

    if (k == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 &&
        k->pk.priv == NULL)
        return 0;
    if ((selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY |
                      OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) != 0 &&
        k->pk.pub == NULL)
        return 0;
    return 1;
}

static int pk_match(const void *a, const void *b, int selection)
{
    const KMSENV_KEYOBJ *x = a, *y = b;

    if (x->pk.pub == NULL || y->pk.pub == NULL || x->pk.type != y->pk.type)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        return EVP_PKEY_eq(x->pk.pub, y->pk.pub) == 1;
    return EVP_PKEY_parameters_eq(x->pk.pub, y->pk.pub) == 1;
}

/* The public parameters libssl, X509 and the CLI read; nothing else is
 * ever asked of the inner key. */
static const char *const allowed[] = {
    OSSL_PKEY_PARAM_BITS,
    OSSL_PKEY_PARAM_SECURITY_BITS,
    OSSL_PKEY_PARAM_MAX_SIZE,
    OSSL_PKEY_PARAM_DEFAULT_DIGEST,
    OSSL_PKEY_PARAM_MANDATORY_DIGEST,
    OSSL_PKEY_PARAM_GROUP_NAME,
    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
    OSSL_PKEY_PARAM_EC_FIELD_TYPE,
    OSSL_PKEY_PARAM_EC_ENCODING,
    OSSL_PKEY_PARAM_PUB_KEY,
    OSSL_PKEY_PARAM_RSA_N,
    OSSL_PKEY_PARAM_RSA_E,
    NULL};

static int is_allowed(const char *key)
{
    size_t i;

    for (i = 0; allowed[i] != NULL; i++)
        if (strcmp(key, allowed[i]) == 0)
            return 1;
    return 0;
}

static const OSSL_PARAM *pk_gettable_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL,
                               0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_FIELD_TYPE, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
        OSSL_PARAM_END};
    return p;
}

/* Forwards the allowed params to the public key, each on its own (a
 * param the public key does not know is left unanswered, not an error). */
static int pk_get_params(void *keydata, OSSL_PARAM params[])
{
    KMSENV_KEYOBJ *k = keydata;
    OSSL_PARAM one[2];
    OSSL_PARAM *p;

    if (k == NULL || k->pk.pub == NULL)
        return 0;
    for (p = params; p != NULL && p->key != NULL; p++) {
        if (!is_allowed(p->key))
            continue;
        one[0] = *p;
        one[1] = OSSL_PARAM_construct_end();
        if (!EVP_PKEY_get_params(k->pk.pub, one))
            return 0;
        p->return_size = one[0].return_size;
    }
    return 1;
}

typedef struct {
    KMSENV_PROV *prov;
    int type;
    char *keyring;
    KMSENV_SECRET key; /* DER private key to wrap, secure memory */
    int bits;
    char group[64];
    unsigned char *rewrap; /* a wrapped key to rewrap (public data) */
    size_t rewraplen;
    int allow_local;
} GEN_CTX;

static void *pk_gen_init_type(KMSENV_PROV *prov, int type, int selection,
                              const OSSL_PARAM params[])
{
    GEN_CTX *g = OPENSSL_zalloc(sizeof(*g));

    KMSENV_ENTER(prov);
    if (g == NULL)
        return NULL;
    g->prov = prov;
    g->type = type;
    if (!pk_gen_set_params(g, params)) {
        pk_gen_cleanup(g);
        return NULL;
    }
    return g;
}

static int pk_gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    GEN_CTX *g = genctx;
    const OSSL_PARAM *p;
    const char *s;
    size_t n;

    if ((p = OSSL_PARAM_locate_const(params, P_KEYRING)) != NULL) {
        char *spec = NULL;

        if (!kmsenv_param_strdup(p, "the keyring", &spec))
            return 0;
        OPENSSL_free(g->keyring);
        g->keyring = spec;
    }
    if ((p = OSSL_PARAM_locate_const(params, P_PRIVATE_KEY)) != NULL) {
        if (p->data_type != OSSL_PARAM_OCTET_STRING || p->data_size == 0 ||
            p->data_size > KMSENV_WK_MAX_PKCS8) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                         P_PRIVATE_KEY " must be a DER private key of 1..%d "
                                       "bytes",
                         KMSENV_WK_MAX_PKCS8);
            return 0;
        }
        kmsenv_secret_free(&g->key);
        if (!kmsenv_secret_alloc(&g->key, p->data_size))
            return 0;
        memcpy(g->key.data, p->data, p->data_size);
    }
    if ((p = OSSL_PARAM_locate_const(params, P_REWRAP_KEY)) != NULL) {
        if (p->data_type != OSSL_PARAM_OCTET_STRING || p->data_size == 0 ||
            p->data_size > 1024 * 1024) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                         P_REWRAP_KEY " must be a wrapped key's DER");
            return 0;
        }
        OPENSSL_free(g->rewrap);
        if ((g->rewrap = OPENSSL_memdup(p->data, p->data_size)) == NULL)
            return 0;
        g->rewraplen = p->data_size;
    }
    if ((p = OSSL_PARAM_locate_const(params, P_REWRAP_LOCAL)) != NULL &&
        !OSSL_PARAM_get_int(p, &g->allow_local)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s must be an integer",
                     P_REWRAP_LOCAL);
        return 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_BITS)) !=
            NULL &&
        !OSSL_PARAM_get_int(p, &g->bits))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME)) !=
        NULL) {
        if (!kmsenv_param_text(p, "the group", &s, &n) ||
            n >= sizeof(g->group)) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "bad EC group name");
            return 0;
        }
        memcpy(g->group, s, n);
        g->group[n] = '\0';
    }
    return 1;
}

static const OSSL_PARAM *pk_gen_settable_params(void *genctx, void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(P_KEYRING, NULL, 0),
        OSSL_PARAM_octet_string(P_PRIVATE_KEY, NULL, 0),
        OSSL_PARAM_octet_string(P_REWRAP_KEY, NULL, 0),
        OSSL_PARAM_int(P_REWRAP_LOCAL, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_RSA_BITS, NULL),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_END};
    return p;
}

/* A new key of g's type made in the inner library context, as PKCS#8 DER
 * in secure memory. */
static int generate_inner(GEN_CTX *g, KMSENV_SECRET *der)
{
    OSSL_LIB_CTX *lc = kmsenv_inner_libctx(&g->prov->keys);
    EVP_PKEY_CTX *c = NULL;
    EVP_PKEY *pk = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    OSSL_PARAM ps[2] = {OSSL_PARAM_END, OSSL_PARAM_END};
    unsigned char *q;
    int n, ok = 0;

    if (lc == NULL)
        return 0;
    if (g->type == KMSENV_WK_EC)
        ps[0] = OSSL_PARAM_construct_utf8_string(
            OSSL_PKEY_PARAM_GROUP_NAME, *g->group ? g->group : "P-256", 0);
    else if (g->type != KMSENV_WK_ED25519) {
        if (g->bits == 0)
            g->bits = 2048;
        ps[0] = OSSL_PARAM_construct_int(OSSL_PKEY_PARAM_RSA_BITS, &g->bits);
    }
    c = EVP_PKEY_CTX_new_from_name(lc, kmsenv_wk_type_name(g->type), NULL);
    if (c != NULL && EVP_PKEY_keygen_init(c) > 0 &&
        EVP_PKEY_CTX_set_params(c, ps) > 0 && EVP_PKEY_generate(c, &pk) > 0 &&
        (p8 = EVP_PKEY2PKCS8(pk)) != NULL &&
        (n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL)) > 0 &&
        kmsenv_secret_alloc(der, (size_t)n)) {
        q = der->data;
        ok = i2d_PKCS8_PRIV_KEY_INFO(p8, &q) == n;
    }
    if (!ok)
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "generating a %s key",
                     kmsenv_wk_type_name(g->type));
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* Whether the key to rewrap is a wrapped key of g's type, from its header
 * alone (no keyring call); raises why not. */
static int rewrap_type_ok(const GEN_CTX *g)
{
    int wt = kmsenv_wrapkey_peek_type(g->rewrap, g->rewraplen);
    KMSENV_WRAPKEY wk;

    if (wt == g->type)
        return 1;
    if (wt != 0) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "the key to rewrap is a %s key, not %s",
                     kmsenv_wk_type_name(wt), kmsenv_wk_type_name(g->type));
        return 0;
    }
    /* Not one we can peek at: the decoder says what is wrong with it. */
    kmsenv_wrapkey_init(&wk);
    if (kmsenv_wrapkey_decode(&wk, g->rewrap, g->rewraplen,
                              "the key to rewrap"))
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "the key to rewrap is not a wrapped private key");
    kmsenv_wrapkey_free(&wk);
    return 0;
}

static void *pk_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    GEN_CTX *g = genctx;
    const char *spec = g->keyring != NULL ? g->keyring : g->prov->keyring;
    KMSENV_SECRET made = {NULL, 0};
    KMSENV_KEYOBJ *k;

    KMSENV_ENTER(g->prov);
    if (spec == NULL) {
        KMSENV_RAISE(KMSENV_R_NO_KEYRING,
                     "cannot wrap a %s key (give -pkeyopt keyring:SPEC)",
                     kmsenv_wk_type_name(g->type));
        return NULL;
    }
    if (g->rewrap != NULL) {
        /* The type first: a key of another type costs no keyring call. */
        if (!rewrap_type_ok(g))
            return NULL;
        k = kmsenv_privkey_rewrap(
            &g->prov->keys, g->rewrap, g->rewraplen, NULL, spec,
            g->allow_local ? KMSENV_REWRAP_ALLOW_LOCAL : 0);
        if (k != NULL && k->pk.type != g->type) {
            KMSENV_RAISE(
                KMSENV_R_BAD_PARAMETER, "the key to rewrap is a %s key, not %s",
                kmsenv_wk_type_name(k->pk.type), kmsenv_wk_type_name(g->type));
            kmsenv_keyobj_free(k);
            k = NULL;
        }
        return k;
    }
    if (g->key.data == NULL && !generate_inner(g, &made))
        return NULL;
    k = kmsenv_privkey_wrap(&g->prov->keys, g->type,
                            made.data != NULL ? made.data : g->key.data,
                            made.data != NULL ? made.len : g->key.len, spec);
    kmsenv_secret_free(&made);
    return k;
}

static void pk_gen_cleanup(void *genctx)
{
    GEN_CTX *g = genctx;

    if (g == NULL)
        return;
    OPENSSL_free(g->keyring);
    OPENSSL_free(g->rewrap);
    kmsenv_secret_free(&g->key);
    OPENSSL_free(g);
}

/* Public keys (and domain parameters) only: a kmsenv key holds a private
 * key only by unwrapping it. */
static int pk_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    KMSENV_KEYOBJ *k = keydata, *n;
    OSSL_LIB_CTX *lc;
    EVP_PKEY_CTX *c = NULL;
    EVP_PKEY *pub = NULL;
    int sel = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0
                  ? EVP_PKEY_PUBLIC_KEY
                  : EVP_PKEY_KEY_PARAMETERS;

    if (k == NULL)
        return 0;
    KMSENV_ENTER_KEY(k);
    /* A plain private key (EVP exporting a default-provider key here,
     * kmsenv listed first) is not ours to hold: refuse quietly, and EVP
     * uses the key's own provider. */
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 &&
        (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL ||
         OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D) != NULL)) {
        kmsenv_log(1,
                   "import refused: a kmsenv %s key holds a private key "
                   "only by unwrapping it (import plain keys into the "
                   "default provider; wrap them with kmsenv wrap)",
                   kmsenv_wk_type_name(k->pk.type));
        return 0;
    }
    if (k->pk.pub != NULL || k->pk.priv != NULL ||
        (lc = kmsenv_inner_libctx(k->env)) == NULL)
        return 0;
    c = EVP_PKEY_CTX_new_from_name(lc, kmsenv_wk_type_name(k->pk.type), NULL);
    if (c == NULL || EVP_PKEY_fromdata_init(c) <= 0 ||
        EVP_PKEY_fromdata(c, &pub, sel, (OSSL_PARAM *)params) <= 0) {
        EVP_PKEY_CTX_free(c);
        return 0;
    }
    EVP_PKEY_CTX_free(c);
    /* fill k from a fresh public-only object */
    if ((n = kmsenv_privkey_from_public(k->env, k->pk.type, pub)) == NULL)
        return 0;
    k->pk.pub = n->pk.pub;
    k->pk.spki = n->pk.spki;
    k->pk.spkilen = n->pk.spkilen;
    memcpy(k->name, n->name, sizeof(k->name));
    n->pk.pub = NULL;
    n->pk.spki = NULL;
    kmsenv_keyobj_free(n);
    k->loaded = 1;
    return 1;
}

static int pk_export(void *keydata, int selection, OSSL_CALLBACK *cb,
                     void *cbarg)
{
    const KMSENV_KEYOBJ *k = keydata;

    /* Quietly: EVP tries this on its way to our own implementation, and
     * a stray error would fail a TLS handshake. */
    if (k == NULL || k->pk.pub == NULL ||
        (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
        return 0;
    return EVP_PKEY_export(k->pk.pub,
                           selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY |
                                        OSSL_KEYMGMT_SELECT_ALL_PARAMETERS),
                           cb, cbarg);
}

static const OSSL_PARAM *pk_import_types(int selection)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
        OSSL_PARAM_END};
    return p;
}

static const OSSL_PARAM *pk_export_types(int selection)
{
    return pk_import_types(selection);
}

static const char *op_name_rsa(int op)
{
    return "RSA";
}

static const char *op_name_ec(int op)
{
    switch (op) {
    case OSSL_OP_KEYEXCH:
        return "ECDH";
    case OSSL_OP_SIGNATURE:
        return "ECDSA";
    }
    return NULL;
}

static const char *op_name_ed25519(int op)
{
    return op == OSSL_OP_SIGNATURE ? "ED25519" : NULL;
}

#define KEYMGMT(tag, TYPE, opname)                                             \
    static void *pk_new_##tag(void *provctx)                                   \
    {                                                                          \
        return pk_new_type(provctx, TYPE);                                     \
    }                                                                          \
    static void *pk_gen_init_##tag(void *provctx, int selection,               \
                                   const OSSL_PARAM params[])                  \
    {                                                                          \
        return pk_gen_init_type(provctx, TYPE, selection, params);             \
    }                                                                          \
    const OSSL_DISPATCH kmsenv_##tag##_keymgmt_functions[] = {                 \
        {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))pk_new_##tag},                 \
        {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))pk_free},                     \
        {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))pk_load},                     \
        {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))pk_dup},                       \
        {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))pk_has},                       \
        {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))pk_match},                   \
        {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))pk_get_params},         \
        {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS,                                    \
         (void (*)(void))pk_gettable_params},                                  \
        {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))pk_gen_init_##tag},       \
        {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))pk_gen_set_params}, \
        {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,                                \
         (void (*)(void))pk_gen_settable_params},                              \
        {OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))pk_gen},                       \
        {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))pk_gen_cleanup},       \
        {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))pk_import},                 \
        {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))pk_import_types},     \
        {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))pk_export},                 \
        {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))pk_export_types},     \
        {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))opname},      \
        {0, NULL}}

KEYMGMT(rsa, KMSENV_WK_RSA, op_name_rsa);
KEYMGMT(rsapss, KMSENV_WK_RSA_PSS, op_name_rsa);
KEYMGMT(ec, KMSENV_WK_EC, op_name_ec);
KEYMGMT(ed25519, KMSENV_WK_ED25519, op_name_ed25519);
