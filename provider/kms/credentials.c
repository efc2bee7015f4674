/* AWS credentials: the provider chain in AWS SDK order (environment, web
 * identity through STS, shared credentials/config files, ECS container
 * endpoint, EC2 IMDSv2) and the per-provider cache.
 *
 * Secrets (secret access keys, session tokens, web identity tokens, IMDS and
 * ECS authorization tokens) only ever live in OPENSSL_secure_* memory: files
 * are read through a secure chunk into a secure line buffer, HTTP responses
 * that carry credentials are secure buffers, and the small JSON and XML
 * scanners below decode string values straight into secure memory (no
 * general-purpose parser ever sees a secret). Messages and logs name access
 * key ids, files, URLs and profiles, never a secret. */
#include "kms/aws.h"
#include "kms/json.h"
#include "kms/retry.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

/* Every credential failure is raised with this reason. */
#define CRED_R KMSENV_R_NO_CREDENTIALS

#define REFRESH_WINDOW_S 300      /* refresh when expiring within 5 min */
#define REFRESH_RETRY_S 30        /* after a failed refresh, reuse for 30 s */
#define INI_MAX_LINE (256 * 1024) /* longer lines are an error */
#define INI_CHUNK 4096            /* secure read chunk */
#define SECRET_FILE_MAX (1 << 16) /* token files */
#define AKID_MAX 128

#define ECS_HOST "http://169.254.170.2"
#define IMDS_HOST "http://169.254.169.254"
#define IMDS_HOST6 "http://[fd00:ec2::254]"
#define IMDS_CREDS_PATH "/latest/meta-data/iam/security-credentials/"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_ws((unsigned char)**s))
        (*s)++, (*n)--;
    while (*n > 0 && is_ws((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Copies at most cap-1 bytes of src, printable ASCII only (others become
 * '?'), "..." when truncated. For server text that goes into messages. */
static void printable(char *dst, size_t cap, const char *src, size_t n)
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

static int bapp(KMSENV_BUF *b, const void *p, size_t n)
{
    if (!kmsenv_buf_append(b, p, n)) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "buffer of %zu bytes", b->len + n);
        return 0;
    }
    return 1;
}

static int bapps(KMSENV_BUF *b, const char *s)
{
    return bapp(b, s, strlen(s));
}

/* Secure NUL-terminated copy: s->len = n (excluding the NUL). */
static int sec_set(KMSENV_SECRET *s, const char *p, size_t n)
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

static char *dupn(const char *p, size_t n)
{
    char *r = OPENSSL_strndup(p, n);

    if (r == NULL)
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "string of %zu bytes", n);
    return r;
}

/* Region names go into host names: letters, digits and '-' only. */
static int region_ok(const char *r, size_t n)
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

/* ------------------------------------------------------------------------ */
/* What each source did, for the final "no AWS credentials" message          */
/* ------------------------------------------------------------------------ */

typedef struct {
    char text[1536];
    size_t len;
} SUMMARY;

