/* SPDX-License-Identifier: Apache-2.0 */
/* Error raising for all layers. Each provider instance registers its core
 * callbacks at init and removes them at teardown; outside a provider (unit
 * tests) errors go to libcrypto's queue under ERR_LIB_USER. Never pass
 * secrets to these. */
#ifndef KMSENV_UTIL_ERR_H
#define KMSENV_UTIL_ERR_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

enum kmsenv_reason {
    KMSENV_R_INTERNAL = 1,
    KMSENV_R_OUT_OF_MEMORY,
    KMSENV_R_BAD_PARAMETER,
    KMSENV_R_BAD_CONTEXT,
    KMSENV_R_BAD_KEYRING_SPEC,
    KMSENV_R_NO_KEYRING,
    KMSENV_R_KEK_UNAVAILABLE,
    KMSENV_R_KEK_PERMISSIONS,
    KMSENV_R_WRONG_KEK,
    KMSENV_R_UNWRAP_FAILED,
    KMSENV_R_BAD_KEYSET,
    KMSENV_R_KEYSET_TAMPERED,
    KMSENV_R_UNKNOWN_VERSION,
    KMSENV_R_VERSION_DISABLED,
    KMSENV_R_BAD_RECORD,
    KMSENV_R_RECORD_AUTH_FAILED,
    KMSENV_R_BUFFER_TOO_SMALL,
    KMSENV_R_EXPORT_REFUSED,
    KMSENV_R_BAD_URI,
    KMSENV_R_IO_ERROR,
    KMSENV_R_CRYPTO_FAILURE,
    KMSENV_R_KMS_ERROR,
    KMSENV_R_KMS_UNREACHABLE,
    KMSENV_R_KMS_AUTH_FAILED,
    KMSENV_R_NO_CREDENTIALS,
    KMSENV_R_KEK_NOT_ALLOWED,
    KMSENV_R_MAX
};

/* Reason strings, terminated by {0, NULL}, for get_reason_strings. */
const OSSL_ITEM *kmsenv_reason_strings(void);

void kmsenv_err_set_core(const OSSL_CORE_HANDLE *handle,
                         OSSL_FUNC_core_new_error_fn *new_error,
                         OSSL_FUNC_core_set_error_debug_fn *set_debug,
                         OSSL_FUNC_core_vset_error_fn *vset_error);
void kmsenv_err_clear_core(const OSSL_CORE_HANDLE *handle);
/* Errors this thread raises go to this instance (set at dispatch entries);
 * an instance no longer live is never used. */
void kmsenv_err_use(const OSSL_CORE_HANDLE *handle);

void kmsenv_raise_at(const char *file, int line, const char *func, int reason,
                     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define KMSENV_RAISE(reason, ...)                                              \
    kmsenv_raise_at(__FILE__, __LINE__, __func__, (reason), __VA_ARGS__)

#endif
