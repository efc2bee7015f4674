/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded, checked reading of keyset input (see input.h). */
#include "keys/loader.h"
#include "keys/keyobj.h"
#include "envelope/keyset.h"
#include "envelope/wrapkey.h"
#include "util/err.h"
#include "util/file.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

/* Enough to see an OCTET STRING header (at most 6 bytes) and the magic. */
#define PREFIX_LEN 14

/* Parses the OCTET STRING header: 1 with *hl and *l set, 0 if the header is
 * not complete or not an OCTET STRING with a definite length. */
static int der_header(const unsigned char *b, size_t len, size_t *hl, size_t *l)
{
    size_t n, i;

    if (len < 2 || b[0] != 0x04)
        return 0;
    if (b[1] < 0x80) {
        *hl = 2;
        *l = b[1];
        return 1;
    }
    n = b[1] & 0x7f;
    if (n == 0 || n > 4 || len < 2 + n)
        return 0;
    for (*l = 0, i = 0; i < n; i++)
        *l = (*l << 8) | b[2 + i];
    *hl = 2 + n;
    return 1;
}

int kmsenv_input_is_keyset_prefix(const unsigned char *buf, size_t len)
{
    size_t hl, l, m;

    if (!der_header(buf, len, &hl, &l) || len < hl + 4)
        return 0; /* too little to tell: not recognisably ours */
    m = len - hl < 8 ? len - hl : 8;
    return memcmp(buf + hl, KMSENV_KS_MAGIC, m) == 0 ||
           memcmp(buf + hl, KMSENV_WK_MAGIC, m) == 0;
}

int kmsenv_input_check_der(const unsigned char *buf, size_t len,
                           const char *what)
{
    size_t hl, l;

    if (!der_header(buf, len, &hl, &l)) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: keyset truncated or malformed: no complete DER "
                     "OCTET STRING header",
                     what);
        return -1;
    }
    if (hl + l > KMSENV_MAX_INPUT) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: keyset of %zu bytes is over the input limit of %d "
                     "bytes (1 MiB)",
                     what, hl + l, KMSENV_MAX_INPUT);
        return -1;
    }
    if (len < hl + l) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: keyset truncated: %zu of the %zu bytes its DER "
                     "header declares",
                     what, len, hl + l);
        return -1;
    }
    if (len > hl + l) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: trailing data after the keyset's %zu-byte DER "
                     "encoding (nothing may follow it)",
                     what, hl + l);
        return -1;
    }
    return 1;
}

/* Reads until len bytes or EOF; returns the count, or -1 on a read error. */
static long read_upto(BIO *in, unsigned char *b, size_t len)
{
    size_t got = 0, n;

    while (got < len) {
        if (!BIO_read_ex(in, b + got, len - got, &n) || n == 0)
            break;
        got += n;
    }
    return (long)got;
}

/* After refusing input, reads the rest of it: OpenSSL's file: store would
 * otherwise go on decoding from wherever this stopped, byte by byte, and
 * its errors would push ours out of the error queue. */
static int drained(BIO *in)
{
    unsigned char sink[4096];
    size_t n;

    while (BIO_read_ex(in, sink, sizeof(sink), &n) && n > 0)
        continue;
    return -1;
}

int kmsenv_input_read_der(BIO *in, unsigned char **buf, size_t *len,
                          const char *what)
{
    unsigned char pre[PREFIX_LEN], *b;
    size_t hl = 0, l = 0, want;
    long got = read_upto(in, pre, sizeof(pre)), more;

    *buf = NULL;
    *len = 0;
    if (!kmsenv_input_is_keyset_prefix(pre, (size_t)got))
        return 0;
    der_header(pre, (size_t)got, &hl, &l);
    if (hl + l > KMSENV_MAX_INPUT) {
        kmsenv_input_check_der(pre, (size_t)got, what);
        return drained(in);
    }
    /* One byte more than declared, to see trailing data. */
    want = hl + l + 1;
    if (want < (size_t)got)
        want = (size_t)got;
    if ((b = OPENSSL_malloc(want)) == NULL)
        return -1;
    memcpy(b, pre, (size_t)got);
    more = read_upto(in, b + got, want - (size_t)got);
    got += more;
    if (kmsenv_input_check_der(b, (size_t)got, what) != 1) {
        OPENSSL_free(b);
        return drained(in);
    }
    *buf = b;
    *len = (size_t)got;
    return 1;
}

