/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the strict JSON reader for AWS answers (provider/kms/json.h),
 * kmsenv_json_fields on arbitrary bytes with the members kmsenv asks for
 * (KMS answers, KMS errors, ECS credentials).
 *
 * It is checked against an independent reference written here from RFC 8259
 * and the contract in json.h: the same documents are accepted, and the same
 * wanted members are found with the same decoded values. json.h's rules on
 * top of RFC 8259: the document is one object; a wanted member must be a
 * string whose value decodes (no \u0000, no lone surrogate), the last of
 * repeated members wins; other values nest at most 32 deep; a key is
 * matched only if its raw form is under 64 bytes and decodes. Also checked:
 * values are NUL-terminated, hold no NUL, and a failure leaves nothing. */
#include "fuzz_common.h"
#include "kms/json.h"

/* ---- reference ---------------------------------------------------------- */

typedef struct {
    const unsigned char *p, *e;
} REF;

static void ref_ws(REF *r)
{
    while (r->p < r->e && strchr(" \t\n\r", *r->p) != NULL && *r->p != '\0')
        r->p++;
}

static int ref_hex(const unsigned char *p, const unsigned char *e, unsigned *v)
{
    int i;

    if (e - p < 4)
        return 0;
    *v = 0;
    for (i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

static size_t ref_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80)
        return o[0] = (unsigned char)cp, 1;
    if (cp < 0x800)
        return o[0] = (unsigned char)(0xc0 | cp >> 6),
               o[1] = (unsigned char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return o[0] = (unsigned char)(0xe0 | cp >> 12),
               o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)),
               o[2] = (unsigned char)(0x80 | (cp & 0x3f)), 3;
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at r->p. Returns 0 on a syntax error. *dec is set to 0 if the
 * value does not decode; out (may be NULL) receives it, *olen its length;
 * *raw the length of the raw content. */
static int ref_string(REF *r, unsigned char *out, size_t *olen, int *dec,
                      size_t *raw)
{
    const unsigned char *s;
    size_t n = 0;
    unsigned cp, lo;

    *dec = 1;
    if (r->p >= r->e || *r->p != '"')
        return 0;
    s = ++r->p;
    for (;;) {
        if (r->p >= r->e || *r->p < 0x20)
            return 0;
        if (*r->p == '"')
            break;
        if (*r->p != '\\') {
            if (out)
                out[n] = *r->p;
            n++, r->p++;
            continue;
        }
        if (++r->p >= r->e)
            return 0;
        switch (*r->p) {
        case '"':
        case '\\':
        case '/':
            cp = *r->p;
            break;
        case 'b':
            cp = 8;
            break;
        case 'f':
            cp = 12;
            break;
        case 'n':
            cp = 10;
            break;
        case 'r':
            cp = 13;
            break;
        case 't':
            cp = 9;
            break;
        case 'u':
            if (!ref_hex(r->p + 1, r->e, &cp))
                return 0;
            r->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && r->e - r->p >= 7 &&
                r->p[1] == '\\' && r->p[2] == 'u' &&
                ref_hex(r->p + 3, r->e, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r->p += 6;
            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                *dec = 0;
            }
            if (cp == 0)
                *dec = 0;
            break;
        default:
            return 0;
        }
        r->p++;
        if (*dec) {
            unsigned char u[4];
            size_t k = ref_utf8(u, cp);
            if (out)
                memcpy(out + n, u, k);
            n += k;
        }
    }
    *raw = (size_t)(r->p - s);
    r->p++;
    *olen = n;
    return 1;
}

static int ref_value(REF *r, int depth);

static int ref_number(REF *r)
{
    const unsigned char *s;

    if (r->p < r->e && *r->p == '-')
        r->p++;
    if (r->p >= r->e || *r->p < '0' || *r->p > '9')
        return 0;
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->e && *r->p >= '0' && *r->p <= '9')
            r->p++;
    if (r->p < r->e && *r->p == '.') {
        s = ++r->p;
        while (r->p < r->e && *r->p >= '0' && *r->p <= '9')
            r->p++;
        if (r->p == s)
            return 0;
    }
    if (r->p < r->e && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->e && (*r->p == '+' || *r->p == '-'))
            r->p++;
        s = r->p;
        while (r->p < r->e && *r->p >= '0' && *r->p <= '9')
            r->p++;
        if (r->p == s)
            return 0;
    }
    return 1;
}