__attribute__((format(printf, 2, 3))) static void sum_add(SUMMARY *s,
                                                          const char *fmt, ...)
{
    va_list ap;
    size_t start;
    int n;

    if (s->len + 3 >= sizeof(s->text))
        return;
    if (s->len > 0) {
        memcpy(s->text + s->len, ", ", 3);
        s->len += 2;
    }
    start = s->len;
    va_start(ap, fmt);
    n = vsnprintf(s->text + s->len, sizeof(s->text) - s->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len += (size_t)n;
    if (s->len >= sizeof(s->text))
        s->len = sizeof(s->text) - 1;
    kmsenv_log(2, "aws credentials: %s", s->text + start);
}

/* ------------------------------------------------------------------------ */
/* Environment, read once per resolution                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *akid, *secret, *token;
    const char *wi_file, *role_arn, *session_name;
    const char *profile, *creds_file, *config_file, *home;
    const char *region, *default_region;
    const char *sts_url, *endpoint_url;
    const char *ecs_rel, *ecs_full, *ecs_auth_file, *ecs_auth;
    const char *imds_disabled, *imds_endpoint, *imds_mode;
    const char *use_fips;
} AWS_ENV;

static const char *env_get(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : NULL;
}

static void env_load(AWS_ENV *e)
{
    e->akid = env_get("AWS_ACCESS_KEY_ID");
    e->secret = env_get("AWS_SECRET_ACCESS_KEY");
    e->token = env_get("AWS_SESSION_TOKEN");
    e->wi_file = env_get("AWS_WEB_IDENTITY_TOKEN_FILE");
    e->role_arn = env_get("AWS_ROLE_ARN");
    e->session_name = env_get("AWS_ROLE_SESSION_NAME");
    e->profile = env_get("AWS_PROFILE");
    e->creds_file = env_get("AWS_SHARED_CREDENTIALS_FILE");
    e->config_file = env_get("AWS_CONFIG_FILE");
    e->home = env_get("HOME");
    e->region = env_get("AWS_REGION");
    e->default_region = env_get("AWS_DEFAULT_REGION");
    e->sts_url = env_get("AWS_ENDPOINT_URL_STS");
    e->endpoint_url = env_get("AWS_ENDPOINT_URL");
    e->ecs_rel = env_get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    e->ecs_full = env_get("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    e->ecs_auth_file = env_get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    e->ecs_auth = env_get("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    e->imds_disabled = env_get("AWS_EC2_METADATA_DISABLED");
    e->imds_endpoint = env_get("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    e->imds_mode = env_get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    e->use_fips = env_get("AWS_USE_FIPS_ENDPOINT");
}

/* ------------------------------------------------------------------------ */
/* Credentials structure                                                     */
/* ------------------------------------------------------------------------ */

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
static int secret_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* Fills out (which must be empty) after validation; raises naming `what`
 * (e.g. "environment", "profile 'x'") on bad values. tok may be NULL. */
static int creds_fill(KMSENV_AWS_CREDS *out, const char *what, const char *akid,
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
static int not_expired(const char *label, const char *akid, size_t akidlen,
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

/* ------------------------------------------------------------------------ */
/* ISO 8601 timestamps: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM|+HHMM)   */
/* ------------------------------------------------------------------------ */

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
static int parse_iso8601(const char *s, size_t n, long long *out)
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

/* ------------------------------------------------------------------------ */
/* XML: element text inside a known region (STS)                             */
/* ------------------------------------------------------------------------ */

static const char *find(const char *p, const char *e, const char *s)
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
static int xml_elem(const char *p, const char *e, const char *name,
                    const char **cs, const char **ce)
{
    size_t nl = strlen(name);
    const char *q, *gt;

    while ((p = memchr(p, '<', (size_t)(e - p))) != NULL) {
        if ((size_t)(e - p) >= 4 && memcmp(p, "<!--", 4) == 0) {
            if ((q = find(p + 4, e, "-->")) == NULL)
                return 0;
            p = q + 3;
            continue;
        }
        if ((size_t)(e - p) >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
            if ((q = find(p + 9, e, "]]>")) == NULL)
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
        for (q = gt + 1; (q = find(q, e, "</")) != NULL; q += 2) {
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
                (q = find(s + 9, e, "]]>")) != NULL) {
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
static int xml_value(const char *p, const char *e, const char *name,
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

/* ------------------------------------------------------------------------ */
/* Shared credentials and config files                                       */
/* ------------------------------------------------------------------------ */

/* Returns 1, 0 on a raised error, -1 when the key was already set. */
typedef int (*ini_cb)(void *arg, const char *key, size_t keylen,
                      const char *val, size_t vallen);

typedef struct {
    const char *want; /* profile name */
    const char *path; /* for messages */
    int config;       /* config file: [profile NAME], [default] */
    int in_want;      /* the current section is the wanted profile */
    int in_section;   /* a [section] header has been seen */
    long prop_indent; /* indentation of the last property line; -1: none */
    long lineno;      /* 1-based number of the current line */
    int found;        /* the wanted section was seen */
    ini_cb cb;
    void *arg;
} INI;

static int section_is(const INI *st, const char *name, size_t n)
{
    size_t wl = strlen(st->want);

    if (!st->config)
        return n == wl && memcmp(name, st->want, n) == 0;
    if (n == 7 && memcmp(name, "default", 7) == 0)
        return strcmp(st->want, "default") == 0;
    if (n > 8 && memcmp(name, "profile", 7) == 0 &&
        is_ws((unsigned char)name[7])) {
        name += 7, n -= 7;
        trim(&name, &n);
        return n == wl && memcmp(name, st->want, n) == 0;
    }
    return 0;
}

/* Raises "AWS shared credentials file PATH line N: WHY". Line contents are
 * never shown (a malformed line may hold a secret). */
__attribute__((format(printf, 2, 3))) static int ini_fail(const INI *st,
                                                          const char *fmt, ...)
{
    char why[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    KMSENV_RAISE(CRED_R,
                 "AWS shared %s file %s line %ld: %s (looking for profile "
                 "'%s'; the file is not used until it is fixed)",
                 st->config ? "config" : "credentials", st->path, st->lineno,
                 why, st->want);
    return 0;
}

/* One line (without its '\n'). Grammar of the AWS shared files as
 * botocore's configparser reads them: '#'/';' comment lines, [section],
 * key = value (or key: value), inline comments after whitespace, indented
 * continuation lines (sub-properties) belong to the previous property and
 * are ignored. Keys are case-insensitive, section names are not. What
 * configparser refuses (a setting before any section, a line that is none
 * of these, the wanted section twice) is an error for the whole file, as in
 * botocore (ConfigParseError). Returns 0 on a raised error. */
static int ini_line(INI *st, const char *line, size_t len)
{
    const char *k, *v, *close, *eq, *colon;
    size_t i = 0, kl, vl, j;
    int r;

    if (memchr(line, '\0', len) != NULL)
        return ini_fail(st, "NUL byte (not a text file?)");
    while (len > 0 && is_ws((unsigned char)line[len - 1]))
        len--;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] == '#' || line[i] == ';')
        return 1;
    if (line[i] == '[') {
        st->prop_indent = -1;
        st->in_want = 0;
        close = memchr(line + i + 1, ']', len - i - 1);
        k = line + i + 1;
        kl = close != NULL ? (size_t)(close - k) : 0;
        trim(&k, &kl);
        if (close == NULL || kl == 0)
            return ini_fail(st, "malformed [section] header");
        st->in_section = 1;
        st->in_want = section_is(st, k, kl);
        if (st->in_want && st->found)
            return ini_fail(st, "a second [%s%s] section",
                            st->config && strcmp(st->want, "default") != 0
                                ? "profile "
                                : "",
                            st->want);
        st->found |= st->in_want;
        return 1;
    }
    if (st->prop_indent >= 0 && (long)i > st->prop_indent)
        return 1; /* continuation */
    eq = memchr(line + i, '=', len - i);
    colon = memchr(line + i, ':', len - i);
    if (eq == NULL || (colon != NULL && colon < eq))
        eq = colon;
    if (!st->in_section)
        return ini_fail(st, "a setting before any [section] header");
    k = line + i;
    kl = eq != NULL ? (size_t)(eq - k) : 0;
    trim(&k, &kl);
    if (eq == NULL || kl == 0)
        return ini_fail(st, "neither 'key = value', a [section] header nor "
                            "a comment");
    st->prop_indent = (long)i;
    v = eq + 1;
    vl = (size_t)(line + len - v);
    for (j = 1; j < vl; j++)
        if ((v[j] == '#' || v[j] == ';') && is_ws((unsigned char)v[j - 1])) {
            vl = j;
            break;
        }
    trim(&v, &vl);
    if (!st->in_want)
        return 1;
    r = st->cb(st->arg, k, kl, v, vl);
    if (r < 0) {
        char shown[48];

        printable(shown, sizeof(shown), k, kl);
        return ini_fail(st, "'%s' set twice in the profile", shown);
    }
    return r;
}

/* Reads PATH through secure memory, line by line. Returns 1 when read, 0
 * when absent or unreadable (why says so; nothing raised), -1 on a raised
 * error (allocation, malformed file). */
static int ini_read_file(const char *path, INI *st, char *why, size_t whylen)
{
    KMSENV_SECRET chunk = {NULL, 0};
    KMSENV_BUF line = {.secure = 1};
    struct stat sb;
    ssize_t n;
    const char *p, *nl;
    size_t rem, take;
    int fd, ret = -1;

    why[0] = '\0';
    st->path = path;
    st->lineno = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "%s",
                 errno == ENOENT || errno == ENOTDIR ? "does not exist"
                                                     : strerror(errno));
        return 0;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, whylen, "is not a regular file");
        close(fd);
        return 0;
    }
    if (!kmsenv_secret_alloc(&chunk, INI_CHUNK) || !bapp(&line, "", 0))
        goto done;
    for (;;) {
        n = read(fd, chunk.data, INI_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "read error: %s", strerror(errno));
            ret = 0;
            goto done;
        }
        if (n == 0)
            break;
        p = (const char *)chunk.data;
        rem = (size_t)n;
        while (rem > 0) {
            nl = memchr(p, '\n', rem);
            take = nl != NULL ? (size_t)(nl - p) : rem;
            if (line.len + take > INI_MAX_LINE) {
                /* no silent skipping: what it holds is unknown */
                st->lineno++;
                ini_fail(st, "longer than %d bytes", INI_MAX_LINE);
                goto done;
            }
            if (!bapp(&line, p, take))
                goto done;
            if (nl == NULL)
                break;
            st->lineno++;
            if (!ini_line(st, line.data, line.len))
                goto done;
            kmsenv_buf_reset(&line);
            p = nl + 1;
            rem -= take + 1;
        }
    }
    if (line.len > 0) {
        st->lineno++;
        if (!ini_line(st, line.data, line.len))
            goto done;
    }
    ret = 1;
done:
    close(fd);
    kmsenv_buf_free(&line);
    kmsenv_secret_free(&chunk);
    return ret;
}

/* Keys recognised in a profile; each may be set once (configparser's
 * DuplicateOptionError). */
enum {
    PK_AKID = 1 << 0,
    PK_SECRET = 1 << 1,
    PK_TOKEN = 1 << 2,
    PK_SECTOKEN = 1 << 3,
    PK_REGION = 1 << 4,
    PK_ROLE = 1 << 5,
    PK_WIFILE = 1 << 6,
    PK_SESSION = 1 << 7
};

typedef struct {
    int found;
    unsigned seen; /* PK_* */
    char *akid;
    KMSENV_SECRET secret, token;
    int has_secret, has_token;
    KMSENV_SECRET sectoken; /* legacy aws_security_token */
    int has_sectoken;
    char *region, *role_arn, *wi_file, *session_name;
    int source_profile, credential_source, credential_process, sso;
} PROFILE;

static void profile_free(PROFILE *p)
{
    OPENSSL_free(p->akid);
    kmsenv_secret_free(&p->secret);
    kmsenv_secret_free(&p->token);
    kmsenv_secret_free(&p->sectoken);
    OPENSSL_free(p->region);
    OPENSSL_free(p->role_arn);
    OPENSSL_free(p->wi_file);
    OPENSSL_free(p->session_name);
    memset(p, 0, sizeof(*p));
}

static int key_is(const char *k, size_t kl, const char *name)
{
    return strlen(name) == kl && strncasecmp(k, name, kl) == 0;
}

static int set_str(char **dst, const char *v, size_t vl)
{
    OPENSSL_free(*dst);
    return (*dst = dupn(v, vl)) != NULL;
}

static int profile_cb(void *arg, const char *k, size_t kl, const char *v,
                      size_t vl)
{
    static const struct {
        const char *name;
        unsigned bit;
    } keys[] = {{"aws_access_key_id", PK_AKID},
                {"aws_secret_access_key", PK_SECRET},
                {"aws_session_token", PK_TOKEN},
                {"aws_security_token", PK_SECTOKEN},
                {"region", PK_REGION},
                {"role_arn", PK_ROLE},
                {"web_identity_token_file", PK_WIFILE},
                {"role_session_name", PK_SESSION}};
    PROFILE *p = arg;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (key_is(k, kl, keys[i].name)) {
            if (p->seen & keys[i].bit)
                return -1;
            p->seen |= keys[i].bit;
            break;
        }
    if (key_is(k, kl, "aws_access_key_id"))
        return set_str(&p->akid, v, vl);
    if (key_is(k, kl, "aws_secret_access_key"))
        return (p->has_secret = sec_set(&p->secret, v, vl));
    if (key_is(k, kl, "aws_session_token"))
        return (p->has_token = sec_set(&p->token, v, vl));
    if (key_is(k, kl, "aws_security_token"))
        return (p->has_sectoken = sec_set(&p->sectoken, v, vl));
    if (key_is(k, kl, "region"))
        return set_str(&p->region, v, vl);
    if (key_is(k, kl, "role_arn"))
        return set_str(&p->role_arn, v, vl);
    if (key_is(k, kl, "web_identity_token_file"))
        return set_str(&p->wi_file, v, vl);
    if (key_is(k, kl, "role_session_name"))
        return set_str(&p->session_name, v, vl);
    if (key_is(k, kl, "source_profile"))
        p->source_profile = 1;
    else if (key_is(k, kl, "credential_source"))
        p->credential_source = 1;
    else if (key_is(k, kl, "credential_process"))
        p->credential_process = 1;
    else if (key_is(k, kl, "sso_session") || key_is(k, kl, "sso_start_url"))
        p->sso = 1;
    return 1;
}

/* "~/x" -> "$HOME/x"; NULL home: no expansion possible. */
static char *expand_home(const char *path, const char *home)
{
    char *r;
    size_t n;

    if (path[0] != '~' || (path[1] != '/' && path[1] != '\0'))
        return dupn(path, strlen(path));
    if (home == NULL)
        return NULL;
    n = strlen(home) + strlen(path);
    if ((r = OPENSSL_malloc(n)) == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "path");
        return NULL;
    }
    snprintf(r, n, "%s%s", home, path + 1);
    return r;
}

/* HOME, else the password database. buf holds the result. */
static const char *home_dir(const AWS_ENV *env, char *buf, size_t buflen)
{
    struct passwd pw, *res = NULL;

    if (env->home != NULL)
        return env->home;
    if (getpwuid_r(getuid(), &pw, buf, buflen, &res) == 0 && res != NULL &&
        pw.pw_dir != NULL && pw.pw_dir[0] != '\0')
        return pw.pw_dir;
    return NULL;
}

typedef struct {
    const char *name; /* profile */
    const char *from; /* "aws_profile", "AWS_PROFILE" or NULL (implicit) */
    char *creds_path, *config_path;
    char creds_why[128], config_why[128];
    int creds_found, config_found; /* section present */
    /* merged: settings of both files, the credentials file's winning (as
     * botocore's full_config). Static keys are not merged: as botocore's
     * SharedCredentialProvider and ConfigProvider, each file's pair stands
     * alone. merged.akid/secret/token are the credentials file's if it holds
     * aws_access_key_id or aws_secret_access_key, else the config file's;
     * keys_from says which (1 credentials, 2 config, 0 none) and
     * other_akid/other_secret what the other file holds. The token is
     * aws_security_token, else aws_session_token, of the same file. */
    PROFILE merged;
    int keys_from;
    int other_akid, other_secret;
} PROFILE_LOOKUP;

static void lookup_free(PROFILE_LOOKUP *l)
{
    OPENSSL_free(l->creds_path);
    OPENSSL_free(l->config_path);
    profile_free(&l->merged);
    memset(l, 0, sizeof(*l));
}

static void profile_name(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                         const char **name, const char **from)
{
    if (cfg->profile != NULL && cfg->profile[0] != '\0') {
        *name = cfg->profile;
        *from = "aws_profile";
    } else if (env->profile != NULL) {
        *name = env->profile;
        *from = "AWS_PROFILE";
    } else {
        *name = "default";
        *from = NULL;
    }
}

static void merge_str(char **dst, char **a, char **b)
{
    *dst = *a != NULL ? *a : *b;
    if (*a != NULL)
        *a = NULL;
    else
        *b = NULL;
}

/* Loads the profile from both files (see PROFILE_LOOKUP). creds: 0 reads
 * only the config file. Returns 1, or 0 on a raised error (a malformed
 * file, allocation). */
static int profile_load(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                        int creds, PROFILE_LOOKUP *l)
{
    PROFILE pc, pg;
    INI st;
    char pwbuf[1024];
    const char *home = home_dir(env, pwbuf, sizeof(pwbuf));
    int ok = 0;

    memset(l, 0, sizeof(*l));
    memset(&pc, 0, sizeof(pc));
    memset(&pg, 0, sizeof(pg));
    profile_name(cfg, env, &l->name, &l->from);

    if (creds) {
        if (env->creds_file != NULL)
            l->creds_path = expand_home(env->creds_file, home);
        else if (home != NULL)
            l->creds_path = expand_home("~/.aws/credentials", home);
        if (l->creds_path == NULL) {
            snprintf(l->creds_why, sizeof(l->creds_why),
                     "no home directory for ~/.aws/credentials");
        } else {
            memset(&st, 0, sizeof(st));
            st.want = l->name;
            st.prop_indent = -1;
            st.cb = profile_cb;
            st.arg = &pc;
            if (ini_read_file(l->creds_path, &st, l->creds_why,
                              sizeof(l->creds_why)) < 0)
                goto done;
            l->creds_found = st.found;
        }
    }
    if (env->config_file != NULL)
        l->config_path = expand_home(env->config_file, home);
    else if (home != NULL)
        l->config_path = expand_home("~/.aws/config", home);
    if (l->config_path == NULL) {
        snprintf(l->config_why, sizeof(l->config_why),
                 "no home directory for ~/.aws/config");
    } else {
        memset(&st, 0, sizeof(st));
        st.want = l->name;
        st.config = 1;
        st.prop_indent = -1;
        st.cb = profile_cb;
        st.arg = &pg;
        if (ini_read_file(l->config_path, &st, l->config_why,
                          sizeof(l->config_why)) < 0)
            goto done;
        l->config_found = st.found;
    }

    l->merged.found = l->creds_found || l->config_found;
    if (pc.akid != NULL || pc.has_secret)
        l->keys_from = 1;
    else if (pg.akid != NULL || pg.has_secret)
        l->keys_from = 2;
    if (l->keys_from != 0) {
        PROFILE *f = l->keys_from == 1 ? &pc : &pg;
        PROFILE *o = l->keys_from == 1 ? &pg : &pc;

        l->merged.akid = f->akid;
        f->akid = NULL;
        l->merged.secret = f->secret;
        l->merged.has_secret = f->has_secret;
        memset(&f->secret, 0, sizeof(f->secret));
        if (f->has_sectoken || f->has_token) {
            KMSENV_SECRET *t = f->has_sectoken ? &f->sectoken : &f->token;

            l->merged.token = *t;
            l->merged.has_token = 1;
            memset(t, 0, sizeof(*t));
        }
        l->other_akid = o->akid != NULL;
        l->other_secret = o->has_secret;
    }
    merge_str(&l->merged.region, &pc.region, &pg.region);
    merge_str(&l->merged.role_arn, &pc.role_arn, &pg.role_arn);
    merge_str(&l->merged.wi_file, &pc.wi_file, &pg.wi_file);
    merge_str(&l->merged.session_name, &pc.session_name, &pg.session_name);
    l->merged.source_profile = pc.source_profile | pg.source_profile;
    l->merged.credential_source = pc.credential_source | pg.credential_source;
    l->merged.credential_process =
        pc.credential_process | pg.credential_process;
    l->merged.sso = pc.sso | pg.sso;
    ok = 1;
done:
    profile_free(&pc);
    profile_free(&pg);
    return ok;
}

/* "PATH has no [profile x]" / "PATH does not exist", for messages. */
static void lookup_where(const PROFILE_LOOKUP *l, int creds, char *out,
                         size_t outlen)
{
    const char *path = creds ? l->creds_path : l->config_path;
    const char *why = creds ? l->creds_why : l->config_why;
    int isdef = strcmp(l->name, "default") == 0;

    if (path == NULL)
        snprintf(out, outlen, "%s", why);
    else if (why[0] != '\0')
        snprintf(out, outlen, "%s %s", path, why);
    else
        snprintf(out, outlen, "%s has no [%s%s]", path,
                 creds || isdef ? "" : "profile ", l->name);
}

/* Profile region from the config file (env already read), or NULL. Silent. */
static char *profile_region_env(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env)
{
    PROFILE_LOOKUP l;
    char *r = NULL;

    ERR_set_mark();
    if (profile_load(cfg, env, 0, &l) && l.merged.region != NULL &&
        l.merged.region[0] != '\0') {
        r = l.merged.region;
        l.merged.region = NULL;
    }
    lookup_free(&l);
    ERR_pop_to_mark();
    return r;
}

char *kmsenv_aws_profile_region(const KMSENV_AWS_CFG *cfg)
{
    static const KMSENV_AWS_CFG none;
    AWS_ENV env;

    env_load(&env);
    return profile_region_env(cfg != NULL ? cfg : &none, &env);
}

/* ------------------------------------------------------------------------ */
/* HTTP with retries                                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
    int attempts;
    long connect_ms, timeout_ms;
    long long deadline; /* kmsenv_now_ms() */
    int sts;            /* also retry STS throttling / IdP errors */
} RETRY;

/* Metadata endpoints answer in milliseconds: shorter waits than KMS's. */
#define CRED_BACKOFF_BASE_MS 100L

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
        if (find(r->body.data, r->body.data + r->body.len, codes[i]) != NULL)
            return 1;
    return 0;
}

