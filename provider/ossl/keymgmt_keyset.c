/* SPDX-License-Identifier: Apache-2.0 */
/* KEYMGMT for KMSENV-KEYSET: opaque keysets. Secrets never leave: export
 * and import are refused; encoders write only the wrapped form. */
#include "keys/keyobj.h"
#include "ossl/params.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <string.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

/* Key parameters beyond OpenSSL's standard names. */
#define P_KEYSET_ID "kmsenv-keyset-id"
#define P_PRIMARY "kmsenv-primary-version"
#define P_NVERSIONS "kmsenv-versions"
#define P_ROTATE "kmsenv-rotate"
#define P_DISABLE "kmsenv-disable-version"
#define P_ENABLE "kmsenv-enable-version"
#define P_MAKE_PRIMARY "kmsenv-make-primary"
#define P_REWRAP "kmsenv-rewrap-keyring"
#define P_REWRAP_LOCAL "kmsenv-rewrap-allow-local-wrap"
#define P_KEYRING "keyring"

static OSSL_FUNC_keymgmt_new_fn ks_new;
static OSSL_FUNC_keymgmt_free_fn ks_free;
static OSSL_FUNC_keymgmt_load_fn ks_load;
static OSSL_FUNC_keymgmt_dup_fn ks_dup;
static OSSL_FUNC_keymgmt_has_fn ks_has;
static OSSL_FUNC_keymgmt_match_fn ks_match;
static OSSL_FUNC_keymgmt_get_params_fn ks_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn ks_gettable_params;
static OSSL_FUNC_keymgmt_set_params_fn ks_set_params;
static OSSL_FUNC_keymgmt_settable_params_fn ks_settable_params;
static OSSL_FUNC_keymgmt_gen_init_fn ks_gen_init;
static OSSL_FUNC_keymgmt_gen_set_params_fn ks_gen_set_params;
static OSSL_FUNC_keymgmt_gen_settable_params_fn ks_gen_settable_params;
static OSSL_FUNC_keymgmt_gen_fn ks_gen;
static OSSL_FUNC_keymgmt_gen_cleanup_fn ks_gen_cleanup;
static OSSL_FUNC_keymgmt_import_fn ks_import;
static OSSL_FUNC_keymgmt_import_types_fn ks_import_types;
static OSSL_FUNC_keymgmt_export_fn ks_export;
static OSSL_FUNC_keymgmt_export_types_fn ks_export_types;
static OSSL_FUNC_keymgmt_query_operation_name_fn ks_query_operation_name;

static void *ks_new(void *provctx)
{
    KMSENV_ENTER((KMSENV_PROV *)provctx);
    return kmsenv_keyobj_new(&((KMSENV_PROV *)provctx)->keys);
}

static void ks_free(void *keydata)
{
    kmsenv_keyobj_free(keydata);
}

static void *ks_dup(const void *keydata, int selection)
{
    KMSENV_ENTER_KEY((const KMSENV_KEYOBJ *)keydata);
    /* Everything or nothing: a keyset has no public part to copy alone. */
    return kmsenv_keyobj_dup((KMSENV_KEYOBJ *)keydata);
}

static void *ks_load(const void *reference, size_t reference_sz)
{
    KMSENV_KEYOBJ *k;

    if (reference == NULL || reference_sz != sizeof(k))
        return NULL;
    /* Take ownership of the object the decoder or store produced. */
    k = *(KMSENV_KEYOBJ **)reference;
    *(KMSENV_KEYOBJ **)reference = NULL;
    return k;
}

