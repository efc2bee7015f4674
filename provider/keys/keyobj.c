/* SPDX-License-Identifier: Apache-2.0 */
#include "keys/keyobj.h"
#include "keys/privkey.h"
#include "envelope/wrapkey.h"
#include "kms/keyring.h"
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/rand.h>

KMSENV_KEYOBJ *kmsenv_keyobj_new(const KMSENV_KEYS_ENV *env)
{
    KMSENV_KEYOBJ *k = OPENSSL_zalloc(sizeof(*k));

    if (k == NULL)
        return NULL;
    k->env = env;
    k->kind = KMSENV_KIND_KEYSET;
    atomic_init(&k->refs, 1);
    k->lock = CRYPTO_THREAD_lock_new();
    if (k->lock == NULL) {
        OPENSSL_free(k);
        return NULL;
    }
    kmsenv_keyset_init(&k->ks);
    snprintf(k->name, sizeof(k->name), "keyset (empty)");
    return k;
}

static void free_xaes(KMSENV_XAES *x, size_t n)
{
    size_t i;

    for (i = 0; x != NULL && i < n; i++)
        kmsenv_xaes_cleanup(&x[i]);
    OPENSSL_free(x);
}

static void lease_free(KMSENV_LEASE *l)
{
    if (l != NULL) {
        kmsenv_lease_release(l);
        OPENSSL_free(l);
    }
}

void kmsenv_keyobj_free(KMSENV_KEYOBJ *k)
{
    size_t i;

    if (k == NULL ||
        atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) > 1)
        return;
    for (i = 0; i < KMSENV_LEASE_SLOTS; i++)
        lease_free(atomic_exchange(&k->parked[i].lease, NULL));
    free_xaes(k->xaes, k->nxaes);
    kmsenv_keyset_free(&k->ks);
    kmsenv_privkey_ops_free(atomic_load(&k->pk.ops));
    EVP_PKEY_free(k->pk.pub);
    EVP_PKEY_free(k->pk.priv);
    OPENSSL_free(k->pk.spki);
    EVP_CIPHER_free(k->gcm);
    OPENSSL_free(k->der);
    CRYPTO_THREAD_lock_free(k->lock);
    OPENSSL_free(k);
}

int kmsenv_keyobj_up_ref(KMSENV_KEYOBJ *k)
{
    atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return 1;
}

static int refresh(KMSENV_KEYOBJ *k, int reencode);

KMSENV_KEYOBJ *kmsenv_keyobj_dup(KMSENV_KEYOBJ *k)
{
    KMSENV_KEYOBJ *d;
    int ok;

    if (k->kind == KMSENV_KIND_PRIVKEY)
        return kmsenv_privkey_dup(k);
    if ((d = kmsenv_keyobj_new(k->env)) == NULL)
        return NULL;
    if (!CRYPTO_THREAD_read_lock(k->lock)) {
        kmsenv_keyobj_free(d);
        return NULL;
    }
    memcpy(d->name, k->name, sizeof(d->name));
    ok = k->loaded && kmsenv_keyset_copy(&d->ks, &k->ks) &&
         (d->der = OPENSSL_memdup(k->der, k->derlen)) != NULL;
    d->derlen = k->derlen;
    CRYPTO_THREAD_unlock(k->lock);
    if (!ok || !refresh(d, 0)) {
        kmsenv_keyobj_free(d);
        return NULL;
    }
    d->loaded = 1;
    return d;
}

static void set_name(KMSENV_KEYOBJ *k, const char *origin)
{
    char hex[33];

    kmsenv_hex(hex, k->ks.id, 16);
    if (origin != NULL && *origin != '\0')
        snprintf(k->name, sizeof(k->name), "keyset %.16s (%.60s)", hex, origin);
    else
        snprintf(k->name, sizeof(k->name), "keyset %.16s", hex);
}

