/* SPDX-License-Identifier: Apache-2.0 */
/* Inner operation templates of a wrapped private key: one initialised
 * EVP_PKEY_CTX per operation kind (and digest), made once in the key's
 * private default-only library context and dup'ed per operation, so no
 * handshake fetches a method. */
#include "keys/privkey.h"
#include "util/err.h"
#include "util/log.h"

#include <string.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>

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
