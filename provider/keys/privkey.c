/* SPDX-License-Identifier: Apache-2.0 */
#include "keys/privkey.h"
#include "envelope/wrapkey.h"
#include "kms/keyring.h"
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

#include <string.h>
#include <time.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

struct kmsenv_inner_st {
    CRYPTO_RWLOCK *lock;
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *dflt;
    int failed;
};

KMSENV_INNER *kmsenv_inner_new(void)
{
    KMSENV_INNER *in = OPENSSL_zalloc(sizeof(*in));

    if (in != NULL && (in->lock = CRYPTO_THREAD_lock_new()) == NULL) {
        OPENSSL_free(in);
        in = NULL;
    }
    return in;
}

void kmsenv_inner_free(KMSENV_INNER *in)
{
    if (in == NULL)
        return;
    OSSL_PROVIDER_unload(in->dflt);
    OSSL_LIB_CTX_free(in->libctx);
    CRYPTO_THREAD_lock_free(in->lock);
    OPENSSL_free(in);
}

OSSL_LIB_CTX *kmsenv_inner_libctx(const KMSENV_KEYS_ENV *env)
{
    KMSENV_INNER *in = env->inner;
    OSSL_LIB_CTX *l = NULL;

    if (in == NULL || !CRYPTO_THREAD_read_lock(in->lock))
        goto fail;
    l = in->libctx;
    CRYPTO_THREAD_unlock(in->lock);
    if (l != NULL)
        return l;
    if (!CRYPTO_THREAD_write_lock(in->lock))
        goto fail;
    if (in->libctx == NULL && !in->failed) {
        OSSL_LIB_CTX *nl = OSSL_LIB_CTX_new();
        OSSL_PROVIDER *p =
            nl != NULL ? OSSL_PROVIDER_load(nl, "default") : NULL;

        if (p == NULL) {
            OSSL_LIB_CTX_free(nl);
            in->failed = 1;
        } else {
            in->libctx = nl;
            in->dflt = p;
        }
    }
    l = in->libctx;
    CRYPTO_THREAD_unlock(in->lock);
    if (l != NULL)
        return l;
fail:
    KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                 "cannot make the library context for wrapped private keys "
                 "(the default provider did not load)");
    return NULL;
}

static KMSENV_KEYOBJ *new_obj(const KMSENV_KEYS_ENV *env, int type)
{
    KMSENV_KEYOBJ *k = kmsenv_keyobj_new(env);

    if (k != NULL) {
        k->kind = KMSENV_KIND_PRIVKEY;
        k->pk.type = type;
        k->loaded = 1;
        snprintf(k->name, sizeof(k->name), "wrapped %s key",
                 kmsenv_wk_type_name(type));
    }
    return k;
}

static void set_name(KMSENV_KEYOBJ *k, const char *origin)
{
    if (origin != NULL && *origin != '\0')
        snprintf(k->name, sizeof(k->name), "wrapped %s key (%.60s)",
                 kmsenv_wk_type_name(k->pk.type), origin);
}

/* The supported key types and sizes (wrap refuses others; load takes what
 * the header's type says, checked against the key itself). */
static int check_key(EVP_PKEY *pk, int type, int strict, const char *name)
{
    const char *tn = kmsenv_wk_type_name(type);
    char group[64] = "";
    int bits = EVP_PKEY_get_bits(pk);

    if (tn == NULL || !EVP_PKEY_is_a(pk, tn)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s: the key is %s, not %s", name,
                     EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk)
                                                 : "of an unknown type",
                     tn ? tn : "a supported type");
        return 0;
    }
    if (!strict)
        return 1;
    if ((type == KMSENV_WK_RSA || type == KMSENV_WK_RSA_PSS) &&
        (bits < 2048 || bits > 4096)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: RSA keys of 2048 to 4096 bits are supported, this "
                     "one has %d",
                     name, bits);
        return 0;
    }
    if (type == KMSENV_WK_EC &&
        (!EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group),
                                         NULL) ||
         (strcmp(group, "prime256v1") != 0 && strcmp(group, "secp384r1") != 0 &&
          strcmp(group, "secp521r1") != 0))) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: EC keys on P-256, P-384 or P-521 are supported, "
                     "this one is on %s",
                     name, *group ? group : "an unknown curve");
        return 0;
    }
    return 1;
}

static EVP_PKEY *pub_from_spki(OSSL_LIB_CTX *lc, const unsigned char *spki,
                               size_t len)
{
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY_ex(NULL, &p, (long)len, lc, NULL);

    if (pk != NULL && p != spki + len) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    return pk;
}

/* Decodes and unwraps der into a new loaded object; wk keeps the header,
 * the wrap list, the container key and the PKCS#8 (for a rewrap). Exactly
 * one keyring call. */
