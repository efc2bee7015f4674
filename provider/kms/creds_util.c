/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the AWS credential sources: buffers, secure strings,
 * the credentials structure, ISO 8601 times, HTTP with retries
 * (kms/retry.h), secret files, and the JSON credential documents of ECS and
 * IMDS. */
#include "kms/creds.h"
#include "util/file.h"
#include "kms/xml.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECRET_FILE_MAX (1 << 16) /* token files */
#define AKID_MAX 128
/* Metadata endpoints answer in milliseconds: shorter waits than KMS's. */
#define CRED_BACKOFF_BASE_MS 100L

int is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_ws((unsigned char)**s))
        (*s)++, (*n)--;
    while (*n > 0 && is_ws((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Copies at most cap-1 bytes of src, printable ASCII only (others become
 * '?'), "..." when truncated. For server text that goes into messages. */
void printable(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i, m;

    if (cap == 0)
        return;
    m = n < cap - 1 ? n : cap - 1;
    for (i = 0; i < m; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[m] = '\0';
    if (m < n && cap > 4)
        memcpy(dst + cap - 4, "...", 4);
}

int bapp(KMSENV_BUF *b, const void *p, size_t n)
{
    if (!kmsenv_buf_append(b, p, n)) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "buffer of %zu bytes", b->len + n);
        return 0;
    }
    return 1;
}

int bapps(KMSENV_BUF *b, const char *s)
{
    return bapp(b, s, strlen(s));
}

/* Secure NUL-terminated copy: s->len = n (excluding the NUL). */
int sec_set(KMSENV_SECRET *s, const char *p, size_t n)
{
    kmsenv_secret_free(s);
    if (!kmsenv_secret_alloc(s, n + 1))
        return 0;
    if (n > 0)
        memcpy(s->data, p, n);
    s->data[n] = '\0';
    s->len = n;
    return 1;
}

char *dupn(const char *p, size_t n)
{
    char *r = OPENSSL_strndup(p, n);

    if (r == NULL)
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "string of %zu bytes", n);
    return r;
}

/* Region names go into host names: letters, digits and '-' only. */
int region_ok(const char *r, size_t n)
{
    size_t i;

    if (n == 0 || n > 63)
        return 0;
    for (i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= 'A' && r[i] <= 'Z') ||
              (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return 0;
    return 1;
}

void kmsenv_aws_creds_clear(KMSENV_AWS_CREDS *c)
{
    if (c == NULL)
        return;
    kmsenv_secret_free(&c->secret);
    kmsenv_secret_free(&c->token);
    OPENSSL_cleanse(c, sizeof(*c));
    memset(c, 0, sizeof(*c));
}

/* dst is overwritten (it must not own memory). */
int kmsenv_aws_creds_copy(KMSENV_AWS_CREDS *dst, const KMSENV_AWS_CREDS *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->akid, src->akid, sizeof(dst->akid));
    dst->akid[sizeof(dst->akid) - 1] = '\0';
    memcpy(dst->source, src->source, sizeof(dst->source));
    dst->source[sizeof(dst->source) - 1] = '\0';
    dst->expiration = src->expiration;
    if ((src->secret.data != NULL &&
         !sec_set(&dst->secret, (const char *)src->secret.data,
                  src->secret.len)) ||
        (src->token.data != NULL && src->token.len > 0 &&
         !sec_set(&dst->token, (const char *)src->token.data,
                  src->token.len))) {
        kmsenv_aws_creds_clear(dst);
        return 0;
    }
    return 1;
}

static int akid_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > AKID_MAX)
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* Secrets go into HTTP headers and signatures: no control characters. */
int secret_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* Fills out (which must be empty) after validation; raises naming `what`
 * (e.g. "environment", "profile 'x'") on bad values. tok may be NULL. */
int creds_fill(KMSENV_AWS_CREDS *out, const char *what, const char *akid,
               size_t akidlen, const char *secret, size_t secretlen,
               const char *tok, size_t toklen, long long expiration,
               const char *source)
{
    char shown[40];

    if (!akid_ok(akid, akidlen)) {
        printable(shown, sizeof(shown), akid, akidlen);
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s: invalid access key id '%s' "
                     "(%zu characters; expected 1-%d printable characters "
                     "without spaces)",
                     what, shown, akidlen, AKID_MAX);
        return 0;
    }
    if (secretlen == 0 || !secret_ok(secret, secretlen)) {
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s (access key id %.*s): the "
                     "secret access key is %s",
                     what, (int)akidlen, akid,
                     secretlen == 0 ? "empty"
                                    : "malformed (control "
                                      "characters)");
        return 0;
    }
    if (tok != NULL && !secret_ok(tok, toklen)) {
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s (access key id %.*s): the "
                     "session token is malformed (control characters)",
                     what, (int)akidlen, akid);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->akid, akid, akidlen);
    out->akid[akidlen] = '\0';
    out->expiration = expiration;
    snprintf(out->source, sizeof(out->source), "%s", source);
    if (!sec_set(&out->secret, secret, secretlen) ||
        (tok != NULL && toklen > 0 && !sec_set(&out->token, tok, toklen))) {
        kmsenv_aws_creds_clear(out);
        return 0;
    }
    return 1;
}

