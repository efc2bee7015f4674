/* SPDX-License-Identifier: Apache-2.0 */
/* Wrapped private key format (docs/FORMATS.md "Wrapped private key"): a
 * sealed container (envelope/sealed.h) whose header carries the key type,
 * the purpose and the public key (SubjectPublicKeyInfo DER) in the clear
 * and authenticated, and whose sealed payload is the private key as
 * PKCS#8 DER. The container key is wrapped under the KEK context of
 * kmsenv_wrapkey_context: bound to the public key and the purpose. Pure:
 * no I/O, no OSSL_DISPATCH. */
#ifndef KMSENV_ENVELOPE_WRAPKEY_H
#define KMSENV_ENVELOPE_WRAPKEY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>
#include "envelope/context.h"
#include "envelope/sealed.h"
#include "util/bytes.h"
#include "util/secmem.h"

#define KMSENV_WK_MAGIC "KMSENVPK"
#define KMSENV_WK_FORMAT 1
#define KMSENV_WK_DEFAULT_PURPOSE "private-key"
#define KMSENV_WK_CK_LEN 32
#define KMSENV_WK_MAX_PKCS8 16384

enum kmsenv_wk_type {
    KMSENV_WK_RSA = 1,
    KMSENV_WK_RSA_PSS = 2,
    KMSENV_WK_EC = 3,
    KMSENV_WK_ED25519 = 4
};

typedef struct {
    uint8_t type;
    uint64_t created;
    char purpose[256]; /* 1..255 bytes, no NUL */
    unsigned char *spki;
    size_t spkilen;
    size_t nwrap;
    KMSENV_WRAP *wrap;
    KMSENV_SECRET ck;    /* container key, 32 bytes once unwrapped */
    KMSENV_SECRET pkcs8; /* the private key once unsealed */
    /* between decode and unseal: */
    unsigned char *aad, *sealed;
    size_t aadlen, sealedlen;
} KMSENV_WRAPKEY;

/* The OpenSSL key type name of a type ("RSA", "RSA-PSS", "EC", "ED25519"),
 * NULL for an unknown one; and back (0 if not supported). */
const char *kmsenv_wk_type_name(int type);
int kmsenv_wk_type_from_name(const char *name);

void kmsenv_wrapkey_init(KMSENV_WRAPKEY *wk);
void kmsenv_wrapkey_free(KMSENV_WRAPKEY *wk);

/* True if der looks like a wrapped private key (magic only, no error). */
int kmsenv_wrapkey_sniff(const unsigned char *der, size_t len);
/* The key type of a wrapped key's DER without decoding the rest (0 if not
 * one); no error raised. */
int kmsenv_wrapkey_peek_type(const unsigned char *der, size_t len);
/* Parses the public part (type, purpose, SPKI, wrap list); name is used in
 * error messages. KMSENV_R_BAD_KEYSET on malformed input. */
int kmsenv_wrapkey_decode(KMSENV_WRAPKEY *wk, const unsigned char *der,
                          size_t len, const char *name);
/* With wk->ck set: checks the tag and opens the PKCS#8 (secure memory).
 * KMSENV_R_KEYSET_TAMPERED if the tag fails. */
int kmsenv_wrapkey_unseal(KMSENV_WRAPKEY *wk, OSSL_LIB_CTX *libctx,
                          const char *name);
/* Serialises with wk->ck and wk->pkcs8 (nonce NULL: random). */
int kmsenv_wrapkey_encode(const KMSENV_WRAPKEY *wk, OSSL_LIB_CTX *libctx,
                          const unsigned char *nonce, KMSENV_BUF *der);

/* The KEK encryption context of a wrapped key:
 *   kmsenv:pubkey  = lower-case hex of SHA-256(SPKI DER)
 *   kmsenv:purpose = purpose */
int kmsenv_wrapkey_context(KMSENV_CONTEXT *ectx, OSSL_LIB_CTX *libctx,
                           const unsigned char *spki, size_t spkilen,
                           const char *purpose);

#endif