static KMSENV_KEYOBJ *open_wk(const KMSENV_KEYS_ENV *env, KMSENV_WRAPKEY *wk,
                              const unsigned char *der, size_t len,
                              const char *origin, const char *redirect)
{
    KMSENV_CONTEXT ectx;
    KMSENV_KEYOBJ *k = NULL;
    OSSL_LIB_CTX *lc = kmsenv_inner_libctx(env);
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    const unsigned char *p;
    char name[128];

    kmsenv_wrapkey_init(wk);
    kmsenv_ctx_init(&ectx);
    snprintf(name, sizeof(name), "wrapped private key%s%.60s%s",
             origin ? " (" : "", origin ? origin : "", origin ? ")" : "");
    if (lc == NULL || !kmsenv_wrapkey_decode(wk, der, len, name))
        return NULL;
    if ((k = new_obj(env, wk->type)) == NULL)
        goto err;
    k->loaded = 0;
    set_name(k, origin);
    if ((k->pk.pub = pub_from_spki(lc, wk->spki, wk->spkilen)) == NULL ||
        !check_key(k->pk.pub, wk->type, 0, k->name)) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: the public key in its header is not a %s key",
                     k->name, kmsenv_wk_type_name(wk->type));
        goto err;
    }
    if (!kmsenv_wrapkey_context(&ectx, env->libctx, wk->spki, wk->spkilen,
                                wk->purpose) ||
        !kmsenv_keyring_unwrap(env->kms, wk->wrap, wk->nwrap,
                               redirect != NULL ? redirect : env->redirect,
                               &ectx, KMSENV_WK_CK_LEN, &wk->ck, k->name) ||
        !kmsenv_wrapkey_unseal(wk, env->libctx, k->name))
        goto err;
    p = wk->pkcs8.data;
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)wk->pkcs8.len);
    if (p8 == NULL || p != wk->pkcs8.data + wk->pkcs8.len ||
        (k->pk.priv = EVP_PKCS82PKEY_ex(p8, lc, NULL)) == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: the sealed private key is not a usable PKCS#8 key",
                     k->name);
        goto err;
    }
    if (!check_key(k->pk.priv, wk->type, 0, k->name) ||
        EVP_PKEY_eq(k->pk.priv, k->pk.pub) != 1) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: the sealed private key does not belong to the "
                     "public key in the header",
                     k->name);
        goto err;
    }
    if ((k->pk.spki = OPENSSL_memdup(wk->spki, wk->spkilen)) == NULL ||
        (k->der = OPENSSL_memdup(der, len)) == NULL)
        goto err;
    k->pk.spkilen = wk->spkilen;
    k->derlen = len;
    k->loaded = 1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    kmsenv_ctx_free(&ectx);
    return k;
err:
    PKCS8_PRIV_KEY_INFO_free(p8);
    kmsenv_wrapkey_free(wk);
    kmsenv_ctx_free(&ectx);
    kmsenv_keyobj_free(k);
    return NULL;
}

KMSENV_KEYOBJ *kmsenv_privkey_load(const KMSENV_KEYS_ENV *env,
                                   const unsigned char *der, size_t len,
                                   const char *origin, const char *redirect)
{
    KMSENV_WRAPKEY wk;
    KMSENV_KEYOBJ *k = open_wk(env, &wk, der, len, origin, redirect);

    if (k != NULL) {
        kmsenv_log(2, "loaded %s", k->name);
        kmsenv_wrapkey_free(&wk);
    }
    return k;
}