/* Returns 1 when an HTTP response arrived (the last one), 0 on a transport
 * failure after the attempts (resp->transport_error, resp->error), or 0 with
 * a raised error when the URL is refused (resp->transport_error == 0). */
static int http_retry(KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp,
                      const RETRY *rt)
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

/* ------------------------------------------------------------------------ */
/* Source results: 1 found, 0 not configured (summary noted), -1 raised     */
/* ------------------------------------------------------------------------ */

static int src_env(const AWS_ENV *env, SUMMARY *sum, KMSENV_AWS_CREDS *out)
{
    if (env->akid == NULL && env->secret == NULL) {
        sum_add(sum, "environment (not set)");
        return 0;
    }
    if (env->akid == NULL || env->secret == NULL) {
        KMSENV_RAISE(
            CRED_R,
            "AWS credentials from the environment: %s is set but "
            "%s is not (set both, or neither)",
            env->akid != NULL ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
            env->akid != NULL ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    return creds_fill(out, "the environment", env->akid, strlen(env->akid),
                      env->secret, strlen(env->secret), env->token,
                      env->token != NULL ? strlen(env->token) : 0, 0,
                      "environment")
               ? 1
               : -1;
}

/* Reads a small secret file (a token) into secure memory, trimmed. Returns
 * 1, or 0 with why set (nothing raised), or -1 raised (allocation). */
static int read_secret_file(const char *path, KMSENV_SECRET *out, char *why,
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
        n = read(fd, raw.data + got, SECRET_FILE_MAX + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "read error: %s", strerror(errno));
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

/* Appends s URL-encoded (RFC 3986 unreserved kept). s may be a secret: it
 * goes straight from secure memory into b. */
static int form_enc(KMSENV_BUF *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[3];
    size_t i = 0, run;
    int ok = 1;

    while (ok && i < n) {
        for (run = 0; i + run < n; run++) {
            unsigned char c = (unsigned char)s[i + run];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
                  c == '~'))
                break;
        }
        if (run > 0)
            ok = bapp(b, s + i, run);
        i += run;
        if (ok && i < n) {
            esc[0] = '%';
            esc[1] = hex[(unsigned char)s[i] >> 4];
            esc[2] = hex[(unsigned char)s[i] & 15];
            ok = bapp(b, esc, 3);
            i++;
        }
    }
    OPENSSL_cleanse(esc, sizeof(esc));
    return ok;
}

/* Parses an STS AssumeRoleWithWebIdentity answer. Returns 1, or 0 with why
 * (nothing raised), or -1 raised. */
static int sts_parse(const char *doc, size_t len, const char *label,
                     KMSENV_AWS_CREDS *out, char *why, size_t whylen)
{
    KMSENV_SECRET akid = {NULL, 0}, sec = {NULL, 0}, tok = {NULL, 0},
                  exp = {NULL, 0};
    const char *cs, *ce;
    long long expiration = 0;
    int r, ret = 0;

    r = xml_elem(doc, doc + len, "Credentials", &cs, &ce);
    if (r <= 0) {
        snprintf(why, whylen, "no <Credentials> in the answer");
        return 0;
    }
    if ((r = xml_value(cs, ce, "AccessKeyId", &akid)) < 0 ||
        (r = r == 0 ? 0 : xml_value(cs, ce, "SecretAccessKey", &sec)) < 0 ||
        (r = r == 0 ? 0 : xml_value(cs, ce, "SessionToken", &tok)) < 0 ||
        (r = r == 0 ? 0 : xml_value(cs, ce, "Expiration", &exp)) < 0) {
        snprintf(why, whylen, "malformed <Credentials>");
        goto done;
    }
    if (r == 0 || akid.len == 0 || sec.len == 0 || tok.len == 0) {
        snprintf(why, whylen,
                 "incomplete <Credentials> (AccessKeyId, SecretAccessKey, "
                 "SessionToken, Expiration)");
        goto done;
    }
    if (!parse_iso8601((const char *)exp.data, exp.len, &expiration)) {
        char shown[48];

        printable(shown, sizeof(shown), (const char *)exp.data, exp.len);
        snprintf(why, whylen, "unparsable Expiration '%s'", shown);
        goto done;
    }
    if (!not_expired(label, (const char *)akid.data, akid.len,
                     (const char *)exp.data, exp.len, expiration)) {
        ret = -1;
        goto done;
    }
    ret = creds_fill(out, label, (const char *)akid.data, akid.len,
                     (const char *)sec.data, sec.len, (const char *)tok.data,
                     tok.len, expiration, label)
              ? 1
              : -1;
done:
    kmsenv_secret_free(&akid);
    kmsenv_secret_free(&sec);
    kmsenv_secret_free(&tok);
    kmsenv_secret_free(&exp);
    return ret;
}

/* "Code: Message" from an AWS query-protocol error document. */
static void xml_error(const char *doc, size_t len, char *out, size_t outlen)
{
    KMSENV_SECRET code = {NULL, 0}, msg = {NULL, 0};
    const char *s, *e, *cs, *ce;
    char c[96], m[256];

    out[0] = '\0';
    if (doc == NULL)
        return;
    s = doc;
    e = doc + len;
    if (xml_elem(doc, doc + len, "Error", &cs, &ce) == 1)
        s = cs, e = ce;
    ERR_set_mark();
    c[0] = m[0] = '\0';
    if (xml_value(s, e, "Code", &code) == 1)
        printable(c, sizeof(c), (const char *)code.data, code.len);
    if (xml_value(s, e, "Message", &msg) == 1)
        printable(m, sizeof(m), (const char *)msg.data, msg.len);
    ERR_pop_to_mark();
    if (c[0] != '\0' || m[0] != '\0')
        snprintf(out, outlen, ": %s%s%s", c, c[0] && m[0] ? ": " : "", m);
    kmsenv_secret_free(&code);
    kmsenv_secret_free(&msg);
}

/* STS endpoint: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else regional. */
static char *sts_url(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env)
{
    char *region = NULL, *url;
    const char *r = NULL;
    char buf[160];

    if (env->sts_url != NULL)
        return dupn(env->sts_url, strlen(env->sts_url));
    if (env->endpoint_url != NULL)
        return dupn(env->endpoint_url, strlen(env->endpoint_url));
    if (cfg->region != NULL && cfg->region[0] != '\0')
        r = cfg->region;
    else if (env->region != NULL)
        r = env->region;
    else if (env->default_region != NULL)
        r = env->default_region;
    else
        r = region = profile_region_env(cfg, env);
    if (r == NULL) {
        snprintf(buf, sizeof(buf), "https://sts.amazonaws.com");
    } else if (!region_ok(r, strlen(r))) {
        KMSENV_RAISE(CRED_R, "invalid AWS region '%.64s' for STS", r);
        OPENSSL_free(region);
        return NULL;
    } else {
        snprintf(buf, sizeof(buf), "https://sts%s.%s.amazonaws.com%s",
                 cfg->use_fips || (env->use_fips != NULL &&
                                   (strcasecmp(env->use_fips, "true") == 0 ||
                                    strcmp(env->use_fips, "1") == 0))
                     ? "-fips"
                     : "",
                 r, strncmp(r, "cn-", 3) == 0 ? ".cn" : "");
    }
    OPENSSL_free(region);
    url = dupn(buf, strlen(buf));
    return url;
}

/* AssumeRoleWithWebIdentity with the token in token_file. label names the
 * source in messages ("web identity (AWS_WEB_IDENTITY_TOKEN_FILE)"). */
static int web_identity(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                        const char *label, const char *source,
                        const char *token_file, const char *role_arn,
                        const char *session, KMSENV_AWS_CREDS *out)
{
    KMSENV_SECRET tok = {NULL, 0};
    KMSENV_BUF body = {.secure = 1};
    KMSENV_HTTP_REQ req;
    KMSENV_HTTP_RESP resp;
    RETRY rt;
    char why[160], sess[64], errtxt[400], rid[160];
    const char *headers[] = {
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8",
        "Accept: text/xml", NULL};
    char *url = NULL;
    int r, ret = -1;

    memset(&resp, 0, sizeof(resp));
    if (session == NULL) {
        snprintf(sess, sizeof(sess), "kmsenv-%lld", (long long)time(NULL));
        session = sess;
    }
    r = read_secret_file(token_file, &tok, why, sizeof(why));
    if (r == 0)
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s: cannot read the web identity "
                     "token file %s: %s",
                     label, token_file, why);
    if (r <= 0)
        goto done;
    if ((url = sts_url(cfg, env)) == NULL)
        goto done;
    if (!bapps(&body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                      "&RoleArn=") ||
        !form_enc(&body, role_arn, strlen(role_arn)) ||
        !bapps(&body, "&RoleSessionName=") ||
        !form_enc(&body, session, strlen(session)) ||
        !bapps(&body, "&WebIdentityToken=") ||
        !form_enc(&body, (const char *)tok.data, tok.len))
        goto done;
    kmsenv_secret_free(&tok);

    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.body = body.data;
    req.bodylen = body.len;
    req.policy =
        cfg->allow_http ? KMSENV_HTTP_LOOPBACK_OK : KMSENV_HTTP_HTTPS_ONLY;
    req.ca_file = cfg->ca_file;
    req.secure_response = 1;
    rt.attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
    rt.connect_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 3000;
    rt.timeout_ms =
        cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 10000;
    rt.deadline =
        kmsenv_now_ms() + (cfg->deadline_ms > 0 ? cfg->deadline_ms : 30000);
    rt.sts = 1;
    kmsenv_log(2, "aws credentials: %s: AssumeRoleWithWebIdentity %s at %s",
               label, role_arn, url);
    if (!http_retry(&req, &resp, &rt)) {
        if (resp.transport_error)
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from %s: STS at %s unreachable: %s",
                         label, url, resp.error);
        else
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from %s: STS endpoint "
                         "refused (set AWS_ENDPOINT_URL_STS)",
                         label);
        goto done;
    }
    rid[0] = '\0';
    if (resp.request_id[0] != '\0')
        snprintf(rid, sizeof(rid), " (request id %s)", resp.request_id);
    if (resp.status != 200) {
        xml_error(resp.body.data, resp.body.len, errtxt, sizeof(errtxt));
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s: STS AssumeRoleWithWebIdentity "
                     "for %s at %s failed: HTTP %ld%s%s",
                     label, role_arn, url, resp.status, errtxt, rid);
        goto done;
    }
    r = sts_parse(resp.body.data != NULL ? resp.body.data : "", resp.body.len,
                  label, out, why, sizeof(why));
    if (r == 0)
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s: STS at %s answered HTTP 200 "
                     "but %s%s",
                     label, url, why, rid);
    if (r <= 0)
        goto done;
    snprintf(out->source, sizeof(out->source), "%s", source);
    ret = 1;
