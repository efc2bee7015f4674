/* SPDX-License-Identifier: Apache-2.0 */
#include "keys/privkey.h"
#include "envelope/wrapkey.h"
#include "kms/keyring.h"
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

#include <string.h>
#include <strings.h>
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

/* --- inner operation templates ------------------------------------------ */

#define PK_MAX_DIGESTS 8 /* digest names per digest kind (TLS uses 3-4) */

typedef struct {
    char mdname[48]; /* as the caller gave it; "" for none / default */
    char canon[48];  /* the digest's own name ("" for none) */
    EVP_PKEY_CTX *ctx;
    int alias; /* ctx is an earlier entry's (another name of its digest) */
} PK_DIGEST_TMPL;

struct kmsenv_pk_ops_st {
    /* The kinds without a digest; NULL until made. */
    _Atomic(EVP_PKEY_CTX *) tmpl[KMSENV_PK_DIGEST_SIGN];
    /* Digest sign [0] and verify [1]: entries below n are immutable; n
     * grows (release) under the key's write lock once an entry is set. */
    PK_DIGEST_TMPL dig[2][PK_MAX_DIGESTS];
    _Atomic size_t ndig[2];
};

static const char *const op_names[KMSENV_PK_NOPS] = {
    "sign",   "verify",      "encrypt",      "decrypt",
    "derive", "digest-sign", "digest-verify"};

void kmsenv_privkey_ops_free(KMSENV_PK_OPS *o)
{
    size_t i, j, n;

    if (o == NULL)
        return;
    for (i = 0; i < KMSENV_PK_DIGEST_SIGN; i++)
        EVP_PKEY_CTX_free(atomic_load(&o->tmpl[i]));
    for (j = 0; j < 2; j++)
        for (i = 0, n = atomic_load(&o->ndig[j]); i < n; i++)
            if (!o->dig[j][i].alias)
                EVP_PKEY_CTX_free(o->dig[j][i].ctx);
    OPENSSL_free(o);
}

static KMSENV_PK_OPS *get_ops(KMSENV_KEYOBJ *k)
{
    KMSENV_PK_OPS *o = atomic_load_explicit(&k->pk.ops, memory_order_acquire);

    if (o != NULL || !CRYPTO_THREAD_write_lock(k->lock))
        return o;
    o = atomic_load_explicit(&k->pk.ops, memory_order_relaxed);
    if (o == NULL && (o = OPENSSL_zalloc(sizeof(*o))) != NULL)
        atomic_store_explicit(&k->pk.ops, o, memory_order_release);
    CRYPTO_THREAD_unlock(k->lock);
    return o;
}

static int op_private(enum kmsenv_pk_op op)
{
    return op == KMSENV_PK_SIGN || op == KMSENV_PK_DECRYPT ||
           op == KMSENV_PK_DERIVE || op == KMSENV_PK_DIGEST_SIGN;
}

/* A new initialised inner context for op: this fetches the default
 * implementation (and the keymgmt), so only templates are made here. */
static EVP_PKEY_CTX *make_ctx(KMSENV_KEYOBJ *k, enum kmsenv_pk_op op,
                              const char *mdname)
{
    OSSL_LIB_CTX *lc = kmsenv_inner_libctx(k->env);
    EVP_PKEY *pk = op_private(op) ? k->pk.priv : k->pk.pub;
    EVP_PKEY_CTX *c = NULL;
    int ok = 0;

    if (lc == NULL || pk == NULL)
        return NULL;
    if ((c = EVP_PKEY_CTX_new_from_pkey(lc, pk, NULL)) == NULL)
        return NULL;
    if (op == KMSENV_PK_DIGEST_SIGN || op == KMSENV_PK_DIGEST_VERIFY) {
        /* c itself becomes the template (the EVP_MD_CTX is only a shell
         * that keeps it, EVP_MD_CTX_set_pkey_ctx), not a dup of the
         * EVP_MD_CTX's own: OpenSSL 3.0's ECDSA and EdDSA dupctx copy a
         * pointer into the source's AlgorithmIdentifier buffer, so every
         * dup must come from a context that lives as long as the key. */
        EVP_MD_CTX *m = EVP_MD_CTX_new();

        if (*mdname == '\0')
            mdname = NULL;
        if (m != NULL) {
            EVP_MD_CTX_set_pkey_ctx(m, c);
            ok = (op == KMSENV_PK_DIGEST_SIGN
                      ? EVP_DigestSignInit_ex(m, NULL, mdname, lc, NULL, pk,
                                              NULL)
                      : EVP_DigestVerifyInit_ex(m, NULL, mdname, lc, NULL, pk,
                                                NULL)) > 0 &&
                 EVP_MD_CTX_get_pkey_ctx(m) == c;
            EVP_MD_CTX_free(m); /* keeps c */
        }
    }
    switch (op) {
    case KMSENV_PK_SIGN:
        ok = EVP_PKEY_sign_init(c) > 0;
        break;
    case KMSENV_PK_VERIFY:
        ok = EVP_PKEY_verify_init(c) > 0;
        break;
    case KMSENV_PK_ENCRYPT:
        ok = EVP_PKEY_encrypt_init(c) > 0;
        break;
    case KMSENV_PK_DECRYPT:
        ok = EVP_PKEY_decrypt_init(c) > 0;
        break;
    case KMSENV_PK_DERIVE:
        ok = EVP_PKEY_derive_init(c) > 0;
        break;
    default:
        break;
    }
    if (!ok) {
        EVP_PKEY_CTX_free(c);
        c = NULL;
    }
    return c;
}

