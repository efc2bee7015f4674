/* SPDX-License-Identifier: Apache-2.0 */
#include "kms/json.h"
#include "util/bytes.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>

/* ------------------------------------------------------------------------ */
/* JSON: flat objects with string values (KMS, ECS, IMDS)                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *p, *e;
} JCUR;

static void j_ws(JCUR *c)
{
    while (c->p < c->e &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const char *p, unsigned *v)
{
    int i, d;

    *v = 0;
    for (i = 0; i < 4; i++) {
        if ((d = kmsenv_hexval((unsigned char)p[i])) < 0)
            return 0;
        *v = (*v << 4) | (unsigned)d;
    }
    return 1;
}

/* At '"': validates the string and sets its raw content span. */
static int j_str(JCUR *c, const char **s, const char **e)
{
    unsigned v;

    if (c->p >= c->e || *c->p != '"')
        return 0;
    *s = ++c->p;
    while (c->p < c->e) {
        unsigned char ch = (unsigned char)*c->p;

        if (ch == '"') {
            *e = c->p++;
            return 1;
        }
        if (ch < 0x20)
            return 0;
        if (ch == '\\') {
            if (++c->p >= c->e)
                return 0;
            if (*c->p == 'u') {
                if (c->e - c->p < 5 || !hex4(c->p + 1, &v))
                    return 0;
                c->p += 5;
                continue;
            }
            if (*c->p == '\0' || strchr("\"\\/bfnrt", *c->p) == NULL)
                return 0;
        }
        c->p++;
    }
    return 0;
}

size_t kmsenv_utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes a span validated by j_str into out (room for e - s + 1 bytes:
 * decoding never grows). Returns the length, or -1 (lone surrogate, or a
 * NUL unless nul_ok). */
static long j_unescape(const char *s, const char *e, char *out, int nul_ok)
{
    size_t o = 0;
    unsigned cp, lo;

    while (s < e) {
        if (*s != '\\') {
            out[o++] = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u':
            if (!hex4(s + 1, &cp))
                return -1;
            s += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (e - s < 7 || s[1] != '\\' || s[2] != 'u' ||
                    !hex4(s + 3, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;
            }
            if (cp == 0 && !nul_ok)
                return -1;
            o += kmsenv_utf8_put(out + o, cp);
            break;
        default: /* " \ / */
            out[o++] = *s;
            break;
        }
        s++;
    }
    out[o] = '\0';
    return (long)o;
}

static int j_digits(JCUR *c)
{
    const char *s = c->p;

    while (c->p < c->e && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > s;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int j_number(JCUR *c)
{
    if (c->p < c->e && *c->p == '-')
        c->p++;
    if (c->p < c->e && *c->p == '0')
        c->p++;
    else if (!j_digits(c))
        return 0;
    if (c->p < c->e && *c->p == '.') {
        c->p++;
        if (!j_digits(c))
            return 0;
    }
    if (c->p < c->e && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->e && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!j_digits(c))
            return 0;
    }
    return 1;
}

static int j_skip(JCUR *c, int depth)
{
    const char *s, *e;
    static const char *const lits[] = {"true", "false", "null"};
    size_t i, n;

    j_ws(c);
    if (c->p >= c->e || depth > 32)
        return 0;
    if (*c->p == '"')
        return j_str(c, &s, &e);
    if (*c->p == '{' || *c->p == '[') {
        char close = *c->p == '{' ? '}' : ']';

        c->p++;
        j_ws(c);
        if (c->p < c->e && *c->p == close) {
            c->p++;
            return 1;
        }
        for (;;) {
            if (close == '}') {
                j_ws(c);
                if (!j_str(c, &s, &e))
                    return 0;
                j_ws(c);
                if (c->p >= c->e || *c->p != ':')
                    return 0;
                c->p++;
            }
            if (!j_skip(c, depth + 1))
                return 0;
            j_ws(c);
            if (c->p < c->e && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->e && *c->p == close) {
                c->p++;
                return 1;
            }
            return 0;
        }
    }
    for (i = 0; i < 3; i++) {
        n = strlen(lits[i]);
        if ((size_t)(c->e - c->p) >= n && memcmp(c->p, lits[i], n) == 0) {
            c->p += n;
            return 1;
        }
    }
    return j_number(c);
}

void kmsenv_jfields_free(KMSENV_JFIELD *f, size_t nf)
{
    size_t i;

    for (i = 0; i < nf; i++) {
        kmsenv_secret_free(&f[i].val);
        f[i].present = 0;
    }
}

/* Parses one JSON object and decodes the string members named in f into
 * secure memory. Returns 1, or 0 if the document is malformed or a wanted
 * member is not a string (nothing raised), or -1 on allocation failure
 * (raised). Other members are validated and skipped. */
int kmsenv_json_fields(const char *doc, size_t len, KMSENV_JFIELD *f, size_t nf)
{
    return kmsenv_json_fields_ex(doc, len, f, nf, 0);
}

int kmsenv_json_fields_ex(const char *doc, size_t len, KMSENV_JFIELD *f,
                          size_t nf, int nul_ok)
{
    JCUR c = {doc, doc + len};
    const char *ks, *ke, *vs, *ve;
    char key[64];
    long kl, vl;
    size_t i;

    kmsenv_jfields_free(f, nf);
    j_ws(&c);
    if (c.p >= c.e || *c.p != '{')
        return 0;
    c.p++;
    j_ws(&c);
    if (c.p < c.e && *c.p == '}') {
        c.p++;
        goto end;
    }
    for (;;) {
        j_ws(&c);
        if (!j_str(&c, &ks, &ke))
            goto bad;
        kl = -1;
        if ((size_t)(ke - ks) < sizeof(key))
            kl = j_unescape(ks, ke, key, 0);
        j_ws(&c);
        if (c.p >= c.e || *c.p != ':')
            goto bad;
        c.p++;
        j_ws(&c);
        for (i = 0; kl >= 0 && i < nf; i++)
            if ((size_t)kl == strlen(f[i].name) &&
                memcmp(key, f[i].name, (size_t)kl) == 0)
                break;
        if (kl >= 0 && i < nf) {
            if (!j_str(&c, &vs, &ve))
                goto bad;
            kmsenv_secret_free(&f[i].val);
            f[i].present = 0;
            if (!kmsenv_secret_alloc(&f[i].val, (size_t)(ve - vs) + 1)) {
                kmsenv_jfields_free(f, nf);
                return -1;
            }
            if ((vl = j_unescape(vs, ve, (char *)f[i].val.data, nul_ok)) < 0)
                goto bad;
            f[i].val.len = (size_t)vl;
            f[i].present = 1;
        } else if (!j_skip(&c, 1)) {
            goto bad;
        }
        j_ws(&c);
        if (c.p < c.e && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.e && *c.p == '}') {
            c.p++;
            break;
        }
        goto bad;
    }
end:
    j_ws(&c);
    if (c.p != c.e)
        goto bad;
    return 1;
bad:
    kmsenv_jfields_free(f, nf);
    return 0;
}
