/* SPDX-License-Identifier: Apache-2.0 */
/* ASYM_CIPHER for KMSENV-KEYSET: context-bound records through
 * EVP_PKEY_encrypt/decrypt and `openssl pkeyutl`. The encryption context is
 * the "context" parameter (key=value[,key=value]; repeated sets accumulate)
 * or "kmsenv-replace-context" (the same text; replaces the context). */
#include "envelope/context.h"
#include "envelope/record.h"
#include "keys/keyobj.h"
#include "ossl/params.h"
#include "ossl/provider.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>
#include <openssl/core_dispatch.h>
#include <openssl/params.h>

#define P_CONTEXT "context"
/* Replaces the whole context: a reused ctx moves to the next row with one
 * set_params call, no re-init. */
#define P_REPLACE_CONTEXT "kmsenv-replace-context"

static OSSL_FUNC_asym_cipher_newctx_fn rc_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn rc_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn rc_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn rc_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn rc_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn rc_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn rc_decrypt;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn rc_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn rc_settable_ctx_params;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn rc_get_ctx_params;
static OSSL_FUNC_asym_cipher_gettable_ctx_params_fn rc_gettable_ctx_params;

typedef struct {
    KMSENV_PROV *prov;
    KMSENV_KEYOBJ *key; /* borrowed from the EVP_PKEY */
    KMSENV_CONTEXT ectx;
    KMSENV_BUF ctxenc;   /* canonical encoding of ectx, kept current */
    KMSENV_LEASE *lease; /* working key, kept across records and re-inits */
} REC_CTX;

static void *rc_newctx(void *provctx)
{
    REC_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER((KMSENV_PROV *)provctx);

    if (c == NULL)
        return NULL;
    c->prov = provctx;
    kmsenv_ctx_init(&c->ectx);
    kmsenv_buf_init(&c->ctxenc, 0);
    return c;
}

static void rc_freectx(void *vctx)
{
    REC_CTX *c = vctx;

    if (c == NULL)
        return;
    if (c->key != NULL)
        kmsenv_keyobj_lease_park(c->key, c->lease);
    kmsenv_ctx_free(&c->ectx);
    kmsenv_buf_free(&c->ctxenc);
    OPENSSL_free(c);
}

static int reencode(REC_CTX *c)
{
    kmsenv_buf_reset(&c->ctxenc); /* keeps its memory for the next row */
    return kmsenv_ctx_encode(&c->ectx, &c->ctxenc);
}

static void *rc_dupctx(void *vctx)
{
    REC_CTX *src = vctx, *c = rc_newctx(src->prov);

    KMSENV_ENTER(src->prov);

    if (c == NULL)
        return NULL;
    c->key = src->key;
    if (!kmsenv_ctx_copy(&c->ectx, &src->ectx) || !reencode(c)) {
        rc_freectx(c);
        return NULL;
    }
    return c;
}

static int init(REC_CTX *c, void *keydata, const OSSL_PARAM params[])
{
    KMSENV_KEYOBJ *k = keydata;

    KMSENV_ENTER(c->prov);

    if (k == NULL || !k->loaded) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "no loaded keyset");
        return 0;
    }
    /* A re-init on the same key keeps the working key: the lease knows
     * when the key's versions change. */
    if (c->key != k && c->lease != NULL) {
        kmsenv_lease_release(c->lease);
        OPENSSL_free(c->lease);
        c->lease = NULL;
    }
    c->key = k;
    kmsenv_ctx_free(&c->ectx);
    kmsenv_buf_reset(&c->ctxenc);
    if (!rc_set_ctx_params(c, params))
        return 0;
    /* no context given: the empty one (an encoding is never empty) */
    return c->ctxenc.len > 0 || reencode(c);
}

static int rc_encrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return init(vctx, keydata, params);
}

static int rc_decrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return init(vctx, keydata, params);
}

/* The working key of the primary (for_encrypt) or of version. */
static int lease(REC_CTX *c, int for_encrypt, uint32_t version)
{
    if (c->lease == NULL &&
        (c->lease = kmsenv_keyobj_lease_take(c->key)) == NULL)
        return 0;
    return kmsenv_keyobj_lease(c->key, for_encrypt, version, c->lease);
}

