/* SPDX-License-Identifier: Apache-2.0 */
#include "util/secmem.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>

int kmsenv_secret_alloc(KMSENV_SECRET *s, size_t len)
{
    s->len = 0;
    s->data = OPENSSL_secure_zalloc(len > 0 ? len : 1);
    if (s->data == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "secure allocation of %zu bytes",
                     len);
        return 0;
    }
    s->len = len;
    return 1;
}

int kmsenv_secret_dup(KMSENV_SECRET *dst, const KMSENV_SECRET *src)
{
    if (!kmsenv_secret_alloc(dst, src->len))
        return 0;
    if (src->len > 0)
        memcpy(dst->data, src->data, src->len);
    return 1;
}

void kmsenv_secret_free(KMSENV_SECRET *s)
{
    if (s->data != NULL)
        OPENSSL_secure_clear_free(s->data, s->len > 0 ? s->len : 1);
    s->data = NULL;
    s->len = 0;
}
