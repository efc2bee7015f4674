/* SPDX-License-Identifier: Apache-2.0 */
/* Tries every C export path on a loaded keyset and reports what each did:
 * "refused", "wrapped" (output equals the wrapped keyset) or "LEAK?" (any
 * other output). Used by test/01-keyset.t and test/05-noleak.t.
 *
 * With --wrapped, the same for a wrapped private key, and more
 * (export_probe_wrapped.c): used by test/24-wrapped-keys.t. */
#include <stdio.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "export_probe.h"

static void hexdump(const char *what, const unsigned char *p, size_t n)
{
    size_t i;

    printf("%s-hex: ", what);
    for (i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    OSSL_PROVIDER *def, *kms;
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx;
    BIO *in, *mem;
    OSSL_PARAM *params = NULL;
    unsigned char *der = NULL, *wrapped = NULL;
    long wlen;
    int len;
    char *name = NULL, *hdr = NULL;
    BUF_MEM *bm;

    if (argc > 2 && strcmp(argv[2], "--wrapped") == 0)
        return wrapped_main(argc, argv);
    if (argc != 3)
        return 2;
    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    def = OSSL_PROVIDER_load(NULL, "default");
    kms = OSSL_PROVIDER_load(NULL, "kmsenv");
    in = BIO_new_file(argv[2], "r");
    if (def == NULL || kms == NULL || in == NULL ||
        !PEM_read_bio(in, &name, &hdr, &wrapped, &wlen) || BIO_reset(in) != 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                         OSSL_KEYMGMT_SELECT_ALL, NULL, NULL);
    if (!OSSL_DECODER_from_bio(dctx, in) || pkey == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    printf("todata: %s\n", EVP_PKEY_todata(pkey, EVP_PKEY_KEYPAIR, &params)
                               ? "LEAK?"
                               : "refused");
    if (params != NULL) {
        OSSL_PARAM *p;
        for (p = params; p->key != NULL; p++)
            if (p->data_type == OSSL_PARAM_OCTET_STRING ||
                p->data_type == OSSL_PARAM_UTF8_STRING)
                hexdump(p->key, p->data, p->data_size);
    }
    OSSL_PARAM_free(params);

    len = i2d_PrivateKey(pkey, &der);
    if (len <= 0)
        printf("i2d_PrivateKey: refused\n");
    else {
        printf("i2d_PrivateKey: %s\n",
               (long)len == wlen && memcmp(der, wrapped, (size_t)len) == 0
                   ? "wrapped"
                   : "LEAK?");
        hexdump("i2d_PrivateKey", der, (size_t)len);
    }
    OPENSSL_free(der);

    mem = BIO_new(BIO_s_mem());
    if (PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL)) {
        BIO_get_mem_ptr(mem, &bm);
        printf("PEM_write_bio_PrivateKey: %s\n",
               strstr(bm->data, "KMSENV KEYSET") != NULL ? "wrapped" : "LEAK?");
        fwrite(bm->data, 1, bm->length, stdout);
    } else
        printf("PEM_write_bio_PrivateKey: refused\n");
    BIO_free(mem);

    mem = BIO_new(BIO_s_mem());
    if (PEM_write_bio_PUBKEY(mem, pkey)) {
        BIO_get_mem_ptr(mem, &bm);
        printf("PEM_write_bio_PUBKEY: LEAK?\n");
        fwrite(bm->data, 1, bm->length, stdout);
    } else
        printf("PEM_write_bio_PUBKEY: refused\n");
    BIO_free(mem);

    ERR_clear_error();
    EVP_PKEY_free(pkey);
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(in);
    OPENSSL_free(name);
    OPENSSL_free(hdr);
    OPENSSL_free(wrapped);
    OSSL_PROVIDER_unload(kms);
    OSSL_PROVIDER_unload(def);
    return 0;
}
