/* SPDX-License-Identifier: Apache-2.0 */
#include "kms/keyring.h"
#include "kms/http.h"
#include "kms/policy.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/log.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

const KMSENV_KEK_METHOD *const kmsenv_kek_methods[KMSENV_KEK_NMETHODS] = {
    &kmsenv_file_kek_method,
    &kmsenv_aws_kek_method,
};

static const KMSENV_KMS_ENV default_env = {NULL, {NULL}, NULL};

const KMSENV_KEK_METHOD *kmsenv_kek_method_of(const char *spec)
{
    const char *colon = spec != NULL ? strchr(spec, ':') : NULL;
    size_t i;

    if (colon != NULL)
        for (i = 0; i < KMSENV_KEK_NMETHODS; i++)
            if (strlen(kmsenv_kek_methods[i]->scheme) ==
                    (size_t)(colon - spec) &&
                strncmp(spec, kmsenv_kek_methods[i]->scheme,
                        (size_t)(colon - spec)) == 0)
                return kmsenv_kek_methods[i];
    return NULL;
}

void *kmsenv_kms_conf(const KMSENV_KMS_ENV *env, const KMSENV_KEK_METHOD *m)
{
    size_t i;

    if (env != NULL)
        for (i = 0; i < KMSENV_KEK_NMETHODS; i++)
            if (kmsenv_kek_methods[i] == m)
                return env->conf[i];
    return NULL;
}

int kmsenv_kms_env_init(KMSENV_KMS_ENV *env, OSSL_LIB_CTX *libctx,
                        const char *allowed_keks)
{
    size_t i;

    memset(env, 0, sizeof(*env));
    env->libctx = libctx;
    env->allowed_keks = allowed_keks;
    for (i = 0; i < KMSENV_KEK_NMETHODS; i++)
        if (kmsenv_kek_methods[i]->conf_new != NULL &&
            (env->conf[i] = kmsenv_kek_methods[i]->conf_new()) == NULL) {
            kmsenv_kms_env_cleanup(env);
            return 0;
        }
    return 1;
}

void kmsenv_kms_env_cleanup(KMSENV_KMS_ENV *env)
{
    size_t i;

    for (i = 0; i < KMSENV_KEK_NMETHODS; i++) {
        if (env->conf[i] != NULL && kmsenv_kek_methods[i]->conf_free != NULL)
            kmsenv_kek_methods[i]->conf_free(env->conf[i]);
        env->conf[i] = NULL;
    }
}

void kmsenv_fp_text(const unsigned char *fp, size_t fplen, char *out,
                    size_t outlen)
{
    size_t i, printable = fplen > 0;

    for (i = 0; i < fplen; i++)
        if (!isprint(fp[i]))
            printable = 0;
    if (outlen == 0)
        return;
    if (fplen == 0) {
        snprintf(out, outlen, "(none)");
    } else if (printable) {
        snprintf(out, outlen, "%.*s", (int)fplen, (const char *)fp);
    } else if (outlen >= 2 * fplen + 1) {
        kmsenv_hex(out, fp, fplen);
    } else {
        snprintf(out, outlen, "(fingerprint)");
    }
}

static KMSENV_KEK *kek_open(const KMSENV_KMS_ENV *env, const char *spec)
{
    const KMSENV_KEK_METHOD *m = kmsenv_kek_method_of(spec);

    if (m != NULL)
        return m->open(env != NULL ? env : &default_env, spec);
    KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC,
                 "unknown keyring '%s' (expected file:/path/to/kek or "
                 "aws-kms:KEY-ID|KEY-ARN|alias/NAME|ALIAS-ARN)",
                 spec);
    return NULL;
}

static void kek_free(KMSENV_KEK *k)
{
    if (k != NULL)
        k->meth->free(k);
}

void kmsenv_keyring_free(KMSENV_KEYRING *kr)
{
    size_t i;

    if (kr == NULL)
        return;
    for (i = 0; i < kr->n; i++)
        kek_free(kr->kek[i]);
    OPENSSL_free(kr->kek);
    OPENSSL_free(kr);
}

int kmsenv_keyring_each(const char *list, int (*fn)(const char *, void *),
                        void *arg)
{
    char *copy = OPENSSL_strdup(list), *tok, *save = NULL, *end;
    int more = 1, count = 0;

    if (copy == NULL)
        return -1;
    for (tok = strtok_r(copy, ";", &save); tok != NULL && more;
         tok = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        more = fn(tok, arg);
        count++;
    }
    OPENSSL_free(copy);
    return count;
}

struct open_arg {
    const KMSENV_KMS_ENV *env;
    KMSENV_KEYRING *kr;
    int failed;
};

