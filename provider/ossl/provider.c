/* SPDX-License-Identifier: Apache-2.0 */
/* Provider entry point: configuration, algorithm tables, reason strings. */
#include "ossl/provider.h"
#include "keys/privkey.h"
#include "kms/http.h"
#include "util/err.h"
#include "util/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#define KMSENV_PROV_NAME "kmsenv"
#define KMSENV_PROV_VERSION "0.1.0"

static OSSL_FUNC_provider_teardown_fn kmsenv_teardown;
static OSSL_FUNC_provider_gettable_params_fn kmsenv_gettable_params;
static OSSL_FUNC_provider_get_params_fn kmsenv_get_params;
static OSSL_FUNC_provider_query_operation_fn kmsenv_query;
static OSSL_FUNC_provider_get_reason_strings_fn kmsenv_reasons;

#define PROPS "provider=kmsenv"
/* The standard names and OIDs, as the default provider registers them. */
#define N_RSA "RSA:rsaEncryption:1.2.840.113549.1.1.1"
#define N_RSAPSS "RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10"
#define N_EC "EC:id-ecPublicKey:1.2.840.10045.2.1"
#define N_ED25519 "ED25519:1.3.101.112"
#define WRAPPED_DEC(n, f)                                                      \
    {                                                                          \
        n, PROPS ",input=der,structure=" KMSENV_WRAPPED_STRUCTURE, f,          \
            "kmsenv wrapped private key (unwraps once)"                        \
    }
#define WRAPPED_ENC(n)                                                         \
    {n, PROPS ",output=pem,structure=PrivateKeyInfo",                          \
     kmsenv_keyset2pem_encoder_functions, "kmsenv wrapped key as PEM"},        \
        {n, PROPS ",output=der,structure=PrivateKeyInfo",                      \
         kmsenv_keyset2der_encoder_functions, "kmsenv wrapped key as DER"},    \
        {n, PROPS ",output=text", kmsenv_keyset2text_encoder_functions,        \
         "kmsenv wrapped key: public part and metadata"},                      \
        {n, PROPS ",output=pem,structure=SubjectPublicKeyInfo",                \
         kmsenv_priv2spki_pem_encoder_functions, "public key as PEM"},         \
    {                                                                          \
        n, PROPS ",output=der,structure=SubjectPublicKeyInfo",                 \
            kmsenv_priv2spki_der_encoder_functions, "public key as DER"        \
    }

