/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the probes (kms_probe, param_probe): load a key the way
 * applications do, through OSSL_STORE. Header-only. */
#ifndef KMSENV_TEST_PROBE_H
#define KMSENV_TEST_PROBE_H

#include <openssl/evp.h>
#include <openssl/store.h>

/* The first private key at uri, or NULL (errors left on the queue). */
static EVP_PKEY *probe_load(const char *uri)
{
    OSSL_STORE_CTX *s = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    EVP_PKEY *pk = NULL;

    while (s != NULL && pk == NULL && !OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *i = OSSL_STORE_load(s);

        if (i != NULL && OSSL_STORE_INFO_get_type(i) == OSSL_STORE_INFO_PKEY)
            pk = OSSL_STORE_INFO_get1_PKEY(i);
        OSSL_STORE_INFO_free(i);
        if (i == NULL)
            break;
    }
    OSSL_STORE_close(s);
    return pk;
}

#endif
