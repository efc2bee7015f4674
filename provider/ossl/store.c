/* STORE for the kmsenv: URI scheme.
 *
 *   kmsenv:PATH[?keyring=SPEC]   the keyset at PATH (PEM or DER)
 *   kmsenv:[?keyring=SPEC]       the configured default keyset
 *                                (provider "keyset" / KMSENV_KEYSET)
 *
 * PATH and SPEC are percent-decoded (%3F for a literal '?'). keyring=SPEC
 * unwraps with SPEC instead of the KEKs recorded in the keyset. */
#include "ossl/keyobj.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/store.h>

#define KMSENV_MAX_INPUT (1024 * 1024)

static OSSL_FUNC_store_open_fn st_open;
static OSSL_FUNC_store_set_ctx_params_fn st_set_ctx_params;
static OSSL_FUNC_store_settable_ctx_params_fn st_settable_ctx_params;
static OSSL_FUNC_store_load_fn st_load;
static OSSL_FUNC_store_eof_fn st_eof;
static OSSL_FUNC_store_close_fn st_close;

typedef struct {
    KMSENV_PROV *prov;
    char *path;
    char *redirect; /* "*=SPEC" or NULL */
    int done;
} STORE_CTX;

static int unhex(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

static char *pct_decode(const char *s, size_t n)
{
    char *out = OPENSSL_malloc(n + 1), *o = out;
    size_t i;

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            *o++ = (char)(unhex((unsigned char)s[i + 1]) * 16 +
                          unhex((unsigned char)s[i + 2]));
            i += 2;
        } else if (s[i] == '%') {
            OPENSSL_free(out);
            return NULL;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static void st_close_ctx(STORE_CTX *c)
{
    if (c == NULL)
        return;
    OPENSSL_free(c->path);
    OPENSSL_free(c->redirect);
    OPENSSL_free(c);
}

static void *st_open(void *provctx, const char *uri)
{
    KMSENV_PROV *prov = provctx;
    STORE_CTX *c = OPENSSL_zalloc(sizeof(*c));
    const char *rest, *q;
    char *spec = NULL;

    if (c == NULL)
        return NULL;
    c->prov = prov;
    if (strncasecmp(uri, "kmsenv:", 7) != 0)
        goto bad;
    rest = uri + 7;
    q = strchr(rest, '?');
    c->path = pct_decode(rest, q != NULL ? (size_t)(q - rest) : strlen(rest));
    if (c->path == NULL)
        goto bad;
    while (q != NULL) {
        const char *item = q + 1, *end = strchr(item, '&');
        size_t n = end != NULL ? (size_t)(end - item) : strlen(item);

        if (n > 8 && strncmp(item, "keyring=", 8) == 0) {
            OPENSSL_free(spec);
            spec = pct_decode(item + 8, n - 8);
            if (spec == NULL)
                goto bad;
        } else if (n > 0) {
            KMSENV_RAISE(KMSENV_R_BAD_URI,
                         "%s: unknown query parameter '%.*s' (known: "
                         "keyring=SPEC)",
                         uri, (int)n, item);
            goto err;
        }
        q = end;
    }
    if (spec != NULL) {
        size_t l = strlen(spec) + 3;
        c->redirect = OPENSSL_malloc(l);
        if (c->redirect == NULL)
            goto err;
        snprintf(c->redirect, l, "*=%s", spec);
    }
    if (*c->path == '\0') {
        OPENSSL_free(c->path);
        c->path = prov->keyset != NULL ? OPENSSL_strdup(prov->keyset) : NULL;
        if (c->path == NULL) {
            KMSENV_RAISE(KMSENV_R_BAD_URI,
                         "%s names no keyset and none is configured (provider "
                         "'keyset' or KMSENV_KEYSET)",
                         uri);
            goto err;
        }
    }
    OPENSSL_free(spec);
    return c;
bad:
    KMSENV_RAISE(KMSENV_R_BAD_URI,
                 "'%s': expected kmsenv:PATH[?keyring=SPEC] with valid "
                 "%%-escapes",
                 uri);
err:
    OPENSSL_free(spec);
    st_close_ctx(c);
    return NULL;
}

static const OSSL_PARAM *st_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL), OSSL_PARAM_END};
    return p;
}