static int rc_encrypt(void *vctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    REC_CTX *c = vctx;

    KMSENV_ENTER(c->prov);

    if (c->key == NULL)
        return 0;
    if (inlen > SIZE_MAX - KMSENV_REC_OVERHEAD) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "record too large");
        return 0;
    }
    if (out == NULL) {
        *outlen = inlen + KMSENV_REC_OVERHEAD;
        return 1;
    }
    if (outsize < inlen + KMSENV_REC_OVERHEAD) {
        KMSENV_RAISE(KMSENV_R_BUFFER_TOO_SMALL,
                     "need %zu bytes for the record, have %zu",
                     inlen + KMSENV_REC_OVERHEAD, outsize);
        return 0;
    }
    if (!lease(c, 1, 0))
        return 0;
    return kmsenv_record_seal(&c->lease->rk, c->prov->libctx,
                              kmsenv_keyobj_id(c->key), c->ctxenc.p,
                              c->ctxenc.len, NULL, in, inlen, out, outlen);
}

static int rc_decrypt(void *vctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    REC_CTX *c = vctx;
    uint32_t version;
    char desc[256];

    KMSENV_ENTER(c->prov);

    if (c->key == NULL || !kmsenv_record_peek(in, inlen, &version))
        return 0;
    if (out == NULL) {
        /* At least 1: callers such as pkeyutl skip the real call when the
         * size is 0, and the tag must be checked even for empty records. */
        *outlen =
            inlen - KMSENV_REC_OVERHEAD > 0 ? inlen - KMSENV_REC_OVERHEAD : 1;
        return 1;
    }
    if (outsize < inlen - KMSENV_REC_OVERHEAD) {
        KMSENV_RAISE(KMSENV_R_BUFFER_TOO_SMALL,
                     "need %zu bytes for the plaintext, have %zu",
                     inlen - KMSENV_REC_OVERHEAD, outsize);
        return 0;
    }
    if (!lease(c, 0, version))
        return 0;
    if (!kmsenv_record_open(&c->lease->rk, kmsenv_keyobj_id(c->key),
                            c->ctxenc.p, c->ctxenc.len, in, inlen, out,
                            outlen)) {
        kmsenv_ctx_describe(&c->ectx, desc, sizeof(desc));
        KMSENV_RAISE(KMSENV_R_RECORD_AUTH_FAILED,
                     "%s, version %u: decryption refused under context {%s}",
                     c->key->name, version, desc);
        return 0;
    }
    return 1;
}

static int rc_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    REC_CTX *c = vctx;
    const OSSL_PARAM *p;
    const char *text = NULL;
    size_t len = 0;
    int changed = 0;

    KMSENV_ENTER(c->prov);

    KMSENV_CONTEXT fresh;
    int ok;

    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strcmp(p->key, P_CONTEXT) == 0) {
            ok = kmsenv_param_text(p, "the encryption context", &text, &len) &&
                 kmsenv_ctx_parse(&c->ectx, text, len);
        } else if (strcmp(p->key, P_REPLACE_CONTEXT) == 0) {
            kmsenv_ctx_init(&fresh);
            ok = kmsenv_param_text(p, "the encryption context", &text, &len) &&
                 kmsenv_ctx_parse(&fresh, text, len);
            if (ok) {
                kmsenv_ctx_free(&c->ectx);
                c->ectx = fresh;
            } else {
                kmsenv_ctx_free(&fresh);
            }
        } else {
            continue;
        }
        if (!ok) {
            /* the failed text left ectx unchanged; earlier ones count */
            if (changed)
                (void)reencode(c);
            return 0;
        }
        changed = 1;
    }
    return !changed || reencode(c);
}

static const OSSL_PARAM *rc_settable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(P_CONTEXT, NULL, 0),
        OSSL_PARAM_utf8_string(P_REPLACE_CONTEXT, NULL, 0), OSSL_PARAM_END};
    return p;
}

static int rc_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    return 1;
}

static const OSSL_PARAM *rc_gettable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM p[] = {OSSL_PARAM_END};
    return p;
}

const OSSL_DISPATCH kmsenv_keyset_asym_cipher_functions[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))rc_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))rc_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))rc_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))rc_encrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))rc_encrypt},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))rc_decrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))rc_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))rc_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,
     (void (*)(void))rc_settable_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))rc_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,
     (void (*)(void))rc_gettable_ctx_params},
    {0, NULL}};