static void trace_made(KMSENV_KEYOBJ *k, enum kmsenv_pk_op op,
                       const char *mdname, const char *what)
{
    kmsenv_log(2, "inner %s: %s%s%s for %s", what, op_names[op],
               *mdname ? " " : "", mdname, k->name);
}

/* The template for op (made and published on first use). */
static EVP_PKEY_CTX *plain_template(KMSENV_KEYOBJ *k, KMSENV_PK_OPS *o,
                                    enum kmsenv_pk_op op)
{
    EVP_PKEY_CTX *t = atomic_load_explicit(&o->tmpl[op], memory_order_acquire);

    if (t != NULL || !CRYPTO_THREAD_write_lock(k->lock))
        return t;
    t = atomic_load_explicit(&o->tmpl[op], memory_order_relaxed);
    if (t == NULL && (t = make_ctx(k, op, "")) != NULL) {
        atomic_store_explicit(&o->tmpl[op], t, memory_order_release);
        trace_made(k, op, "", "template");
    }
    CRYPTO_THREAD_unlock(k->lock);
    return t;
}

static EVP_PKEY_CTX *find_digest(KMSENV_PK_OPS *o, int j, const char *mdname)
{
    size_t i, n = atomic_load_explicit(&o->ndig[j], memory_order_acquire);

    for (i = 0; i < n; i++)
        if (strcasecmp(o->dig[j][i].mdname, mdname) == 0)
            return o->dig[j][i].ctx;
    return NULL;
}

/* The digest's own name for mdname (once per new name and key): "" for
 * none. 0 when unknown or too long (the caller then goes without a
 * template, and the default implementation reports the digest). */
static int canon_name(KMSENV_KEYOBJ *k, const char *mdname, char canon[48])
{
    OSSL_LIB_CTX *lc;
    EVP_MD *md;
    const char *n;
    int ok;

    *canon = '\0';
    if (*mdname == '\0')
        return 1;
    if ((lc = kmsenv_inner_libctx(k->env)) == NULL)
        return 0;
    ERR_set_mark();
    md = EVP_MD_fetch(lc, mdname, NULL);
    ERR_pop_to_mark();
    n = md != NULL ? EVP_MD_get0_name(md) : NULL;
    ok = n != NULL && strlen(n) < 48;
    if (ok)
        strcpy(canon, n);
    EVP_MD_free(md);
    return ok;
}

/* The template for a digest kind and name; *full set when there is no room
 * for another (the caller then makes a context of its own). */
static EVP_PKEY_CTX *digest_template(KMSENV_KEYOBJ *k, KMSENV_PK_OPS *o,
                                     enum kmsenv_pk_op op, const char *mdname,
                                     int *full)
{
    int j = op == KMSENV_PK_DIGEST_VERIFY;
    EVP_PKEY_CTX *t = find_digest(o, j, mdname);
    PK_DIGEST_TMPL *e;
    char canon[sizeof(e->canon)];
    size_t i, n;

    *full = 0;
    if (t != NULL || !CRYPTO_THREAD_write_lock(k->lock))
        return t;
    n = atomic_load_explicit(&o->ndig[j], memory_order_relaxed);
    if ((t = find_digest(o, j, mdname)) != NULL)
        goto done;
    if (n == PK_MAX_DIGESTS || strlen(mdname) >= sizeof(e->mdname) ||
        !canon_name(k, mdname, canon)) {
        *full = 1;
        goto done;
    }
    e = &o->dig[j][n];
    /* Another name of a digest seen before ("SHA256", "SHA2-256") shares
     * its template. */
    for (i = 0; i < n && t == NULL; i++)
        if (strcmp(o->dig[j][i].canon, canon) == 0) {
            t = o->dig[j][i].ctx;
            e->alias = 1;
        }
    if (t == NULL && (t = make_ctx(k, op, mdname)) == NULL)
        goto done;
    strcpy(e->mdname, mdname);
    strcpy(e->canon, canon);
    e->ctx = t;
    atomic_store_explicit(&o->ndig[j], n + 1, memory_order_release);
    trace_made(k, op, mdname, e->alias ? "template alias" : "template");
done:
    CRYPTO_THREAD_unlock(k->lock);
    return t;
}

EVP_PKEY_CTX *kmsenv_privkey_op_ctx(KMSENV_KEYOBJ *k, enum kmsenv_pk_op op,
                                    const char *mdname)
{
    KMSENV_PK_OPS *o;
    EVP_PKEY_CTX *t = NULL, *c = NULL;
    int full = 0;

    if (mdname == NULL || op < KMSENV_PK_DIGEST_SIGN)
        mdname = "";
    if ((op_private(op) ? k->pk.priv : k->pk.pub) == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s: no %s key here for %s",
                     k->name, op_private(op) ? "private" : "public",
                     op_names[op]);
        return NULL;
    }
    if ((o = get_ops(k)) != NULL)
        t = op < KMSENV_PK_DIGEST_SIGN
                ? plain_template(k, o, op)
                : digest_template(k, o, op, mdname, &full);
    if (t != NULL)
        c = EVP_PKEY_CTX_dup(t);
    else if (full && (c = make_ctx(k, op, mdname)) != NULL)
        trace_made(k, op, mdname, "context (no template room)");
    if (c == NULL)
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "%s: cannot start %s%s%s",
                     k->name, op_names[op], *mdname ? " with " : "", mdname);
    return c;
}
