/* SPDX-License-Identifier: Apache-2.0 */
/* Key objects: reference counted, locked, named, holding their wrapped form
 * (what encoders write) and never exporting a secret. Kinds: an opened
 * keyset (data keys in secure memory, per-version XAES templates, leases
 * for records); wrapped private keys next. Shared by keymgmt, decoders,
 * the store and the ciphers. No OSSL_DISPATCH here. */
#ifndef KMSENV_KEYS_KEYOBJ_H
#define KMSENV_KEYS_KEYOBJ_H

#include <stdatomic.h>
#include <openssl/crypto.h>
#include "envelope/keyset.h"
#include "envelope/record.h"
#include "envelope/xaes.h"
#include "kms/keyring.h"

/* A lease: a caller's own working record key for one version. It stays
 * valid while the keyset's versions and states are unchanged, so a caller
 * that keeps its lease pays one atomic load per record and shares no lock
 * or cache line with other threads. */
typedef struct {
    KMSENV_REC_KEY rk;
    unsigned int generation;
    int valid, is_primary; /* is_primary: its version was the primary */
} KMSENV_LEASE;

/* Leases given back by freed contexts wait here for the next context of the
 * same thread (slot chosen by thread), so a fresh EVP_PKEY_CTX per record
 * does not rebuild its working key. One slot per cache line. */
#define KMSENV_LEASE_SLOTS 16
typedef struct {
    _Atomic(KMSENV_LEASE *) lease;
    char pad[64 - sizeof(void *)];
} KMSENV_LEASE_SLOT;

/* What key objects need from the provider instance: its library context,
 * its keyrings' settings and the KEK redirect setting. */
typedef struct {
    const OSSL_CORE_HANDLE *handle; /* where this instance's errors go */
    OSSL_LIB_CTX *libctx;
    const KMSENV_KMS_ENV *kms;
    const char *redirect; /* FROM=TO[;...] or NULL */
    /* The provider-private library context for wrapped private keys
     * (keys/privkey.c); made on first use. */
    struct kmsenv_inner_st *inner;
} KMSENV_KEYS_ENV;

enum kmsenv_key_kind { KMSENV_KIND_KEYSET = 1, KMSENV_KIND_PRIVKEY = 2 };

#define KMSENV_WRAPPED_PEM_LABEL "KMSENV WRAPPED PRIVATE KEY"
#define KMSENV_WRAPPED_STRUCTURE "kmsenv-wrapped-key"

#define KMSENV_KEYSET_NAME "KMSENV-KEYSET"
#define KMSENV_KEYSET_PEM_LABEL "KMSENV KEYSET"
#define KMSENV_KEYSET_STRUCTURE "kmsenv-keyset"

typedef struct {
    const KMSENV_KEYS_ENV *env;
    int kind;
    _Atomic int refs;
    CRYPTO_RWLOCK *lock;
    KMSENV_KEYSET ks;
    KMSENV_XAES *xaes; /* one per version, same order as ks.ver */
    size_t nxaes;
    unsigned char *der; /* wrapped encoding (what encoders write) */
    size_t derlen;
    char name[96];   /* "keyset <id>" for messages */
    EVP_CIPHER *gcm; /* AES-256-GCM, fetched once at load */
    /* Bumped (under the write lock) by every change of versions or
     * states; leases compare it without taking the lock. */
    _Atomic unsigned int generation;
    /* Set before the object is published (load, generate), never changed:
     * read without the lock. Everything else above the lock protects. */
    int loaded;
    KMSENV_LEASE_SLOT parked[KMSENV_LEASE_SLOTS];
    /* KMSENV_KIND_PRIVKEY (keys/privkey.h): immutable once published. The
     * public key always, the private key once unwrapped (NULL for a
     * public-only object), both in the inner library context. */
    struct {
        int type; /* enum kmsenv_wk_type */
        unsigned char *spki;
        size_t spkilen;
        EVP_PKEY *pub, *priv;
        /* Inner operation templates (keys/privkey.h), made on first use. */
        _Atomic(struct kmsenv_pk_ops_st *) ops;
    } pk;
} KMSENV_KEYOBJ;

/* Reference counted: new and up_ref give a reference, free drops one. */
KMSENV_KEYOBJ *kmsenv_keyobj_new(const KMSENV_KEYS_ENV *env);
int kmsenv_keyobj_up_ref(KMSENV_KEYOBJ *k);
void kmsenv_keyobj_free(KMSENV_KEYOBJ *k);
/* An independent copy (EVP_PKEY_dup): changing one leaves the other. */
KMSENV_KEYOBJ *kmsenv_keyobj_dup(KMSENV_KEYOBJ *k);

/* Decodes a wrapped keyset and unwraps it: exactly one keyring call.
 * redirect overrides the provider's redirect setting when not NULL. */
KMSENV_KEYOBJ *kmsenv_keyobj_load(const KMSENV_KEYS_ENV *env,
                                  const unsigned char *der, size_t len,
                                  const char *origin, const char *redirect);
/* Creates a new keyset with one primary version under keyring spec. */
KMSENV_KEYOBJ *kmsenv_keyobj_generate(const KMSENV_KEYS_ENV *env,
                                      const char *spec);

/* Mutations (take the write lock, re-encode). */
int kmsenv_keyobj_rotate(KMSENV_KEYOBJ *k);
int kmsenv_keyobj_set_state(KMSENV_KEYOBJ *k, uint32_t version, int state);
/* flags: KMSENV_REWRAP_* (kms/keyring.h) */
int kmsenv_keyobj_rewrap(KMSENV_KEYOBJ *k, const char *spec, int flags);

/* Makes l the working key of the primary version (primary set) or of
 * version: reuses l when still current, else rebuilds it under the read
 * lock. Raises UNKNOWN_VERSION or VERSION_DISABLED naming the keyset. */
int kmsenv_keyobj_lease(KMSENV_KEYOBJ *k, int primary, uint32_t version,
                        KMSENV_LEASE *l);
void kmsenv_lease_release(KMSENV_LEASE *l);
/* A lease for a new context: one this thread parked on k, else a new empty
 * one (NULL when out of memory). Park gives it back when the context is
 * freed (k owns parked leases and frees them with itself). */
KMSENV_LEASE *kmsenv_keyobj_lease_take(KMSENV_KEYOBJ *k);
void kmsenv_keyobj_lease_park(KMSENV_KEYOBJ *k, KMSENV_LEASE *l);

/* Calls fn with the 32-byte data key of version (primary set: of the
 * primary version, whose id is stored in *version), under the read lock: the
 * key stays in the keyset's secure memory and fn must not keep it. Raises
 * UNKNOWN_VERSION or VERSION_DISABLED naming the keyset. */
int kmsenv_keyobj_with_dek(KMSENV_KEYOBJ *k, int primary, uint32_t *version,
                           int (*fn)(void *arg, uint32_t version,
                                     const unsigned char *dek),
                           void *arg);

/* The keyset id (immutable) and, read under the lock, the primary version
 * and the number of versions. */
const unsigned char *kmsenv_keyobj_id(const KMSENV_KEYOBJ *k);
int kmsenv_keyobj_versions(KMSENV_KEYOBJ *k, uint32_t *primary, size_t *n);

/* Encoded wrapped keyset, copied out under the read lock. */
int kmsenv_keyobj_get_der(KMSENV_KEYOBJ *k, unsigned char **der, size_t *len);
/* Writes the metadata description (no secrets). */
int kmsenv_keyobj_describe(KMSENV_KEYOBJ *k, BIO *out);

#endif /* KMSENV_KEYS_KEYOBJ_H */