static int st_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
    return 1; /* keysets are the only objects here; nothing to narrow */
}

static int read_file(STORE_CTX *c, unsigned char **buf, size_t *len)
{
    BIO *in = BIO_new_file(c->path, "rb");
    unsigned char *b = NULL;
    long n = 0;
    int r;

    *buf = NULL;
    if (in == NULL) {
        KMSENV_RAISE(KMSENV_R_IO_ERROR, "cannot open keyset file %s", c->path);
        return 0;
    }
    b = OPENSSL_malloc(KMSENV_MAX_INPUT);
    while (b != NULL && n < KMSENV_MAX_INPUT &&
           (r = BIO_read(in, b + n, (int)(KMSENV_MAX_INPUT - n))) > 0)
        n += r;
    BIO_free(in);
    if (b == NULL)
        return 0;
    *buf = b;
    *len = (size_t)n;
    return 1;
}

static int st_load(void *loaderctx, OSSL_CALLBACK *object_cb,
                   void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                   void *pw_cbarg)
{
    STORE_CTX *c = loaderctx;
    unsigned char *buf = NULL, *der = NULL;
    size_t len = 0;
    long derlen = 0;
    char *name = NULL, *header = NULL;
    KMSENV_KEYOBJ *k = NULL;
    int ok = 0;

    c->done = 1;
    if (!read_file(c, &buf, &len))
        goto end;
    if (len > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
        BIO *mem = BIO_new_mem_buf(buf, (int)len);
        int r;

        ERR_set_mark();
        r = mem != NULL && PEM_read_bio(mem, &name, &header, &der, &derlen);
        ERR_pop_to_mark();
        BIO_free(mem);
        if (!r || strcmp(name, KMSENV_KEYSET_PEM_LABEL) != 0) {
            KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                         "%s: no \"" KMSENV_KEYSET_PEM_LABEL "\" PEM block",
                         c->path);
            goto end;
        }
        k = kmsenv_keyobj_load(c->prov, der, (size_t)derlen, c->path,
                               c->redirect);
    } else {
        k = kmsenv_keyobj_load(c->prov, buf, len, c->path, c->redirect);
    }
    if (k != NULL) {
        OSSL_PARAM params[4];
        int type = OSSL_OBJECT_PKEY;

        params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
        params[1] = OSSL_PARAM_construct_utf8_string(
            OSSL_OBJECT_PARAM_DATA_TYPE, (char *)KMSENV_KEYSET_NAME, 0);
        params[2] = OSSL_PARAM_construct_octet_string(
            OSSL_OBJECT_PARAM_REFERENCE, &k, sizeof(k));
        params[3] = OSSL_PARAM_construct_end();
        ok = object_cb(params, object_cbarg);
    }
end:
    kmsenv_keyobj_free(k);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    OPENSSL_free(buf);
    return ok;
}

static int st_eof(void *loaderctx)
{
    return ((STORE_CTX *)loaderctx)->done;
}

static int st_close(void *loaderctx)
{
    st_close_ctx(loaderctx);
    return 1;
}

const OSSL_DISPATCH kmsenv_store_functions[] = {
    {OSSL_FUNC_STORE_OPEN, (void (*)(void))st_open},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS,
     (void (*)(void))st_settable_ctx_params},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))st_set_ctx_params},
    {OSSL_FUNC_STORE_LOAD, (void (*)(void))st_load},
    {OSSL_FUNC_STORE_EOF, (void (*)(void))st_eof},
    {OSSL_FUNC_STORE_CLOSE, (void (*)(void))st_close},
    {0, NULL}};
