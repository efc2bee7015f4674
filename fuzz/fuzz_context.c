/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: encryption context text (kmsenv_ctx_parse) and its canonical
 * encoding (kmsenv_ctx_encode), docs/FORMATS.md §1.
 *
 * Invariants checked:
 *  - a text with a NUL byte never parses;
 *  - a successful parse encodes, within KMSENV_CTX_MAX_ENCODED, to exactly
 *    2 + enclen bytes; the encoding walks back to the pairs, which are
 *    sorted strictly by key, unique, within the size limits, and have no
 *    reserved prefix;
 *  - re-escaping the pairs and parsing that text gives the same encoding;
 *  - all or nothing: a parse into a non-empty context that fails leaves it
 *    unchanged, and one that succeeds keeps every earlier pair;
 *  - every failure raises an error.
 * The input is split at its first NUL: the part before it is parsed first,
 * then the part after it into the same context (contexts accumulate). */
#include "envelope/context.h"
#include "fuzz_common.h"
#include "util/bytes.h"

static int key_less(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int r = memcmp(a, b, la < lb ? la : lb);

    return r < 0 || (r == 0 && la < lb);
}

/* Checks the structure of c and that enc is its canonical encoding. */
static void check_encoding(const KMSENV_CONTEXT *c, const KMSENV_BUF *w)
{
    KMSENV_RD r;
    size_t i;

    FUZZ_CHECK(!w->failed && w->len <= KMSENV_CTX_MAX_ENCODED);
    FUZZ_CHECK(w->len == 2 + c->enclen);
    kmsenv_rd_init(&r, w->p, w->len);
    FUZZ_CHECK(kmsenv_rd_u16(&r) == c->n);
    for (i = 0; i < c->n; i++) {
        const char *k = c->pairs[i].key, *v = c->pairs[i].value;
        size_t kl = strlen(k), vl = strlen(v);
        const unsigned char *q;

        FUZZ_CHECK(kl >= 1 && kl <= 1024 && vl <= 4096);
        FUZZ_CHECK(i == 0 || key_less(c->pairs[i - 1].key, k));
        FUZZ_CHECK(kmsenv_rd_u16(&r) == kl);
        q = kmsenv_rd_bytes(&r, kl);
        FUZZ_CHECK(q != NULL && memcmp(q, k, kl) == 0);
        FUZZ_CHECK(kmsenv_rd_u16(&r) == vl);
        q = kmsenv_rd_bytes(&r, vl);
        FUZZ_CHECK(q != NULL && (vl == 0 || memcmp(q, v, vl) == 0));
    }
    FUZZ_CHECK(r.ok && r.left == 0);
}

static void check_no_reserved(const KMSENV_CONTEXT *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        FUZZ_CHECK(strncmp(c->pairs[i].key, "kmsenv:", 7) != 0 &&
                   strncmp(c->pairs[i].key, "aws:", 4) != 0);
}

static size_t escape(char *o, const char *s, int is_key)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        if (*s == ',' || *s == '\\' || (is_key && *s == '='))
            o[n++] = '\\';
        o[n++] = *s;
    }
    return n;
}

/* Text form of c (FORMATS.md §1.1 writer rules), parsed again. */
static void check_reparse(const KMSENV_CONTEXT *c, const KMSENV_BUF *enc)
{
    KMSENV_CONTEXT d;
    KMSENV_BUF w;
    char *text = malloc(2 * (c->enclen + c->n) + 1);
    size_t i, n = 0;

    FUZZ_CHECK(text != NULL);
    for (i = 0; i < c->n; i++) {
        if (i > 0)
            text[n++] = ',';
        n += escape(text + n, c->pairs[i].key, 1);
        text[n++] = '=';
        n += escape(text + n, c->pairs[i].value, 0);
    }
    kmsenv_ctx_init(&d);
    kmsenv_buf_init(&w, 0);
    FUZZ_CHECK(kmsenv_ctx_parse(&d, text, n));
    FUZZ_CHECK(kmsenv_ctx_encode(&d, &w));
    FUZZ_CHECK(w.len == enc->len && memcmp(w.p, enc->p, w.len) == 0);
    kmsenv_buf_free(&w);
    kmsenv_ctx_free(&d);
    free(text);
}

/* Parses text into c; returns the result after checking the invariants. */
static int parse_checked(KMSENV_CONTEXT *c, const char *text, size_t len)
{
    KMSENV_BUF before, after;
    size_t nbefore = c->n, enclen = c->enclen, i;
    int ok, had_nul = len > 0 && memchr(text, '\0', len) != NULL;
    char desc[40];

    kmsenv_buf_init(&before, 0);
    kmsenv_buf_init(&after, 0);
    FUZZ_CHECK(kmsenv_ctx_encode(c, &before));
    ERR_clear_error();
    ok = kmsenv_ctx_parse(c, text, len);
    if (ok) {
        FUZZ_CHECK(!had_nul);
        FUZZ_CHECK(kmsenv_ctx_encode(c, &after));
        check_encoding(c, &after);
        check_no_reserved(c);
        FUZZ_CHECK(c->n >= nbefore);
        check_reparse(c, &after);
    } else {
        FUZZ_CHECK(ERR_peek_error() != 0);
        FUZZ_CHECK(c->n == nbefore && c->enclen == enclen);
        FUZZ_CHECK(kmsenv_ctx_encode(c, &after));
        FUZZ_CHECK(after.len == before.len &&
                   memcmp(after.p, before.p, before.len) == 0);
    }
    /* Earlier pairs are kept (a success may only add). */
    if (ok && nbefore > 0) {
        KMSENV_RD r;
        size_t n;

        kmsenv_rd_init(&r, before.p, before.len);
        n = kmsenv_rd_u16(&r);
        for (i = 0; i < n; i++) {
            size_t kl = kmsenv_rd_u16(&r), j;
            const unsigned char *k = kmsenv_rd_bytes(&r, kl);
            size_t vl = kmsenv_rd_u16(&r);
            const unsigned char *v = kmsenv_rd_bytes(&r, vl);

            for (j = 0; j < c->n; j++)
                if (strlen(c->pairs[j].key) == kl &&
                    memcmp(c->pairs[j].key, k, kl) == 0)
                    break;
            FUZZ_CHECK(j < c->n && strlen(c->pairs[j].value) == vl &&
                       (vl == 0 || memcmp(c->pairs[j].value, v, vl) == 0));
        }
    }
    kmsenv_ctx_describe(c, desc, sizeof(desc));
    FUZZ_CHECK(strlen(desc) < sizeof(desc));
    kmsenv_buf_free(&before);
    kmsenv_buf_free(&after);
    ERR_clear_error();
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t alen = nul != NULL ? (size_t)(nul - text) : size;
    KMSENV_CONTEXT c, d;
    int whole, second;

    /* The whole input into an empty context. */
    kmsenv_ctx_init(&c);
    whole = parse_checked(&c, text, size);
    FUZZ_CHECK(whole == 0 || nul == NULL);
    kmsenv_ctx_free(&c);

    if (nul == NULL)
        return 0;
    /* Two texts accumulated into one context. */
    kmsenv_ctx_init(&c);
    parse_checked(&c, text, alen);
    second = parse_checked(&c, nul + 1, size - alen - 1);
    /* What succeeds on top of other pairs succeeds alone. */
    kmsenv_ctx_init(&d);
    FUZZ_CHECK(!second || parse_checked(&d, nul + 1, size - alen - 1));
    kmsenv_ctx_free(&d);
    kmsenv_ctx_free(&c);
    return 0;
}