static const char *reason_text(unsigned long e)
{
    const char *s =
        ERR_GET_LIB(e) == ERR_LIB_PEM ? ERR_reason_error_string(e) : NULL;

    return s != NULL ? s : "unreadable";
}

/* The label of the first PEM block from the current position, or "" if
 * there is none; the position is restored. 0 if it cannot be restored. */
static int peek_label(BIO *in, char *label, size_t labellen)
{
    char line[256];
    long loc = BIO_tell(in);
    int n;

    *label = '\0';
    if (loc < 0)
        return 0;
    while ((n = BIO_gets(in, line, sizeof(line))) > 0) {
        if (strncmp(line, "-----BEGIN ", 11) == 0) {
            char *e = strstr(line + 11, "-----");

            if (e != NULL && (size_t)(e - (line + 11)) < labellen) {
                memcpy(label, line + 11, (size_t)(e - (line + 11)));
                label[e - (line + 11)] = '\0';
            }
            break;
        }
    }
    (void)BIO_seek(in, loc);
    return BIO_tell(in) == loc;
}

int kmsenv_our_label(const char *label)
{
    return strcmp(label, KMSENV_KEYSET_PEM_LABEL) == 0 ||
           strcmp(label, KMSENV_WRAPPED_PEM_LABEL) == 0;
}

int kmsenv_input_read_pem(BIO *in, unsigned char **der, size_t *derlen,
                          const char *what)
{
    char label[64], *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    int ours, r, ret = -1;

    *der = NULL;
    *derlen = 0;
    /* Without a way back, only a block that reads cleanly is known ours. */
    ours = peek_label(in, label, sizeof(label)) && kmsenv_our_label(label);
    ERR_set_mark();
    r = PEM_read_bio(in, &name, &header, &data, &len);
    if (r <= 0) {
        unsigned long e = ERR_peek_last_error();
        int reason = ERR_GET_LIB(e) == ERR_LIB_PEM ? ERR_GET_REASON(e) : 0;

        ERR_pop_to_mark();
        if (!ours)
            return 0;
        if (reason == PEM_R_BAD_BASE64_DECODE)
            KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                         "%s: bad PEM base64 in the \"%s\" block", what, label);
        else
            KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                         "%s: malformed \"%s\" PEM block (%s)", what, label,
                         reason == PEM_R_BAD_END_LINE ||
                                 reason == PEM_R_SHORT_HEADER
                             ? "truncated or no END line"
                             : reason_text(e));
        return drained(in);
    }
    ERR_pop_to_mark();
    if (!kmsenv_our_label(name)) {
        ret = 0;
    } else if (strcmp(name, KMSENV_WRAPPED_PEM_LABEL) == 0 &&
               !kmsenv_wrapkey_sniff(data, (size_t)len)) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: the \"" KMSENV_WRAPPED_PEM_LABEL
                     "\" PEM block does not hold a wrapped private key",
                     what);
    } else if (header != NULL && *header != '\0') {
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                     "%s: the \"%s\" PEM block has headers (kmsenv keys are "
                     "wrapped under their KEKs, never password-encrypted)",
                     what, name);
    } else if (kmsenv_input_check_der(data, (size_t)len, what) == 1) {
        *der = data;
        *derlen = (size_t)len;
        data = NULL;
        ret = 1;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    return ret < 0 ? drained(in) : ret;
}

int kmsenv_loader_read_file(const char *path, unsigned char **der, size_t *len)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    char why[160];
    int r;

    *der = NULL;
    *len = 0;
    if (!kmsenv_read_regular(path, KMSENV_MAX_INPUT, &buf, &n, why,
                             sizeof(why))) {
        KMSENV_RAISE(KMSENV_R_IO_ERROR, "key file %s %s", path, why);
        return 0;
    }
    if (kmsenv_input_is_keyset_prefix(buf, n)) {
        r = kmsenv_input_check_der(buf, n, path);
        if (r == 1) {
            *der = buf;
            *len = n;
            return 1;
        }
    } else {
        BIO *mem = BIO_new_mem_buf(buf, (int)n);
        long at = 0, blocks = 0;

        /* The keyset may follow other blocks (a certificate, text): read
         * block by block until ours, the end, or no progress. */
        r = mem != NULL ? 0 : -1;
        while (mem != NULL && r == 0 && blocks++ < 1024 && !BIO_eof(mem)) {
            r = kmsenv_input_read_pem(mem, der, len, path);
            if (r == 0 && BIO_tell(mem) <= at)
                break;
            at = BIO_tell(mem);
        }
        BIO_free(mem);
        if (r == 0)
            KMSENV_RAISE(KMSENV_R_BAD_KEYSET,
                         "%s: neither a DER kmsenv key nor a "
                         "\"" KMSENV_KEYSET_PEM_LABEL "\" or "
                         "\"" KMSENV_WRAPPED_PEM_LABEL "\" PEM block",
                         path);
    }
    OPENSSL_free(buf);
    return r == 1;
}