static const OSSL_ALGORITHM keymgmts[] = {
    {KMSENV_KEYSET_NAME, PROPS, kmsenv_keyset_keymgmt_functions,
     "kmsenv keyset: versioned data keys wrapped by a KMS key"},
    {N_RSA, PROPS, kmsenv_rsa_keymgmt_functions, "kmsenv wrapped RSA key"},
    {N_RSAPSS, PROPS, kmsenv_rsapss_keymgmt_functions,
     "kmsenv wrapped RSA-PSS key"},
    {N_EC, PROPS, kmsenv_ec_keymgmt_functions, "kmsenv wrapped EC key"},
    {N_ED25519, PROPS, kmsenv_ed25519_keymgmt_functions,
     "kmsenv wrapped Ed25519 key"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM signatures[] = {
    {N_RSA, PROPS, kmsenv_rsa_signature_functions,
     "RSA signatures with a wrapped key"},
    {"ECDSA", PROPS, kmsenv_ecdsa_signature_functions,
     "ECDSA with a wrapped key"},
    {N_ED25519, PROPS, kmsenv_ed25519_signature_functions,
     "Ed25519 with a wrapped key"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM asym_ciphers[] = {
    {KMSENV_KEYSET_NAME, PROPS, kmsenv_keyset_asym_cipher_functions,
     "kmsenv context-bound records (XAES-256-GCM)"},
    {N_RSA, PROPS, kmsenv_rsa_asym_cipher_functions,
     "RSA decryption with a wrapped key"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM keyexchs[] = {
    {"ECDH", PROPS, kmsenv_ecdh_keyexch_functions, "ECDH with a wrapped key"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM decoders[] = {
    {"DER", PROPS ",input=pem", kmsenv_pem2der_decoder_functions,
     "kmsenv PEM labels to DER"},
    {"DER", PROPS ",input=der", kmsenv_der2der_decoder_functions,
     "kmsenv DER keyset, loaded early so that errors survive"},
    {KMSENV_KEYSET_NAME, PROPS ",input=der,structure=" KMSENV_KEYSET_STRUCTURE,
     kmsenv_der2keyset_decoder_functions, "kmsenv keyset (unwraps once)"},
    WRAPPED_DEC(N_RSA, kmsenv_der2rsa_decoder_functions),
    WRAPPED_DEC(N_RSAPSS, kmsenv_der2rsapss_decoder_functions),
    WRAPPED_DEC(N_EC, kmsenv_der2ec_decoder_functions),
    WRAPPED_DEC(N_ED25519, kmsenv_der2ed25519_decoder_functions),
    {NULL, NULL, NULL, NULL}};

/* The structure property must be PrivateKeyInfo for PEM_write_bio_PrivateKey
 * and i2d_PrivateKey to pick these encoders; what they write is the wrapped
 * keyset, never key bytes. */
static const OSSL_ALGORITHM encoders[] = {
    {KMSENV_KEYSET_NAME, PROPS ",output=pem,structure=PrivateKeyInfo",
     kmsenv_keyset2pem_encoder_functions, "kmsenv keyset (wrapped) as PEM"},
    {KMSENV_KEYSET_NAME, PROPS ",output=der,structure=PrivateKeyInfo",
     kmsenv_keyset2der_encoder_functions, "kmsenv keyset (wrapped) as DER"},
    {KMSENV_KEYSET_NAME, PROPS ",output=text",
     kmsenv_keyset2text_encoder_functions, "kmsenv keyset metadata"},
    /* A keyset has no public part: these only say so. */
    {KMSENV_KEYSET_NAME, PROPS ",output=pem,structure=SubjectPublicKeyInfo",
     kmsenv_keyset2pub_encoder_functions, "kmsenv keyset: no public key"},
    {KMSENV_KEYSET_NAME, PROPS ",output=der,structure=SubjectPublicKeyInfo",
     kmsenv_keyset2pub_encoder_functions, "kmsenv keyset: no public key"},
    WRAPPED_ENC(N_RSA),
    WRAPPED_ENC(N_RSAPSS),
    WRAPPED_ENC(N_EC),
    WRAPPED_ENC(N_ED25519),
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM ciphers[] = {
    {"KMSENV-AES-256-GCM", PROPS, kmsenv_stream_cipher_functions,
     "kmsenv stream (openssl enc): segmented AES-256-GCM under a keyset"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM stores[] = {
    {"kmsenv", PROPS, kmsenv_store_functions, "kmsenv: keysets and keys"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM *kmsenv_query(void *provctx, int id, int *no_cache)
{
    *no_cache = 0;
    switch (id) {
    case OSSL_OP_KEYMGMT:
        return keymgmts;
    case OSSL_OP_ASYM_CIPHER:
        return asym_ciphers;
    case OSSL_OP_SIGNATURE:
        return signatures;
    case OSSL_OP_KEYEXCH:
        return keyexchs;
    case OSSL_OP_DECODER:
        return decoders;
    case OSSL_OP_ENCODER:
        return encoders;
    case OSSL_OP_STORE:
        return stores;
    case OSSL_OP_CIPHER:
        return ciphers;
    }
    return NULL;
}

static const OSSL_ITEM *kmsenv_reasons(void *provctx)
{
    return kmsenv_reason_strings();
}

static const OSSL_PARAM *kmsenv_gettable_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL,
                        0),
        OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
        OSSL_PARAM_END};
    return p;
}

static int kmsenv_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, KMSENV_PROV_NAME))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, KMSENV_PROV_VERSION))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "kmsenv " KMSENV_PROV_VERSION))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p != NULL && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

static void prov_free(KMSENV_PROV *prov)
{
    if (prov == NULL)
        return;
    kmsenv_registry_free(prov->registry);
    kmsenv_err_clear_core(prov->handle);
    OSSL_LIB_CTX_free(prov->libctx);
    OPENSSL_free(prov->keyring);
    OPENSSL_free(prov->keyset);
    OPENSSL_free(prov->context);
    OPENSSL_free(prov->redirect);
    OPENSSL_free(prov->allowed_keks);
    OPENSSL_free(prov->debug);
    kmsenv_kms_env_cleanup(&prov->kms);
    kmsenv_inner_free(prov->keys.inner);
    if (prov->http_ref)
        kmsenv_http_global_unref();
    OPENSSL_free(prov);
}

static void kmsenv_teardown(void *provctx)
{
    kmsenv_log(2, "provider teardown");
    prov_free(provctx);
}

/* Settings: the provider's openssl.cnf section, and a KMSENV_* environment
 * variable that wins over it. The provider's own, then each keyring
 * method's (KMSENV_KEK_METHOD.settings, stored in its config object). */
static const KMSENV_SETTING settings[] = {
#define AT(f) offsetof(KMSENV_PROV, f)
    {"debug", "KMSENV_DEBUG", KMSENV_SET_STR, AT(debug)},
    {"keyring", "KMSENV_KEYRING", KMSENV_SET_STR, AT(keyring)},
    {"keyset", "KMSENV_KEYSET", KMSENV_SET_STR, AT(keyset)},
    {"context", "KMSENV_CONTEXT", KMSENV_SET_STR, AT(context)},
    {"redirect", "KMSENV_REDIRECT", KMSENV_SET_STR, AT(redirect)},
    {"allowed_keks", "KMSENV_ALLOWED_KEKS", KMSENV_SET_STR, AT(allowed_keks)},
#undef AT
    {NULL, NULL, KMSENV_SET_STR, 0},
};
#define MAX_SETTINGS 64

/* Every setting in order, with the object it is stored into. */
typedef struct {
    const KMSENV_SETTING *def;
    void *base;
} SETTING_AT;

static size_t all_settings(KMSENV_PROV *prov, SETTING_AT *out)
{
    size_t n = 0, i;
    const KMSENV_SETTING *d;

    for (d = settings; d->key != NULL && n < MAX_SETTINGS; d++, n++)
        out[n].def = d, out[n].base = prov;
    for (i = 0; i < KMSENV_KEK_NMETHODS; i++)
        for (d = kmsenv_kek_methods[i]->settings;
             d != NULL && d->key != NULL && n < MAX_SETTINGS; d++, n++)
            out[n].def = d,
            out[n].base = prov != NULL ? prov->kms.conf[i] : NULL;
    return n;
}

static int setting(const SETTING_AT *s, const char *cnf)
{
    const KMSENV_SETTING *d = s->def;
    const char *e = getenv(d->env);
    const char *v = (e != NULL && *e != '\0') ? e : cnf;
    const char *from = v == e ? d->env : d->key;
    void *at;
    char *end;
    long n;

    if (s->base == NULL) /* a keyring method without a config object */
        return 1;
    at = (char *)s->base + d->off;
    if (v == NULL || *v == '\0')
        return 1;
    switch (d->kind) {
    case KMSENV_SET_STR:
        return (*(char **)at = OPENSSL_strdup(v)) != NULL;
    case KMSENV_SET_BOOL:
        if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
            strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0) {
            *(int *)at = 1;
            return 1;
        }
        if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
            strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0) {
            *(int *)at = 0;
            return 1;
        }
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "kmsenv setting %s = '%s': expected yes or no", from, v);
        return 0;
    case KMSENV_SET_MS:
    case KMSENV_SET_INT:
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno != 0 || *end != '\0' || n <= 0 ||
            n > (d->kind == KMSENV_SET_INT ? 10 : 3600000)) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                         "kmsenv setting %s = '%s': expected %s", from, v,
                         d->kind == KMSENV_SET_INT
                             ? "an integer 1..10"
                             : "milliseconds, 1..3600000");
            return 0;
        }
        if (d->kind == KMSENV_SET_INT)
            *(int *)at = (int)n;
        else
            *(long *)at = n;
        return 1;
    }
    return 0;
}