done:
    kmsenv_secret_free(&tok);
    kmsenv_buf_free(&body);
    kmsenv_http_resp_free(&resp);
    OPENSSL_free(url);
    return ret;
}

static int src_web_identity(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                            SUMMARY *sum, KMSENV_AWS_CREDS *out)
{
    if (env->wi_file == NULL) {
        sum_add(sum, "web identity (%s)",
                env->role_arn != NULL
                    ? "AWS_ROLE_ARN set but not AWS_WEB_IDENTITY_TOKEN_FILE"
                    : "not set");
        return 0;
    }
    if (env->role_arn == NULL) {
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from web identity: "
                     "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is "
                     "not");
        return -1;
    }
    return web_identity(cfg, env, "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
                        "web-identity", env->wi_file, env->role_arn,
                        env->session_name, out);
}

static int src_profile(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                       SUMMARY *sum, KMSENV_AWS_CREDS *out)
{
    PROFILE_LOOKUP l;
    PROFILE *p = &l.merged;
    char w1[300], w2[300], what[160], source[96];
    const char *unsupported = NULL;
    int ret = -1;

    if (!profile_load(cfg, env, 1, &l))
        goto done;
    lookup_where(&l, 1, w1, sizeof(w1));
    lookup_where(&l, 0, w2, sizeof(w2));
    if (l.keys_from != 0)
        snprintf(what, sizeof(what), "profile '%s' (%s)", l.name,
                 l.keys_from == 1 ? l.creds_path : l.config_path);
    else
        snprintf(what, sizeof(what), "profile '%s' (%s, %s)", l.name,
                 l.creds_path != NULL ? l.creds_path : "no credentials file",
                 l.config_path != NULL ? l.config_path : "no config file");
    snprintf(source, sizeof(source), "profile %s", l.name);
    if (!p->found) {
        if (l.from != NULL) {
            KMSENV_RAISE(CRED_R,
                         "AWS profile '%s' (chosen by %s) not found: %s; %s",
                         l.name, l.from, w1, w2);
            goto done;
        }
        sum_add(sum, "profile '%s' (not found: %s; %s)", l.name, w1, w2);
        ret = 0;
        goto done;
    }
    if (p->akid != NULL || p->has_secret) {
        if (p->akid == NULL || !p->has_secret) {
            const char *file = l.keys_from == 1 ? l.creds_path : l.config_path;
            const char *ofile = l.keys_from == 1 ? l.config_path : l.creds_path;
            int other = p->akid != NULL ? l.other_secret : l.other_akid;

            /* botocore: PartialCredentialsError; each file's pair stands
             * alone, a key in the other file does not complete it */
            KMSENV_RAISE(
                CRED_R,
                "AWS credentials from profile '%s' in %s: %s is set but "
                "%s is not%s%s%s",
                l.name, file,
                p->akid != NULL ? "aws_access_key_id" : "aws_secret_access_key",
                p->akid != NULL ? "aws_secret_access_key" : "aws_access_key_id",
                other ? " there (it is in " : "", other ? ofile : "",
                other ? "; both keys must be in the same file)" : "");
            goto done;
        }
        ret = creds_fill(out, what, p->akid, strlen(p->akid),
                         (const char *)p->secret.data, p->secret.len,
                         p->has_token ? (const char *)p->token.data : NULL,
                         p->has_token ? p->token.len : 0, 0, source)
                  ? 1
                  : -1;
        goto done;
    }
    if (p->role_arn != NULL && p->wi_file != NULL) {
        char label[200], *file;
        char pwbuf[1024];

        snprintf(label, sizeof(label), "web identity (profile '%s')", l.name);
        snprintf(source, sizeof(source), "profile %s (web-identity)", l.name);
        if ((file = expand_home(p->wi_file,
                                home_dir(env, pwbuf, sizeof(pwbuf)))) == NULL) {
            KMSENV_RAISE(CRED_R, "AWS credentials from %s: cannot expand %s",
                         label, p->wi_file);
            goto done;
        }
        ret = web_identity(cfg, env, label, source, file, p->role_arn,
                           p->session_name, out);
        OPENSSL_free(file);
        goto done;
    }
    if (p->wi_file != NULL)
        unsupported = "web_identity_token_file without role_arn";
    else if (p->role_arn != NULL)
        unsupported = "role_arn with source_profile/credential_source "
                      "(assume-role chaining)";
    else if (p->credential_process)
        unsupported = "credential_process";
    else if (p->sso)
        unsupported = "IAM Identity Center (sso_*)";
    else if (p->source_profile || p->credential_source)
        unsupported = "source_profile/credential_source without role_arn";
    if (unsupported != NULL) {
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from %s: the profile uses %s, which "
                     "kmsenv does not support; use static keys, web "
                     "identity, or export credentials into the environment "
                     "(e.g. aws configure export-credentials --format env)",
                     what, unsupported);
        goto done;
    }
    sum_add(sum, "profile '%s' (no credentials in it)", l.name);
    ret = 0;
