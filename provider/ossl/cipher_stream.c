/* SPDX-License-Identifier: Apache-2.0 */
/* KMSENV-AES-256-GCM: the enc stream (docs/FORMATS.md §7) as an EVP cipher
 * for `openssl enc -kmsenv-aes-256-gcm -K ''`. Not AEAD-flagged, key and IV
 * length 0, block size 32 (the output slack the stream is built for). This
 * adapter only resolves the keyset (ctx param "keyset", else the provider's
 * keyset / KMSENV_KEYSET; a path or kmsenv:PATH[?keyring=SPEC], loaded once
 * per provider instance through the registry) and the context (ctx param
 * "context", repeatable, else context / KMSENV_CONTEXT); the format is
 * envelope/stream.c. */
#include "envelope/context.h"
#include "envelope/stream.h"
#include "keys/loader.h"
#include "keys/registry.h"
#include "ossl/params.h"
#include "ossl/provider.h"
#include "util/buf.h"
#include "util/err.h"

#include <string.h>
#include <strings.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

static OSSL_FUNC_cipher_newctx_fn sc_newctx;
static OSSL_FUNC_cipher_freectx_fn sc_freectx;
static OSSL_FUNC_cipher_encrypt_init_fn sc_einit;
static OSSL_FUNC_cipher_decrypt_init_fn sc_dinit;
static OSSL_FUNC_cipher_update_fn sc_update;
static OSSL_FUNC_cipher_final_fn sc_final;
static OSSL_FUNC_cipher_get_params_fn sc_get_params;
static OSSL_FUNC_cipher_gettable_params_fn sc_gettable_params;
static OSSL_FUNC_cipher_get_ctx_params_fn sc_get_ctx_params;
static OSSL_FUNC_cipher_gettable_ctx_params_fn sc_gettable_ctx_params;
static OSSL_FUNC_cipher_set_ctx_params_fn sc_set_ctx_params;
static OSSL_FUNC_cipher_settable_ctx_params_fn sc_settable_ctx_params;

#define PARAM_KEYSET "keyset"
#define PARAM_CONTEXT "context"

typedef struct {
    KMSENV_PROV *prov;
    int enc, ready;
    char *keyset; /* ctx param, else the provider's */
    KMSENV_CONTEXT ectx;
    int ctx_given; /* a context param was set (1), refused (-1) */
    KMSENV_BUF ctxenc;
    KMSENV_KEYOBJ *k;
    KMSENV_STREAM s;
} STREAM_CTX;

static void *sc_newctx(void *provctx)
{
    STREAM_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER((KMSENV_PROV *)provctx);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    kmsenv_ctx_init(&c->ectx);
    kmsenv_buf_init(&c->ctxenc, 0);
    kmsenv_stream_init(&c->s);
    return c;
}

static void sc_freectx(void *vctx)
{
    STREAM_CTX *c = vctx;

    if (c == NULL)
        return;
    kmsenv_stream_cleanup(&c->s);
    kmsenv_keyobj_free(c->k);
    kmsenv_ctx_free(&c->ectx);
    kmsenv_buf_free(&c->ctxenc);
    OPENSSL_free(c->keyset);
    OPENSSL_free(c);
}

static int init(STREAM_CTX *c, int enc, size_t keylen, const OSSL_PARAM p[])
{
    KMSENV_ENTER(c->prov);
    if (keylen != 0) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "KMSENV-AES-256-GCM takes no key (use -K ''): the keyset "
                     "comes from the 'keyset' setting or KMSENV_KEYSET");
        return 0;
    }
    c->enc = enc;
    c->ready = 0; /* the stream starts at the first update or final */
    /* The keyset and a context set as params are kept across a re-init
     * (as EVP keeps a key and params), so init, set_params, init works; a
     * new context param replaces the old one whole. */
    return sc_set_ctx_params(c, p);
}

static int sc_einit(void *vctx, const unsigned char *key, size_t keylen,
                    const unsigned char *iv, size_t ivlen,
                    const OSSL_PARAM params[])
{
    return init(vctx, 1, keylen, params);
}

static int sc_dinit(void *vctx, const unsigned char *key, size_t keylen,
                    const unsigned char *iv, size_t ivlen,
                    const OSSL_PARAM params[])
{
    return init(vctx, 0, keylen, params);
}

/* A plain path, or kmsenv:PATH[?keyring=SPEC] parsed as the kmsenv: store
 * does: PATH and SPEC percent-decoded (%00 and bad escapes refused). */