/* Temporary credentials that have already expired when they arrive (a
 * stale metadata endpoint, a wrong clock) are refused here, naming the
 * source, rather than sent to KMS. Returns 1 if still valid, else raises. */
int not_expired(const char *label, const char *akid, size_t akidlen,
                const char *exp, size_t explen, long long expiration)
{
    long long now = (long long)time(NULL);
    char shown[48], id[AKID_MAX + 1];

    if (expiration > now)
        return 1;
    printable(shown, sizeof(shown), exp, explen);
    printable(id, sizeof(id), akid, akidlen);
    KMSENV_RAISE(CRED_R,
                 "AWS credentials from %s: the answer's credentials "
                 "(access key id %s) expired at %s, %lld s ago; refused "
                 "(the endpoint serves stale credentials, or this "
                 "machine's clock is wrong)",
                 label, id, shown, now - expiration);
    return 0;
}

static int digits(const char *s, size_t n, int *v)
{
    size_t i;

    *v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

/* Returns 1 and the unix time, 0 if s is not such a timestamp. */
int parse_iso8601(const char *s, size_t n, long long *out)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0, leap;
    size_t i = 19;
    struct tm tm;
    time_t t;

    trim(&s, &n);
    if (n < 19 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) ||
        s[7] != '-' || !digits(s + 8, 2, &D) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &m) ||
        s[16] != ':' || !digits(s + 17, 2, &sec))
        return 0;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        i++;
        if (i + 2 > n || !digits(s + i, 2, &oh))
            return 0;
        i += 2;
        if (i < n && s[i] == ':')
            i++;
        if (i < n) {
            if (i + 2 > n || !digits(s + i, 2, &om))
                return 0;
            i += 2;
        }
        if (oh > 23 || om > 59)
            return 0;
    }
    if (i != n) /* no zone at all: UTC */
        return 0;
    leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] ||
        (M == 2 && D == 29 && !leap) || h > 23 || m > 59 || sec > 60)
        return 0;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    *out = (long long)t - (long long)sign * (oh * 3600 + om * 60);
    return 1;
}

/* Metadata endpoints answer in milliseconds: shorter waits than KMS's. */
static int sts_retryable(const KMSENV_HTTP_RESP *r)
{
    static const char *const codes[] = {"<Code>IDPCommunicationError</Code>",
                                        "<Code>Throttling</Code>",
                                        "<Code>ThrottlingException</Code>",
                                        "<Code>RequestLimitExceeded</Code>"};
    size_t i;

    if (r->status != 400 || r->body.data == NULL)
        return 0;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (xml_find(r->body.data, r->body.data + r->body.len, codes[i]) !=
            NULL)
            return 1;
    return 0;
}

/* Returns 1 when an HTTP response arrived (the last one), 0 on a transport
 * failure after the attempts (resp->transport_error, resp->error), or 0 with
 * a raised error when the URL is refused (resp->transport_error == 0). */
int http_retry(KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp, const RETRY *rt)
{
    KMSENV_RETRY r;
    int got = 0, retry;

    kmsenv_retry_init(&r, rt->attempts, CRED_BACKOFF_BASE_MS, rt->deadline);
    memset(resp, 0, sizeof(*resp));
    resp->transport_error = resp->timed_out = 1;
    snprintf(resp->error, sizeof(resp->error), "no time left (deadline)");
    while (kmsenv_retry_start(&r)) {
        if (r.attempts > 1) {
            kmsenv_log(2, "aws credentials: %s %s attempt %d: %s, retrying",
                       req->method, req->url, r.attempts - 1,
                       got ? "server error" : resp->error);
            kmsenv_http_resp_free(resp);
        }
        req->connect_timeout_ms = kmsenv_retry_clamp(&r, rt->connect_ms);
        req->timeout_ms = kmsenv_retry_clamp(&r, rt->timeout_ms);
        memset(resp, 0, sizeof(*resp));
        got = kmsenv_http_do(req, resp);
        if (!got && !resp->transport_error)
            return 0;
        retry = !got || resp->status >= 500 || resp->status == 429 ||
                (rt->sts && sts_retryable(resp));
        if (!retry || !kmsenv_retry_backoff(&r))
            break;
    }
    return got;
}

/* Reads a small secret file (a token) into secure memory, trimmed. Returns
 * 1, or 0 with why set (nothing raised), or -1 raised (allocation). */
int read_secret_file(const char *path, KMSENV_SECRET *out, char *why,
                     size_t whylen)
{
    KMSENV_SECRET raw = {NULL, 0};
    struct stat sb;
    size_t got = 0;
    ssize_t n;
    const char *s;
    size_t len;
    int fd, ret = -1;

    kmsenv_secret_free(out);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return 0;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        close(fd);
        return 0;
    }
    if (!kmsenv_secret_alloc(&raw, SECRET_FILE_MAX + 1))
        goto done;
    for (;;) {
        n = kmsenv_read_some(fd, raw.data + got, SECRET_FILE_MAX + 1 - got, why,
                             whylen);
        if (n < 0) {
            ret = 0;
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > SECRET_FILE_MAX) {
            snprintf(why, whylen, "larger than %d bytes", SECRET_FILE_MAX);
            ret = 0;
            goto done;
        }
    }
    s = (const char *)raw.data;
    len = got;
    trim(&s, &len);
    if (len == 0) {
        snprintf(why, whylen, "empty");
        ret = 0;
        goto done;
    }
    if (!secret_ok(s, len)) {
        snprintf(why, whylen, "holds control characters");
        ret = 0;
        goto done;
    }
    ret = sec_set(out, s, len) ? 1 : -1;
