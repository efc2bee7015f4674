/* SPDX-License-Identifier: Apache-2.0 */
/* The sealed container shared by kmsenv's at-rest formats (docs/FORMATS.md
 * "Sealed container"): a DER OCTET STRING whose content is
 *     magic(8) | format u8 | kind-specific header | wrap list | seal
 * The seal is AES-256-GCM of the secret payload under a 32-byte container
 * key; everything before the seal is its AAD. The container key itself is
 * stored only wrapped, once per KEK, in the wrap list. Keysets use it now;
 * wrapped private keys will reuse it. */
#ifndef KMSENV_ENVELOPE_SEALED_H
#define KMSENV_ENVELOPE_SEALED_H

#include <stddef.h>
#include <openssl/types.h>
#include "util/bytes.h"
#include "util/secmem.h"

#define KMSENV_SEAL_NONCE_LEN 12
#define KMSENV_SEAL_TAG_LEN 16
#define KMSENV_SEAL_OVERHEAD (KMSENV_SEAL_NONCE_LEN + KMSENV_SEAL_TAG_LEN)
#define KMSENV_MAX_WRAPS 16

/* One wrapped copy of the container key: which KEK (spec + fingerprint),
 * and the blob that KEK's keyring produced. */
typedef struct {
    char *spec;
    unsigned char fp[255]; /* fp_len is a u8 on disk */
    size_t fplen;
    unsigned char *blob;
    size_t bloblen;
} KMSENV_WRAP;

void kmsenv_wrap_free(KMSENV_WRAP *w);
int kmsenv_wrap_copy(KMSENV_WRAP *dst, const KMSENV_WRAP *src);
void kmsenv_wraps_free(KMSENV_WRAP *w, size_t n);

/* DER OCTET STRING wrapper, minimal length, nothing after it. */
int kmsenv_der_unwrap(const unsigned char *der, size_t len,
                      const unsigned char **body, size_t *bodylen);
void kmsenv_der_wrap_header(KMSENV_BUF *w, size_t len);

/* Wrap list: nwrap u8 (1..16), then per copy
 * spec_len u16 | spec | fp_len u8 | fp | blob_len u16 | blob.
 * Read raises KMSENV_R_BAD_KEYSET naming name and the entry. */
int kmsenv_wraps_read(KMSENV_RD *r, KMSENV_WRAP **wraps, size_t *n,
                      const char *name);
/* 1 if the list can be written as read would accept it; else raises. */
int kmsenv_wraps_check(const KMSENV_WRAP *wraps, size_t n);
void kmsenv_wraps_write(KMSENV_BUF *w, const KMSENV_WRAP *wraps, size_t n);

/* Appends nonce | AES-256-GCM(key, pt, aad) | tag to out; nonce NULL means
 * a fresh random one (every encode must use a fresh nonce). */
int kmsenv_seal(OSSL_LIB_CTX *libctx, const KMSENV_SECRET *key,
                const unsigned char *nonce, const unsigned char *aad,
                size_t aadlen, const unsigned char *pt, size_t ptlen,
                KMSENV_BUF *out);
/* Opens nonce | ct | tag into pt (secure memory, ptlen = sealedlen -
 * KMSENV_SEAL_OVERHEAD); 0 without an error raised if the tag fails, so
 * the caller names what failed. */
int kmsenv_unseal(OSSL_LIB_CTX *libctx, const KMSENV_SECRET *key,
                  const unsigned char *aad, size_t aadlen,
                  const unsigned char *sealed, size_t sealedlen,
                  KMSENV_SECRET *pt);

#endif
