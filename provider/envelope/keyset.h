/* SPDX-License-Identifier: Apache-2.0 */
/* Keyset format (docs/FORMATS.md "Keyset"). A keyset holds versions of
 * 256-bit data keys. The keys are sealed (AES-256-GCM) under a keyset key
 * (KSK); the KSK is stored only wrapped, once per KEK. Everything outside the
 * sealed section is authenticated as its AAD. A keyset is a sealed
 * container (envelope/sealed.h) whose payload is the version keys. */
#ifndef KMSENV_ENVELOPE_KEYSET_H
#define KMSENV_ENVELOPE_KEYSET_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>
#include "envelope/sealed.h"
#include "util/bytes.h"
#include "util/secmem.h"

#define KMSENV_KS_MAGIC "KMSENVKS"
#define KMSENV_KS_FORMAT 1
#define KMSENV_KS_ALG_XAES256GCM 1
#define KMSENV_KEY_LEN 32
#define KMSENV_KS_MAX_VERSIONS 4096
#define KMSENV_KS_MAX_WRAPS KMSENV_MAX_WRAPS

enum kmsenv_state {
    KMSENV_STATE_PRIMARY = 1,
    KMSENV_STATE_DECRYPT_ONLY = 2,
    KMSENV_STATE_DISABLED = 3
};

typedef struct {
    uint32_t id;
    uint8_t state;
    uint64_t created;
} KMSENV_VERSION;

typedef struct {
    unsigned char id[16];
    uint64_t created;
    uint8_t alg;
    uint32_t primary;
    size_t nver;
    KMSENV_VERSION *ver;
    KMSENV_SECRET keys; /* nver * 32 bytes once unsealed */
    size_t nwrap;
    KMSENV_WRAP *wrap;
    KMSENV_SECRET ksk; /* 32 bytes once unwrapped */
    /* between decode and unseal: */
    unsigned char *aad, *sealed;
    size_t aadlen, sealedlen;
} KMSENV_KEYSET;

const char *kmsenv_state_name(int state);
int kmsenv_state_from_name(const char *name);

void kmsenv_keyset_init(KMSENV_KEYSET *ks);
void kmsenv_keyset_free(KMSENV_KEYSET *ks);
/* Deep copy of an open keyset (keys and KSK into new secure memory). */
int kmsenv_keyset_copy(KMSENV_KEYSET *dst, const KMSENV_KEYSET *src);

/* True if der looks like a kmsenv keyset (magic check only, no error). */
int kmsenv_keyset_sniff(const unsigned char *der, size_t len);
/* Parses the public part. name is used in error messages. */
int kmsenv_keyset_decode(KMSENV_KEYSET *ks, const unsigned char *der,
                         size_t len, const char *name);
/* With ks->ksk set: authenticates everything and opens the keys. */
int kmsenv_keyset_unseal(KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                         const char *name);
/* Serialises (re-sealing under ks->ksk). nonce: NULL for random. */
int kmsenv_keyset_encode(const KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                         const unsigned char *nonce, KMSENV_BUF *der);

int kmsenv_keyset_find(const KMSENV_KEYSET *ks, uint32_t id);
const unsigned char *kmsenv_keyset_key(const KMSENV_KEYSET *ks, int idx);
/* Adds a version (key NULL: fresh random key) and makes it primary. */
int kmsenv_keyset_add_version(KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                              const unsigned char *key, uint64_t now);
int kmsenv_keyset_set_state(KMSENV_KEYSET *ks, uint32_t id, int state);

#endif
