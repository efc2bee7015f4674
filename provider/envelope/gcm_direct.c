/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/gcm_direct.h"

#include <limits.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#define GCM_NAME "AES-256-GCM"

/* name is one of the ':'-separated names (ASCII, any case). */
static int has_name(const char *names, const char *name)
{
    size_t n = strlen(name), i;
    const char *p = names, *e;

    while (p != NULL) {
        e = strchr(p, ':');
        if ((e != NULL ? (size_t)(e - p) : strlen(p)) == n) {
            for (i = 0; i < n; i++) {
                unsigned char a = (unsigned char)p[i];
                unsigned char b = (unsigned char)name[i];

                if (a >= 'a' && a <= 'z')
                    a = (unsigned char)(a - 'a' + 'A');
                if (b >= 'a' && b <= 'z')
                    b = (unsigned char)(b - 'a' + 'A');
                if (a != b)
                    break;
            }
            if (i == n)
                return 1;
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

/* The provider's functions for the cipher EVP fetched: its provider's one
 * algorithm named AES-256-GCM (more than one: we cannot tell which EVP
 * chose, so EVP it is), with every function the stream calls. */
static int resolve(KMSENV_GCM *g)
{
    const OSSL_PROVIDER *prov = EVP_CIPHER_get0_provider(g->cipher);
    const OSSL_ALGORITHM *alg, *a, *found = NULL;
    const OSSL_DISPATCH *d;
    OSSL_FUNC_cipher_newctx_fn *newctx = NULL;
    OSSL_FUNC_cipher_get_ctx_params_fn *get = NULL;
    KMSENV_GCM f;
    int no_cache = 0, ok = 0;
    size_t keylen = 0, ivlen = 0;
    OSSL_PARAM p[3];
    void *provctx;

    if (prov == NULL || !EVP_CIPHER_is_a(g->cipher, GCM_NAME) ||
        (provctx = OSSL_PROVIDER_get0_provider_ctx(prov)) == NULL)
        return 0;
    alg = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
    if (alg == NULL)
        return 0;
    for (a = alg; a->algorithm_names != NULL; a++) {
        if (!has_name(a->algorithm_names, GCM_NAME))
            continue;
        if (found != NULL) {
            found = NULL;
            goto done;
        }
        found = a;
    }
    if (found == NULL)
        goto done;
    memset(&f, 0, sizeof(f));
    for (d = found->implementation; d->function_id != 0; d++) {
        switch (d->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX:
            newctx = OSSL_FUNC_cipher_newctx(d);
            break;
        case OSSL_FUNC_CIPHER_FREECTX:
            f.freectx = OSSL_FUNC_cipher_freectx(d);
            break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
            f.einit = OSSL_FUNC_cipher_encrypt_init(d);
            break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT:
            f.dinit = OSSL_FUNC_cipher_decrypt_init(d);
            break;
        case OSSL_FUNC_CIPHER_UPDATE:
            f.update = OSSL_FUNC_cipher_update(d);
            break;
        case OSSL_FUNC_CIPHER_FINAL:
            f.final = OSSL_FUNC_cipher_final(d);
            break;
        case OSSL_FUNC_CIPHER_GET_CTX_PARAMS:
            get = OSSL_FUNC_cipher_get_ctx_params(d);
            break;
        case OSSL_FUNC_CIPHER_SET_CTX_PARAMS:
            f.set = OSSL_FUNC_cipher_set_ctx_params(d);
            break;
        default:
            break;
        }
    }
    if (newctx == NULL || f.freectx == NULL || f.einit == NULL ||
        f.dinit == NULL || f.update == NULL || f.final == NULL || get == NULL ||
        f.set == NULL || (f.pctx = newctx(provctx)) == NULL)
        goto done;
    /* A check that this is the cipher we think it is. */
    p[0] = OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_KEYLEN, &keylen);
    p[1] = OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_IVLEN, &ivlen);
    p[2] = OSSL_PARAM_construct_end();
    if (!get(f.pctx, p) || keylen != 32 || ivlen != 12) {
        f.freectx(f.pctx);
        goto done;
    }
    g->pctx = f.pctx;
    g->freectx = f.freectx, g->einit = f.einit, g->dinit = f.dinit;
    g->update = f.update, g->final = f.final, g->get = get, g->set = f.set;
    ok = 1;
done:
    OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, alg);
    return ok;
}

