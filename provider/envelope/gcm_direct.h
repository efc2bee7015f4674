/* SPDX-License-Identifier: Apache-2.0 */
/* AES-256-GCM for the enc stream with a fixed key and a new IV per frame.
 * Where it can, it calls the implementing provider's cipher functions
 * (provider-cipher(7)) directly, found once per stream through the public
 * OSSL_PROVIDER_query_operation: per frame, EVP would redo the IV length
 * query, parameter lookups and checks that cost as much as 4 KiB of GCM
 * does in 10%. Otherwise (no unique match, or a function missing) it goes
 * through EVP_CIPHER_CTX, with the same results. */
#ifndef KMSENV_ENVELOPE_GCM_DIRECT_H
#define KMSENV_ENVELOPE_GCM_DIRECT_H

#include <stddef.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

typedef struct {
    EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *ectx; /* the EVP path */
    void *pctx;           /* the direct path: the provider's context */
    OSSL_FUNC_cipher_freectx_fn *freectx;
    OSSL_FUNC_cipher_encrypt_init_fn *einit;
    OSSL_FUNC_cipher_decrypt_init_fn *dinit;
    OSSL_FUNC_cipher_update_fn *update;
    OSSL_FUNC_cipher_final_fn *final;
    OSSL_FUNC_cipher_get_ctx_params_fn *get;
    OSSL_FUNC_cipher_set_ctx_params_fn *set;
    OSSL_PARAM tagp[2];
    int enc;
} KMSENV_GCM;

/* Fetches AES-256-GCM from libctx and prepares the direct path unless
 * evp_only (tests) or it is unavailable; kept across keys. */
int kmsenv_gcm_setup(KMSENV_GCM *g, OSSL_LIB_CTX *libctx, int evp_only);
int kmsenv_gcm_is_direct(const KMSENV_GCM *g);
/* The key (32 bytes) and direction; the context keeps no other copy. */
int kmsenv_gcm_key(KMSENV_GCM *g, const unsigned char *key, int enc);
/* Per frame: the 12-byte IV, the AAD, the data (any number of updates),
 * then seal (encrypt: the 16-byte tag out) or open (decrypt: 1 only if
 * the tag matches). */
int kmsenv_gcm_iv(KMSENV_GCM *g, const unsigned char *iv);
int kmsenv_gcm_aad(KMSENV_GCM *g, const unsigned char *aad, size_t len);
int kmsenv_gcm_update(KMSENV_GCM *g, unsigned char *out,
                      const unsigned char *in, size_t len);
int kmsenv_gcm_seal(KMSENV_GCM *g, unsigned char *tag);
int kmsenv_gcm_open(KMSENV_GCM *g, const unsigned char *tag);
void kmsenv_gcm_free(KMSENV_GCM *g);

#endif
