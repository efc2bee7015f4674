/* SPDX-License-Identifier: Apache-2.0 */
#include "kms/policy.h"
#include "util/bytes.h"
#include "util/err.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#define FP_HEX 32 /* file: fingerprints: 16 bytes */

/* The KEK's identity to check: for file:, the resolved path; else what the
 * keyring method says (aws-kms: the recorded key ARN when there is one). Newly
 * allocated, or NULL with why set. */
static char *identity(const KMSENV_KMS_ENV *env, const char *spec,
                      const unsigned char *fp, size_t fplen, const char **why)
{
    const KMSENV_KEK_METHOD *m;
    char *res, *path, id[1024];
    size_t n;

    if (strncmp(spec, "file:", 5) == 0) {
        if ((path = realpath(spec + 5, NULL)) == NULL) {
            *why = "its KEK file path cannot be resolved";
            return NULL;
        }
        res = OPENSSL_malloc(strlen(path) + 6);
        if (res != NULL) {
            memcpy(res, "file:", 5);
            strcpy(res + 5, path);
        }
        free(path);
        return res;
    }
    if ((m = kmsenv_kek_method_of(spec)) != NULL && m->policy_id != NULL) {
        if (!m->policy_id(kmsenv_kms_conf(env, m), spec, fp, fplen, id,
                          sizeof(id))) {
            *why = "its key id is too long";
            return NULL;
        }
        n = strlen(m->scheme) + 1 + strlen(id) + 1;
        if ((res = OPENSSL_malloc(n)) != NULL)
            snprintf(res, n, "%s:%s", m->scheme, id);
        return res;
    }
    return OPENSSL_strdup(spec);
}

static int is_fp_entry(const char *e, size_t n)
{
    size_t i;

    if (n != FP_HEX)
        return 0;
    for (i = 0; i < n; i++)
        if (!isxdigit((unsigned char)e[i]))
            return 0;
    return 1;
}

static int entry_matches(const char *e, size_t n, const char *id,
                         const char *spec, const unsigned char *fp,
                         size_t fplen)
{
    char hex[FP_HEX + 1], want[PATH_MAX + 6], *rp;
    size_t idlen = strlen(id), i;

    if (is_fp_entry(e, n)) {
        if (strncmp(spec, "file:", 5) != 0 || fp == NULL || fplen != 16)
            return 0;
        kmsenv_hex(hex, fp, 16);
        for (i = 0; i < FP_HEX; i++)
            if (tolower((unsigned char)e[i]) != hex[i])
                return 0;
        return 1;
    }
    if (n > 5 && strncmp(e, "file:", 5) == 0) {
        /* Resolve the entry too, so /etc/kmsenv/ and a symlinked
         * /etc/kmsenv compare equal; a trailing '/' makes it a prefix. */
        int prefix = e[n - 1] == '/';
        if (n - 5 >= PATH_MAX)
            return 0;
        memcpy(want, e + 5, n - 5);
        want[n - 5] = '\0';
        if ((rp = realpath(want, NULL)) == NULL)
            return 0;
        if (strlen(rp) + 2 > sizeof(want) - 5) {
            free(rp);
            return 0;
        }
        strcpy(want, "file:");
        strcat(want, rp);
        free(rp);
        if (prefix && strcmp(want, "file:/") != 0)
            strcat(want, "/");
        n = strlen(want);
        return prefix ? idlen > n && strncmp(id, want, n) == 0
                      : strcmp(id, want) == 0;
    }
    if (n > 8 && strncmp(e, "aws-kms:", 8) == 0) {
        if (e[n - 1] == '/' || e[n - 1] == ':')
            return idlen > n && strncmp(id, e, n) == 0;
        return idlen == n && strncmp(id, e, n) == 0;
    }
    return 0;
}

int kmsenv_kek_allowed(const KMSENV_KMS_ENV *env, const char *spec,
                       const unsigned char *fp, size_t fplen, const char *name)
{
    const char *policy = env != NULL ? env->allowed_keks : NULL;
    const char *why = "it is not in allowed_keks", *p, *next, *s, *e;
    char *id;
    int ok = 0;

    if (policy == NULL || *policy == '\0')
        return 1;
    if ((id = identity(env, spec, fp, fplen, &why)) != NULL)
        for (p = policy; !ok && p != NULL; p = next) {
            next = strchr(p, ';');
            e = next != NULL ? next++ : p + strlen(p);
            for (s = p; s < e && isspace((unsigned char)*s); s++)
                ;
            while (e > s && isspace((unsigned char)e[-1]))
                e--;
            ok =
                e > s && entry_matches(s, (size_t)(e - s), id, spec, fp, fplen);
        }
    if (!ok)
        KMSENV_RAISE(KMSENV_R_KEK_NOT_ALLOWED,
                     "%s: KEK %s is refused: %s (allowed_keks = %s); a keyset "
                     "file names its own KEKs, so check where it came from",
                     name != NULL ? name : "keyring", id != NULL ? id : spec,
                     why, policy);
    OPENSSL_free(id);
    return ok;
}
