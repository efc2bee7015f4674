/* SPDX-License-Identifier: Apache-2.0 */
#include "ossl/params.h"
#include "util/err.h"
#include "util/text.h"

#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

int kmsenv_param_text(const OSSL_PARAM *p, const char *what, const char **s,
                      size_t *len)
{
    const char *t;
    size_t n;

    *s = NULL;
    *len = 0;
    t = p->data_type == OSSL_PARAM_UTF8_STRING ? p->data : NULL;
    if (t == NULL &&
        !(p->data_type == OSSL_PARAM_UTF8_STRING && p->data_size == 0)) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s (parameter '%s') must be a "
                     "UTF-8 string",
                     what, p->key);
        return 0;
    }
    if (t == NULL)
        t = "";
    n = p->data_size;
    if (n > 0 && t[n - 1] == '\0')
        n--;
    if (memchr(t, '\0', n) != NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s (parameter '%s') contains a NUL byte at offset %zu",
                     what, p->key,
                     (size_t)((const char *)memchr(t, '\0', n) - t));
        return 0;
    }
    *s = t;
    *len = n;
    return 1;
}

int kmsenv_param_strdup(const OSSL_PARAM *p, const char *what, char **out)
{
    const char *s;
    size_t n;

    *out = NULL;
    if (!kmsenv_param_text(p, what, &s, &n))
        return 0;
    if ((*out = OPENSSL_strndup(s, n)) == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "copying %s", what);
        return 0;
    }
    return 1;
}

const char *kmsenv_param_names(const OSSL_PARAM *params, char *buf, size_t n)
{
    size_t w = 0;
    const OSSL_PARAM *p;

    if (n == 0)
        return "";
    buf[0] = '\0';
    for (p = params; p != NULL && p->key != NULL; p++) {
        char esc[64];
        int r;

        kmsenv_escape(esc, sizeof(esc), p->key, strlen(p->key));
        r = snprintf(buf + w, n - w, "%s%s", w > 0 ? ", " : "", esc);
        if (r < 0 || (size_t)r >= n - w) {
            if (n > 4)
                memcpy(buf + n - 4, "...", 4);
            break;
        }
        w += (size_t)r;
    }
    return buf;
}