static KMSENV_KEYOBJ *load_keyset(STREAM_CTX *c, const char *name)
{
    char *path = NULL, *keyring = NULL;
    KMSENV_KEYOBJ *k = NULL;

    if (strncasecmp(name, "kmsenv:", 7) != 0) {
        if ((path = OPENSSL_strdup(name)) == NULL)
            return NULL;
    } else if (!kmsenv_uri_parse(name, &path, &keyring)) {
        return NULL;
    }
    if (*path == '\0') {
        KMSENV_RAISE(KMSENV_R_BAD_URI, "keyset '%s' names no file", name);
        goto done;
    }
    k = kmsenv_registry_get(c->prov->registry, &c->prov->keys, path, keyring);
done:
    OPENSSL_free(path);
    OPENSSL_free(keyring);
    return k;
}

typedef struct {
    STREAM_CTX *c;
    const unsigned char *hdr;
    unsigned char *key;
} DERIVE;

static int derive_cb(void *arg, uint32_t version, const unsigned char *dek)
{
    DERIVE *d = arg;

    return kmsenv_stream_derive(d->c->prov->libctx, dek, d->hdr,
                                kmsenv_keyobj_id(d->c->k), d->c->ctxenc.p,
                                d->c->ctxenc.len, d->key);
}

static int keyfn(void *arg, const unsigned char *hdr, uint32_t version,
                 unsigned char key[32])
{
    DERIVE d = {arg, hdr, key};

    return kmsenv_keyobj_with_dek(((STREAM_CTX *)arg)->k, 0, &version,
                                  derive_cb, &d);
}

/* The keyset, the context and the stream, at the first update or final. */
static int ready(STREAM_CTX *c)
{
    const char *name = c->keyset != NULL ? c->keyset : c->prov->keyset;
    uint32_t primary;
    size_t n;

    if (c->ready)
        return 1;
    if (name == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "KMSENV-AES-256-GCM: no keyset (set KMSENV_KEYSET or the "
                     "provider's 'keyset' in openssl.cnf, or the 'keyset' "
                     "cipher parameter)");
        return 0;
    }
    if (c->k == NULL && (c->k = load_keyset(c, name)) == NULL)
        return 0;
    if (c->ctx_given < 0) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "KMSENV-AES-256-GCM: the 'context' parameter was refused; "
                     "set a valid one before the first update");
        return 0;
    }
    if (!c->ctx_given) {
        kmsenv_ctx_free(&c->ectx);
        kmsenv_ctx_init(&c->ectx);
        if (c->prov->context != NULL &&
            !kmsenv_ctx_parse(&c->ectx, c->prov->context,
                              strlen(c->prov->context)))
            return 0;
    }
    kmsenv_buf_reset(&c->ctxenc);
    if (!kmsenv_ctx_encode(&c->ectx, &c->ctxenc))
        return 0;
    if (c->enc) {
        if (!kmsenv_keyobj_versions(c->k, &primary, &n) ||
            !kmsenv_stream_start_enc(&c->s, c->prov->libctx, primary, NULL,
                                     keyfn, c))
            return 0;
    } else if (!kmsenv_stream_start_dec(&c->s, c->prov->libctx, keyfn, c)) {
        return 0;
    }
    c->ready = 1;
    return 1;
}

static int sc_update(void *vctx, unsigned char *out, size_t *outl,
                     size_t outsize, const unsigned char *in, size_t inl)
{
    STREAM_CTX *c = vctx;

    KMSENV_ENTER(c->prov);
    *outl = 0;
    if (!ready(c))
        return 0;
    return kmsenv_stream_update(&c->s, in, inl, out, outsize, outl);
}

static int sc_final(void *vctx, unsigned char *out, size_t *outl,
                    size_t outsize)
{
    STREAM_CTX *c = vctx;

    KMSENV_ENTER(c->prov);
    *outl = 0;
    if (!ready(c))
        return 0;
    return kmsenv_stream_final(&c->s, out, outsize, outl);
}