static int open_one(const char *spec, void *arg)
{
    struct open_arg *a = arg;
    KMSENV_KEK **nk;
    KMSENV_KEK *k;

    a->failed = 1; /* until this KEK is in */
    if (a->kr->n >= KMSENV_KS_MAX_WRAPS) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC, "more than %d KEKs in keyring",
                     KMSENV_KS_MAX_WRAPS);
        return 0;
    }
    if (!kmsenv_kek_allowed(a->env, spec, NULL, 0, NULL))
        return 0;
    if ((k = kek_open(a->env, spec)) == NULL)
        return 0;
    nk = OPENSSL_realloc(a->kr->kek, (a->kr->n + 1) * sizeof(*nk));
    if (nk == NULL) {
        kek_free(k);
        return 0;
    }
    a->kr->kek = nk;
    a->kr->kek[a->kr->n++] = k;
    a->failed = 0;
    return 1;
}

int kmsenv_keyring_open(const KMSENV_KMS_ENV *env, const char *spec,
                        KMSENV_KEYRING **out)
{
    struct open_arg a = {env, NULL, 0};

    *out = NULL;
    if (spec == NULL || *spec == '\0') {
        KMSENV_RAISE(KMSENV_R_NO_KEYRING, "no keyring given");
        return 0;
    }
    a.kr = OPENSSL_zalloc(sizeof(*a.kr));
    if (a.kr == NULL)
        return 0;
    if (kmsenv_keyring_each(spec, open_one, &a) <= 0 || a.failed) {
        if (a.kr->n == 0)
            KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC,
                         "keyring '%s' names no usable KEK", spec);
        kmsenv_keyring_free(a.kr);
        return 0;
    }
    *out = a.kr;
    return 1;
}

static void log_call(const char *op, const KMSENV_KEK *k, const char *name)
{
    char fp[140];

    kmsenv_fp_text(k->fp, k->fplen, fp, sizeof(fp));
    kmsenv_log(1, "keyring call: %s kek=%s fp=%s key=%s", op, k->spec, fp,
               name != NULL ? name : "-");
}

/* Rewraps the key under k from one of the old copies. Returns 1 (done), -1
 * (no copy the KEK can rewrap from: wrap locally) or 0 (a rewrap was
 * tried and failed, raised). */
static int rewrap_one(KMSENV_KEK *k, const KMSENV_CONTEXT *ectx,
                      const KMSENV_WRAP *old, size_t nold, KMSENV_WRAP *w)
{
    size_t j;
    int r, res = -1;

    if (k->meth->rewrap == NULL)
        return -1;
    ERR_set_mark();
    for (j = 0; j < nold; j++) {
        log_call("rewrap", k, NULL);
        if ((r = k->meth->rewrap(k, ectx, &old[j], w)) == 1) {
            ERR_pop_to_mark(); /* another copy's failure is moot */
            return 1;
        }
        if (r == 0)
            res = 0;
    }
    ERR_clear_last_mark();
    return res;
}

static int wrap_all(KMSENV_KEYRING *kr, const KMSENV_CONTEXT *ectx,
                    size_t first, const KMSENV_WRAP *old, size_t nold,
                    const KMSENV_SECRET *pt, int flags, KMSENV_WRAP *ws)
{
    size_t i;

    for (i = first; i < kr->n; i++) {
        KMSENV_KEK *k = kr->kek[i];
        int r = rewrap_one(k, ectx, old, nold, &ws[i]);

        if (r == 0 && !(flags & KMSENV_REWRAP_ALLOW_LOCAL)) {
            KMSENV_RAISE(KMSENV_R_KMS_ERROR,
                         "rewrap under %s failed; the key is not wrapped "
                         "locally instead (kmsenv rewrap --allow-local-wrap "
                         "permits that)",
                         k->spec);
            return 0;
        }
        if (r == 0) {
            /* left on the queue on success: the caller reports it */
            KMSENV_RAISE(KMSENV_R_KMS_ERROR,
                         "rewrap under %s failed; wrapped the key locally "
                         "instead, as allowed (--allow-local-wrap)",
                         k->spec);
            kmsenv_log(1,
                       "rewrap under %s failed; wrapping locally "
                       "(allow-local-wrap)",
                       k->spec);
        }
        if (r != 1) {
            log_call("wrap", k, NULL);
            if (!k->meth->wrap(k, ectx, pt, &ws[i]))
                return 0;
        }
    }
    return 1;
}

int kmsenv_keyring_generate(KMSENV_KEYRING *kr, const KMSENV_CONTEXT *ectx,
                            size_t len, KMSENV_SECRET *dk, KMSENV_WRAP **wraps,
                            size_t *nwraps)
{
    KMSENV_WRAP *ws = OPENSSL_zalloc(kr->n * sizeof(*ws));

    dk->data = NULL;
    dk->len = 0;
    *wraps = NULL;
    *nwraps = 0;
    if (ws == NULL || !kmsenv_secret_alloc(dk, len))
        goto err;
    log_call("generate", kr->kek[0], NULL);
    if (!kr->kek[0]->meth->generate(kr->kek[0], ectx, dk, &ws[0]) ||
        !wrap_all(kr, ectx, 1, NULL, 0, dk, 0, ws))
        goto err;
    *wraps = ws;
    *nwraps = kr->n;
    return 1;
err:
    kmsenv_wraps_free(ws, kr->n);
    kmsenv_secret_free(dk);
    return 0;
}

