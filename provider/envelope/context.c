/* SPDX-License-Identifier: Apache-2.0 */
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

    for (i = 0; i < c->n; i++)
        OPENSSL_free(c->pairs[i].key); /* the value shares its block */
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
    size_t i, pos = c->n, kl, vl;
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
    /* one block per pair: "key\0value\0" */
    kl = strlen(key);
    vl = strlen(value);
    if ((nk = OPENSSL_malloc(kl + vl + 2)) == NULL)
        goto oom;
    memcpy(nk, key, kl + 1);
    nv = nk + kl + 1;
    memcpy(nv, value, vl + 1);
    memmove(&c->pairs[pos + 1], &c->pairs[pos],
            (c->n - pos) * sizeof(c->pairs[0]));
    c->pairs[pos].key = nk;
    c->pairs[pos].value = nv;
    c->n++;
    c->enclen += 4 + kl + vl;
    return 1;
oom:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "encryption context");
    return 0;
}

/* Copies one escaped token, up to an unescaped stop char or end, into out
 * (terminated). Returns where it stopped, or NULL on a dangling '\' or an
 * oversized token. */
static const char *unescape(const char *s, const char *end, int stop, char *out,
                            size_t outlen)
{
    size_t n = 0;

    while (s < end && *s != stop && !(stop == '=' && *s == ',')) {
        if (*s == '\\' && ++s == end)
            return NULL;
        if (n + 1 >= outlen)
            return NULL;
        out[n++] = *s++;
    }
    out[n] = '\0';
    return s;
}

#define SHOWN 64 /* bytes of the text quoted in errors */

static int parse_into(KMSENV_CONTEXT *c, const char *text, size_t len)
{
    char key[1025], value[4097];
    const char *s = text, *end = text + len;
    int shown = len > SHOWN ? SHOWN : (int)len;
    const char *more = len > SHOWN ? "..." : "";

    if (memchr(text, '\0', len) != NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                     "context contains a NUL byte at offset %zu",
                     (size_t)((const char *)memchr(text, '\0', len) - text));
        return 0;
    }
    while (s < end) {
        s = unescape(s, end, '=', key, sizeof(key));
        if (s == NULL || s == end || *s != '=') {
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "expected key=value[,key=value...] in context "
                         "'%.*s%s'",
                         shown, text, more);
            return 0;
        }
        s = unescape(s + 1, end, ',', value, sizeof(value));
        if (s == NULL) {
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "bad escape or oversized value in context '%.*s%s'",
                         shown, text, more);
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
        /* Refuse at the size limit, before the pairs pile up. */
        if (2 + c->enclen > KMSENV_CTX_MAX_ENCODED) {
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "encryption context too large (over %d bytes "
                         "encoded)",
                         KMSENV_CTX_MAX_ENCODED);
            return 0;
        }
        if (s < end && ++s == end) { /* skip ',' */
            KMSENV_RAISE(KMSENV_R_BAD_CONTEXT,
                         "trailing ',' in context '%.*s%s'", shown, text, more);
            return 0;
        }
    }
    return 1;
}

/* All or nothing: on error c is unchanged. */
int kmsenv_ctx_parse(KMSENV_CONTEXT *c, const char *text, size_t len)
{
    KMSENV_CONTEXT tmp;

    if (text == NULL || len == 0)
        return 1;
    if (!kmsenv_ctx_copy(&tmp, c))
        return 0;
    if (!parse_into(&tmp, text, len)) {
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

int kmsenv_ctx_encode(const KMSENV_CONTEXT *c, KMSENV_BUF *w)
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
    if (w->failed) {
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