KMSENV_KEYOBJ *kmsenv_privkey_rewrap(const KMSENV_KEYS_ENV *env,
                                     const unsigned char *der, size_t len,
                                     const char *origin, const char *spec,
                                     int flags)
{
    KMSENV_WRAPKEY wk;
    KMSENV_KEYRING *kr = NULL;
    KMSENV_CONTEXT ectx;
    KMSENV_WRAP *ws = NULL;
    KMSENV_BUF out;
    size_t nws = 0;
    KMSENV_KEYOBJ *k;

    if (spec == NULL || *spec == '\0') {
        KMSENV_RAISE(KMSENV_R_NO_KEYRING, "cannot rewrap a private key");
        return NULL;
    }
    /* The new keyring first: a spec or policy error costs no unwrap. */
    if (!kmsenv_keyring_open(env->kms, spec, &kr))
        return NULL;
    if ((k = open_wk(env, &wk, der, len, origin, NULL)) == NULL) {
        kmsenv_keyring_free(kr);
        return NULL;
    }
    kmsenv_ctx_init(&ectx);
    kmsenv_buf_init(&out, 0);
    /* Same public key and purpose: the same KEK context (FORMATS.md 8.2);
     * a new seal nonce, since the AAD (the wrap list) changes. */
    if (!kmsenv_wrapkey_context(&ectx, env->libctx, wk.spki, wk.spkilen,
                                wk.purpose) ||
        !kmsenv_keyring_rewrap(kr, &ectx, wk.wrap, wk.nwrap, &wk.ck, flags, &ws,
                               &nws))
        goto err;
    kmsenv_wraps_free(wk.wrap, wk.nwrap);
    wk.wrap = ws;
    wk.nwrap = nws;
    ws = NULL;
    if (!kmsenv_wrapkey_encode(&wk, env->libctx, NULL, &out))
        goto err;
    OPENSSL_free(k->der);
    k->der = out.p;
    k->derlen = out.len;
    out.p = NULL;
    kmsenv_log(1, "rewrapped %s under %s", k->name, spec);
    goto done;
err:
    kmsenv_keyobj_free(k);
    k = NULL;
done:
    kmsenv_wraps_free(ws, nws);
    kmsenv_buf_free(&out);
    kmsenv_keyring_free(kr);
    kmsenv_wrapkey_free(&wk);
    kmsenv_ctx_free(&ectx);
    return k;
}

KMSENV_KEYOBJ *kmsenv_privkey_load_public(const KMSENV_KEYS_ENV *env,
                                          const unsigned char *der, size_t len)
{
    KMSENV_WRAPKEY wk;
    EVP_PKEY *pub;
    OSSL_LIB_CTX *lc = kmsenv_inner_libctx(env);
    int type;

    if (lc == NULL ||
        !kmsenv_wrapkey_decode(&wk, der, len, "wrapped private key"))
        return NULL;
    pub = pub_from_spki(lc, wk.spki, wk.spkilen);
    if (pub == NULL || !check_key(pub, wk.type, 0, "wrapped private key")) {
        EVP_PKEY_free(pub);
        kmsenv_wrapkey_free(&wk);
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "wrapped private key: the public key in its header is "
                     "not usable");
        return NULL;
    }
    type = wk.type;
    kmsenv_wrapkey_free(&wk);
    return kmsenv_privkey_from_public(env, type, pub);
}

KMSENV_KEYOBJ *kmsenv_privkey_from_public(const KMSENV_KEYS_ENV *env, int type,
                                          EVP_PKEY *pub)
{
    KMSENV_KEYOBJ *k = new_obj(env, type);
    unsigned char *spki = NULL;
    int n;

    if (k == NULL || (n = i2d_PUBKEY(pub, &spki)) <= 0) {
        EVP_PKEY_free(pub);
        kmsenv_keyobj_free(k);
        return NULL;
    }
    k->pk.pub = pub;
    k->pk.spki = spki;
    k->pk.spkilen = (size_t)n;
    snprintf(k->name, sizeof(k->name), "%s public key",
             kmsenv_wk_type_name(type));
    return k;
}

/* The DER key (PKCS#8, or a traditional RSA / EC private key) in lc. */
static EVP_PKEY *key_from_der(OSSL_LIB_CTX *lc, const unsigned char *key,
                              size_t len)
{
    const unsigned char *p = key;
    EVP_PKEY *pk = d2i_AutoPrivateKey_ex(NULL, &p, (long)len, lc, NULL);

    if (pk != NULL && p != key + len) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    return pk;
}

