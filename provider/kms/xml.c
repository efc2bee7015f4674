/* SPDX-License-Identifier: Apache-2.0 */
/* XML element text for STS answers (kms/xml.h). */
#include "kms/xml.h"
#include "kms/creds.h"

const char *xml_find(const char *p, const char *e, const char *s)
{
    size_t n = strlen(s);

    if (p >= e || n == 0)
        return NULL;
    while ((size_t)(e - p) >= n &&
           (p = memchr(p, s[0], (size_t)(e - p) - n + 1)) != NULL) {
        if (memcmp(p, s, n) == 0)
            return p;
        p++;
    }
    return NULL;
}

/* Finds the first element NAME in [p, e) and sets its raw content span.
 * Comments, CDATA sections and processing instructions are skipped. Returns
 * 1 if found, 0 if not, -1 if it is not closed. */
int xml_elem(const char *p, const char *e, const char *name, const char **cs,
             const char **ce)
{
    size_t nl = strlen(name);
    const char *q, *gt;

    while ((p = memchr(p, '<', (size_t)(e - p))) != NULL) {
        if ((size_t)(e - p) >= 4 && memcmp(p, "<!--", 4) == 0) {
            if ((q = xml_find(p + 4, e, "-->")) == NULL)
                return 0;
            p = q + 3;
            continue;
        }
        if ((size_t)(e - p) >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
            if ((q = xml_find(p + 9, e, "]]>")) == NULL)
                return 0;
            p = q + 3;
            continue;
        }
        p++;
        if ((size_t)(e - p) <= nl || memcmp(p, name, nl) != 0 ||
            (p[nl] != '>' && p[nl] != '/' && !is_ws((unsigned char)p[nl])))
            continue;
        if ((gt = memchr(p + nl, '>', (size_t)(e - p - nl))) == NULL)
            return -1;
        if (gt[-1] == '/') { /* <Name/> */
            *cs = *ce = gt + 1;
            return 1;
        }
        *cs = gt + 1;
        for (q = gt + 1; (q = xml_find(q, e, "</")) != NULL; q += 2) {
            const char *r = q + 2;

            if ((size_t)(e - r) < nl || memcmp(r, name, nl) != 0)
                continue;
            r += nl;
            while (r < e && is_ws((unsigned char)*r))
                r++;
            if (r < e && *r == '>') {
                *ce = q;
                return 1;
            }
        }
        return -1;
    }
    return 0;
}

/* Decodes character data [s, e) (entities, CDATA) into out (room for
 * e - s + 1 bytes: decoding never grows), trimmed. Returns the length, or -1
 * if it holds markup or a bad entity. */
static long xml_text(const char *s, const char *e, char *out)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"amp;", '&'},
                {"lt;", '<'},
                {"gt;", '>'},
                {"quot;", '"'},
                {"apos;", '\''}};
    size_t o = 0, i, n;
    const char *t, *q;

    while (s < e) {
        if (*s == '<') {
            if ((size_t)(e - s) >= 9 && memcmp(s, "<![CDATA[", 9) == 0 &&
                (q = xml_find(s + 9, e, "]]>")) != NULL) {
                memcpy(out + o, s + 9, (size_t)(q - s - 9));
                o += (size_t)(q - s - 9);
                s = q + 3;
                continue;
            }
            return -1;
        }
        if (*s != '&') {
            out[o++] = *s++;
            continue;
        }
        s++;
        for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
            n = strlen(ents[i].ent);
            if ((size_t)(e - s) >= n && memcmp(s, ents[i].ent, n) == 0)
                break;
        }
        if (i < sizeof(ents) / sizeof(ents[0])) {
            out[o++] = ents[i].c;
            s += n;
            continue;
        }
        if (s < e && *s == '#') {
            unsigned long cp = 0;
            int hex = 0, d;

            t = ++s;
            if (s < e && (*s == 'x' || *s == 'X'))
                hex = 1, t = ++s;
            while (s < e && *s != ';' && s - t < 8) {
                d = hex ? kmsenv_hexval((unsigned char)*s)
                        : (*s >= '0' && *s <= '9' ? *s - '0' : -1);
                if (d < 0)
                    return -1;
                cp = cp * (hex ? 16 : 10) + (unsigned long)d;
                s++;
            }
            if (s == t || s >= e || *s != ';' || cp == 0 || cp > 0x10ffff ||
                (cp >= 0xd800 && cp <= 0xdfff))
                return -1;
            s++;
            o += kmsenv_utf8_put(out + o, (unsigned)cp);
            continue;
        }
        return -1;
    }
    t = out;
    n = o;
    trim(&t, &n);
    memmove(out, t, n);
    out[n] = '\0';
    return (long)n;
}

/* Element NAME's text in [p, e), decoded into secure memory. Returns 1, 0
 * if absent, -1 if malformed (nothing raised) or on allocation failure
 * (raised). */
int xml_value(const char *p, const char *e, const char *name,
              KMSENV_SECRET *out)
{
    const char *cs, *ce;
    long n;
    int r = xml_elem(p, e, name, &cs, &ce);

    kmsenv_secret_free(out);
    if (r <= 0)
        return r;
    if (!kmsenv_secret_alloc(out, (size_t)(ce - cs) + 1))
        return -1;
    if ((n = xml_text(cs, ce, (char *)out->data)) < 0) {
        kmsenv_secret_free(out);
        return -1;
    }
    out->len = (size_t)n;
    return 1;
}