done:
    lookup_free(&l);
    return ret;
}

/* ---- ECS / EKS Pod Identity ---- */

/* Host of an http(s) URL: "" on failure. Bracketed IPv6 without brackets.
 * The authority must be plain HOST[:PORT] or [IPV6][:PORT] (letters,
 * digits, '.', '-'; no userinfo, no percent-encoding), so that this parse
 * and curl's cannot disagree about which host is contacted. */
static void url_host(const char *url, char *host, size_t hostlen)
{
    const char *p = strstr(url, "://"), *h, *end, *hend, *q;
    size_t n;

    host[0] = '\0';
    if (p == NULL)
        return;
    h = p + 3;
    end = h + strcspn(h, "/?#");
    if (*h == '[') {
        if ((hend = memchr(h, ']', (size_t)(end - h))) == NULL)
            return;
        for (q = h + 1; q < hend; q++)
            if (kmsenv_hexval((unsigned char)*q) < 0 && *q != ':' && *q != '.')
                return;
        h++;
        q = hend + 1;
    } else {
        hend = h + strcspn(h, ":/?#");
        if (hend > end)
            hend = end;
        for (q = h; q < hend; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                  (*q >= '0' && *q <= '9') || *q == '.' || *q == '-'))
                return;
        q = hend;
    }
    if (q < end) { /* :PORT */
        if (*q != ':' || q + 1 == end)
            return;
        for (q++; q < end; q++)
            if (*q < '0' || *q > '9')
                return;
    }
    n = (size_t)(hend - h);
    if (n == 0 || n >= hostlen)
        return;
    memcpy(host, h, n);
    host[n] = '\0';
}