static int ks_has(const void *keydata, int selection)
{
    const KMSENV_KEYOBJ *k = keydata;

    if (k == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
        return k->loaded;
    return 1; /* no public part, no domain parameters: trivially present */
}

static int ks_match(const void *a, const void *b, int selection)
{
    const KMSENV_KEYOBJ *x = a, *y = b;

    return memcmp(kmsenv_keyobj_id(x), kmsenv_keyobj_id(y),
                  KMSENV_KEYSET_ID_LEN) == 0;
}

static const OSSL_PARAM *ks_gettable_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
        OSSL_PARAM_utf8_string(P_KEYSET_ID, NULL, 0),
        OSSL_PARAM_uint(P_PRIMARY, NULL),
        OSSL_PARAM_uint(P_NVERSIONS, NULL),
        OSSL_PARAM_END};
    return p;
}

static int ks_get_params(void *keydata, OSSL_PARAM params[])
{
    KMSENV_KEYOBJ *k = keydata;
    OSSL_PARAM *p;
    char hex[33];
    uint32_t primary;
    size_t nver;

    KMSENV_ENTER_KEY(k);
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL &&
        !OSSL_PARAM_set_int(p, 256))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) !=
            NULL &&
        !OSSL_PARAM_set_int(p, 256))
        return 0;
    /* Records have no fixed size; report the record overhead bound. */
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL &&
        !OSSL_PARAM_set_int(p, 47))
        return 0;
    if ((p = OSSL_PARAM_locate(params, P_KEYSET_ID)) != NULL) {
        kmsenv_hex(hex, kmsenv_keyobj_id(k), 16);
        if (!OSSL_PARAM_set_utf8_string(p, hex))
            return 0;
    }
    if (!kmsenv_keyobj_versions(k, &primary, &nver))
        return 0;
    if ((p = OSSL_PARAM_locate(params, P_PRIMARY)) != NULL &&
        !OSSL_PARAM_set_uint(p, primary))
        return 0;
    if ((p = OSSL_PARAM_locate(params, P_NVERSIONS)) != NULL &&
        !OSSL_PARAM_set_uint(p, (unsigned int)nver))
        return 0;
    return 1;
}

static const OSSL_PARAM *ks_settable_params(void *provctx)
{
    static const OSSL_PARAM p[] = {OSSL_PARAM_int(P_ROTATE, NULL),
                                   OSSL_PARAM_uint(P_DISABLE, NULL),
                                   OSSL_PARAM_uint(P_ENABLE, NULL),
                                   OSSL_PARAM_uint(P_MAKE_PRIMARY, NULL),
                                   OSSL_PARAM_utf8_string(P_REWRAP, NULL, 0),
                                   OSSL_PARAM_int(P_REWRAP_LOCAL, NULL),
                                   OSSL_PARAM_END};
    return p;
}

static int set_state_param(KMSENV_KEYOBJ *k, const OSSL_PARAM *params,
                           const char *name, int state)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, name);
    unsigned int v;

    if (p == NULL)
        return 1;
    if (!OSSL_PARAM_get_uint(p, &v)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s must be a version number",
                     name);
        return 0;
    }
    return kmsenv_keyobj_set_state(k, v, state);
}

static int ks_set_params(void *keydata, const OSSL_PARAM params[])
{
    KMSENV_KEYOBJ *k = keydata;
    const OSSL_PARAM *p;
    char *spec = NULL;
    int rotate = 0, local = 0, ok;

    KMSENV_ENTER_KEY(k);
    if ((p = OSSL_PARAM_locate_const(params, P_ROTATE)) != NULL &&
        (!OSSL_PARAM_get_int(p, &rotate) ||
         (rotate && !kmsenv_keyobj_rotate(k))))
        return 0;
    if (!set_state_param(k, params, P_MAKE_PRIMARY, KMSENV_STATE_PRIMARY) ||
        !set_state_param(k, params, P_ENABLE, KMSENV_STATE_DECRYPT_ONLY) ||
        !set_state_param(k, params, P_DISABLE, KMSENV_STATE_DISABLED))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, P_REWRAP_LOCAL)) != NULL &&
        !OSSL_PARAM_get_int(p, &local)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s must be an integer",
                     P_REWRAP_LOCAL);
        return 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, P_REWRAP)) != NULL) {
        ok = kmsenv_param_strdup(p, "the rewrap keyring", &spec) &&
             kmsenv_keyobj_rewrap(k, spec,
                                  local ? KMSENV_REWRAP_ALLOW_LOCAL : 0);
        OPENSSL_free(spec);
        if (!ok)
            return 0;
    }
    return 1;
}

