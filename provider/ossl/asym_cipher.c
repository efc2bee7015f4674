/* ASYM_CIPHER for KMSENV-KEYSET: context-bound records through
 * EVP_PKEY_encrypt/decrypt and `openssl pkeyutl`. The encryption context is
 * the "context" parameter (key=value[,key=value]; repeated sets accumulate). */
#include "envelope/context.h"
#include "envelope/record.h"
#include "ossl/keyobj.h"
#include "ossl/params.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>
#include <openssl/core_dispatch.h>
#include <openssl/params.h>

#define P_CONTEXT "context"

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
    KMSENV_WR ctxenc;  /* canonical encoding of ectx, kept current */
    KMSENV_REC_KEY rk; /* cached working key for one version */
    int rk_valid;
    unsigned int rk_generation;
} REC_CTX;

static void *rc_newctx(void *provctx)
{
    REC_CTX *c = OPENSSL_zalloc(sizeof(*c));

    if (c == NULL)
        return NULL;
    c->prov = provctx;
    kmsenv_ctx_init(&c->ectx);
    kmsenv_wr_init(&c->ctxenc);
    return c;
}

static void drop_rk(REC_CTX *c)
{
    if (c->rk_valid)
        kmsenv_rec_key_cleanup(&c->rk);
    c->rk_valid = 0;
}

static void rc_freectx(void *vctx)
{
    REC_CTX *c = vctx;

    if (c == NULL)
        return;
    drop_rk(c);
    kmsenv_ctx_free(&c->ectx);
    kmsenv_wr_free(&c->ctxenc);
    OPENSSL_free(c);
}

static int reencode(REC_CTX *c)
{
    kmsenv_wr_free(&c->ctxenc);
    return kmsenv_ctx_encode(&c->ectx, &c->ctxenc);
}

static void *rc_dupctx(void *vctx)
{
    REC_CTX *src = vctx, *c = rc_newctx(src->prov);

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

    if (k == NULL || !k->loaded) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "no loaded keyset");
        return 0;
    }
    drop_rk(c);
    c->key = k;
    kmsenv_ctx_free(&c->ectx);
    return reencode(c) && rc_set_ctx_params(c, params);
}

static int rc_encrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return init(vctx, keydata, params);
}

static int rc_decrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return init(vctx, keydata, params);
}

/* Makes c->rk the working key for version (for_encrypt: the primary). */
static int select_version(REC_CTX *c, int for_encrypt, uint32_t version)
{
    KMSENV_KEYOBJ *k = c->key;
    int idx, ok = 0;

    if (!CRYPTO_THREAD_read_lock(k->lock))
        return 0;
    if (for_encrypt)
        version = k->ks.primary;
    /* Every change of versions or states bumps the generation, so a cached
     * key of the same generation was found and enabled when cached. */
    if (c->rk_valid && c->rk.version == version &&
        c->rk_generation == k->generation) {
        ok = 1;
        goto done;
    }
    idx = kmsenv_keyset_find(&k->ks, version);
    if (idx < 0) {
        KMSENV_RAISE(KMSENV_R_UNKNOWN_VERSION,
                     "%s: record is under version %u, which this keyset does "
                     "not have (versions 1..%u)",
                     k->name, version,
                     k->ks.nver ? k->ks.ver[k->ks.nver - 1].id : 0);
        goto done;
    }
    if (k->ks.ver[idx].state == KMSENV_STATE_DISABLED) {
        KMSENV_RAISE(KMSENV_R_VERSION_DISABLED,
                     "%s: version %u is disabled (kmsenv enable --version %u "
                     "re-enables it)",
                     k->name, version, version);
        goto done;
    }
    drop_rk(c);
    if (!kmsenv_rec_key_init(&c->rk, k->prov->libctx, version, &k->xaes[idx]))
        goto done;
    c->rk_valid = 1;
    c->rk_generation = k->generation;
    ok = 1;
done:
    CRYPTO_THREAD_unlock(k->lock);
    return ok;
}

static int rc_encrypt(void *vctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    REC_CTX *c = vctx;

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
    if (!select_version(c, 1, 0))
        return 0;
    return kmsenv_record_seal(&c->rk, c->prov->libctx, c->key->ks.id,
                              c->ctxenc.p, c->ctxenc.len, NULL, in, inlen, out,
                              outlen);
}

static int rc_decrypt(void *vctx, unsigned char *out, size_t *outlen,
                      size_t outsize, const unsigned char *in, size_t inlen)
{
    REC_CTX *c = vctx;
    uint32_t version;
    char desc[256];

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
    if (!select_version(c, 0, version))
        return 0;
    if (!kmsenv_record_open(&c->rk, c->key->ks.id, c->ctxenc.p, c->ctxenc.len,
                            in, inlen, out, outlen)) {
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

    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strcmp(p->key, P_CONTEXT) != 0)
            continue;
        if (!kmsenv_param_text(p, "the encryption context", &text, &len) ||
            !kmsenv_ctx_parse(&c->ectx, text, len)) {
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
    static const OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(P_CONTEXT, NULL, 0),
                                   OSSL_PARAM_END};
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