/* http:// is allowed for loopback, 169.254.170.2 (ECS), 169.254.170.23
 * and fd00:ec2::23 (EKS Pod Identity). */
static int ecs_host_ok(const char *host)
{
    unsigned char a4[4], a6[16], ref[16];

    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, a4) == 1)
        return a4[0] == 127 || strcmp(host, "169.254.170.2") == 0 ||
               strcmp(host, "169.254.170.23") == 0;
    if (inet_pton(AF_INET6, host, a6) == 1) {
        if (inet_pton(AF_INET6, "::1", ref) == 1 && memcmp(a6, ref, 16) == 0)
            return 1;
        return inet_pton(AF_INET6, "fd00:ec2::23", ref) == 1 &&
               memcmp(a6, ref, 16) == 0;
    }
    return 0;
}

static int url_chars_ok(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* AccessKeyId/SecretAccessKey/Token/Expiration JSON (ECS and IMDS).
 * imds: Code must be "Success". Returns 1, 0 with why (nothing raised), or
 * -1 raised. */
static int creds_from_json(const KMSENV_BUF *body, const char *label,
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
static void json_error(const KMSENV_BUF *body, char *out, size_t outlen)
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

static int src_ecs(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
                   KMSENV_AWS_CREDS *out)
{
    KMSENV_SECRET tok = {NULL, 0};
    KMSENV_BUF auth = {.secure = 1};
    KMSENV_HTTP_REQ req;
    KMSENV_HTTP_RESP resp;
    RETRY rt;
    char *url = NULL, host[256], why[200], errtxt[300], label[400];
    const char *headers[3] = {"Accept: application/json", NULL, NULL};
    const char *var;
    int r, ret = -1;

    memset(&resp, 0, sizeof(resp));
    if (env->ecs_rel == NULL && env->ecs_full == NULL) {
        sum_add(sum, "ECS (not set)");
        return 0;
    }
    if (env->ecs_rel != NULL) {
        var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
        if (!url_chars_ok(env->ecs_rel)) {
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from ECS: %s holds "
                         "spaces or control characters",
                         var);
            goto done;
        }
        if ((url = OPENSSL_malloc(strlen(ECS_HOST) + strlen(env->ecs_rel) +
                                  2)) == NULL) {
            KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "URL");
            goto done;
        }
        snprintf(url, strlen(ECS_HOST) + strlen(env->ecs_rel) + 2, "%s%s%s",
                 ECS_HOST, env->ecs_rel[0] == '/' ? "" : "/", env->ecs_rel);
    } else {
        var = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
        url_host(env->ecs_full, host, sizeof(host));
        if (!url_chars_ok(env->ecs_full) || host[0] == '\0') {
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from ECS: %s '%s' is not a valid "
                         "http(s) URL",
                         var, env->ecs_full);
            goto done;
        }
        if (strncasecmp(env->ecs_full, "https://", 8) != 0 &&
            (strncasecmp(env->ecs_full, "http://", 7) != 0 ||
             !ecs_host_ok(host))) {
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from ECS: %s '%s' is refused: "
                         "plain http only to loopback, 169.254.170.2, "
                         "169.254.170.23 or fd00:ec2::23; https otherwise",
                         var, env->ecs_full);
            goto done;
        }
        if ((url = dupn(env->ecs_full, strlen(env->ecs_full))) == NULL)
            goto done;
    }
    if (env->ecs_auth_file != NULL) {
        r = read_secret_file(env->ecs_auth_file, &tok, why, sizeof(why));
        if (r == 0)
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from ECS: cannot read "
                         "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
                         env->ecs_auth_file, why);
        if (r <= 0)
            goto done;
    } else if (env->ecs_auth != NULL) {
        const char *a = env->ecs_auth;
        size_t al = strlen(a);

        trim(&a, &al);
        if (!secret_ok(a, al)) {
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from ECS: "
                         "AWS_CONTAINER_AUTHORIZATION_TOKEN holds control "
                         "characters");
            goto done;
        }
        if (!sec_set(&tok, a, al))
            goto done;
    }
    if (tok.data != NULL) {
        if (!bapps(&auth, "Authorization: ") || !bapp(&auth, tok.data, tok.len))
            goto done;
        headers[1] = auth.data;
    }
    kmsenv_secret_free(&tok);

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    req.headers = headers;
    req.policy = KMSENV_HTTP_ANY; /* host checked above */
    req.ca_file = cfg->ca_file;
    req.no_proxy = 1;
    req.secure_response = 1;
    rt.attempts = 3;
    rt.connect_ms = 2000;
    rt.timeout_ms = 5000;
    rt.deadline = kmsenv_now_ms() + 10000;
    rt.sts = 0;
    if (!http_retry(&req, &resp, &rt)) {
        if (resp.transport_error)
            KMSENV_RAISE(CRED_R,
                         "AWS credentials from ECS (%s): %s unreachable: %s",
                         var, url, resp.error);
        goto done;
    }
    if (resp.status != 200) {
        json_error(&resp.body, errtxt, sizeof(errtxt));
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from ECS (%s): %s answered HTTP "
                     "%ld%s",
                     var, url, resp.status, errtxt);
        goto done;
    }
    snprintf(label, sizeof(label), "ECS (%s at %s)", var, url);
    r = creds_from_json(&resp.body, label, "ecs", 0, out, why, sizeof(why));
    if (r == 0)
        KMSENV_RAISE(CRED_R, "AWS credentials from ECS (%s): %s: %s", var, url,
                     why);
    ret = r > 0 ? 1 : -1;
done:
    kmsenv_secret_free(&tok);
    kmsenv_buf_free(&auth);
    kmsenv_http_resp_free(&resp);
    OPENSSL_free(url);
    return ret;
}

/* ---- EC2 instance metadata (IMDSv2) ---- */

static int imds_get(KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp,
                    const char *url, const char *method,
                    const char *const *headers)
{
    RETRY rt = {2, 1000, 2000, 0, 0};

    rt.deadline = kmsenv_now_ms() + 5000;
    req->method = method;
    req->url = url;
    req->headers = headers;
    return http_retry(req, resp, &rt);
}