typedef struct {
    KMSENV_PROV *prov;
    char *keyring;
} GEN_CTX;

static void *ks_gen_init(void *provctx, int selection,
                         const OSSL_PARAM params[])
{
    GEN_CTX *g = OPENSSL_zalloc(sizeof(*g));

    KMSENV_ENTER((KMSENV_PROV *)provctx);
    if (g == NULL)
        return NULL;
    g->prov = provctx;
    if (!ks_gen_set_params(g, params)) {
        ks_gen_cleanup(g);
        return NULL;
    }
    return g;
}

static int ks_gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    GEN_CTX *g = genctx;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, P_KEYRING);
    char *spec = NULL;

    if (p == NULL)
        return 1;
    if (!kmsenv_param_strdup(p, "the keyring", &spec))
        return 0;
    OPENSSL_free(g->keyring);
    g->keyring = spec;
    return 1;
}

static const OSSL_PARAM *ks_gen_settable_params(void *genctx, void *provctx)
{
    static const OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(P_KEYRING, NULL, 0),
                                   OSSL_PARAM_END};
    return p;
}

static void *ks_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    GEN_CTX *g = genctx;
    const char *spec = g->keyring != NULL ? g->keyring : g->prov->keyring;

    KMSENV_ENTER(g->prov);
    if (spec == NULL) {
        KMSENV_RAISE(KMSENV_R_NO_KEYRING, "cannot generate a keyset");
        return NULL;
    }
    return kmsenv_keyobj_generate(&g->prov->keys, spec);
}

static void ks_gen_cleanup(void *genctx)
{
    GEN_CTX *g = genctx;

    if (g == NULL)
        return;
    OPENSSL_free(g->keyring);
    OPENSSL_free(g);
}

static int ks_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    KMSENV_RAISE(KMSENV_R_EXPORT_REFUSED,
                 "KMSENV-KEYSET keys cannot be imported from raw parameters; "
                 "generate a keyset or load a wrapped one");
    return 0;
}

static int ks_export(void *keydata, int selection, OSSL_CALLBACK *cb,
                     void *cbarg)
{
    const KMSENV_KEYOBJ *k = keydata;

    KMSENV_ENTER_KEY(k);
    KMSENV_RAISE(KMSENV_R_EXPORT_REFUSED,
                 "%s: key material never leaves the provider; use the "
                 "wrapped PEM form",
                 k != NULL ? k->name : "keyset");
    return 0;
}

static const OSSL_PARAM *ks_import_types(int selection)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    return none;
}

static const OSSL_PARAM *ks_export_types(int selection)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    return none;
}

static const char *ks_query_operation_name(int operation_id)
{
    return KMSENV_KEYSET_NAME;
}

const OSSL_DISPATCH kmsenv_keyset_keymgmt_functions[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))ks_new},
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))ks_free},
    {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))ks_load},
    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))ks_dup},
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))ks_has},
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))ks_match},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))ks_get_params},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))ks_gettable_params},
    {OSSL_FUNC_KEYMGMT_SET_PARAMS, (void (*)(void))ks_set_params},
    {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, (void (*)(void))ks_settable_params},
    {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))ks_gen_init},
    {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))ks_gen_set_params},
    {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,
     (void (*)(void))ks_gen_settable_params},
    {OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))ks_gen},
    {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))ks_gen_cleanup},
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))ks_import},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))ks_import_types},
    {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))ks_export},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))ks_export_types},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
     (void (*)(void))ks_query_operation_name},
    {0, NULL}};
