/* SPDX-License-Identifier: Apache-2.0 */
/* The one kmsenv key in a file the CLI rewrites (tools/pemblock.h).
 *
 * Lines are recognised as OpenSSL's PEM reader does (PEM_read_bio): a
 * BEGIN or END line is the marker followed only by bytes <= ' ' (spaces,
 * CR) up to its LF; a UTF-8 byte order mark may open the file. The loader
 * (provider/keys/loader.c) reads the first block with one of our labels;
 * a file with two is refused here, so what kmsenv rewrites is always what
 * applications load. */
#include "tools/pemblock.h"
#include "envelope/wrapkey.h"
#include "keys/keyobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const labels[] = {KMSENV_KEYSET_PEM_LABEL,
                                     KMSENV_WRAPPED_PEM_LABEL};

/* Whether the line [p, e) (without its LF) is marker + label + "-----"
 * followed only by bytes <= ' '. */
static int is_marker(const unsigned char *p, const unsigned char *e,
                     const char *marker, const char *label)
{
    size_t ml = strlen(marker), ll = strlen(label), n = (size_t)(e - p);

    while (n > 0 && p[n - 1] <= ' ')
        n--;
    return n == ml + ll + 5 && memcmp(p, marker, ml) == 0 &&
           memcmp(p + ml, label, ll) == 0 &&
           memcmp(p + ml + ll, "-----", 5) == 0;
}

/* The end of the line at p: its LF, or e. */
static const unsigned char *line_end(const unsigned char *p,
                                     const unsigned char *e)
{
    const unsigned char *lf = memchr(p, '\n', (size_t)(e - p));

    return lf != NULL ? lf : e;
}

/* The end of the END line's marker text on the line [p, le). */
static size_t marker_len(const unsigned char *p, const unsigned char *le)
{
    size_t n = (size_t)(le - p);

    while (n > 0 && p[n - 1] <= ' ')
        n--;
    return n;
}

int kmsenv_block_find(const char *prog, const char *path,
                      const unsigned char *buf, size_t len,
                      KMSENV_FILE_BLOCK *b)
{
    const unsigned char *p = buf, *e = buf + len;
    size_t found = 0, i;

    memset(b, 0, sizeof(*b));
    if (len > 0 && buf[0] == 0x04) { /* the DER container */
        b->der = 1;
        b->label = kmsenv_wrapkey_sniff(buf, len) ? KMSENV_WRAPPED_PEM_LABEL
                                                  : KMSENV_KEYSET_PEM_LABEL;
        b->end = len;
        return 1;
    }
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (p < e) {
        const unsigned char *le = line_end(p, e), *q;

        for (i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
            if (is_marker(p, le, "-----BEGIN ", labels[i]))
                break;
        if (i == sizeof(labels) / sizeof(labels[0])) {
            p = le < e ? le + 1 : e;
            continue;
        }
        if (++found > 1) {
            fprintf(stderr,
                    "%s: %s: holds more than one kmsenv key (\"%s\" and "
                    "\"%s\" PEM blocks); applications load only the first. "
                    "Keep one kmsenv key per file; the file is unchanged\n",
                    prog, path, b->label, labels[i]);
            return 0;
        }
        b->label = labels[i];
        b->start = (size_t)(p - buf);
        for (q = le < e ? le + 1 : e; q < e;) {
            const unsigned char *qe = line_end(q, e);

            if ((size_t)(qe - q) >= 11 && memcmp(q, "-----BEGIN ", 11) == 0)
                break; /* another block before this one's END */
            if (is_marker(q, qe, "-----END ", labels[i])) {
                b->end = (size_t)(q - buf) + marker_len(q, qe);
                break;
            }
            q = qe < e ? qe + 1 : e;
        }
        if (b->end == 0) {
            fprintf(stderr,
                    "%s: %s: the \"%s\" PEM block has no END line before "
                    "the next block or the end of the file; the file is "
                    "unchanged\n",
                    prog, path, labels[i]);
            return 0;
        }
        p = buf + b->end;
    }
    if (found == 0) {
        fprintf(stderr,
                "%s: %s: neither a DER kmsenv key nor a \"%s\" or \"%s\" PEM "
                "block\n",
                prog, path, labels[0], labels[1]);
        return 0;
    }
    return 1;
}

int kmsenv_block_is_wrapped(const KMSENV_FILE_BLOCK *b)
{
    return strcmp(b->label, KMSENV_WRAPPED_PEM_LABEL) == 0;
}

int kmsenv_block_text(const KMSENV_FILE_BLOCK *b, const unsigned char *buf,
                      unsigned char **text, size_t *textlen)
{
    size_t n = b->end - b->start;

    *textlen = n + (b->der ? 0 : 1);
    if ((*text = malloc(*textlen > 0 ? *textlen : 1)) == NULL)
        return 0;
    if (n > 0)
        memcpy(*text, buf + b->start, n);
    if (!b->der)
        (*text)[n] = '\n';
    return 1;
}

int kmsenv_block_splice(const KMSENV_FILE_BLOCK *b, const unsigned char *buf,
                        size_t len, const unsigned char *enc, size_t enclen,
                        unsigned char **out, size_t *outlen)
{
    size_t tail = len - b->end;

    if (!b->der)
        while (enclen > 0 &&
               (enc[enclen - 1] == '\n' || enc[enclen - 1] == '\r'))
            enclen--;
    *outlen = b->start + enclen + tail;
    if ((*out = malloc(*outlen > 0 ? *outlen : 1)) == NULL)
        return 0;
    memcpy(*out, buf, b->start);
    memcpy(*out + b->start, enc, enclen);
    memcpy(*out + b->start + enclen, buf + b->end, tail);
    return 1;
}