static int src_imds(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
                    KMSENV_AWS_CREDS *out)
{
    KMSENV_HTTP_REQ req;
    KMSENV_HTTP_RESP resp;
    KMSENV_BUF tokhdr = {.secure = 1}, url = {.secure = 0};
    const char *ttl[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    const char *hdrs[2] = {NULL, NULL};
    const char *base, *s;
    char role[129], why[200], shown[64], label[400];
    size_t baselen, n, i;
    int r, ret = -1;

    memset(&resp, 0, sizeof(resp));
    if (env->imds_disabled != NULL &&
        strcasecmp(env->imds_disabled, "true") == 0) {
        sum_add(sum, "IMDS (disabled by AWS_EC2_METADATA_DISABLED)");
        return 0;
    }
    if (env->imds_endpoint != NULL)
        base = env->imds_endpoint;
    else if (env->imds_mode != NULL && strcasecmp(env->imds_mode, "IPv6") == 0)
        base = IMDS_HOST6;
    else
        base = IMDS_HOST;
    baselen = strlen(base);
    while (baselen > 0 && base[baselen - 1] == '/')
        baselen--;
    if (!url_chars_ok(base) || (strncasecmp(base, "http://", 7) != 0 &&
                                strncasecmp(base, "https://", 8) != 0)) {
        KMSENV_RAISE(CRED_R,
                     "AWS credentials from IMDS: "
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT '%s' is not an "
                     "http(s) URL",
                     base);
        return -1;
    }
    memset(&req, 0, sizeof(req));
    req.policy = KMSENV_HTTP_ANY;
    req.ca_file = cfg->ca_file;
    req.no_proxy = 1;
    req.secure_response = 1;

    /* 1. session token */
    if (!bapp(&url, base, baselen) || !bapps(&url, "/latest/api/token"))
        goto done;
    if (!imds_get(&req, &resp, url.data, "PUT", ttl)) {
        if (!resp.transport_error)
            goto done;
        sum_add(sum, "IMDS (unreachable at %.*s: %s)", (int)baselen, base,
                resp.error);
        ret = 0;
        goto done;
    }
    if (resp.status != 200) {
        sum_add(sum, "IMDS (token request to %s: HTTP %ld%s)", url.data,
                resp.status,
                resp.status == 403 ? ": IMDS disabled, or not on EC2" : "");
        ret = 0;
        goto done;
    }
    s = resp.body.data != NULL ? resp.body.data : "";
    n = resp.body.len;
    trim(&s, &n);
    if (n == 0 || n > 4096 || !secret_ok(s, n) || memchr(s, ' ', n)) {
        sum_add(sum, "IMDS (malformed session token from %s)", url.data);
        ret = 0;
        goto done;
    }
    if (!bapps(&tokhdr, "X-aws-ec2-metadata-token: ") || !bapp(&tokhdr, s, n))
        goto done;
    kmsenv_http_resp_free(&resp);
    hdrs[0] = tokhdr.data;

    /* 2. role name */
    kmsenv_buf_reset(&url);
    if (!bapp(&url, base, baselen) || !bapps(&url, IMDS_CREDS_PATH))
        goto done;
    if (!imds_get(&req, &resp, url.data, "GET", hdrs)) {
        if (!resp.transport_error)
            goto done;
        sum_add(sum, "IMDS (%s: %s)", url.data, resp.error);
        ret = 0;
        goto done;
    }
    if (resp.status != 200) {
        sum_add(sum, "IMDS (%s: HTTP %ld%s)", url.data, resp.status,
                resp.status == 404 ? ": no IAM role attached to this "
                                     "instance"
                                   : "");
        ret = 0;
        goto done;
    }
    s = resp.body.data != NULL ? resp.body.data : "";
    n = strcspn(s, "\r\n");
    if (n > resp.body.len)
        n = resp.body.len;
    trim(&s, &n);
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("+=,.@_-", s[i]) != NULL))
            break;
    if (n == 0 || n >= sizeof(role) || i < n) {
        printable(shown, sizeof(shown), s, n);
        sum_add(sum, "IMDS (invalid role name '%s' from %s)", shown, url.data);
        ret = 0;
        goto done;
    }
    memcpy(role, s, n);
    role[n] = '\0';
    kmsenv_http_resp_free(&resp);

    /* 3. credentials */
    if (!bapps(&url, role))
        goto done;
    if (!imds_get(&req, &resp, url.data, "GET", hdrs)) {
        if (!resp.transport_error)
            goto done;
        sum_add(sum, "IMDS (%s: %s)", url.data, resp.error);
        ret = 0;
        goto done;
    }
    if (resp.status != 200) {
        sum_add(sum, "IMDS (%s: HTTP %ld)", url.data, resp.status);
        ret = 0;
        goto done;
    }
    snprintf(label, sizeof(label), "IMDS (role %s at %.*s)", role, (int)baselen,
             base);
    r = creds_from_json(&resp.body, label, "imds", 1, out, why, sizeof(why));
    if (r == 0) {
        sum_add(sum, "IMDS (role %s: %s)", role, why);
        ret = 0;
        goto done;
    }
    ret = r > 0 ? 1 : -1;
done:
    kmsenv_buf_free(&tokhdr);
    kmsenv_buf_free(&url);
    kmsenv_http_resp_free(&resp);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* The chain                                                                 */
/* ------------------------------------------------------------------------ */

int kmsenv_aws_resolve_creds(const KMSENV_AWS_CFG *cfg, KMSENV_AWS_CREDS *out)
{
    static const KMSENV_AWS_CFG none;
    AWS_ENV env;
    SUMMARY sum;
    int r;

    if (cfg == NULL)
        cfg = &none;
    memset(out, 0, sizeof(*out));
    memset(&sum, 0, sizeof(sum));
    env_load(&env);
    if (cfg->profile != NULL && cfg->profile[0] != '\0') {
        /* An explicitly chosen profile (aws_profile, KMSENV_AWS_PROFILE)
         * takes the environment sources out of the chain, as botocore's
         * Session(profile=...) removes EnvProvider and the web identity
         * provider's AWS_* variables. AWS_PROFILE alone does not: there,
         * as in botocore, AWS_ACCESS_KEY_ID still comes first. */
        sum_add(&sum,
                "environment and web identity variables (skipped: "
                "profile '%s' set by aws_profile)",
                cfg->profile);
        r = 0;
    } else {
        r = src_env(&env, &sum, out);
        if (r == 0)
            r = src_web_identity(cfg, &env, &sum, out);
    }
    if (r == 0)
        r = src_profile(cfg, &env, &sum, out);
    if (r == 0)
        r = src_ecs(cfg, &env, &sum, out);
    if (r == 0)
        r = src_imds(cfg, &env, &sum, out);
    if (r > 0) {
        if (out->expiration != 0)
            kmsenv_log(1,
                       "AWS credentials from %s: access key id %s%s, "
                       "expiring in %lld s",
                       out->source, out->akid,
                       out->token.len > 0 ? " with session token" : "",
                       out->expiration - (long long)time(NULL));
        else
            kmsenv_log(1,
                       "AWS credentials from %s: access key id %s%s, not "
                       "expiring",
                       out->source, out->akid,
                       out->token.len > 0 ? " with session token" : "");
        return 1;
    }
    if (r == 0)
        KMSENV_RAISE(CRED_R, "no AWS credentials: %s", sum.text);
    kmsenv_aws_creds_clear(out);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Regions                                                                   */
/* ------------------------------------------------------------------------ */

static int put_region(const char *r, size_t n, char *out, size_t outlen)
{
    if (!region_ok(r, n) || n >= outlen)
        return 0;
    memcpy(out, r, n);
    out[n] = '\0';
    return 1;
}

int kmsenv_aws_spec_region(const KMSENV_AWS_CFG *cfg, const char *spec,
                           char *out, size_t outlen)
{
    static const KMSENV_AWS_CFG none;
    const char *id = spec, *f[3], *p;
    AWS_ENV env;
    char *pr;
    int i, ok;

    if (cfg == NULL)
        cfg = &none;
    if (outlen > 0)
        out[0] = '\0';
    if (id == NULL)
        return 0;
    if (strncmp(id, "aws-kms:", 8) == 0)
        id += 8;
    if (strncmp(id, "arn:", 4) == 0) {
        /* arn:PARTITION:kms:REGION:ACCOUNT:key/...: f[2] is REGION */
        p = id;
        for (i = 0; i < 3; i++) {
            if ((p = strchr(p, ':')) == NULL)
                return 0;
            f[i] = ++p;
        }
        if ((p = strchr(f[2], ':')) == NULL)
            return 0;
        return put_region(f[2], (size_t)(p - f[2]), out, outlen);
    }
    if (cfg->region != NULL && cfg->region[0] != '\0')
        return put_region(cfg->region, strlen(cfg->region), out, outlen);
    env_load(&env);
    if (env.region != NULL)
        return put_region(env.region, strlen(env.region), out, outlen);
    if (env.default_region != NULL)
        return put_region(env.default_region, strlen(env.default_region), out,
                          outlen);
    if ((pr = profile_region_env(cfg, &env)) == NULL)
        return 0;
    ok = put_region(pr, strlen(pr), out, outlen);
    OPENSSL_free(pr);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Cache                                                                     */
/* ------------------------------------------------------------------------ */

/* The mutex is only ever held for a few memory operations, never across
 * I/O: a thread that needs fresh credentials marks the cache "fetching",
 * unlocks, resolves the chain, then publishes under the lock and wakes the
 * waiters. Meanwhile other threads use still-valid credentials without
 * waiting; only threads that have nothing valid wait for that one fetch
 * (single flight) and share its result or its error.
 *
 * fork(): the child is a copy in which no other thread runs, so the mutex
 * may be held forever and "fetching" may be set by a thread that is gone.
 * `owner` is the pid whose mutex and condition variable are valid; the
 * first call in a new process re-initialises them (with -pid meaning "in
 * progress") and drops the parent's cache. */
struct kmsenv_aws_state_st {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast when a fetch ends */
    atomic_int owner;  /* see above */
    KMSENV_AWS_CREDS creds;
    int have;
    pid_t pid;               /* process that filled the cache */
    long long retry_after;   /* unix s: no refresh attempt before this */
    long long filled_ms;     /* kmsenv_now_ms() of the last fill */
    int fetching;            /* a thread of this process is resolving */
    unsigned long fetch_gen; /* incremented when a fetch ends */
    int fetch_failed;        /* ... and it left nothing usable */
    char fail_msg[1024];     /* its error (no secret), for its waiters */
};

KMSENV_AWS_STATE *kmsenv_aws_state_new(void)
{
    KMSENV_AWS_STATE *st = OPENSSL_zalloc(sizeof(*st));

    if (st == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "AWS credentials cache");
        return NULL;
    }
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        OPENSSL_free(st);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "AWS credentials cache lock");
        return NULL;
    }
    if (pthread_cond_init(&st->cv, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        OPENSSL_free(st);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "AWS credentials cache lock");
        return NULL;
    }
    atomic_init(&st->owner, (int)getpid());
    return st;
}