static const OSSL_DISPATCH kmsenv_dispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))kmsenv_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS,
     (void (*)(void))kmsenv_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))kmsenv_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))kmsenv_query},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))kmsenv_reasons},
    {0, NULL}};

__attribute__((visibility("default"))) int
OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                   const OSSL_DISPATCH **out, void **provctx)
{
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    OSSL_FUNC_core_new_error_fn *new_error = NULL;
    OSSL_FUNC_core_set_error_debug_fn *set_debug = NULL;
    OSSL_FUNC_core_vset_error_fn *vset_error = NULL;
    char *cnf[MAX_SETTINGS] = {NULL};
    OSSL_PARAM cfg[MAX_SETTINGS + 1];
    SETTING_AT at[MAX_SETTINGS];
    KMSENV_PROV *prov;
    size_t i, n;

    const OSSL_DISPATCH *f;

    for (f = in; f->function_id != 0; f++) {
        switch (f->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            get_params = OSSL_FUNC_core_get_params(f);
            break;
        case OSSL_FUNC_CORE_NEW_ERROR:
            new_error = OSSL_FUNC_core_new_error(f);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            set_debug = OSSL_FUNC_core_set_error_debug(f);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            vset_error = OSSL_FUNC_core_vset_error(f);
            break;
        }
    }
    kmsenv_err_set_core(handle, new_error, set_debug, vset_error);

    /* Config values are returned as pointers into the core's storage: pass
     * &ptr (a UTF8_PTR), not the pointer itself. */
    n = all_settings(NULL, at);
    for (i = 0; i < n; i++)
        cfg[i] = OSSL_PARAM_construct_utf8_ptr(at[i].def->key, &cnf[i], 0);
    cfg[n] = OSSL_PARAM_construct_end();
    if (get_params != NULL && !get_params(handle, cfg))
        return 0;

    prov = OPENSSL_zalloc(sizeof(*prov));
    if (prov == NULL)
        return 0;
    prov->handle = handle;
    if (!kmsenv_kms_env_init(&prov->kms, NULL, NULL))
        goto err;
    all_settings(prov, at);
    for (i = 0; i < n; i++)
        if (!setting(&at[i], cnf[i]))
            goto err;
    kmsenv_log_init(prov->debug);
    kmsenv_http_global_ref();
    prov->http_ref = 1;
    prov->libctx = OSSL_LIB_CTX_new_child(handle, in);
    if (prov->libctx == NULL)
        goto err;
    prov->kms.libctx = prov->libctx;
    prov->kms.allowed_keks = prov->allowed_keks;
    prov->keys.handle = handle;
    prov->keys.libctx = prov->libctx;
    prov->keys.kms = &prov->kms;
    prov->keys.redirect = prov->redirect;
    if ((prov->registry = kmsenv_registry_new()) == NULL ||
        (prov->keys.inner = kmsenv_inner_new()) == NULL)
        goto err;
    kmsenv_log(2, "provider init: keyring=%s keyset=%s context=%s",
               prov->keyring ? prov->keyring : "-",
               prov->keyset ? prov->keyset : "-",
               prov->context ? prov->context : "-");
    *out = kmsenv_dispatch;
    *provctx = prov;
    return 1;
err:
    prov_free(prov);
    return 0;
}