struct try_arg {
    const KMSENV_KEYS_ENV *env;
    const unsigned char *der;
    size_t len;
    const char *origin;
    KMSENV_KEYOBJ *k;
};

/* One KEK of a keyring= list: "*=KEK" redirects every recorded copy to it
 * (the fingerprint check skips copies it did not wrap). 0 stops the list:
 * loaded, or the keyset itself is bad and no other KEK will help. */
static int try_kek(const char *kek, void *arg)
{
    struct try_arg *t = arg;
    size_t l = strlen(kek) + 3;
    char *redirect = OPENSSL_malloc(l);
    int reason;

    if (redirect == NULL)
        return 0;
    snprintf(redirect, l, "*=%s", kek);
    t->k = kmsenv_keyobj_load(t->env, t->der, t->len, t->origin, redirect);
    OPENSSL_free(redirect);
    reason = ERR_GET_REASON(ERR_peek_last_error());
    return t->k == NULL && reason != KMSENV_R_BAD_KEYSET &&
           reason != KMSENV_R_KEYSET_TAMPERED;
}

/* With the KEKs of keyring, each in turn. Errors of KEKs that failed are
 * dropped once one works. */
static KMSENV_KEYOBJ *load_with_keyring(const KMSENV_KEYS_ENV *env,
                                        const unsigned char *der, size_t len,
                                        const char *origin, const char *keyring)
{
    struct try_arg t = {env, der, len, origin, NULL};
    int tried;

    ERR_set_mark();
    tried = kmsenv_keyring_each(keyring, try_kek, &t);
    if (t.k != NULL) {
        ERR_pop_to_mark();
        return t.k;
    }
    ERR_clear_last_mark();
    if (tried == 0)
        KMSENV_RAISE(KMSENV_R_BAD_URI, "%s: keyring=%s names no KEK", origin,
                     keyring);
    else if (tried > 1)
        KMSENV_RAISE(KMSENV_R_UNWRAP_FAILED,
                     "%s: none of the %d KEKs of keyring=%s could unwrap it",
                     origin, tried, keyring);
    return NULL;
}

KMSENV_KEYOBJ *kmsenv_loader_load(const KMSENV_KEYS_ENV *env,
                                  const unsigned char *der, size_t len,
                                  const char *origin, const char *keyring)
{
    if (keyring != NULL)
        return load_with_keyring(env, der, len, origin, keyring);
    return kmsenv_keyobj_load(env, der, len, origin, NULL);
}

KMSENV_KEYOBJ *kmsenv_loader_load_file(const KMSENV_KEYS_ENV *env,
                                       const char *path, const char *keyring)
{
    unsigned char *der = NULL;
    size_t len = 0;
    KMSENV_KEYOBJ *k = NULL;

    if (kmsenv_loader_read_file(path, &der, &len))
        k = kmsenv_loader_load(env, der, len, path, keyring);
    OPENSSL_free(der);
    return k;
}

/*
 * The handoff. OpenSSL 3.0's file: store runs PEM->DER decoders, then
 * decodes the DER again in ossl_store_handle_load_result(), where errors of
 * a decoder that produces nothing are discarded and a key reference is
 * resolved against the store's provider. So the pre-decoder loads the
 * keyset itself (a failure keeps its errors), parks it here, and passes the
 * DER on; the key decoder, running synchronously inside that callback,
 * takes it instead of unwrapping again. The slot lives only for that
 * callback (OpenSSL 3.5 takes the same path: the early load is still
 * needed there, since the store still drops those errors).
 */
static pthread_key_t handoff_key;
static pthread_once_t handoff_once = PTHREAD_ONCE_INIT;

static void handoff_init(void)
{
    /* per-thread slots, freed when their thread ends (never holding a key:
     * the slot is emptied before each callback returns) */
    (void)pthread_key_create(&handoff_key, free);
}

