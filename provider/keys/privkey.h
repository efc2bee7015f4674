/* SPDX-License-Identifier: Apache-2.0 */
/* Wrapped private keys: the second kind of key object
 * (KMSENV_KIND_PRIVKEY). Loading unwraps once through the keyring and
 * holds the private key as an inner EVP_PKEY in a provider-private library
 * context that loads only the default provider (never the provider's own
 * child context, which contains kmsenv itself), so every operation after
 * the load runs locally with the default implementations. */
#ifndef KMSENV_KEYS_PRIVKEY_H
#define KMSENV_KEYS_PRIVKEY_H

#include <openssl/evp.h>
#include "keys/keyobj.h"

typedef struct kmsenv_inner_st KMSENV_INNER;

/* The per-provider holder of the inner library context (made lazily,
 * once; freed with the provider). */
KMSENV_INNER *kmsenv_inner_new(void);
void kmsenv_inner_free(KMSENV_INNER *in);
/* The inner library context (default provider only), or NULL with an
 * error raised. */
OSSL_LIB_CTX *kmsenv_inner_libctx(const KMSENV_KEYS_ENV *env);

/* Decodes a wrapped private key and unwraps it: exactly one keyring call.
 * redirect overrides the provider's when not NULL. */
KMSENV_KEYOBJ *kmsenv_privkey_load(const KMSENV_KEYS_ENV *env,
                                   const unsigned char *der, size_t len,
                                   const char *origin, const char *redirect);
/* Rewraps a wrapped private key under the keyring spec (KEKs separated by
 * ';'): the new keyring is opened (KEK policy) before anything else, then
 * one unwrap with the recorded KEKs, the container key wrapped under the
 * new KEKs with the same KEK context (kmsenv_keyring_rewrap: ReEncrypt
 * where possible; flags KMSENV_REWRAP_*), the PKCS#8 resealed with a fresh
 * nonce. The public header (type, created, purpose, SPKI) is unchanged. A
 * loaded object whose encoding is the rewrapped key. */
KMSENV_KEYOBJ *kmsenv_privkey_rewrap(const KMSENV_KEYS_ENV *env,
                                     const unsigned char *der, size_t len,
                                     const char *origin, const char *spec,
                                     int flags);
/* A public-only object of type from the public key in der (no unwrap). */
KMSENV_KEYOBJ *kmsenv_privkey_load_public(const KMSENV_KEYS_ENV *env,
                                          const unsigned char *der, size_t len);
/* Wraps a private key given as DER (PKCS#8 or traditional) under the
 * keyring spec: a new object holding it and its wrapped encoding. type is
 * the expected type (0: any supported). */
KMSENV_KEYOBJ *kmsenv_privkey_wrap(const KMSENV_KEYS_ENV *env, int type,
                                   const unsigned char *key, size_t keylen,
                                   const char *spec);
/* A public-only object of type from an imported public key (the caller's
 * EVP_PKEY in the inner library context; taken over). */
KMSENV_KEYOBJ *kmsenv_privkey_from_public(const KMSENV_KEYS_ENV *env, int type,
                                          EVP_PKEY *pub);
KMSENV_KEYOBJ *kmsenv_privkey_dup(KMSENV_KEYOBJ *k);
/* Writes the public description (never private numbers). */
int kmsenv_privkey_describe(KMSENV_KEYOBJ *k, BIO *out);

/* Inner operations. Each key object keeps one initialised inner
 * EVP_PKEY_CTX per operation kind (per digest name for the digest kinds),
 * made on first use with the default implementation fetched then, once,
 * and published atomically; an operation gets a dup of it, so no
 * operation after the first fetches a method, looks up a keymgmt or
 * exports the key (EVP_PKEY_CTX_dup only takes references and calls the
 * default implementation's dupctx). Templates are never changed after
 * publication, so concurrent dups of one template are safe. */
enum kmsenv_pk_op {
    KMSENV_PK_SIGN,          /* private key */
    KMSENV_PK_VERIFY,        /* public key */
    KMSENV_PK_ENCRYPT,       /* public key */
    KMSENV_PK_DECRYPT,       /* private key */
    KMSENV_PK_DERIVE,        /* private key, no peer */
    KMSENV_PK_DIGEST_SIGN,   /* private key, per digest name */
    KMSENV_PK_DIGEST_VERIFY, /* public key, per digest name */
    KMSENV_PK_NOPS
};
/* The templates of one object (opaque; freed with the object). */
typedef struct kmsenv_pk_ops_st KMSENV_PK_OPS;
void kmsenv_privkey_ops_free(KMSENV_PK_OPS *ops);
/* A new inner context for op on k (the caller frees it): a dup of the
 * template. mdname (digest kinds only; NULL or "" for the key's default
 * or none) selects the digest. NULL with an error naming k raised when
 * the object lacks the key op needs or the default provider refuses. */
EVP_PKEY_CTX *kmsenv_privkey_op_ctx(KMSENV_KEYOBJ *k, enum kmsenv_pk_op op,
                                    const char *mdname);

#endif
