#include "envelope/context.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

void kmsenv_ctx_init(KMSENV_CONTEXT *c)
{
    memset(c, 0, sizeof(*c));
}

void kmsenv_ctx_free(KMSENV_CONTEXT *c)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        OPENSSL_free(c->pairs[i].key);
        OPENSSL_free(c->pairs[i].value);
    }
    OPENSSL_free(c->pairs);
    kmsenv_ctx_init(c);
}

static int key_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int r = memcmp(a, b, la < lb ? la : lb);

    if (r != 0)
        return r;
    return la < lb ? -1 : la > lb;
}

int kmsenv_ctx_add(KMSENV_CONTEXT *c, const char *key, const char *value)
{
    size_t i, pos = c->n;
    KMSENV_PAIR *np;
    char *nk, *nv;

    if (*key == '\0' || strlen(key) > 1024 || strlen(value) > 4096) {
        KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                     "context key must be 1..1024 bytes and value at most "
                     "4096 bytes");
        return 0;
    }
    for (i = 0; i < c->n; i++) {
        int r = key_cmp(key, c->pairs[i].key);
        if (r == 0) {
            if (strcmp(value, c->pairs[i].value) == 0)
                return 1;
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "context key '%s' given twice with different values",
                         key);
            return 0;
        }
        if (r < 0) {
            pos = i;
            break;
        }
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        np = OPENSSL_realloc(c->pairs, cap * sizeof(*np));
        if (np == NULL)
            goto oom;
        c->pairs = np;
        c->cap = cap;
    }
    nk = OPENSSL_strdup(key);
    nv = OPENSSL_strdup(value);
    if (nk == NULL || nv == NULL) {
        OPENSSL_free(nk);
        OPENSSL_free(nv);
        goto oom;
    }
    memmove(&c->pairs[pos + 1], &c->pairs[pos],
            (c->n - pos) * sizeof(c->pairs[0]));
    c->pairs[pos].key = nk;
    c->pairs[pos].value = nv;
    c->n++;
    return 1;
oom:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "encryption context");
    return 0;
}

/* Copies one escaped token up to an unescaped stop char. */
static const char *unescape(const char *s, const char *stops, char *out,
                            size_t outlen, int *ok)
{
    size_t n = 0;

    *ok = 1;
    while (*s != '\0' && strchr(stops, *s) == NULL) {
        if (*s == '\\') {
            s++;
            if (*s == '\0') {
                *ok = 0;
                return s;
            }
        }
        if (n + 1 >= outlen) {
            *ok = 0;
            return s;
        }
        out[n++] = *s++;
    }
    out[n] = '\0';
    return s;
}

static int parse_into(KMSENV_CONTEXT *c, const char *text)
{
    char key[1025], value[4097];
    const char *s = text;
    int ok;

    if (text == NULL)
        return 1;
    while (*s != '\0') {
        s = unescape(s, "=,", key, sizeof(key), &ok);
        if (!ok || *s != '=') {
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "expected key=value[,key=value...] in context '%s'",
                         text);
            return 0;
        }
        s = unescape(s + 1, ",", value, sizeof(value), &ok);
        if (!ok) {
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "bad escape or oversized value in context '%s'", text);
            return 0;
        }
        if (strncmp(key, "kmsenv:", 7) == 0 || strncmp(key, "aws:", 4) == 0) {
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "context key '%s' uses a reserved prefix (kmsenv:, "
                         "aws:)",
                         key);
            return 0;
        }
        if (!kmsenv_ctx_add(c, key, value))
            return 0;
        if (*s == ',') {
            s++;
            if (*s == '\0') {
                KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                             "trailing ',' in context '%s'", text);
                return 0;
            }
        }
    }
    return 1;
}

/* All or nothing: on error c is unchanged. */
int kmsenv_ctx_parse(KMSENV_CONTEXT *c, const char *text)
{
    KMSENV_CONTEXT tmp;

    if (text == NULL)
        return 1;
    if (!kmsenv_ctx_copy(&tmp, c))
        return 0;
    if (!parse_into(&tmp, text)) {
        kmsenv_ctx_free(&tmp);
        return 0;
    }
    kmsenv_ctx_free(c);
    *c = tmp;
    return 1;
}

int kmsenv_ctx_copy(KMSENV_CONTEXT *dst, const KMSENV_CONTEXT *src)
{
    size_t i;

    kmsenv_ctx_init(dst);
    for (i = 0; i < src->n; i++)
        if (!kmsenv_ctx_add(dst, src->pairs[i].key, src->pairs[i].value)) {
            kmsenv_ctx_free(dst);
            return 0;
        }
    return 1;
}

int kmsenv_ctx_encode(const KMSENV_CONTEXT *c, KMSENV_WR *w)
{
    size_t i, start = w->len;

    kmsenv_wr_u16(w, (uint16_t)c->n);
    for (i = 0; i < c->n; i++) {
        size_t kl = strlen(c->pairs[i].key), vl = strlen(c->pairs[i].value);
        kmsenv_wr_u16(w, (uint16_t)kl);
        kmsenv_wr_bytes(w, c->pairs[i].key, kl);
        kmsenv_wr_u16(w, (uint16_t)vl);
        kmsenv_wr_bytes(w, c->pairs[i].value, vl);
    }
    if (!w->ok) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "encoding context");
        return 0;
    }
    if (w->len - start > KMSENV_CTX_MAX_ENCODED) {
        KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                     "encryption context too large (%zu bytes encoded, max "
                     "%d)",
                     w->len - start, KMSENV_CTX_MAX_ENCODED);
        return 0;
    }
    return 1;
}

void kmsenv_ctx_describe(const KMSENV_CONTEXT *c, char *buf, size_t len)
{
    size_t i, off = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (i = 0; i < c->n && off < len; i++) {
        int r = snprintf(buf + off, len - off, "%s%s=%s", i ? "," : "",
                         c->pairs[i].key, c->pairs[i].value);
        if (r < 0)
            break;
        off += (size_t)r;
    }
    if (c->n == 0)
        snprintf(buf, len, "(empty)");
}