done:
    close(fd);
    kmsenv_secret_free(&raw);
    return ret;
}

/* AccessKeyId/SecretAccessKey/Token/Expiration JSON (ECS and IMDS).
 * imds: Code must be "Success". Returns 1, 0 with why (nothing raised), or
 * -1 raised. */
int creds_from_json(const KMSENV_BUF *body, const char *label,
                    const char *source, int imds, KMSENV_AWS_CREDS *out,
                    char *why, size_t whylen)
{
    enum { F_AKID, F_SECRET, F_TOKEN, F_EXP, F_CODE, F_MSG, F_N };
    KMSENV_JFIELD f[F_N] = {
        {"AccessKeyId", {NULL, 0}, 0}, {"SecretAccessKey", {NULL, 0}, 0},
        {"Token", {NULL, 0}, 0},       {"Expiration", {NULL, 0}, 0},
        {"Code", {NULL, 0}, 0},        {"Message", {NULL, 0}, 0}};
    long long expiration = 0;
    char c[64], m[200];
    int r, ret = 0;

    r = kmsenv_json_fields(body->data != NULL ? body->data : "", body->len, f,
                           F_N);
    if (r < 0)
        return -1;
    if (r == 0) {
        snprintf(why, whylen, "the answer is not a valid JSON object");
        return 0;
    }
    if (f[F_CODE].present &&
        strcmp((const char *)f[F_CODE].val.data, "Success") != 0) {
        printable(c, sizeof(c), (const char *)f[F_CODE].val.data,
                  f[F_CODE].val.len);
        m[0] = '\0';
        if (f[F_MSG].present)
            printable(m, sizeof(m), (const char *)f[F_MSG].val.data,
                      f[F_MSG].val.len);
        snprintf(why, whylen, "Code '%s'%s%s", c, m[0] ? ": " : "", m);
        goto done;
    }
    if (imds && !f[F_CODE].present) {
        snprintf(why, whylen, "no Code in the answer");
        goto done;
    }
    if (!f[F_AKID].present || !f[F_SECRET].present) {
        snprintf(why, whylen, "AccessKeyId or SecretAccessKey missing");
        goto done;
    }
    if (f[F_EXP].present && !parse_iso8601((const char *)f[F_EXP].val.data,
                                           f[F_EXP].val.len, &expiration)) {
        printable(c, sizeof(c), (const char *)f[F_EXP].val.data,
                  f[F_EXP].val.len);
        snprintf(why, whylen, "unparsable Expiration '%s'", c);
        goto done;
    }
    if (f[F_EXP].present &&
        !not_expired(label, (const char *)f[F_AKID].val.data, f[F_AKID].val.len,
                     (const char *)f[F_EXP].val.data, f[F_EXP].val.len,
                     expiration)) {
        ret = -1;
        goto done;
    }
    ret = creds_fill(
              out, label, (const char *)f[F_AKID].val.data, f[F_AKID].val.len,
              (const char *)f[F_SECRET].val.data, f[F_SECRET].val.len,
              f[F_TOKEN].present ? (const char *)f[F_TOKEN].val.data : NULL,
              f[F_TOKEN].present ? f[F_TOKEN].val.len : 0, expiration, source)
              ? 1
              : -1;
done:
    kmsenv_jfields_free(f, F_N);
    return ret;
}

/* Code/Message (or code/message) of a JSON error answer, for messages. */
void json_error(const KMSENV_BUF *body, char *out, size_t outlen)
{
    KMSENV_JFIELD f[4] = {{"Code", {NULL, 0}, 0},
                          {"Message", {NULL, 0}, 0},
                          {"code", {NULL, 0}, 0},
                          {"message", {NULL, 0}, 0}};
    char c[64] = "", m[200] = "";

    out[0] = '\0';
    ERR_set_mark();
    if (body->data != NULL &&
        kmsenv_json_fields(body->data, body->len, f, 4) == 1) {
        if (f[0].present || f[2].present) {
            KMSENV_SECRET *v = f[0].present ? &f[0].val : &f[2].val;
            printable(c, sizeof(c), (const char *)v->data, v->len);
        }
        if (f[1].present || f[3].present) {
            KMSENV_SECRET *v = f[1].present ? &f[1].val : &f[3].val;
            printable(m, sizeof(m), (const char *)v->data, v->len);
        }
    }
    ERR_pop_to_mark();
    kmsenv_jfields_free(f, 4);
    if (c[0] != '\0' || m[0] != '\0')
        snprintf(out, outlen, ": %s%s%s", c, c[0] && m[0] ? ": " : "", m);
}
