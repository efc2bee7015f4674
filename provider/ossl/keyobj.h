/* The KMSENV-KEYSET key object: an opened keyset (data keys in secure
 * memory), its wrapped encoding, and per-version XAES templates. Shared by
 * keymgmt, decoders, the store and the record cipher. */
#ifndef KMSENV_OSSL_KEYOBJ_H
#define KMSENV_OSSL_KEYOBJ_H

#include <openssl/crypto.h>
#include "envelope/keyset.h"
#include "envelope/xaes.h"
#include "ossl/provider.h"

typedef struct {
    KMSENV_PROV *prov;
    CRYPTO_RWLOCK *lock;
    KMSENV_KEYSET ks;
    KMSENV_XAES *xaes; /* one per version, same order as ks.ver */
    size_t nxaes;
    unsigned char *der; /* wrapped encoding (what encoders write) */
    size_t derlen;
    char name[96]; /* "keyset <id>" for messages */
    unsigned int generation;
    /* Set before the object is published (load, generate), never changed:
     * read without the lock. Everything else above the lock protects. */
    int loaded;
} KMSENV_KEYOBJ;

KMSENV_KEYOBJ *kmsenv_keyobj_new(KMSENV_PROV *prov);
void kmsenv_keyobj_free(KMSENV_KEYOBJ *k);

/* Decodes a wrapped keyset and unwraps it: exactly one keyring call.
 * redirect overrides the provider's redirect setting when not NULL. */
KMSENV_KEYOBJ *kmsenv_keyobj_load(KMSENV_PROV *prov, const unsigned char *der,
                                  size_t len, const char *origin,
                                  const char *redirect);
/* Creates a new keyset with one primary version under keyring spec. */
KMSENV_KEYOBJ *kmsenv_keyobj_generate(KMSENV_PROV *prov, const char *spec);

/* Mutations (take the write lock, re-encode). */
int kmsenv_keyobj_rotate(KMSENV_KEYOBJ *k);
int kmsenv_keyobj_set_state(KMSENV_KEYOBJ *k, uint32_t version, int state);
int kmsenv_keyobj_rewrap(KMSENV_KEYOBJ *k, const char *spec);

/* Encoded wrapped keyset, copied out under the read lock. */
int kmsenv_keyobj_get_der(KMSENV_KEYOBJ *k, unsigned char **der, size_t *len);
/* Writes the metadata description (no secrets). */
int kmsenv_keyobj_describe(KMSENV_KEYOBJ *k, BIO *out);

#endif