int kmsenv_keyring_rewrap(KMSENV_KEYRING *kr, const KMSENV_CONTEXT *ectx,
                          const KMSENV_WRAP *old, size_t nold,
                          const KMSENV_SECRET *pt, int flags,
                          KMSENV_WRAP **wraps, size_t *nwraps)
{
    KMSENV_WRAP *ws = OPENSSL_zalloc(kr->n * sizeof(*ws));

    *wraps = NULL;
    *nwraps = 0;
    if (ws == NULL || !wrap_all(kr, ectx, 0, old, nold, pt, flags, ws)) {
        kmsenv_wraps_free(ws, kr->n);
        return 0;
    }
    *wraps = ws;
    *nwraps = kr->n;
    return 1;
}

/* redirect "FROM=TO;FROM=TO": returns a newly allocated TO for spec, or a
 * copy of spec. */
static char *redirected(const char *redirect, const char *spec)
{
    char *copy, *tok, *save = NULL, *res = NULL;

    if (redirect != NULL && (copy = OPENSSL_strdup(redirect)) != NULL) {
        for (tok = strtok_r(copy, ";", &save); tok != NULL && res == NULL;
             tok = strtok_r(NULL, ";", &save)) {
            size_t fl = strlen(spec);
            while (isspace((unsigned char)*tok))
                tok++;
            if (strncmp(tok, spec, fl) == 0 && tok[fl] == '=')
                res = OPENSSL_strdup(tok + fl + 1);
            else if (tok[0] == '*' && tok[1] == '=')
                res = OPENSSL_strdup(tok + 2); /* every KEK */
        }
        OPENSSL_free(copy);
    }
    if (res != NULL) {
        char *end = res + strlen(res);
        while (end > res && isspace((unsigned char)end[-1]))
            *--end = '\0';
        return res;
    }
    return OPENSSL_strdup(spec);
}

/* Order in which to try the wrapped copies: those whose (redirected) KEK
 * its method prefers (e.g. in the preferred region) first, otherwise as
 * recorded. */
static void unwrap_order(const KMSENV_KMS_ENV *env, const KMSENV_WRAP *wraps,
                         size_t nwraps, const char *redirect, size_t *order)
{
    size_t i, n = 0, pass;
    int pref[KMSENV_KS_MAX_WRAPS];

    for (i = 0; i < nwraps; i++) {
        char *spec = redirected(redirect, wraps[i].spec);
        const KMSENV_KEK_METHOD *m = kmsenv_kek_method_of(spec);

        ERR_set_mark(); /* a spec that cannot be placed: not preferred */
        pref[i] = m != NULL && m->preferred != NULL &&
                  m->preferred(kmsenv_kms_conf(env, m), spec);
        ERR_pop_to_mark();
        OPENSSL_free(spec);
    }
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < nwraps; i++)
            if ((pass == 0) == (pref[i] != 0))
                order[n++] = i;
}

/* The KEK policy, checked for every copy before any keyring call: a keyset
 * that names one KEK outside it is refused whole. A redirected copy is
 * checked by its new spec (the recorded fingerprint no longer applies). */
static int wraps_allowed(const KMSENV_KMS_ENV *env, const KMSENV_WRAP *wraps,
                         size_t nwraps, const char *redirect, const char *name)
{
    size_t i;
    int ok = 1;

    if (env == NULL || env->allowed_keks == NULL)
        return 1;
    for (i = 0; i < nwraps && ok; i++) {
        char *spec = redirected(redirect, wraps[i].spec);
        int same = spec != NULL && strcmp(spec, wraps[i].spec) == 0;

        ok = spec != NULL &&
             kmsenv_kek_allowed(env, spec, same ? wraps[i].fp : NULL,
                                same ? wraps[i].fplen : 0, name);
        OPENSSL_free(spec);
    }
    return ok;
}

/* Is copy w's (redirected) KEK remote, i.e. its calls take time? */
static int remote_copy(const KMSENV_WRAP *w, const char *redirect)
{
    char *spec = redirected(redirect, w->spec);
    const KMSENV_KEK_METHOD *m = kmsenv_kek_method_of(spec);
    int r = m != NULL && m->remote;

    OPENSSL_free(spec);
    return r;
}