/* Rebuilds the XAES templates and the wrapped encoding after a change. */
static int refresh(KMSENV_KEYOBJ *k, int reencode)
{
    KMSENV_XAES *x = OPENSSL_zalloc(k->ks.nver * sizeof(*x));
    size_t i;
    KMSENV_BUF w;

    if (x == NULL)
        return 0;
    if (k->gcm == NULL && (k->gcm = EVP_CIPHER_fetch(
                               k->env->libctx, "AES-256-GCM", NULL)) == NULL) {
        OPENSSL_free(x);
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                     "AES-256-GCM unavailable (is the default provider "
                     "loaded?)");
        return 0;
    }
    for (i = 0; i < k->ks.nver; i++)
        if (!kmsenv_xaes_init(&x[i], k->env->libctx,
                              kmsenv_keyset_key(&k->ks, (int)i))) {
            free_xaes(x, k->ks.nver);
            return 0;
        }
    if (reencode) {
        kmsenv_buf_init(&w, 0);
        if (!kmsenv_keyset_encode(&k->ks, k->env->libctx, NULL, &w)) {
            kmsenv_buf_free(&w);
            free_xaes(x, k->ks.nver);
            return 0;
        }
        OPENSSL_free(k->der);
        k->der = w.p;
        k->derlen = w.len;
    }
    free_xaes(k->xaes, k->nxaes);
    k->xaes = x;
    k->nxaes = k->ks.nver;
    atomic_fetch_add_explicit(&k->generation, 1, memory_order_release);
    return 1;
}

KMSENV_KEYOBJ *kmsenv_keyobj_load(const KMSENV_KEYS_ENV *env,
                                  const unsigned char *der, size_t len,
                                  const char *origin, const char *redirect)
{
    KMSENV_KEYOBJ *k = kmsenv_keyobj_new(env);
    KMSENV_CONTEXT ectx;
    const char *label = origin != NULL ? origin : "keyset";

    if (kmsenv_wrapkey_sniff(der, len)) {
        kmsenv_keyobj_free(k);
        return kmsenv_privkey_load(env, der, len, origin, redirect);
    }
    if (k == NULL)
        return NULL;
    kmsenv_ctx_init(&ectx);
    if (!kmsenv_keyset_decode(&k->ks, der, len, label))
        goto err;
    set_name(k, origin);
    if (!kmsenv_keyring_keyset_context(&ectx, k->ks.id, "keyset") ||
        !kmsenv_keyring_unwrap(env->kms, k->ks.wrap, k->ks.nwrap,
                               redirect != NULL ? redirect : env->redirect,
                               &ectx, KMSENV_KEY_LEN, &k->ks.ksk, k->name) ||
        !kmsenv_keyset_unseal(&k->ks, env->libctx, k->name))
        goto err;
    k->der = OPENSSL_memdup(der, len);
    k->derlen = len;
    if (k->der == NULL || !refresh(k, 0))
        goto err;
    k->loaded = 1;
    kmsenv_log(2, "loaded %s: %zu versions, primary %u", k->name, k->ks.nver,
               k->ks.primary);
    kmsenv_ctx_free(&ectx);
    return k;
err:
    kmsenv_ctx_free(&ectx);
    kmsenv_keyobj_free(k);
    return NULL;
}

KMSENV_KEYOBJ *kmsenv_keyobj_generate(const KMSENV_KEYS_ENV *env,
                                      const char *spec)
{
    KMSENV_KEYOBJ *k = kmsenv_keyobj_new(env);
    KMSENV_KEYRING *kr = NULL;
    KMSENV_CONTEXT ectx;

    if (k == NULL)
        return NULL;
    kmsenv_ctx_init(&ectx);
    if (spec == NULL || *spec == '\0') {
        KMSENV_RAISE(KMSENV_R_NO_KEYRING, "cannot create a keyset");
        goto err;
    }
    k->ks.created = (uint64_t)time(NULL);
    k->ks.alg = KMSENV_KS_ALG_XAES256GCM;
    if (RAND_bytes_ex(env->libctx, k->ks.id, sizeof(k->ks.id), 0) <= 0)
        goto err;
    set_name(k, NULL);
    if (!kmsenv_keyring_open(env->kms, spec, &kr) ||
        !kmsenv_keyring_keyset_context(&ectx, k->ks.id, "keyset") ||
        !kmsenv_keyring_generate(kr, &ectx, KMSENV_KEY_LEN, &k->ks.ksk,
                                 &k->ks.wrap, &k->ks.nwrap) ||
        !kmsenv_keyset_add_version(&k->ks, env->libctx, NULL, k->ks.created) ||
        !refresh(k, 1))
        goto err;
    k->loaded = 1;
    kmsenv_log(1, "created %s under %s", k->name, spec);
    kmsenv_keyring_free(kr);
    kmsenv_ctx_free(&ectx);
    return k;
err:
    kmsenv_keyring_free(kr);
    kmsenv_ctx_free(&ectx);
    kmsenv_keyobj_free(k);
    return NULL;
}