/* This thread's slot (a pthread key, not _Thread_local: LeakSanitizer
 * crashes on the dynamic TLS of dlopen'd modules); NULL if none can be
 * made (then nothing is loaded early: plain decoding still works). */
KMSENV_HANDOFF *kmsenv_handoff(void)
{
    KMSENV_HANDOFF *h;

    pthread_once(&handoff_once, handoff_init);
    if ((h = pthread_getspecific(handoff_key)) == NULL) {
        /* plain calloc: freed by the key's destructor (free) */
        if ((h = calloc(1, sizeof(*h))) == NULL ||
            pthread_setspecific(handoff_key, h) != 0) {
            free(h);
            return NULL;
        }
    }
    return h;
}

int kmsenv_handoff_holds(const unsigned char *der, size_t len)
{
    const KMSENV_HANDOFF *h = kmsenv_handoff();

    return h != NULL && h->der != NULL && h->len == len &&
           memcmp(h->der, der, len) == 0;
}

void kmsenv_handoff_clear(void)
{
    KMSENV_HANDOFF *h = kmsenv_handoff();

    if (h == NULL)
        return;
    kmsenv_keyobj_free(h->k); /* NULL if it was consumed */
    memset(h, 0, sizeof(*h));
}

KMSENV_KEYOBJ *kmsenv_handoff_take(const KMSENV_KEYS_ENV *env)
{
    KMSENV_HANDOFF *h = kmsenv_handoff();
    KMSENV_KEYOBJ *k = h != NULL ? h->k : NULL;

    if (k == NULL || k->env != env)
        return NULL;
    h->k = NULL;
    return k;
}

static int unhex(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

char *kmsenv_uri_pct_decode(const char *s, size_t n, const char **why)
{
    char *out = OPENSSL_malloc(n + 1), *o = out;
    size_t i;

    if (out == NULL) {
        *why = "out of memory";
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
        } else if (i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
                   isxdigit((unsigned char)s[i + 2])) {
            int c = unhex((unsigned char)s[i + 1]) * 16 +
                    unhex((unsigned char)s[i + 2]);

            if (c == 0) {
                *why = "%00 (a NUL byte) is not allowed";
                OPENSSL_free(out);
                return NULL;
            }
            *o++ = (char)c;
            i += 2;
        } else {
            *why = "'%' must be followed by two hex digits";
            OPENSSL_free(out);
            return NULL;
        }
    }
    *o = '\0';
    return out;
}

int kmsenv_uri_parse(const char *uri, char **path, char **keyring)
{
    const char *rest, *q, *why = NULL;

    *path = *keyring = NULL;
    if (strncasecmp(uri, "kmsenv:", 7) != 0) {
        KMSENV_RAISE(KMSENV_R_BAD_URI,
                     "'%s': expected kmsenv:PATH[?keyring=SPEC]", uri);
        return 0;
    }
    rest = uri + 7;
    q = strchr(rest, '?');
    *path = kmsenv_uri_pct_decode(
        rest, q != NULL ? (size_t)(q - rest) : strlen(rest), &why);
    if (*path == NULL) {
        KMSENV_RAISE(KMSENV_R_BAD_URI, "'%s': bad path: %s", uri, why);
        return 0;
    }
    while (q != NULL) {
        const char *item = q + 1, *end = strchr(item, '&');
        size_t n = end != NULL ? (size_t)(end - item) : strlen(item);

        if (n >= 8 && strncmp(item, "keyring=", 8) == 0) {
            if (*keyring != NULL) {
                KMSENV_RAISE(KMSENV_R_BAD_URI, "'%s': keyring= given twice",
                             uri);
                goto err;
            }
            if (n == 8) {
                KMSENV_RAISE(KMSENV_R_BAD_URI,
                             "'%s': keyring= needs a keyring SPEC", uri);
                goto err;
            }
            if ((*keyring = kmsenv_uri_pct_decode(item + 8, n - 8, &why)) ==
                NULL) {
                KMSENV_RAISE(KMSENV_R_BAD_URI, "'%s': bad keyring= value: %s",
                             uri, why);
                goto err;
            }
        } else if (n > 0) {
            KMSENV_RAISE(KMSENV_R_BAD_URI,
                         "'%s': unknown query parameter '%.*s' (known: "
                         "keyring=SPEC)",
                         uri, (int)n, item);
            goto err;
        }
        q = end;
    }
    return 1;
err:
    OPENSSL_free(*path);
    OPENSSL_free(*keyring);
    *path = *keyring = NULL;
    return 0;
}
