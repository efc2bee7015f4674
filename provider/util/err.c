/* SPDX-License-Identifier: Apache-2.0 */
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
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
    {KMSENV_R_UNWRAP_FAILED, "could not unwrap the key"},
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

/* Every live provider instance's core handle and callbacks. An error goes
 * to the instance this thread last entered (kmsenv_err_use), else to the
 * newest live one: never to an unloaded instance's handle. */
#define MAX_CORES 16
typedef struct {
    const OSSL_CORE_HANDLE *handle;
    OSSL_FUNC_core_new_error_fn *new_error;
    OSSL_FUNC_core_set_error_debug_fn *set_debug;
    OSSL_FUNC_core_vset_error_fn *vset_error;
} CORE;

static pthread_mutex_t cores_lock = PTHREAD_MUTEX_INITIALIZER;
static CORE cores[MAX_CORES];
static size_t ncores;
/* The instance this thread last entered: a pthread key, not _Thread_local
 * (LeakSanitizer crashes on the dynamic TLS of dlopen'd modules). */
static pthread_key_t current_key;
static pthread_once_t current_once = PTHREAD_ONCE_INIT;

static void current_init(void)
{
    (void)pthread_key_create(&current_key, NULL);
}

static const OSSL_CORE_HANDLE *current(void)
{
    pthread_once(&current_once, current_init);
    return pthread_getspecific(current_key);
}

const OSSL_ITEM *kmsenv_reason_strings(void)
{
    return reason_strings;
}

void kmsenv_err_set_core(const OSSL_CORE_HANDLE *handle,
                         OSSL_FUNC_core_new_error_fn *new_error,
                         OSSL_FUNC_core_set_error_debug_fn *set_debug,
                         OSSL_FUNC_core_vset_error_fn *vset_error)
{
    pthread_mutex_lock(&cores_lock);
    if (ncores == MAX_CORES) /* drop the oldest: errors fall back on it */
        memmove(&cores[0], &cores[1], --ncores * sizeof(cores[0]));
    cores[ncores].handle = handle;
    cores[ncores].new_error = new_error;
    cores[ncores].set_debug = set_debug;
    cores[ncores].vset_error = vset_error;
    ncores++;
    pthread_mutex_unlock(&cores_lock);
}

void kmsenv_err_clear_core(const OSSL_CORE_HANDLE *handle)
{
    size_t i;

    pthread_mutex_lock(&cores_lock);
    for (i = 0; i < ncores; i++)
        if (cores[i].handle == handle) {
            memmove(&cores[i], &cores[i + 1],
                    (ncores - i - 1) * sizeof(cores[0]));
            ncores--;
            break;
        }
    pthread_mutex_unlock(&cores_lock);
}

void kmsenv_err_use(const OSSL_CORE_HANDLE *handle)
{
    pthread_once(&current_once, current_init);
    if (pthread_getspecific(current_key) != handle)
        (void)pthread_setspecific(current_key, handle);
}

/* The instance errors go to now (a copy: usable without the lock). */
static int core_for_error(CORE *out)
{
    const OSSL_CORE_HANDLE *cur = current();
    size_t i;
    int found = 0;

    pthread_mutex_lock(&cores_lock);
    for (i = 0; i < ncores && !found; i++)
        if (cores[i].handle == cur) {
            *out = cores[i];
            found = 1;
        }
    if (!found && ncores > 0) {
        *out = cores[ncores - 1];
        found = 1;
    }
    pthread_mutex_unlock(&cores_lock);
    return found && out->new_error != NULL && out->set_debug != NULL &&
           out->vset_error != NULL;
}

static void core_error(const CORE *c, uint32_t reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    c->vset_error(c->handle, reason, fmt, ap);
    va_end(ap);
}

void kmsenv_raise_at(const char *file, int line, const char *func, int reason,
                     const char *fmt, ...)
{
    va_list ap;
    char raw[1024], msg[2048];
    CORE core;
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

    if (core_for_error(&core)) {
        core.new_error(core.handle);
        core.set_debug(core.handle, file, line, func);
        core_error(&core, (uint32_t)reason, "%s", msg);
    } else {
        ERR_new();
        ERR_set_debug(file, line, func);
        ERR_set_error(ERR_LIB_USER, reason, "%s", msg);
    }
}