/* Runs a mutation on a copy so that a failure leaves the key unchanged. */
static int mutate(KMSENV_KEYOBJ *k, int (*fn)(KMSENV_KEYOBJ *, const void *),
                  const void *arg)
{
    int ok;

    if (!k->loaded) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s is not loaded", k->name);
        return 0;
    }
    if (!CRYPTO_THREAD_write_lock(k->lock))
        return 0;
    ok = fn(k, arg);
    CRYPTO_THREAD_unlock(k->lock);
    return ok;
}

static int do_rotate(KMSENV_KEYOBJ *k, const void *arg)
{
    size_t n = k->ks.nver;
    uint32_t primary = k->ks.primary;
    size_t i;

    if (!kmsenv_keyset_add_version(&k->ks, k->env->libctx, NULL,
                                   (uint64_t)time(NULL)))
        return 0;
    if (!refresh(k, 1)) {
        /* roll back to the previous state */
        k->ks.nver = n;
        for (i = 0; i < n; i++)
            if (k->ks.ver[i].id == primary)
                k->ks.ver[i].state = KMSENV_STATE_PRIMARY;
        k->ks.primary = primary;
        return 0;
    }
    kmsenv_log(1, "rotated %s: primary is now version %u", k->name,
               k->ks.primary);
    return 1;
}

int kmsenv_keyobj_rotate(KMSENV_KEYOBJ *k)
{
    return mutate(k, do_rotate, NULL);
}

struct state_arg {
    uint32_t version;
    int state;
};

static int do_set_state(KMSENV_KEYOBJ *k, const void *arg)
{
    const struct state_arg *a = arg;
    KMSENV_VERSION *saved =
        OPENSSL_memdup(k->ks.ver, k->ks.nver * sizeof(*saved));
    uint32_t primary = k->ks.primary;

    if (saved == NULL)
        return 0;
    if (!kmsenv_keyset_set_state(&k->ks, a->version, a->state) ||
        !refresh(k, 1)) {
        memcpy(k->ks.ver, saved, k->ks.nver * sizeof(*saved));
        k->ks.primary = primary;
        OPENSSL_free(saved);
        return 0;
    }
    OPENSSL_free(saved);
    kmsenv_log(1, "%s: version %u is now %s", k->name, a->version,
               kmsenv_state_name(a->state));
    return 1;
}

int kmsenv_keyobj_set_state(KMSENV_KEYOBJ *k, uint32_t version, int state)
{
    struct state_arg a = {version, state};

    return mutate(k, do_set_state, &a);
}

struct rewrap_arg {
    const char *spec;
    int flags;
};

static int do_rewrap(KMSENV_KEYOBJ *k, const void *arg)
{
    const struct rewrap_arg *a = arg;
    const char *spec = a->spec;
    KMSENV_KEYRING *kr = NULL;
    KMSENV_CONTEXT ectx;
    KMSENV_WRAP *ws = NULL, *oldw = k->ks.wrap;
    size_t nws = 0, oldn = k->ks.nwrap;
    int ok;

    kmsenv_ctx_init(&ectx);
    ok = kmsenv_keyring_open(k->env->kms, spec, &kr) &&
         kmsenv_keyring_keyset_context(&ectx, k->ks.id, "keyset") &&
         kmsenv_keyring_rewrap(kr, &ectx, oldw, oldn, &k->ks.ksk, a->flags, &ws,
                               &nws);
    if (ok) {
        k->ks.wrap = ws;
        k->ks.nwrap = nws;
        ok = refresh(k, 1);
        if (!ok) {
            k->ks.wrap = oldw;
            k->ks.nwrap = oldn;
            kmsenv_wraps_free(ws, nws);
        } else {
            kmsenv_wraps_free(oldw, oldn);
            kmsenv_log(1, "rewrapped %s under %s", k->name, spec);
        }
    }
    kmsenv_keyring_free(kr);
    kmsenv_ctx_free(&ectx);
    return ok;
}

