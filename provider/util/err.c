#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <openssl/err.h>

static const OSSL_ITEM reason_strings[] = {
    {KMSENV_R_INTERNAL, "kmsenv internal error"},
    {KMSENV_R_OUT_OF_MEMORY, "out of memory"},
    {KMSENV_R_BAD_PARAMETER, "invalid parameter"},
    {KMSENV_R_BAD_CONTEXT, "invalid encryption context"},
    {KMSENV_R_BAD_KEYRING_SPEC, "invalid keyring specification"},
    {KMSENV_R_NO_KEYRING,
     "no keyring configured (set -pkeyopt keyring:SPEC, the provider "
     "'keyring' config key, or KMSENV_KEYRING)"},
    {KMSENV_R_KEK_UNAVAILABLE, "key-encryption key unavailable"},
    {KMSENV_R_KEK_PERMISSIONS,
     "key-encryption key file has unsafe permissions"},
    {KMSENV_R_WRONG_KEK, "wrapped under a different key-encryption key"},
    {KMSENV_R_UNWRAP_FAILED, "could not unwrap the keyset key"},
    {KMSENV_R_BAD_KEYSET, "malformed keyset"},
    {KMSENV_R_KEYSET_TAMPERED,
     "keyset failed authentication (tampered or corrupt)"},
    {KMSENV_R_UNKNOWN_VERSION, "key version not in keyset"},
    {KMSENV_R_VERSION_DISABLED, "key version is disabled"},
    {KMSENV_R_BAD_RECORD, "malformed record"},
    {KMSENV_R_RECORD_AUTH_FAILED,
     "record authentication failed (wrong encryption context or keyset, or "
     "tampered record)"},
    {KMSENV_R_BUFFER_TOO_SMALL, "output buffer too small"},
    {KMSENV_R_EXPORT_REFUSED, "export of secret key material refused"},
    {KMSENV_R_BAD_URI, "invalid kmsenv: URI"},
    {KMSENV_R_IO_ERROR, "I/O error"},
    {KMSENV_R_CRYPTO_FAILURE, "cryptographic operation failed"},
    {KMSENV_R_KMS_ERROR, "KMS request failed"},
    {KMSENV_R_KMS_UNREACHABLE,
     "KMS unreachable or unavailable (network, timeout, throttling or "
     "server error after retries)"},
    {KMSENV_R_KMS_AUTH_FAILED,
     "KMS rejected the request's credentials or signature"},
    {KMSENV_R_NO_CREDENTIALS, "no usable AWS credentials"},
    {KMSENV_R_KEK_NOT_ALLOWED,
     "key-encryption key not allowed by the KEK policy (allowed_keks)"},
    {0, NULL}};

static const OSSL_CORE_HANDLE *core_handle;
static OSSL_FUNC_core_new_error_fn *core_new_error;
static OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
static OSSL_FUNC_core_vset_error_fn *core_vset_error;

const OSSL_ITEM *kmsenv_reason_strings(void)
{
    return reason_strings;
}

void kmsenv_err_set_core(const OSSL_CORE_HANDLE *handle,
                         OSSL_FUNC_core_new_error_fn *new_error,
                         OSSL_FUNC_core_set_error_debug_fn *set_debug,
                         OSSL_FUNC_core_vset_error_fn *vset_error)
{
    core_handle = handle;
    core_new_error = new_error;
    core_set_error_debug = set_debug;
    core_vset_error = vset_error;
}

void kmsenv_err_clear_core(const OSSL_CORE_HANDLE *handle)
{
    if (core_handle == handle) {
        core_handle = NULL;
        core_new_error = NULL;
        core_set_error_debug = NULL;
        core_vset_error = NULL;
    }
}

static void core_error(uint32_t reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    core_vset_error(core_handle, reason, fmt, ap);
    va_end(ap);
}

void kmsenv_raise_at(const char *file, int line, const char *func, int reason,
                     const char *fmt, ...)
{
    va_list ap;
    char raw[1024], msg[2048];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    /* Names, specs and KMS messages come from files and servers. */
    kmsenv_escape(msg, sizeof(msg), raw,
                  (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1);
    kmsenv_log(1, "error: %s (%s:%d)", msg, func, line);

    if (core_handle != NULL && core_new_error != NULL &&
        core_set_error_debug != NULL && core_vset_error != NULL) {
        core_new_error(core_handle);
        core_set_error_debug(core_handle, file, line, func);
        core_error((uint32_t)reason, "%s", msg);
    } else {
        ERR_new();
        ERR_set_debug(file, line, func);
        ERR_set_error(ERR_LIB_USER, reason, "%s", msg);
    }
}
