/* SPDX-License-Identifier: Apache-2.0 */
/* Context-bound records (docs/FORMATS.md "Record"):
 *   "KE" | 0x01 | version u32 | nonce[24] | ciphertext | tag[16]
 * XAES-256-GCM under the version key; AAD = header || keyset id || context
 * encoding. */
#ifndef KMSENV_ENVELOPE_RECORD_H
#define KMSENV_ENVELOPE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "envelope/xaes.h"

#define KMSENV_REC_MAGIC0 0x4B /* 'K' */
#define KMSENV_REC_MAGIC1 0x45 /* 'E' */
#define KMSENV_REC_FORMAT 0x01
#define KMSENV_REC_HDR_LEN 31
#define KMSENV_REC_TAG_LEN 16
#define KMSENV_REC_OVERHEAD (KMSENV_REC_HDR_LEN + KMSENV_REC_TAG_LEN)
#define KMSENV_KEYSET_ID_LEN 16

/* Per-thread working state for one version key. */
/* Random nonces are drawn from the DRBG this many at a time: one RAND call
 * costs about as much as a whole small record. A pool is never used across
 * fork() (its process id is checked), so no two processes share nonces. */
#define KMSENV_REC_NONCE_POOL 16

typedef struct {
    uint32_t version;
    KMSENV_XAES xaes;
    EVP_CIPHER *gcm;
    EVP_CIPHER_CTX *gctx;
    unsigned char pool[KMSENV_REC_NONCE_POOL * KMSENV_XAES_NONCE_LEN];
    size_t pool_left; /* unused nonces at the end of pool */
    long pool_pid;    /* the process that drew them */
} KMSENV_REC_KEY;

int kmsenv_rec_key_init(KMSENV_REC_KEY *k, OSSL_LIB_CTX *libctx,
                        uint32_t version, const KMSENV_XAES *xaes);
/* The same with an AES-256-GCM implementation fetched once by the caller
 * (held with an extra reference): nothing is fetched per working key. */
int kmsenv_rec_key_init_with(KMSENV_REC_KEY *k, EVP_CIPHER *gcm,
                             uint32_t version, const KMSENV_XAES *xaes);
void kmsenv_rec_key_cleanup(KMSENV_REC_KEY *k);

/* Reads the version from a record header; 0 with an error if malformed. */
int kmsenv_record_peek(const unsigned char *in, size_t inlen,
                       uint32_t *version);

/* nonce may be NULL (random, the normal case) or 24 fixed bytes (vectors).
 * out must hold inlen + KMSENV_REC_OVERHEAD bytes. */
int kmsenv_record_seal(KMSENV_REC_KEY *k, OSSL_LIB_CTX *libctx,
                       const unsigned char keyset_id[16],
                       const unsigned char *ctxenc, size_t ctxenclen,
                       const unsigned char *nonce, const unsigned char *in,
                       size_t inlen, unsigned char *out, size_t *outlen);
/* out must hold inlen - KMSENV_REC_OVERHEAD bytes. Nothing usable is left in
 * out unless the tag verified. */
int kmsenv_record_open(KMSENV_REC_KEY *k, const unsigned char keyset_id[16],
                       const unsigned char *ctxenc, size_t ctxenclen,
                       const unsigned char *in, size_t inlen,
                       unsigned char *out, size_t *outlen);

#endif