int kmsenv_keyobj_rewrap(KMSENV_KEYOBJ *k, const char *spec, int flags)
{
    struct rewrap_arg a = {spec, flags};

    return mutate(k, do_rewrap, &a);
}

void kmsenv_lease_release(KMSENV_LEASE *l)
{
    if (l->valid)
        kmsenv_rec_key_cleanup(&l->rk);
    l->valid = 0;
}

int kmsenv_keyobj_lease(KMSENV_KEYOBJ *k, int primary, uint32_t version,
                        KMSENV_LEASE *l)
{
    unsigned int gen =
        atomic_load_explicit(&k->generation, memory_order_acquire);
    int idx, ok = 0;

    /* The generation covers every change of versions, states and the
     * primary: a lease of the same generation is still right. A lease made
     * for the primary serves records of that version too. */
    if (l->valid && l->generation == gen &&
        (primary ? l->is_primary : l->rk.version == version))
        return 1;
    if (!CRYPTO_THREAD_read_lock(k->lock))
        return 0;
    if (primary)
        version = k->ks.primary;
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
    kmsenv_lease_release(l);
    if (!kmsenv_rec_key_init_with(&l->rk, k->gcm, version, &k->xaes[idx]))
        goto done;
    l->valid = 1;
    l->is_primary = version == k->ks.primary;
    l->generation = atomic_load_explicit(&k->generation, memory_order_relaxed);
    ok = 1;
done:
    CRYPTO_THREAD_unlock(k->lock);
    return ok;
}

/* This thread's slot, from its thread id (no thread-local storage in the
 * module: sanitizers trip over dynamic TLS of dlopen'd objects). */
static size_t slot_of_thread(void)
{
    pthread_t self = pthread_self();
    uint64_t id = 0, h;

    memcpy(&id, &self, sizeof(self) < sizeof(id) ? sizeof(self) : sizeof(id));
    h = id * UINT64_C(0x9E3779B97F4A7C15);

    return (size_t)(h >> 60) % KMSENV_LEASE_SLOTS;
}

/* A thread uses the two slots slot and slot ^ 1: an encrypting and a
 * decrypting context made and freed together both find theirs. */
KMSENV_LEASE *kmsenv_keyobj_lease_take(KMSENV_KEYOBJ *k)
{
    size_t s = slot_of_thread();
    KMSENV_LEASE *l = atomic_exchange_explicit(&k->parked[s].lease, NULL,
                                               memory_order_acquire);

    if (l == NULL)
        l = atomic_exchange_explicit(&k->parked[s ^ 1].lease, NULL,
                                     memory_order_acquire);
    if (l == NULL && (l = OPENSSL_zalloc(sizeof(*l))) == NULL)
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "%s: record working key", k->name);
    return l;
}

void kmsenv_keyobj_lease_park(KMSENV_KEYOBJ *k, KMSENV_LEASE *l)
{
    size_t s = slot_of_thread();
    KMSENV_LEASE *none = NULL;

    if (l != NULL && !l->valid) {
        OPENSSL_free(l);
        return;
    }
    if (l == NULL || atomic_compare_exchange_strong_explicit(
                         &k->parked[s].lease, &none, l, memory_order_acq_rel,
                         memory_order_relaxed))
        return;
    none = NULL;
    if (atomic_compare_exchange_strong_explicit(&k->parked[s ^ 1].lease, &none,
                                                l, memory_order_acq_rel,
                                                memory_order_relaxed))
        return;
    lease_free(
        atomic_exchange_explicit(&k->parked[s].lease, l, memory_order_acq_rel));
}

const unsigned char *kmsenv_keyobj_id(const KMSENV_KEYOBJ *k)
{
    return k->ks.id;
}