static int ref_value(REF *r, int depth)
{
    static const char *const lit[] = {"true", "false", "null"};
    size_t i, n, raw;
    int dec;

    ref_ws(r);
    if (depth > 32 || r->p >= r->e)
        return 0;
    if (*r->p == '"')
        return ref_string(r, NULL, &n, &dec, &raw);
    if (*r->p == '[' || *r->p == '{') {
        int obj = *r->p == '{';
        unsigned char close = obj ? '}' : ']';

        r->p++;
        ref_ws(r);
        if (r->p < r->e && *r->p == close)
            return r->p++, 1;
        for (;;) {
            if (obj) {
                ref_ws(r);
                if (!ref_string(r, NULL, &n, &dec, &raw))
                    return 0;
                ref_ws(r);
                if (r->p >= r->e || *r->p++ != ':')
                    return 0;
            }
            if (!ref_value(r, depth + 1))
                return 0;
            ref_ws(r);
            if (r->p < r->e && *r->p == ',') {
                r->p++;
                continue;
            }
            return r->p < r->e && *r->p++ == close;
        }
    }
    for (i = 0; i < 3; i++) {
        n = strlen(lit[i]);
        if ((size_t)(r->e - r->p) >= n && memcmp(r->p, lit[i], n) == 0)
            return r->p += n, 1;
    }
    return ref_number(r);
}

#define NF 9
static const char *const names[NF] = {
    "Plaintext", "CiphertextBlob", "KeyId", "__type",    "message",
    "Message",   "AccessKeyId",    "Token", "Expiration"};

typedef struct {
    int present;
    unsigned char *val;
    size_t len;
} REFVAL;

/* 1 if accepted (vals set), 0 if not. */
static int ref_fields(const unsigned char *doc, size_t len, REFVAL *vals)
{
    REF r = {doc, doc + len};
    unsigned char key[64];
    size_t kl, raw, i, vl;
    int dec;

    ref_ws(&r);
    if (r.p >= r.e || *r.p++ != '{')
        return 0;
    ref_ws(&r);
    if (r.p < r.e && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            ref_ws(&r);
            {
                REF probe = r;
                if (!ref_string(&probe, NULL, &kl, &dec, &raw))
                    return 0;
                if (raw < 64) /* decoding never grows */
                    FUZZ_CHECK(ref_string(&r, key, &kl, &dec, &raw));
                else
                    r = probe;
            }
            ref_ws(&r);
            if (r.p >= r.e || *r.p++ != ':')
                return 0;
            ref_ws(&r);
            for (i = 0; raw < 64 && dec && i < NF; i++)
                if (kl == strlen(names[i]) && memcmp(key, names[i], kl) == 0)
                    break;
            if (raw < 64 && dec && i < NF) {
                REF probe = r;
                if (!ref_string(&probe, NULL, &vl, &dec, &raw) || !dec)
                    return 0;
                free(vals[i].val);
                vals[i].val = malloc(vl + 1);
                FUZZ_CHECK(vals[i].val != NULL);
                FUZZ_CHECK(
                    ref_string(&r, vals[i].val, &vals[i].len, &dec, &raw));
                vals[i].present = 1;
            } else if (!ref_value(&r, 1)) {
                return 0;
            }
            ref_ws(&r);
            if (r.p < r.e && *r.p == ',') {
                r.p++;
                continue;
            }
            if (r.p < r.e && *r.p++ == '}')
                break;
            return 0;
        }
    }
    ref_ws(&r);
    return r.p == r.e;
}

/* ---- target ------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    KMSENV_JFIELD f[NF];
    REFVAL want[NF];
    size_t i;
    int got, exp, round;
    char u[4];

    memset(want, 0, sizeof(want));
    exp = ref_fields(data, size, want);
    for (i = 0; i < NF; i++) {
        f[i].name = names[i];
        f[i].val.data = NULL;
        f[i].val.len = 0;
        f[i].present = 0;
    }
    /* Twice into the same fields: the second call starts from the first's
     * results (it must drop them). */
    for (round = 0; round < 2; round++) {
        got = kmsenv_json_fields((const char *)data, size, f, NF);
        FUZZ_CHECK(got == 0 || got == 1);
        FUZZ_CHECK(got == exp);
        for (i = 0; i < NF; i++) {
            FUZZ_CHECK(f[i].present == (got == 1 && want[i].present));
            if (!f[i].present) {
                FUZZ_CHECK(f[i].val.data == NULL);
                continue;
            }
            FUZZ_CHECK(f[i].val.data != NULL && f[i].val.len <= size);
            FUZZ_CHECK(f[i].val.data[f[i].val.len] == '\0');
            FUZZ_CHECK(memchr(f[i].val.data, 0, f[i].val.len) == NULL);
            FUZZ_CHECK(f[i].val.len == want[i].len &&
                       memcmp(f[i].val.data, want[i].val, want[i].len) == 0);
        }
    }
    kmsenv_jfields_free(f, NF);
    for (i = 0; i < NF; i++) {
        FUZZ_CHECK(f[i].val.data == NULL && !f[i].present);
        free(want[i].val);
    }
    /* utf8_put writes what it says, a valid sequence for cp */
    if (size >= 3) {
        unsigned cp =
            ((unsigned)data[0] << 16 | data[1] << 8 | data[2]) % 0x110000;
        size_t n = kmsenv_utf8_put(u, cp);
        FUZZ_CHECK(n == (cp < 0x80      ? 1
                         : cp < 0x800   ? 2
                         : cp < 0x10000 ? 3
                                        : 4));
    }
    return 0;
}
