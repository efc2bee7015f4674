/* SPDX-License-Identifier: Apache-2.0 */
/* XAES-256-GCM key derivation (C2SP XAES-256-GCM): a 256-bit key and a
 * 192-bit nonce give a per-message AES-256-GCM key and a 96-bit GCM nonce.
 * The AES-ECB context holding the key schedule is per instance and not
 * thread-safe; copy it with kmsenv_xaes_dup for another thread. */
#ifndef KMSENV_ENVELOPE_XAES_H
#define KMSENV_ENVELOPE_XAES_H

#include <openssl/evp.h>

#define KMSENV_XAES_NONCE_LEN 24

typedef struct {
    EVP_CIPHER_CTX *ecb; /* AES-256-ECB keyed with the version key */
    unsigned char *k1;   /* 16 bytes CMAC subkey, secure memory */
} KMSENV_XAES;

int kmsenv_xaes_init(KMSENV_XAES *x, OSSL_LIB_CTX *libctx,
                     const unsigned char key[32]);
int kmsenv_xaes_dup(KMSENV_XAES *dst, const KMSENV_XAES *src);
/* kx receives the 32-byte derived key; the GCM nonce is nonce[12..23]. */
int kmsenv_xaes_derive(KMSENV_XAES *x, const unsigned char nonce[24],
                       unsigned char kx[32]);
void kmsenv_xaes_cleanup(KMSENV_XAES *x);

#endif