int kmsenv_keyobj_with_dek(KMSENV_KEYOBJ *k, int primary, uint32_t *version,
                           int (*fn)(void *arg, uint32_t version,
                                     const unsigned char *dek),
                           void *arg)
{
    int idx, ok = 0;

    if (!CRYPTO_THREAD_read_lock(k->lock))
        return 0;
    if (primary)
        *version = k->ks.primary;
    idx = kmsenv_keyset_find(&k->ks, *version);
    if (idx < 0) {
        KMSENV_RAISE(KMSENV_R_UNKNOWN_VERSION,
                     "%s: stream is under version %u, which this keyset does "
                     "not have (versions 1..%u): another keyset?",
                     k->name, *version,
                     k->ks.nver ? k->ks.ver[k->ks.nver - 1].id : 0);
        goto done;
    }
    if (k->ks.ver[idx].state == KMSENV_STATE_DISABLED) {
        KMSENV_RAISE(KMSENV_R_VERSION_DISABLED,
                     "%s: version %u is disabled (kmsenv enable --version %u "
                     "re-enables it)",
                     k->name, *version, *version);
        goto done;
    }
    ok = fn(arg, *version, kmsenv_keyset_key(&k->ks, idx));
done:
    CRYPTO_THREAD_unlock(k->lock);
    return ok;
}

int kmsenv_keyobj_versions(KMSENV_KEYOBJ *k, uint32_t *primary, size_t *n)
{
    if (!CRYPTO_THREAD_read_lock(k->lock))
        return 0;
    *primary = k->ks.primary;
    *n = k->ks.nver;
    CRYPTO_THREAD_unlock(k->lock);
    return 1;
}

int kmsenv_keyobj_get_der(KMSENV_KEYOBJ *k, unsigned char **der, size_t *len)
{
    int ok;

    if (!CRYPTO_THREAD_read_lock(k->lock))
        return 0;
    *der = k->der != NULL ? OPENSSL_memdup(k->der, k->derlen) : NULL;
    *len = k->derlen;
    ok = *der != NULL;
    CRYPTO_THREAD_unlock(k->lock);
    if (!ok)
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s has no encoding", k->name);
    return ok;
}

static void fmt_time(uint64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%llu", (unsigned long long)t);
}

int kmsenv_keyobj_describe(KMSENV_KEYOBJ *k, BIO *out)
{
    char hex[33], when[32], fp[140], spec[1024];
    size_t i;
    int ok = 1;

    if (!CRYPTO_THREAD_read_lock(k->lock))
        return 0;
    kmsenv_hex(hex, k->ks.id, 16);
    fmt_time(k->ks.created, when, sizeof(when));
    ok &= BIO_printf(out, "KMSENV-KEYSET keyset\n") > 0;
    ok &= BIO_printf(out, "id: %s\n", hex) > 0;
    ok &= BIO_printf(
              out, "algorithm: XAES-256-GCM records, AES-256 data keys\n") > 0;
    ok &= BIO_printf(out, "created: %s\n", when) > 0;
    ok &= BIO_printf(out, "primary version: %u\n", k->ks.primary) > 0;
    ok &= BIO_printf(out, "versions: %zu\n", k->ks.nver) > 0;
    for (i = 0; i < k->ks.nver; i++) {
        fmt_time(k->ks.ver[i].created, when, sizeof(when));
        ok &= BIO_printf(out, "  version %u: %s, created %s\n", k->ks.ver[i].id,
                         kmsenv_state_name(k->ks.ver[i].state), when) > 0;
    }
    ok &= BIO_printf(out, "key-encryption keys: %zu\n", k->ks.nwrap) > 0;
    for (i = 0; i < k->ks.nwrap; i++) {
        kmsenv_fp_text(k->ks.wrap[i].fp, k->ks.wrap[i].fplen, fp, sizeof(fp));
        kmsenv_escape(spec, sizeof(spec), k->ks.wrap[i].spec,
                      strlen(k->ks.wrap[i].spec));
        ok &= BIO_printf(out, "  kek %zu: %s, fingerprint %s\n", i + 1, spec,
                         fp) > 0;
    }
    CRYPTO_THREAD_unlock(k->lock);
    return ok;
}