void kmsenv_aws_state_free(KMSENV_AWS_STATE *st)
{
    if (st == NULL)
        return;
    kmsenv_aws_creds_clear(&st->creds);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    OPENSSL_free(st);
}

/* Moves the cached credentials to *old (cleared by the caller after
 * unlocking: nothing is freed under the lock, so that a fork() can never
 * catch the cache half-freed). */
static void cache_take(KMSENV_AWS_STATE *st, KMSENV_AWS_CREDS *old)
{
    kmsenv_aws_creds_clear(old);
    *old = st->creds;
    memset(&st->creds, 0, sizeof(st->creds));
    st->have = 0;
    st->retry_after = 0;
    st->filled_ms = 0;
}

/* First use in a forked child (see above). */
static void state_after_fork(KMSENV_AWS_STATE *st)
{
    KMSENV_AWS_CREDS old;

    memset(&old, 0, sizeof(old));
    if (pthread_mutex_trylock(&st->mu) == 0) {
        /* nobody was inside at fork(): the copy is consistent */
        cache_take(st, &old);
        pthread_mutex_unlock(&st->mu);
    } else {
        /* a parent thread held it mid-update: abandon this copy of its
         * credentials (freeing a possibly torn copy could corrupt the
         * heap) and take a fresh lock */
        pthread_mutex_init(&st->mu, NULL);
        memset(&st->creds, 0, sizeof(st->creds));
        st->have = 0;
        st->retry_after = 0;
        st->filled_ms = 0;
    }
    /* waiters and fetchers of the parent do not exist here */
    pthread_cond_init(&st->cv, NULL);
    st->fetching = 0;
    st->fetch_failed = 0;
    kmsenv_aws_creds_clear(&old);
    kmsenv_log(2, "aws credentials: new process, cache dropped");
}

static void state_lock(KMSENV_AWS_STATE *st)
{
    int pid = (int)getpid(), owner;

    for (;;) {
        owner = atomic_load(&st->owner);
        if (owner == pid) {
            pthread_mutex_lock(&st->mu);
            return;
        }
        if (owner != -pid &&
            atomic_compare_exchange_strong(&st->owner, &owner, -pid)) {
            state_after_fork(st);
            atomic_store(&st->owner, pid);
            continue;
        }
        sched_yield(); /* another thread of this child re-initialises */
    }
}

/* Usable without a refresh: not expiring within the window, or a failed
 * refresh asked to keep them a little (while still valid). */
static int cache_fresh(const KMSENV_AWS_STATE *st, long long now)
{
    const KMSENV_AWS_CREDS *c = &st->creds;

    return c->expiration == 0 || c->expiration - now > REFRESH_WINDOW_S ||
           (now < st->retry_after && c->expiration > now);
}

static int same_creds(const KMSENV_AWS_CREDS *a, const KMSENV_AWS_CREDS *b)
{
    return strcmp(a->akid, b->akid) == 0 && a->token.len == b->token.len &&
           (a->token.len == 0 ||
            CRYPTO_memcmp(a->token.data, b->token.data, a->token.len) == 0);
}

/* The text of the last error raised (our messages never hold secrets). */
static void last_error_text(char *out, size_t outlen)
{
    const char *data = NULL;
    int flags = 0;

    if (ERR_peek_last_error_data(&data, &flags) == 0 ||
        !(flags & ERR_TXT_STRING) || data == NULL)
        data = "no AWS credentials";
    snprintf(out, outlen, "%s", data);
}

int kmsenv_aws_get_creds(KMSENV_AWS_STATE *st, const KMSENV_AWS_CFG *cfg,
                         const KMSENV_AWS_CREDS *rejected,
                         KMSENV_AWS_CREDS *out)
{
    KMSENV_AWS_CREDS nc, old;
    unsigned long gen;
    long long now;
    int ok = 0, fetched, waited = 0;

    memset(out, 0, sizeof(*out));
    memset(&old, 0, sizeof(old));
    if (st == NULL)
        return kmsenv_aws_resolve_creds(cfg, out);

    state_lock(st);
    if (rejected != NULL && st->have && same_creds(&st->creds, rejected)) {
        /* KMS refused exactly these: never hand them out again. (If the
         * cache holds others, another thread has refreshed since.) */
        kmsenv_log(2, "aws credentials: forced refresh");
        cache_take(st, &old);
    }
    for (;;) {
        now = (long long)time(NULL);
        /* fresh; or still valid while another thread refreshes them, or
         * just fetched by the thread this one waited for */
        if (st->have &&
            (cache_fresh(st, now) ||
             ((st->fetching || waited) && st->creds.expiration > now))) {
            ok = kmsenv_aws_creds_copy(out, &st->creds);
            goto unlock;
        }
        if (!st->fetching)
            break; /* this thread fetches */
        gen = st->fetch_gen;
        while (st->fetching && st->fetch_gen == gen)
            pthread_cond_wait(&st->cv, &st->mu);
        waited = 1;
        if (st->fetch_gen != gen && st->fetch_failed && !st->have) {
            KMSENV_RAISE(CRED_R, "%s (fetched by another thread meanwhile)",
                         st->fail_msg);
            goto unlock;
        }
    }

    st->fetching = 1;
    pthread_mutex_unlock(&st->mu);

    ERR_set_mark();
    memset(&nc, 0, sizeof(nc));
    fetched = kmsenv_aws_resolve_creds(cfg, &nc);

    state_lock(st);
    now = (long long)time(NULL);
    st->fetching = 0;
    st->fetch_gen++;
    st->fetch_failed = 0;
    if (fetched) {
        ERR_clear_last_mark();
        cache_take(st, &old);
        st->creds = nc; /* ownership moves */
        memset(&nc, 0, sizeof(nc));
        st->have = 1;
        st->pid = getpid();
        st->filled_ms = kmsenv_now_ms();
        ok = kmsenv_aws_creds_copy(out, &st->creds);
    } else if (st->have && st->creds.expiration > now) {
        ERR_pop_to_mark();
        kmsenv_log(1,
                   "AWS credentials refresh failed; still using those from "
                   "%s (access key id %s, valid for %lld s)",
                   st->creds.source, st->creds.akid,
                   st->creds.expiration - now);
        st->retry_after = now + REFRESH_RETRY_S;
        ok = kmsenv_aws_creds_copy(out, &st->creds);
    } else {
        ERR_clear_last_mark();
        if (st->have)
            cache_take(st, &old); /* expired */
        st->fetch_failed = 1;
        last_error_text(st->fail_msg, sizeof(st->fail_msg));
    }
    pthread_cond_broadcast(&st->cv);
unlock:
    pthread_mutex_unlock(&st->mu);
    kmsenv_aws_creds_clear(&old);
    return ok;
}