KMSENV_KEYOBJ *kmsenv_privkey_wrap(const KMSENV_KEYS_ENV *env, int type,
                                   const unsigned char *key, size_t keylen,
                                   const char *spec)
{
    OSSL_LIB_CTX *lc = kmsenv_inner_libctx(env);
    KMSENV_KEYRING *kr = NULL;
    KMSENV_CONTEXT ectx;
    KMSENV_WRAPKEY wk;
    KMSENV_KEYOBJ *k = NULL;
    EVP_PKEY *pk = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *spki = NULL, *q;
    KMSENV_BUF der;
    int n, t;

    kmsenv_ctx_init(&ectx);
    kmsenv_wrapkey_init(&wk);
    kmsenv_buf_init(&der, 0);
    if (spec == NULL || *spec == '\0') {
        KMSENV_RAISE(KMSENV_R_NO_KEYRING, "cannot wrap a private key");
        return NULL;
    }
    if (lc == NULL)
        return NULL;
    if ((pk = key_from_der(lc, key, keylen)) == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "the key to wrap is not a DER private key (PKCS#8 or "
                     "traditional)");
        goto err;
    }
    for (t = KMSENV_WK_RSA; type == 0 && t <= KMSENV_WK_ED25519; t++)
        if (EVP_PKEY_is_a(pk, kmsenv_wk_type_name(t)))
            type = t;
    if (!check_key(pk, type, 1, "the key to wrap"))
        goto err;
    wk.type = (uint8_t)type;
    wk.created = (uint64_t)time(NULL);
    strcpy(wk.purpose, KMSENV_WK_DEFAULT_PURPOSE);
    if ((n = i2d_PUBKEY(pk, &spki)) <= 0 || (p8 = EVP_PKEY2PKCS8(pk)) == NULL)
        goto crypto;
    wk.spki = spki;
    wk.spkilen = (size_t)n;
    spki = NULL;
    if ((n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL)) <= 0 ||
        !kmsenv_secret_alloc(&wk.pkcs8, (size_t)n))
        goto crypto;
    q = wk.pkcs8.data;
    if (i2d_PKCS8_PRIV_KEY_INFO(p8, &q) != n)
        goto crypto;
    if (!kmsenv_keyring_open(env->kms, spec, &kr) ||
        !kmsenv_wrapkey_context(&ectx, env->libctx, wk.spki, wk.spkilen,
                                wk.purpose) ||
        !kmsenv_keyring_generate(kr, &ectx, KMSENV_WK_CK_LEN, &wk.ck, &wk.wrap,
                                 &wk.nwrap) ||
        !kmsenv_wrapkey_encode(&wk, env->libctx, NULL, &der))
        goto err;
    if ((k = new_obj(env, type)) == NULL ||
        (k->pk.pub = pub_from_spki(lc, wk.spki, wk.spkilen)) == NULL)
        goto crypto;
    k->pk.priv = pk;
    pk = NULL;
    k->pk.spki = wk.spki;
    k->pk.spkilen = wk.spkilen;
    wk.spki = NULL;
    k->der = der.p;
    k->derlen = der.len;
    der.p = NULL;
    kmsenv_log(1, "wrapped a %s key under %s", kmsenv_wk_type_name(type), spec);
    goto done;
crypto:
    KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "encoding the key to wrap");
err:
    kmsenv_keyobj_free(k);
    k = NULL;
done:
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(pk);
    OPENSSL_free(spki);
    kmsenv_buf_free(&der);
    kmsenv_keyring_free(kr);
    kmsenv_wrapkey_free(&wk);
    kmsenv_ctx_free(&ectx);
    return k;
}

KMSENV_KEYOBJ *kmsenv_privkey_dup(KMSENV_KEYOBJ *k)
{
    KMSENV_KEYOBJ *d = new_obj(k->env, k->pk.type);

    if (d == NULL)
        return NULL;
    memcpy(d->name, k->name, sizeof(d->name));
    if ((k->pk.pub != NULL && !EVP_PKEY_up_ref(k->pk.pub)) ||
        (k->pk.priv != NULL && !EVP_PKEY_up_ref(k->pk.priv))) {
        kmsenv_keyobj_free(d);
        return NULL;
    }
    d->pk.pub = k->pk.pub;
    d->pk.priv = k->pk.priv;
    d->pk.spki = OPENSSL_memdup(k->pk.spki, k->pk.spkilen);
    d->pk.spkilen = k->pk.spkilen;
    if (k->der != NULL) {
        d->der = OPENSSL_memdup(k->der, k->derlen);
        d->derlen = k->derlen;
    }
    if (d->pk.spki == NULL || (k->der != NULL && d->der == NULL)) {
        kmsenv_keyobj_free(d);
        return NULL;
    }
    return d;
}

int kmsenv_privkey_describe(KMSENV_KEYOBJ *k, BIO *out)
{
    size_t i;
    int ok = BIO_printf(out, "kmsenv %s (private key wrapped, never shown)\n",
                        k->name) > 0;

    ok &= EVP_PKEY_print_public(out, k->pk.pub, 0, NULL) > 0;
    if (k->der != NULL) {
        KMSENV_WRAPKEY wk;

        if (kmsenv_wrapkey_decode(&wk, k->der, k->derlen, k->name)) {
            ok &= BIO_printf(out, "purpose: %s\nkey-encryption keys: %zu\n",
                             wk.purpose, wk.nwrap) > 0;
            for (i = 0; i < wk.nwrap; i++) {
                char fp[140], spec[1024];

                kmsenv_fp_text(wk.wrap[i].fp, wk.wrap[i].fplen, fp, sizeof(fp));
                kmsenv_escape(spec, sizeof(spec), wk.wrap[i].spec,
                              strlen(wk.wrap[i].spec));
                ok &= BIO_printf(out, "  kek %zu: %s, fingerprint %s\n", i + 1,
                                 spec, fp) > 0;
            }
            kmsenv_wrapkey_free(&wk);
        }
    }
    return ok;
}