/* The load's deadline: deadline_ms bounds the whole unwrap, every copy and
 * every attempt. A remote KEK gets an equal share of the time left among
 * the remote copies still to try (the last one gets all that is left), so
 * a region that hangs or is blackholed leaves time to fail over to the
 * next: with 2 regions and 30 s, the first has 15 s, the second the rest. */
static void give_share(KMSENV_KEK *k, const KMSENV_WRAP *wraps,
                       const size_t *order, size_t i, size_t n,
                       const char *redirect, long long load_deadline)
{
    size_t j, remote = 0;
    long long now = kmsenv_now_ms();

    for (j = i; j < n; j++)
        remote += remote_copy(&wraps[order[j]], redirect);
    if (remote == 0)
        remote = 1;
    k->deadline = now + (load_deadline - now) / (long long)remote;
    if (k->deadline <= now) /* nothing left: the KEK fails at once */
        k->deadline = now > 0 ? now : 1;
}

/* deadline_ms for a whole load: the longest any method asks for. */
static long load_deadline_ms(const KMSENV_KMS_ENV *env)
{
    long ms = 0, m;
    size_t i;

    for (i = 0; i < KMSENV_KEK_NMETHODS; i++)
        if (kmsenv_kek_methods[i]->load_deadline_ms != NULL &&
            (m = kmsenv_kek_methods[i]->load_deadline_ms(
                 env != NULL ? env->conf[i] : NULL)) > ms)
            ms = m;
    return ms > 0 ? ms : 30000;
}

int kmsenv_keyring_unwrap(const KMSENV_KMS_ENV *env, const KMSENV_WRAP *wraps,
                          size_t nwraps, const char *redirect,
                          const KMSENV_CONTEXT *ectx, size_t len,
                          KMSENV_SECRET *out, const char *name)
{
    size_t i, order[KMSENV_KS_MAX_WRAPS];
    long long load_deadline = kmsenv_now_ms() + load_deadline_ms(env);

    if (nwraps > KMSENV_KS_MAX_WRAPS)
        nwraps = KMSENV_KS_MAX_WRAPS;
    if (!wraps_allowed(env, wraps, nwraps, redirect, name))
        return 0;
    unwrap_order(env, wraps, nwraps, redirect, order);
    ERR_set_mark();
    for (i = 0; i < nwraps; i++) {
        const KMSENV_WRAP *w = &wraps[order[i]];
        char *spec = redirected(redirect, w->spec);
        KMSENV_KEK *k = spec != NULL ? kek_open(env, spec) : NULL;
        int ok = 0;

        if (k != NULL)
            give_share(k, wraps, order, i, nwraps, redirect, load_deadline);

        if (k != NULL && k->fplen > 0 && w->fplen > 0 &&
            (k->fplen != w->fplen || memcmp(k->fp, w->fp, k->fplen) != 0)) {
            char want[140], have[140];
            kmsenv_fp_text(w->fp, w->fplen, want, sizeof(want));
            kmsenv_fp_text(k->fp, k->fplen, have, sizeof(have));
            KMSENV_RAISE(KMSENV_R_WRONG_KEK,
                         "%s: wrapped under KEK %s (%s), configured %s is "
                         "KEK %s",
                         name, want, w->spec, spec, have);
        } else if (k != NULL) {
            log_call("unwrap", k, name);
            if (kmsenv_secret_alloc(out, len)) {
                ok = k->meth->unwrap(k, ectx, w, out);
                if (ok && out->len != len) {
                    KMSENV_RAISE(KMSENV_R_UNWRAP_FAILED,
                                 "%s: unwrapped key has %zu bytes, expected "
                                 "%zu",
                                 name, out->len, len);
                    ok = 0;
                }
                if (!ok)
                    kmsenv_secret_free(out);
            }
        }
        kek_free(k);
        OPENSSL_free(spec);
        if (ok) {
            ERR_pop_to_mark(); /* failover: earlier copies' errors are moot */
            return 1;
        }
    }
    ERR_clear_last_mark();
    KMSENV_RAISE(KMSENV_R_UNWRAP_FAILED,
                 "%s: none of its %zu wrapped key cop%s could be unwrapped%s",
                 name, nwraps, nwraps == 1 ? "y" : "ies",
                 kmsenv_now_ms() >= load_deadline
                     ? " (deadline_ms for the whole load reached)"
                     : "");
    return 0;
}

int kmsenv_keyring_keyset_context(KMSENV_CONTEXT *ectx,
                                  const unsigned char id[16],
                                  const char *purpose)
{
    char hex[33];

    kmsenv_hex(hex, id, 16);
    kmsenv_ctx_init(ectx);
    if (!kmsenv_ctx_add(ectx, "kmsenv:keyset", hex) ||
        !kmsenv_ctx_add(ectx, "kmsenv:purpose", purpose)) {
        kmsenv_ctx_free(ectx);
        return 0;
    }
    return 1;
}