static int sc_get_params(OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_MODE)) != NULL &&
        !OSSL_PARAM_set_uint(p, EVP_CIPH_STREAM_CIPHER))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_KEYLEN)) != NULL &&
        !OSSL_PARAM_set_size_t(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_IVLEN)) != NULL &&
        !OSSL_PARAM_set_size_t(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_BLOCK_SIZE)) != NULL &&
        !OSSL_PARAM_set_size_t(p, KMSENV_STREAM_BLOCK))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_AEAD)) != NULL &&
        !OSSL_PARAM_set_int(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_CUSTOM_IV)) != NULL &&
        !OSSL_PARAM_set_int(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_CTS)) != NULL &&
        !OSSL_PARAM_set_int(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_TLS1_MULTIBLOCK)) !=
            NULL &&
        !OSSL_PARAM_set_int(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_HAS_RAND_KEY)) !=
            NULL &&
        !OSSL_PARAM_set_int(p, 0))
        return 0;
    return 1;
}

static const OSSL_PARAM *sc_gettable_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_uint(OSSL_CIPHER_PARAM_MODE, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_BLOCK_SIZE, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_AEAD, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_CUSTOM_IV, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_CTS, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_TLS1_MULTIBLOCK, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_HAS_RAND_KEY, NULL),
        OSSL_PARAM_END};
    return p;
}

static int sc_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_KEYLEN)) != NULL &&
        !OSSL_PARAM_set_size_t(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_IVLEN)) != NULL &&
        !OSSL_PARAM_set_size_t(p, 0))
        return 0;
    return 1;
}

static const OSSL_PARAM *sc_gettable_ctx_params(void *cctx, void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL), OSSL_PARAM_END};
    return p;
}

/* keyset: a path or kmsenv: URI; context: key=value[,...], repeatable
 * (pairs accumulate). Only before the stream starts. */
static int sc_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    STREAM_CTX *c = vctx;
    const OSSL_PARAM *p;
    const char *s;
    size_t len;

    if (params == NULL || params->key == NULL)
        return 1;
    KMSENV_ENTER(c->prov);
    for (p = params; p->key != NULL; p++) {
        int is_keyset = strcmp(p->key, PARAM_KEYSET) == 0;

        if (!is_keyset && strcmp(p->key, PARAM_CONTEXT) != 0)
            continue;
        if (c->ready) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                         "KMSENV-AES-256-GCM: '%s' must be set before the "
                         "first update",
                         p->key);
            return 0;
        }
        if (is_keyset) {
            char *v = NULL;

            if (!kmsenv_param_strdup(p, "keyset", &v))
                return 0;
            OPENSSL_free(c->keyset);
            c->keyset = v;
            kmsenv_keyobj_free(c->k);
            c->k = NULL;
        } else {
            /* Replaces any earlier context whole; a refused one leaves
             * the stream unable to start (never a fallback to another). */
            kmsenv_ctx_free(&c->ectx);
            kmsenv_ctx_init(&c->ectx);
            c->ctx_given = -1;
            if (!kmsenv_param_text(p, "context", &s, &len) ||
                !kmsenv_ctx_parse(&c->ectx, s, len))
                return 0;
            c->ctx_given = 1;
        }
    }
    return 1;
}

static const OSSL_PARAM *sc_settable_ctx_params(void *cctx, void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(PARAM_KEYSET, NULL, 0),
        OSSL_PARAM_utf8_string(PARAM_CONTEXT, NULL, 0), OSSL_PARAM_END};
    return p;
}

const OSSL_DISPATCH kmsenv_stream_cipher_functions[] = {
    {OSSL_FUNC_CIPHER_NEWCTX, (void (*)(void))sc_newctx},
    {OSSL_FUNC_CIPHER_FREECTX, (void (*)(void))sc_freectx},
    {OSSL_FUNC_CIPHER_ENCRYPT_INIT, (void (*)(void))sc_einit},
    {OSSL_FUNC_CIPHER_DECRYPT_INIT, (void (*)(void))sc_dinit},
    {OSSL_FUNC_CIPHER_UPDATE, (void (*)(void))sc_update},
    {OSSL_FUNC_CIPHER_FINAL, (void (*)(void))sc_final},
    {OSSL_FUNC_CIPHER_GET_PARAMS, (void (*)(void))sc_get_params},
    {OSSL_FUNC_CIPHER_GETTABLE_PARAMS, (void (*)(void))sc_gettable_params},
    {OSSL_FUNC_CIPHER_GET_CTX_PARAMS, (void (*)(void))sc_get_ctx_params},
    {OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS,
     (void (*)(void))sc_gettable_ctx_params},
    {OSSL_FUNC_CIPHER_SET_CTX_PARAMS, (void (*)(void))sc_set_ctx_params},
    {OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS,
     (void (*)(void))sc_settable_ctx_params},
    {0, NULL}};