int kmsenv_gcm_setup(KMSENV_GCM *g, OSSL_LIB_CTX *libctx, int evp_only)
{
    if (g->cipher == NULL &&
        (g->cipher = EVP_CIPHER_fetch(libctx, GCM_NAME, NULL)) == NULL)
        return 0;
    if (g->pctx != NULL || g->ectx != NULL)
        return 1;
    g->tagp[0] =
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, NULL, 16);
    g->tagp[1] = OSSL_PARAM_construct_end();
    if (!evp_only && resolve(g))
        return 1;
    return (g->ectx = EVP_CIPHER_CTX_new()) != NULL;
}

int kmsenv_gcm_is_direct(const KMSENV_GCM *g)
{
    return g->pctx != NULL;
}

int kmsenv_gcm_key(KMSENV_GCM *g, const unsigned char *key, int enc)
{
    g->enc = enc;
    if (g->pctx != NULL)
        return enc ? g->einit(g->pctx, key, 32, NULL, 0, NULL)
                   : g->dinit(g->pctx, key, 32, NULL, 0, NULL);
    return g->ectx != NULL &&
           EVP_CipherInit_ex2(g->ectx, g->cipher, key, NULL, enc, NULL);
}

int kmsenv_gcm_iv(KMSENV_GCM *g, const unsigned char *iv)
{
    if (g->pctx != NULL)
        return g->enc ? g->einit(g->pctx, NULL, 0, iv, 12, NULL)
                      : g->dinit(g->pctx, NULL, 0, iv, 12, NULL);
    return EVP_CipherInit_ex2(g->ectx, NULL, NULL, iv, g->enc, NULL);
}

int kmsenv_gcm_aad(KMSENV_GCM *g, const unsigned char *aad, size_t len)
{
    size_t ol;
    int eol;

    if (g->pctx != NULL)
        return g->update(g->pctx, NULL, &ol, len, aad, len);
    return len <= INT_MAX &&
           EVP_CipherUpdate(g->ectx, NULL, &eol, aad, (int)len);
}

int kmsenv_gcm_update(KMSENV_GCM *g, unsigned char *out,
                      const unsigned char *in, size_t len)
{
    size_t ol;
    int eol;

    if (len == 0)
        return 1;
    if (g->pctx != NULL)
        return g->update(g->pctx, out, &ol, len, in, len) && ol == len;
    return len <= INT_MAX &&
           EVP_CipherUpdate(g->ectx, out, &eol, in, (int)len) &&
           (size_t)eol == len;
}

/* The tag through the params call itself (EVP_CIPHER_CTX_ctrl would build
 * the same OSSL_PARAM and go through its switch). */
static OSSL_PARAM *tag_param(KMSENV_GCM *g, unsigned char *tag)
{
    g->tagp[0].data = tag;
    g->tagp[0].return_size = OSSL_PARAM_UNMODIFIED;
    return g->tagp;
}

int kmsenv_gcm_seal(KMSENV_GCM *g, unsigned char *tag)
{
    unsigned char dummy[16];
    size_t ol;
    int eol;

    if (g->pctx != NULL)
        return g->final(g->pctx, dummy, &ol, 0) &&
               g->get(g->pctx, tag_param(g, tag));
    return EVP_EncryptFinal_ex(g->ectx, dummy, &eol) &&
           EVP_CIPHER_CTX_get_params(g->ectx, tag_param(g, tag));
}

int kmsenv_gcm_open(KMSENV_GCM *g, const unsigned char *tag)
{
    unsigned char dummy[16];
    size_t ol;
    int eol;

    if (g->pctx != NULL)
        return g->set(g->pctx, tag_param(g, (unsigned char *)tag)) &&
               g->final(g->pctx, dummy, &ol, 0) > 0;
    return EVP_CIPHER_CTX_set_params(g->ectx,
                                     tag_param(g, (unsigned char *)tag)) &&
           EVP_DecryptFinal_ex(g->ectx, dummy, &eol) > 0;
}

void kmsenv_gcm_free(KMSENV_GCM *g)
{
    if (g->pctx != NULL)
        g->freectx(g->pctx);
    EVP_CIPHER_CTX_free(g->ectx);
    EVP_CIPHER_free(g->cipher);
    memset(g, 0, sizeof(*g));
}
