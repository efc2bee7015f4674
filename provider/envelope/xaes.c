/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/xaes.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>

static int ecb_blocks(EVP_CIPHER_CTX *ecb, const unsigned char *in,
                      unsigned char *out, int len)
{
    int outl = 0;
    return EVP_EncryptUpdate(ecb, out, &outl, in, len) && outl == len;
}

int kmsenv_xaes_init(KMSENV_XAES *x, OSSL_LIB_CTX *libctx,
                     const unsigned char key[32])
{
    unsigned char zero[16] = {0}, l[16];
    EVP_CIPHER *aes = NULL;
    int i, ok = 0;

    memset(x, 0, sizeof(*x));
    x->k1 = OPENSSL_secure_zalloc(16);
    x->ecb = EVP_CIPHER_CTX_new();
    aes = EVP_CIPHER_fetch(libctx, "AES-256-ECB", NULL);
    if (x->k1 == NULL || x->ecb == NULL || aes == NULL ||
        !EVP_EncryptInit_ex2(x->ecb, aes, key, NULL, NULL) ||
        !EVP_CIPHER_CTX_set_padding(x->ecb, 0) ||
        !ecb_blocks(x->ecb, zero, l, 16))
        goto end;
    /* K1 = L << 1, xor 0x87 into the last byte if the MSB of L was set */
    for (i = 0; i < 15; i++)
        x->k1[i] = (unsigned char)((l[i] << 1) | (l[i + 1] >> 7));
    x->k1[15] = (unsigned char)((l[15] << 1) ^ ((l[0] & 0x80) ? 0x87 : 0));
    ok = 1;
end:
    OPENSSL_cleanse(l, sizeof(l));
    EVP_CIPHER_free(aes);
    if (!ok) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE,
                     "AES-256-ECB unavailable for XAES-256-GCM (is the "
                     "default provider loaded?)");
        kmsenv_xaes_cleanup(x);
    }
    return ok;
}

int kmsenv_xaes_dup(KMSENV_XAES *dst, const KMSENV_XAES *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->k1 = OPENSSL_secure_malloc(16);
    dst->ecb = EVP_CIPHER_CTX_new();
    if (dst->k1 == NULL || dst->ecb == NULL ||
        !EVP_CIPHER_CTX_copy(dst->ecb, src->ecb)) {
        kmsenv_xaes_cleanup(dst);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "copying XAES state");
        return 0;
    }
    memcpy(dst->k1, src->k1, 16);
    return 1;
}

int kmsenv_xaes_derive(KMSENV_XAES *x, const unsigned char nonce[24],
                       unsigned char kx[32])
{
    unsigned char m[32];
    int i, ok;

    m[0] = 0x00, m[1] = 0x01, m[2] = 'X', m[3] = 0x00;
    memcpy(m + 4, nonce, 12);
    m[16] = 0x00, m[17] = 0x02, m[18] = 'X', m[19] = 0x00;
    memcpy(m + 20, nonce, 12);
    for (i = 0; i < 16; i++) {
        m[i] ^= x->k1[i];
        m[16 + i] ^= x->k1[i];
    }
    ok = ecb_blocks(x->ecb, m, kx, 32);
    OPENSSL_cleanse(m, sizeof(m));
    if (!ok)
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "XAES key derivation");
    return ok;
}

void kmsenv_xaes_cleanup(KMSENV_XAES *x)
{
    EVP_CIPHER_CTX_free(x->ecb);
    if (x->k1 != NULL)
        OPENSSL_secure_clear_free(x->k1, 16);
    memset(x, 0, sizeof(*x));
}
