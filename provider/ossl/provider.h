/* SPDX-License-Identifier: Apache-2.0 */
/* Provider-wide context and the algorithm implementations' entry points. */
#ifndef KMSENV_OSSL_PROVIDER_H
#define KMSENV_OSSL_PROVIDER_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/types.h>
#include "keys/keyobj.h"
#include "keys/registry.h"
#include "kms/keyring.h"
#include "util/err.h"
#include "util/log.h"

/* Settings: openssl.cnf provider section, then the environment wins. */
typedef struct {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx;      /* child of the application's library context */
    char *keyring;             /* keyring / KMSENV_KEYRING */
    char *keyset;              /* keyset / KMSENV_KEYSET */
    char *context;             /* context / KMSENV_CONTEXT */
    char *redirect;            /* redirect / KMSENV_REDIRECT */
    char *allowed_keks;        /* allowed_keks / KMSENV_ALLOWED_KEKS */
    char *debug;               /* debug / KMSENV_DEBUG */
    int http_ref;              /* holds a kmsenv_http_global_ref */
    KMSENV_KMS_ENV kms;        /* what keyrings see: libctx, each keyring's
                                  config object (its own settings), the policy */
    KMSENV_KEYS_ENV keys;      /* what key objects see: libctx, kms, redirect */
    KMSENV_REGISTRY *registry; /* keysets loaded once (openssl enc) */
} KMSENV_PROV;

/* At every dispatch entry: errors this thread raises go to this provider
 * instance, and KMSENV_DEBUG level 2 logs the call. */
static inline void kmsenv_enter(const OSSL_CORE_HANDLE *handle, const char *fn)
{
    kmsenv_err_use(handle);
    if (kmsenv_log_enabled(2))
        kmsenv_log(2, "dispatch %s", fn);
}
#define KMSENV_ENTER(prov) kmsenv_enter((prov)->handle, __func__)
#define KMSENV_ENTER_KEY(k) kmsenv_enter((k)->env->handle, __func__)

extern const OSSL_DISPATCH kmsenv_keyset_keymgmt_functions[];
extern const OSSL_DISPATCH kmsenv_keyset_asym_cipher_functions[];
extern const OSSL_DISPATCH kmsenv_pem2der_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_der2der_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_der2keyset_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_keyset2pem_encoder_functions[];
extern const OSSL_DISPATCH kmsenv_keyset2der_encoder_functions[];
extern const OSSL_DISPATCH kmsenv_keyset2text_encoder_functions[];
extern const OSSL_DISPATCH kmsenv_keyset2pub_encoder_functions[];
extern const OSSL_DISPATCH kmsenv_store_functions[];
extern const OSSL_DISPATCH kmsenv_stream_cipher_functions[];
/* wrapped private keys */
extern const OSSL_DISPATCH kmsenv_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH kmsenv_rsapss_keymgmt_functions[];
extern const OSSL_DISPATCH kmsenv_ec_keymgmt_functions[];
extern const OSSL_DISPATCH kmsenv_ed25519_keymgmt_functions[];
extern const OSSL_DISPATCH kmsenv_rsa_signature_functions[];
extern const OSSL_DISPATCH kmsenv_ecdsa_signature_functions[];
extern const OSSL_DISPATCH kmsenv_ed25519_signature_functions[];
extern const OSSL_DISPATCH kmsenv_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH kmsenv_ecdh_keyexch_functions[];
extern const OSSL_DISPATCH kmsenv_der2rsa_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_der2rsapss_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_der2ec_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_der2ed25519_decoder_functions[];
extern const OSSL_DISPATCH kmsenv_priv2spki_pem_encoder_functions[];
extern const OSSL_DISPATCH kmsenv_priv2spki_der_encoder_functions[];

#endif
