/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the AWS credentials chain (provider/kms/credentials.c and
 * the sources it calls: creds_*.c, ini.c, xml.c).
 *
 * Those files are #included with kmsenv_http_do renamed to a stub that
 * answers from canned routes and records every request, so the parsers
 * (INI, JSON, XML, ISO 8601) and the whole chain (environment, web identity,
 * profile, ECS, IMDS, cache, fork) are exercised without a network. A secure
 * heap is initialised so that CRYPTO_secure_allocated() can prove where
 * secrets live; error messages and the debug log are checked for secrets.
 *
 * Link it with util/{err,log,secmem,buf,bytes,text}.c, kms/{json,http,
 * retry}.c (not with kmsenv_core, which has its own credentials.o).
 *
 * Usage: test_credentials [-v]
 * Output: "ok N - name" / "not ok N - name", then "P passed, F failed". */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#define kmsenv_http_do test_http_do
#include "kms/credentials.c"
#include "kms/creds_util.c"
#include "kms/creds_env.c"
#include "kms/creds_profile.c"
#include "kms/creds_sts.c"
#include "kms/creds_ecs.c"
#include "kms/creds_imds.c"
#include "kms/creds_cache.c"
#include "kms/ini.c"
#include "kms/xml.c"
#undef kmsenv_http_do

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <openssl/rand.h>

#include "harness.h"

static int sec_heap;        /* secure heap initialised */
static size_t sec_baseline; /* CRYPTO_secure_used() before the tests */

/* With the secure heap, proves that p lives in it. */
static int is_secure(const void *p)
{
    return p != NULL && (!sec_heap || CRYPTO_secure_allocated(p));
}
static char tmpdir[256];
static char logpath[300];

/* ------------------------------------------------------------------------ */
/* Harness                                                                   */
/* ------------------------------------------------------------------------ */

static void note(const char *what, const char *s)
{
    if (opt_verbose)
        printf("#   %s: %s\n", what, s);
}

/* ------------------------------------------------------------------------ */
/* HTTP stub                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *method;
    const char *url; /* exact */
    long status;     /* 0: transport error */
    const char *body;
} ROUTE;

typedef struct {
    char method[8];
    char url[512];
    char hdr[4][800];
    int hdr_secure[4];
    int nhdr;
    char body[8192];
    size_t bodylen;
    int body_secure;
    int no_proxy, secure_response;
    enum kmsenv_http_policy policy;
    long connect_ms, timeout_ms;
} SEEN;

static pthread_mutex_t stub_lock = PTHREAD_MUTEX_INITIALIZER;
static ROUTE routes[8];
static int nroutes;
static SEEN seen[32];
static int nseen, ncalls;

static void stub_reset(void)
{
    pthread_mutex_lock(&stub_lock);
    memset(routes, 0, sizeof(routes));
    nroutes = 0;
    memset(seen, 0, sizeof(seen));
    nseen = ncalls = 0;
    pthread_mutex_unlock(&stub_lock);
}

static void route(const char *method, const char *url, long status,
                  const char *body)
{
    routes[nroutes].method = method;
    routes[nroutes].url = url;
    routes[nroutes].status = status;
    routes[nroutes].body = body;
    nroutes++;
}

/* A gate: a request to gate_url stops in the stub until the test opens
 * the gate, so a fetch can be held "in flight" for as long as a test needs
 * (handshakes, not timing). */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static const char *gate_url;
static int gate_entered, gate_open;

static void gate_arm(const char *url)
{
    pthread_mutex_lock(&gate_mu);
    gate_url = url;
    gate_entered = 0;
    gate_open = 0;
    pthread_mutex_unlock(&gate_mu);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    gate_url = NULL;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_pass(const char *url)
{
    pthread_mutex_lock(&gate_mu);
    if (gate_url != NULL && strcmp(url, gate_url) == 0) {
        gate_entered++;
        pthread_cond_broadcast(&gate_cv);
        while (!gate_open)
            pthread_cond_wait(&gate_cv, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
}

/* Waits until *counter >= n (guarded by m, signalled on cv), at most secs
 * seconds (a bound for hangs, not a timing assertion). */
static int wait_count(pthread_mutex_t *m, pthread_cond_t *cv,
                      const int *counter, int n, int secs)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(m);
    while (*counter < n)
        if (pthread_cond_timedwait(cv, m, &ts) != 0)
            break;
    ok = *counter >= n;
    pthread_mutex_unlock(m);
    return ok;
}

int test_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp)
{
    int i;
    const ROUTE *r = NULL;

    gate_pass(req->url);
    memset(resp, 0, sizeof(*resp));
    resp->body.secure = req->secure_response;
    if (!kmsenv_http_url_allowed(req->url, req->policy, "endpoint"))
        return 0;
    pthread_mutex_lock(&stub_lock);
    ncalls++;
    if (nseen < (int)(sizeof(seen) / sizeof(seen[0]))) {
        SEEN *s = &seen[nseen++];

        snprintf(s->method, sizeof(s->method), "%s", req->method);
        snprintf(s->url, sizeof(s->url), "%s", req->url);
        for (i = 0; req->headers != NULL && req->headers[i] != NULL && i < 4;
             i++) {
            snprintf(s->hdr[i], sizeof(s->hdr[i]), "%s", req->headers[i]);
            s->hdr_secure[i] = is_secure(req->headers[i]);
        }
        s->nhdr = i;
        if (req->body != NULL && req->bodylen < sizeof(s->body)) {
            memcpy(s->body, req->body, req->bodylen);
            s->bodylen = req->bodylen;
            s->body_secure = is_secure(req->body);
        }
        s->no_proxy = req->no_proxy;
        s->secure_response = req->secure_response;
        s->policy = req->policy;
        s->connect_ms = req->connect_timeout_ms;
        s->timeout_ms = req->timeout_ms;
    }
    for (i = 0; i < nroutes; i++)
        if (strcmp(routes[i].method, req->method) == 0 &&
            strcmp(routes[i].url, req->url) == 0) {
            r = &routes[i];
            break;
        }
    pthread_mutex_unlock(&stub_lock);
    if (r == NULL || r->status == 0) {
        resp->transport_error = 1;
        snprintf(resp->error, sizeof(resp->error),
                 "Connection refused (stub%s)", r == NULL ? ", no route" : "");
        return 0;
    }
    resp->status = r->status;
    snprintf(resp->request_id, sizeof(resp->request_id), "req-1234");
    if (r->body != NULL &&
        !kmsenv_buf_append(&resp->body, r->body, strlen(r->body)))
        return 0;
    return 1;
}

static const SEEN *find_seen(const char *method, const char *url)
{
    int i;

    for (i = 0; i < nseen; i++)
        if (strcmp(seen[i].method, method) == 0 &&
            strcmp(seen[i].url, url) == 0)
            return &seen[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Environment and files                                                     */
/* ------------------------------------------------------------------------ */

static const char *const aws_vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_WEB_IDENTITY_TOKEN_FILE",
                                       "AWS_ROLE_ARN",
                                       "AWS_ROLE_SESSION_NAME",
                                       "AWS_PROFILE",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_CONFIG_FILE",
                                       "AWS_REGION",
                                       "AWS_DEFAULT_REGION",
                                       "AWS_ENDPOINT_URL_STS",
                                       "AWS_ENDPOINT_URL",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                       "AWS_EC2_METADATA_DISABLED",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                                       "AWS_USE_FIPS_ENDPOINT",
                                       NULL};

/* Clean slate: no AWS_* variables, HOME an empty directory, no routes. */
static void reset(void)
{
    int i;
    char home[300];

    for (i = 0; aws_vars[i] != NULL; i++)
        unsetenv(aws_vars[i]);
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    setenv("HOME", home, 1);
    stub_reset();
    ERR_clear_error();
}

static char *tmp_path(const char *name)
{
    static char buf[4][400];
    static int k;

    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (f == NULL)
        return 0;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static int write_str(const char *path, const char *s)
{
    return write_file(path, s, strlen(s));
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, r;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            buf = realloc(buf, cap);
        }
        r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void iso_time(long long t, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int creds_secure(const KMSENV_AWS_CREDS *c)
{
    return is_secure(c->secret.data) &&
           (c->token.data == NULL || is_secure(c->token.data));
}

/* ------------------------------------------------------------------------ */
/* ISO 8601                                                                  */
/* ------------------------------------------------------------------------ */

static void test_iso8601(void)
{
    static const struct {
        const char *s;
        int ok;
        long long t;
    } v[] = {
        {"2024-01-02T03:04:05Z", 1, 1704164645LL},
        {"2024-01-02T03:04:05.123Z", 1, 1704164645LL},
        {"2024-01-02T03:04:05.123456789Z", 1, 1704164645LL},
        {"2024-01-02T03:04:05+00:00", 1, 1704164645LL},
        {"2024-01-02T04:04:05+01:00", 1, 1704164645LL},
        {"2024-01-02T01:34:05-0130", 1, 1704164645LL},
        {"2024-01-02T05:04:05+02", 1, 1704164645LL},
        {"2024-01-02t03:04:05z", 1, 1704164645LL},
        {"2024-01-02 03:04:05Z", 1, 1704164645LL},
        {"  2024-01-02T03:04:05Z\t ", 1, 1704164645LL},
        {"2024-01-02T03:04:05", 1, 1704164645LL},
        {"1970-01-01T00:00:00Z", 1, 0},
        {"2024-02-29T00:00:00Z", 1, 1709164800LL},
        {"2100-03-01T00:00:00Z", 1, 4107542400LL},
        {"", 0, 0},
        {"2024", 0, 0},
        {"2024-01-02T03:04:0", 0, 0},
        {"2024-13-02T03:04:05Z", 0, 0},
        {"2024-00-02T03:04:05Z", 0, 0},
        {"2023-02-29T03:04:05Z", 0, 0},
        {"2024-04-31T03:04:05Z", 0, 0},
        {"2024-01-02T24:04:05Z", 0, 0},
        {"2024-01-02T03:60:05Z", 0, 0},
        {"2024-01-02T03:04:05ZZ", 0, 0},
        {"2024-01-02T03:04:05.Z", 0, 0},
        {"2024-01-02T03:04:05+1", 0, 0},
        {"2024-01-02T03:04:05+01:0", 0, 0},
        {"2024-01-02T03:04:05+25:00", 0, 0},
        {"2024-01-02X03:04:05Z", 0, 0},
        {"2O24-01-02T03:04:05Z", 0, 0},
        {"-024-01-02T03:04:05Z", 0, 0},
        {"2024-01-02T03:04:05 Z", 0, 0},
        {"1969-12-31T23:59:59Z", 0, 0},
    };
    size_t i;
    long long t;
    int ok;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        t = -1;
        ok = parse_iso8601(v[i].s, strlen(v[i].s), &t);
        if (v[i].ok)
            CHECK(ok && t == v[i].t, "iso8601 '%s' -> %lld (got %lld)", v[i].s,
                  v[i].t, ok ? t : -1LL);
        else
            CHECK(!ok, "iso8601 '%s' rejected", v[i].s);
    }
    /* embedded NUL: the length counts */
    CHECK(!parse_iso8601("2024-01-02T03:04:05Z\0x", 22, &t),
          "iso8601 with embedded NUL rejected");
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static int jparse(const char *doc, KMSENV_JFIELD *f, size_t nf)
{
    return kmsenv_json_fields(doc, strlen(doc), f, nf);
}

static void test_json(void)
{
    KMSENV_JFIELD f[3] = {{"AccessKeyId", {NULL, 0}, 0},
                          {"SecretAccessKey", {NULL, 0}, 0},
                          {"Token", {NULL, 0}, 0}};
    static const char *const bad[] = {
        "",
        " ",
        "[]",
        "\"x\"",
        "{",
        "{\"a\"",
        "{\"a\":",
        "{\"a\":1",
        "{\"a\":1,}",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"AccessKeyId\":1}",
        "{\"AccessKeyId\":null}",
        "{\"AccessKeyId\":\"abc}",
        "{\"AccessKeyId\":\"a\\qb\"}",
        "{\"AccessKeyId\":\"a\\u00\"}",
        "{\"AccessKeyId\":\"a\\u00zz\"}",
        "{\"AccessKeyId\":\"a\\u0000b\"}",
        "{\"AccessKeyId\":\"a\\ud800\"}",
        "{\"AccessKeyId\":\"a\\ud800\\u0041\"}",
        "{\"AccessKeyId\":\"a\\udc00\"}",
        "{\"AccessKeyId\":\"a\tb\"}",
        "{\"AccessKeyId\":\"a\nb\"}",
        "{\"x\":[1,2,}",
        "{\"x\":[1 2]}",
        "{\"x\":{\"y\"}}",
        "{\"x\":tru}",
        "{\"x\":-}",
        "{\"x\":01}",
        "{\"x\":1.}",
        "{\"x\":1e}",
        "{\"x\":+1}",
        "{\"x\":.5}",
        "{\"x\":\"\\\"}",
        "{'AccessKeyId':'x'}",
        "{\"AccessKeyId\":\"x\",\"SecretAccessKey\":\"s\"",
    };
    char deep[400];
    size_t i;
    int r;

    r = jparse("{\"Code\":\"Success\",\"LastUpdated\":\"2024-01-01T00:00:00Z\","
               "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAEXAMPLE\","
               "\"SecretAccessKey\":\"wJalr/XUtnFEMI+K7MDENG\","
               "\"Token\":\"IQoJb3JpZ2luX2VjE=\",\"Expiration\":"
               "\"2024-01-01T06:00:00Z\"}",
               f, 3);
    CHECK(r == 1 && f[0].present && f[1].present && f[2].present &&
              strcmp((char *)f[0].val.data, "ASIAEXAMPLE") == 0 &&
              strcmp((char *)f[1].val.data, "wJalr/XUtnFEMI+K7MDENG") == 0 &&
              f[1].val.len == 22 &&
              strcmp((char *)f[2].val.data, "IQoJb3JpZ2luX2VjE=") == 0,
          "json: IMDS document");
    CHECK(is_secure(f[1].val.data) && is_secure(f[2].val.data),
          "json: decoded values are in secure memory");

    r = jparse("  {\n \"SecretAccessKey\" : \"a\\/b\\\\c\\\"d\\u0041\\u00e9"
               "\\ud83d\\ude00\\n\" ,\"Other\":{\"n\":[1,-2.5e3,true,false,"
               "null,{\"k\":\"v\"}],\"s\":\"\\u0000ok-in-skipped?\"},"
               "\"AccessKeyId\":\"AK\"}\r\n",
               f, 3);
    /* \u0000 in a skipped member is tolerated by j_str (validation only) */
    CHECK(r == 1 && f[1].present &&
              strcmp((char *)f[1].val.data,
                     "a/b\\c\"dA\xc3\xa9\xf0\x9f\x98\x80\n") == 0 &&
              f[1].val.len == strlen("a/b\\c\"dA\xc3\xa9\xf0\x9f\x98\x80\n") &&
              !f[2].present && strcmp((char *)f[0].val.data, "AK") == 0,
          "json: escapes, surrogate pairs, nested values skipped");

    r = jparse("{\"AccessKeyId\":\"one\",\"AccessKeyId\":\"two\"}", f, 3);
    CHECK(r == 1 && strcmp((char *)f[0].val.data, "two") == 0,
          "json: duplicate member: last wins");

    r = jparse("{\"AccessKeyIdAccessKeyIdAccessKeyIdAccessKeyIdAccessKeyIdAc"
               "cessKeyIdAccessKeyId\":\"x\",\"Acc\\u0065ssKeyId\":\"esc\"}",
               f, 3);
    CHECK(r == 1 && f[0].present && strcmp((char *)f[0].val.data, "esc") == 0,
          "json: long keys skipped, escaped key matched");

    r = jparse("{}", f, 3);
    CHECK(r == 1 && !f[0].present && !f[1].present, "json: empty object");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = jparse(bad[i], f, 3);
        CHECK(r == 0 && !f[0].present && !f[1].present && !f[2].present,
              "json: malformed #%zu rejected", i);
    }

    memset(deep, '[', 200);
    snprintf(deep, sizeof(deep), "{\"x\":");
    memset(deep + 5, '[', 100);
    memset(deep + 105, ']', 100);
    snprintf(deep + 205, sizeof(deep) - 205, "}");
    CHECK(jparse(deep, f, 3) == 0, "json: nesting depth limited");
    memset(deep + 5, '[', 20);
    memset(deep + 25, ']', 20);
    snprintf(deep + 45, sizeof(deep) - 45, "}");
    CHECK(jparse(deep, f, 3) == 1, "json: moderate nesting accepted");

    /* embedded NUL before the end: not an object end */
    CHECK(kmsenv_json_fields("{\"a\":1}\0", 8, f, 3) == 0,
          "json: trailing NUL byte rejected");
    kmsenv_jfields_free(f, 3);
}

/* Mutations of valid documents must never crash (run under ASan). */
static void test_fuzz(void)
{
    static const char *const seeds[] = {
        "{\"Code\":\"Success\",\"AccessKeyId\":\"AK\",\"SecretAccessKey\":"
        "\"s\\u0041\\\"\",\"Token\":\"t\",\"Expiration\":"
        "\"2024-01-01T00:00:00Z\",\"x\":[{\"y\":[1,2,{}]},null]}",
        "<R><Result><Credentials><AccessKeyId>AK</AccessKeyId>"
        "<SecretAccessKey>a&amp;b&#x41;&#66;<![CDATA[<x>]]></SecretAccessKey>"
        "<SessionToken>t</SessionToken><Expiration>2024-01-01T00:00:00Z"
        "</Expiration><!-- c --></Credentials></Result></R>",
    };
    KMSENV_JFIELD f[3] = {{"AccessKeyId", {NULL, 0}, 0},
                          {"SecretAccessKey", {NULL, 0}, 0},
                          {"Token", {NULL, 0}, 0}};
    KMSENV_AWS_CREDS c;
    char buf[512], why[200], err[400];
    unsigned char rnd[8];
    size_t s, len, k;
    int iter, crashed = 0;
    long long t;

    for (s = 0; s < 2; s++) {
        for (iter = 0; iter < 20000; iter++) {
            len = strlen(seeds[s]);
            memcpy(buf, seeds[s], len);
            RAND_bytes(rnd, sizeof(rnd));
            for (k = 0; k < 1 + (size_t)(rnd[0] % 4); k++) {
                size_t pos;

                if (len == 0)
                    break;
                pos = ((size_t)rnd[1 + k] * 7 + iter) % len;
                switch (rnd[5] % 4) {
                case 0: /* flip */
                    buf[pos] = (char)rnd[6];
                    break;
                case 1: /* truncate */
                    len = pos;
                    break;
                case 2: /* structural */
                    buf[pos] = "{}[]\"\\:,<>&;/!-"[rnd[6] % 15];
                    break;
                default: /* delete */
                    memmove(buf + pos, buf + pos + 1, len - pos - 1);
                    len--;
                }
            }
            /* exact-size copy so ASan catches any overread */
            {
                char *d = malloc(len + 1);
                memcpy(d, buf, len);
                d[len] = '\0';
                kmsenv_json_fields(d, len, f, 3);
                memset(&c, 0, sizeof(c));
                if (sts_parse(d, len, "fuzz", &c, why, sizeof(why)) > 0)
                    kmsenv_aws_creds_clear(&c);
                xml_error(d, len, err, sizeof(err));
                parse_iso8601(d, len < 40 ? len : 40, &t);
                free(d);
            }
            ERR_clear_error();
        }
    }
    kmsenv_jfields_free(f, 3);
    CHECK(!crashed, "fuzz: 40000 mutated JSON/XML documents, no crash");
}

/* ------------------------------------------------------------------------ */
/* XML                                                                       */
/* ------------------------------------------------------------------------ */

#define STS_OK_FMT                                                             \
    "<AssumeRoleWithWebIdentityResponse "                                      \
    "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"                   \
    "  <AssumeRoleWithWebIdentityResult>\n"                                    \
    "    <SubjectFromWebIdentityToken>system:sa</SubjectFromWebIdentityToken>" \
    "\n    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"        \
    "<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"                \
    "    <Credentials>\n"                                                      \
    "      <SessionToken>%s</SessionToken>\n"                                  \
    "      <SecretAccessKey>%s</SecretAccessKey>\n"                            \
    "      <Expiration>%s</Expiration>\n"                                      \
    "      <AccessKeyId>%s</AccessKeyId>\n"                                    \
    "    </Credentials>\n"                                                     \
    "  </AssumeRoleWithWebIdentityResult>\n"                                   \
    "  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>\n"        \
    "</AssumeRoleWithWebIdentityResponse>\n"

static void test_xml(void)
{
    KMSENV_AWS_CREDS c;
    char doc[2048], why[200], err[400];
    static const char *const bad[] = {
        "",
        "<Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s"
        "</SecretAccessKey><SessionToken>t</SessionToken></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s&bogus;"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s&#0;"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s&#xD800;"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey><b>s</b>"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "tomorrow</Expiration></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration>",
        "<Credentials><AccessKeyId>A K</AccessKeyId><SecretAccessKey>s"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials>",
        "<Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials>",
        "<CredentialsX><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></CredentialsX>",
        "<!-- <Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>s"
        "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>"
        "2024-01-01T00:00:00Z</Expiration></Credentials> -->",
    };
    size_t i;
    int r;

    snprintf(doc, sizeof(doc), STS_OK_FMT, "FQoGZXIvYXdzE&amp;&#x2F;&#43;==",
             "wJalr&lt;XU&gt;&quot;&apos;<![CDATA[&raw<]]>",
             "2124-01-02T03:04:05Z", "ASIAXML");
    memset(&c, 0, sizeof(c));
    r = sts_parse(doc, strlen(doc), "t", &c, why, sizeof(why));
    CHECK(r == 1 && strcmp(c.akid, "ASIAXML") == 0 &&
              strcmp((char *)c.secret.data, "wJalr<XU>\"'&raw<") == 0 &&
              strcmp((char *)c.token.data, "FQoGZXIvYXdzE&/+==") == 0 &&
              c.expiration == 4859838245LL && creds_secure(&c),
          "xml: STS answer with entities and CDATA");
    kmsenv_aws_creds_clear(&c);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&c, 0, sizeof(c));
        why[0] = '\0';
        r = sts_parse(bad[i], strlen(bad[i]), "t", &c, why, sizeof(why));
        CHECK(r <= 0 && c.secret.data == NULL,
              "xml: malformed STS answer #%zu rejected (%s)", i,
              why[0] ? why : take_errors());
        ERR_clear_error();
    }

    {
        static const char edoc[] =
            "<ErrorResponse xmlns=\"x\"><Error><Type>Sender</Type><Code>"
            "InvalidIdentityToken</Code><Message>Couldn&apos;t retrieve "
            "verification key\n from your identity provider</Message>"
            "</Error><RequestId>abc</RequestId></ErrorResponse>";
        xml_error(edoc, sizeof(edoc) - 1, err, sizeof(err));
    }
    CHECK(strcmp(err, ": InvalidIdentityToken: Couldn't retrieve verification "
                      "key? from your identity provider") == 0,
          "xml: error Code and Message (got '%s')", err);
    xml_error("<html>502 Bad Gateway</html>",
              strlen("<html>502 Bad Gateway</html>"), err, sizeof(err));
    CHECK(err[0] == '\0', "xml: non-AWS error body gives nothing");
    xml_error(NULL, 0, err, sizeof(err));
    CHECK(err[0] == '\0', "xml: NULL body");
}

/* ------------------------------------------------------------------------ */
/* INI files and profiles                                                    */
/* ------------------------------------------------------------------------ */

static int load(const char *profile, const char *creds, const char *config,
                PROFILE_LOOKUP *l)
{
    KMSENV_AWS_CFG cfg;
    AWS_ENV env;

    memset(&cfg, 0, sizeof(cfg));
    if (creds != NULL) {
        write_str(tmp_path("credentials"), creds);
        setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    }
    if (config != NULL) {
        write_str(tmp_path("config"), config);
        setenv("AWS_CONFIG_FILE", tmp_path("config"), 1);
    }
    if (profile != NULL)
        setenv("AWS_PROFILE", profile, 1);
    env_load(&env);
    return profile_load(&cfg, &env, 1, l);
}

static int sec_is(const KMSENV_SECRET *s, const char *v)
{
    return s->data != NULL && s->len == strlen(v) &&
           strcmp((const char *)s->data, v) == 0;
}

#define PUT_S(str) (memcpy(big + blen, (str), strlen(str)), blen += strlen(str))
#define PUT_C(ch, count) (memset(big + blen, (ch), (count)), blen += (count))

static void test_ini(void)
{
    PROFILE_LOOKUP l;
    char *big;
    size_t n, blen;
    int ok;

    reset();
    ok = load(NULL,
              "# comment\n"
              "; another\n"
              "[other]\n"
              "aws_access_key_id = OTHER\n"
              "\n"
              "  [ default ]  ; trailing comment\n"
              "AWS_Access_Key_Id=AKIDDEFAULT\r\n"
              "aws_secret_access_key =   se/cr+et#notacomment   # comment\r\n"
              "aws_session_token: tok;en ; comment\n"
              "s3 =\n"
              "  aws_access_key_id = NESTED\n"
              "  max_concurrent_requests = 10\n"
              "[nextsection]\n"
              "aws_secret_access_key = NOPE",
              "[default]\nregion = eu-west-3\naws_access_key_id = FROMCONFIG\n"
              "[profile other]\nregion=us-east-2\n",
              &l);
    CHECK(ok && l.merged.found && l.creds_found && l.config_found &&
              strcmp(l.merged.akid, "AKIDDEFAULT") == 0 &&
              sec_is(&l.merged.secret, "se/cr+et#notacomment") &&
              sec_is(&l.merged.token, "tok;en") &&
              strcmp(l.merged.region, "eu-west-3") == 0,
          "ini: comments, case-insensitive keys, ':' delimiter, inline "
          "comments, CRLF, continuation lines ignored, credentials file "
          "wins");
    CHECK(is_secure(l.merged.secret.data) && is_secure(l.merged.token.data),
          "ini: secrets in secure memory");
    lookup_free(&l);

    reset();
    ok = load("dev", "[dev]\naws_access_key_id=A\n",
              "[dev]\nregion=bad\n[profile   dev  ]\nregion = ap-south-1\n"
              "aws_secret_access_key = FROMCFG\n[profile dev2]\nregion=x\n",
              &l);
    CHECK(ok && l.merged.found && strcmp(l.merged.akid, "A") == 0 &&
              !l.merged.has_secret && l.keys_from == 1 && l.other_secret &&
              !l.other_akid && strcmp(l.merged.region, "ap-south-1") == 0,
          "ini: [profile NAME] in config, plain [NAME] ignored there; "
          "settings merged, keys not merged across files");
    lookup_free(&l);

    reset();
    ok = load("dev", "[profile dev]\naws_access_key_id=A\n", "[dev]\n", &l);
    CHECK(ok && !l.merged.found && l.merged.akid == NULL,
          "ini: [profile dev] in the credentials file is not 'dev'");
    lookup_free(&l);

    /* the legacy token name, in either file; botocore looks for
     * aws_security_token first */
    reset();
    ok = load("p",
              "[p]\naws_access_key_id=A\naws_secret_access_key=S\n"
              "aws_security_token=legacy-tok\n",
              "", &l);
    CHECK(ok && l.merged.has_token && sec_is(&l.merged.token, "legacy-tok") &&
              is_secure(l.merged.token.data),
          "ini: aws_security_token accepted (secure memory)");
    lookup_free(&l);
    reset();
    ok = load("p",
              "[p]\naws_access_key_id=A\naws_secret_access_key=S\n"
              "aws_session_token=new-tok\naws_security_token=legacy-tok\n",
              "", &l);
    CHECK(ok && sec_is(&l.merged.token, "legacy-tok"),
          "ini: both token names: aws_security_token, as botocore");
    lookup_free(&l);
    reset();
    ok = load("p", "",
              "[profile p]\naws_access_key_id=A\n"
              "aws_secret_access_key=S\naws_security_token=cfg-tok\n",
              &l);
    CHECK(ok && l.keys_from == 2 && sec_is(&l.merged.token, "cfg-tok"),
          "ini: aws_security_token in the config file");
    lookup_free(&l);
    reset();
    ok = load("p", "[p]\naws_access_key_id=A\naws_secret_access_key=S\n",
              "[profile p]\naws_session_token=cfg-tok\n", &l);
    CHECK(ok && l.keys_from == 1 && !l.merged.has_token &&
              l.merged.token.data == NULL,
          "ini: a token in the other file is not attached to the keys");
    lookup_free(&l);

    /* malformed files are errors naming file and line, never showing the
     * line (it may hold a secret); as configparser, the whole file */
    {
        static const struct {
            const char *text;
            size_t len;
            const char *want;
        } bad[] = {
#define BAD(t, w) {t, sizeof(t) - 1, w}
            BAD("aws_access_key_id = AKIATOP\n[default]\n"
                "aws_secret_access_key = s\n",
                "line 1: a setting before any [section] header"),
            BAD("# comment\n\n  top-secret-value\n[default]\n",
                "line 3: a setting before any [section] header"),
            BAD("[default\naws_access_key_id=BROKEN\n",
                "line 1: malformed [section] header"),
            BAD("[x]\na=b\n[]\n", "line 3: malformed [section] header"),
            BAD("[default]\naws_access_key_id=A\ntop-secret-value\n",
                "line 3: neither 'key = value', a [section] header nor a "
                "comment"),
            BAD("[default]\n= top-secret-value\n",
                "line 2: neither 'key = value'"),
            BAD("[other]\njunk\n[default]\naws_access_key_id=A\n",
                "line 2: neither"),
            BAD("[default]\naws_secret_access_key=top-secret\0value\n",
                "line 2: NUL byte"),
            BAD("[default]\naws_access_key_id=A\n[x]\n[default]\n",
                "line 4: a second [default] section"),
            BAD("[default]\naws_access_key_id=A\nAWS_Access_Key_Id = B\n",
                "line 3: 'AWS_Access_Key_Id' set twice in the profile"),
#undef BAD
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            reset();
            write_file(tmp_path("credentials-bad"), bad[i].text, bad[i].len);
            setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials-bad"),
                   1);
            ok = load(NULL, NULL, NULL, &l);
            take_errors();
            note("error", errtext);
            CHECK(!ok && strstr(errtext, bad[i].want) != NULL &&
                      strstr(errtext, "AWS shared credentials file ") != NULL &&
                      strstr(errtext, tmp_path("credentials-bad")) != NULL &&
                      strstr(errtext, "profile 'default'") != NULL &&
                      strstr(errtext, "top-secret") == NULL,
                  "ini: malformed file %zu is an error: %s", i, bad[i].want);
            lookup_free(&l);
        }
        reset();
        ok = load("dev", "", "[profile dev]\nregion = x\n\tjunk\nnojunk\n", &l);
        take_errors();
        CHECK(!ok && strstr(errtext, "AWS shared config file ") != NULL &&
                  strstr(errtext, "line 4: neither") != NULL,
              "ini: malformed config file is an error too (continuation "
              "lines are not)");
        lookup_free(&l);
        reset();
        ok = load(NULL,
                  "# top\n; comments\n\n[default] ; c\nx = 1\n"
                  "s3 =\n  max = 1\n\n  more = 2\n",
                  "", &l);
        CHECK(ok && l.merged.found, "ini: comments before the first section, "
                                    "sub-properties, blank lines");
        lookup_free(&l);
    }

    /* lines of any length up to 256 KiB: a 100 KiB token is read; a
     * longer line is an error (never skipped) */
    reset();
    n = 100 * 1024;
    big = malloc(n + 4 * 1024 * 1024);
    blen = 0;
    PUT_S("[default]\naws_session_token=");
    PUT_C('T', n);
    PUT_S("\naws_access_key_id=AK\n[x]\nv=x\n");
    PUT_S("\n[y]\naws_secret_access_key=S"); /* no final newline */
    write_file(tmp_path("credentials"), big, blen);
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    ok = load(NULL, NULL, NULL, &l);
    CHECK(ok && l.merged.has_token && l.merged.token.len == n &&
              l.merged.akid != NULL && strcmp(l.merged.akid, "AK") == 0,
          "ini: 100 KiB value read, no trailing newline");
    lookup_free(&l);

    blen = 0;
    PUT_S("[default]\naws_access_key_id=AK\nx=");
    PUT_C('Y', 2 * 1024 * 1024);
    PUT_S("\naws_secret_access_key=S\n");
    write_file(tmp_path("credentials"), big, blen);
    ok = load(NULL, NULL, NULL, &l);
    take_errors();
    CHECK(!ok && strstr(errtext, "line 3: longer than 262144 bytes") != NULL,
          "ini: an overlong line is an error");
    lookup_free(&l);
    free(big);

    /* unreadable / not regular / missing */
    reset();
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmpdir, 1);
    setenv("AWS_CONFIG_FILE", tmp_path("nonexistent"), 1);
    {
        KMSENV_AWS_CFG cfg;
        AWS_ENV env;

        memset(&cfg, 0, sizeof(cfg));
        env_load(&env);
        ok = profile_load(&cfg, &env, 1, &l);
    }
    CHECK(ok && !l.merged.found &&
              strcmp(l.creds_why, "is not a regular file") == 0 &&
              strcmp(l.config_why, "does not exist") == 0,
          "ini: directory and missing file reported, not fatal");
    lookup_free(&l);

    /* ~ expansion and the default locations */
    reset();
    {
        char p[400];
        KMSENV_AWS_CFG cfg;
        AWS_ENV env;

        snprintf(p, sizeof(p), "%s/home/.aws", tmpdir);
        mkdir(p, 0700);
        snprintf(p, sizeof(p), "%s/home/.aws/credentials", tmpdir);
        write_str(p, "[default]\naws_access_key_id=HOMEKEY\n");
        setenv("AWS_CONFIG_FILE", "~/.aws/other-config", 1);
        snprintf(p, sizeof(p), "%s/home/.aws/other-config", tmpdir);
        write_str(p, "[default]\nregion=sa-east-1\n");
        memset(&cfg, 0, sizeof(cfg));
        env_load(&env);
        ok = profile_load(&cfg, &env, 1, &l);
        CHECK(ok && l.merged.akid != NULL &&
                  strcmp(l.merged.akid, "HOMEKEY") == 0 &&
                  strcmp(l.merged.region, "sa-east-1") == 0,
              "ini: ~/.aws/credentials and ~ in AWS_CONFIG_FILE");
        lookup_free(&l);
        snprintf(p, sizeof(p), "%s/home/.aws/credentials", tmpdir);
        unlink(p);
        snprintf(p, sizeof(p), "%s/home/.aws/other-config", tmpdir);
        unlink(p);
    }
}

/* ------------------------------------------------------------------------ */
/* The chain                                                                 */
/* ------------------------------------------------------------------------ */

static KMSENV_AWS_CFG cfg0;

static int resolve(KMSENV_AWS_CREDS *c)
{
    memset(c, 0, sizeof(*c));
    return kmsenv_aws_resolve_creds(&cfg0, c);
}

#define IMDS_TOKEN_URL "http://169.254.169.254/latest/api/token"
#define IMDS_LIST_URL                                                          \
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
#define IMDS_ROLE_URL IMDS_LIST_URL "my-role"

static char imds_doc[1024];

static void imds_routes(long long exp)
{
    char e[40];

    iso_time(exp, e, sizeof(e));
    snprintf(imds_doc, sizeof(imds_doc),
             "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : "
             "\"2024-01-01T00:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n"
             "  \"AccessKeyId\" : \"ASIAIMDS\",\n  \"SecretAccessKey\" : "
             "\"imds\\/secret\",\n  \"Token\" : \"imds-token\",\n"
             "  \"Expiration\" : \"%s\"\n}",
             e);
    route("PUT", IMDS_TOKEN_URL, 200, "AQAEAIMDSSESSIONTOKEN==\n");
    route("GET", IMDS_LIST_URL, 200, "my-role\nsecond-line\n");
    route("GET", IMDS_ROLE_URL, 200, imds_doc);
}

static void test_env_source(void)
{
    KMSENV_AWS_CREDS c;
    int ok;

    reset();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/never", 1);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "environment") == 0 &&
              strcmp(c.akid, "AKIAENV") == 0 &&
              sec_is(&c.secret, "envsecret") && sec_is(&c.token, "envtoken") &&
              c.expiration == 0 && creds_secure(&c) && ncalls == 0,
          "env: AWS_ACCESS_KEY_ID + secret + token win, nothing else asked");
    kmsenv_aws_creds_clear(&c);
    CHECK(c.secret.data == NULL && c.akid[0] == '\0', "creds_clear");

    unsetenv("AWS_SESSION_TOKEN");
    ok = resolve(&c);
    CHECK(ok && c.token.data == NULL && c.token.len == 0,
          "env: no session token");
    kmsenv_aws_creds_clear(&c);

    unsetenv("AWS_SECRET_ACCESS_KEY");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok &&
              strstr(errtext, "AWS_ACCESS_KEY_ID is set but "
                              "AWS_SECRET_ACCESS_KEY is not") != NULL &&
              ncalls == 0,
          "env: half-set is an error that stops the chain");

    setenv("AWS_ACCESS_KEY_ID", "", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "AWS_SECRET_ACCESS_KEY is set but "
                                 "AWS_ACCESS_KEY_ID is not") != NULL,
          "env: empty counts as unset");

    setenv("AWS_ACCESS_KEY_ID", "AKIA WITH SPACE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "sekrit-value", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "invalid access key id") != NULL &&
              strstr(errtext, "sekrit-value") == NULL,
          "env: invalid access key id rejected, secret not shown");

    setenv("AWS_ACCESS_KEY_ID", "AKIAOK", 1);
    setenv("AWS_SESSION_TOKEN", "bad\r\nX-Injected: 1", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "session token is malformed") != NULL &&
              strstr(errtext, "Injected") == NULL,
          "env: CR/LF in the session token rejected");
}

static void test_nothing(void)
{
    KMSENV_AWS_CREDS c;
    int ok;

    reset();
    ok = resolve(&c);
    take_errors();
    note("error", errtext);
    CHECK(!ok &&
              strstr(errtext, "no AWS credentials: environment (not set), "
                              "web identity (not set), profile 'default' "
                              "(not found: ") != NULL &&
              strstr(errtext, "/home/.aws/credentials does not exist") !=
                  NULL &&
              strstr(errtext,
                     "ECS (not set), IMDS (unreachable at "
                     "http://169.254.169.254: Connection refused") != NULL,
          "chain: one error saying what every source did");
    CHECK(nseen == 2 && strcmp(seen[0].method, "PUT") == 0 &&
              strcmp(seen[0].url, IMDS_TOKEN_URL) == 0 && seen[0].no_proxy &&
              seen[0].connect_ms <= 1000 && seen[0].timeout_ms <= 2000 &&
              seen[0].nhdr == 1 &&
              strcmp(seen[0].hdr[0],
                     "X-aws-ec2-metadata-token-ttl-seconds: 21600") == 0,
          "imds: token PUT, short timeouts, one retry, no proxy");

    reset();
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 0 &&
              strstr(errtext, "IMDS (disabled by AWS_EC2_METADATA_DISABLED)") !=
                  NULL,
          "imds: AWS_EC2_METADATA_DISABLED=true (any case)");
}

static void test_imds(void)
{
    KMSENV_AWS_CREDS c;
    const SEEN *s;
    long long now = (long long)time(NULL);
    int ok;

    reset();
    imds_routes(now + 3600);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "imds") == 0 &&
              strcmp(c.akid, "ASIAIMDS") == 0 &&
              sec_is(&c.secret, "imds/secret") &&
              sec_is(&c.token, "imds-token") && c.expiration == now + 3600 &&
              creds_secure(&c),
          "imds: token, role, credentials");
    kmsenv_aws_creds_clear(&c);
    s = find_seen("GET", IMDS_ROLE_URL);
    CHECK(s != NULL && s->nhdr == 1 &&
              strcmp(s->hdr[0], "X-aws-ec2-metadata-token: "
                                "AQAEAIMDSSESSIONTOKEN==") == 0 &&
              s->hdr_secure[0] && s->secure_response && s->no_proxy,
          "imds: session token header (secure), secure response");

    reset();
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8111/", 1);
    route("PUT", "http://127.0.0.1:8111/latest/api/token", 200, "T");
    route("GET",
          "http://127.0.0.1:8111/latest/meta-data/iam/security-credentials/",
          404, "");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "HTTP 404: no IAM role attached") != NULL,
          "imds: custom endpoint, no role");

    reset();
    route("PUT", IMDS_TOKEN_URL, 403, "Forbidden");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "token request to " IMDS_TOKEN_URL
                                 ": HTTP 403") != NULL,
          "imds: token refused");

    reset();
    route("PUT", IMDS_TOKEN_URL, 200, "T");
    route("GET", IMDS_LIST_URL, 200, "../../etc\n");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "invalid role name") != NULL,
          "imds: role name validated");

    reset();
    route("PUT", IMDS_TOKEN_URL, 200, "T");
    route("GET", IMDS_LIST_URL, 200, "my-role");
    route("GET", IMDS_ROLE_URL, 200,
          "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"denied\","
          "\"SecretAccessKey\":\"leak-me-not\"}");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok &&
              strstr(errtext, "Code 'AssumeRoleUnauthorizedAccess': "
                              "denied") != NULL &&
              strstr(errtext, "leak-me-not") == NULL,
          "imds: Code other than Success");

    reset();
    route("PUT", IMDS_TOKEN_URL, 200, "T");
    route("GET", IMDS_LIST_URL, 200, "my-role");
    route("GET", IMDS_ROLE_URL, 200,
          "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
          "\"leak-me-not\",\"Token\":\"t\",\"Expiration\":\"soon\"}");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "unparsable Expiration 'soon'") != NULL &&
              strstr(errtext, "leak-me-not") == NULL,
          "imds: bad Expiration");

    reset();
    route("PUT", IMDS_TOKEN_URL, 200, "T");
    route("GET", IMDS_LIST_URL, 200, "my-role");
    route("GET", IMDS_ROLE_URL, 200, "{\"Code\":\"Success\",\"Secret");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "not a valid JSON object") != NULL,
          "imds: truncated JSON");

    reset();
    imds_routes(now - 1);
    ok = resolve(&c);
    take_errors();
    note("error", errtext);
    CHECK(!ok && c.secret.data == NULL &&
              strstr(errtext,
                     "AWS credentials from IMDS (role my-role at "
                     "http://169.254.169.254): the answer's credentials "
                     "(access key id ASIAIMDS) expired at ") != NULL &&
              strstr(errtext, "imds/secret") == NULL,
          "imds: expired credentials refused, naming the source");

    reset();
    route("PUT", IMDS_TOKEN_URL, 500, "");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 2 && strstr(errtext, "HTTP 500") != NULL,
          "imds: 5xx retried once");
}

static void test_ecs(void)
{
    KMSENV_AWS_CREDS c;
    const SEEN *s;
    char doc[512], e[40];
    long long now = (long long)time(NULL);
    int ok;

    iso_time(now + 7200, e, sizeof(e));
    snprintf(doc, sizeof(doc),
             "{\"AccessKeyId\":\"ASIAECS\",\"Expiration\":\"%s\","
             "\"RoleArn\":\"arn:aws:iam::1:role/x\",\"SecretAccessKey\":"
             "\"ecs-secret\",\"Token\":\"ecs-token\"}",
             e);

    reset();
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://ignored/", 1);
    route("GET", "http://169.254.170.2/v2/credentials/abc", 200, doc);
    imds_routes(now + 3600);
    ok = resolve(&c);
    s = find_seen("GET", "http://169.254.170.2/v2/credentials/abc");
    CHECK(
        ok && strcmp(c.source, "ecs") == 0 && strcmp(c.akid, "ASIAECS") == 0 &&
            sec_is(&c.secret, "ecs-secret") && sec_is(&c.token, "ecs-token") &&
            c.expiration == now + 7200 && creds_secure(&c) && ncalls == 1 &&
            s != NULL && s->no_proxy && s->secure_response && s->nhdr == 1,
        "ecs: relative URI wins over full URI and IMDS");
    kmsenv_aws_creds_clear(&c);

    /* an answer whose Expiration has passed is refused, naming ECS */
    reset();
    {
        char old[512], pe[40];

        iso_time(now - 120, pe, sizeof(pe));
        snprintf(old, sizeof(old),
                 "{\"AccessKeyId\":\"ASIASTALE\",\"Expiration\":\"%s\","
                 "\"SecretAccessKey\":\"ecs-secret\",\"Token\":\"ecs-token\"}",
                 pe);
        setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc",
               1);
        route("GET", "http://169.254.170.2/v2/credentials/abc", 200, old);
        imds_routes(now + 3600);
        memset(&c, 0, sizeof(c));
        ok = resolve(&c);
        take_errors();
        note("error", errtext);
        CHECK(!ok && c.secret.data == NULL && ncalls == 1 &&
                  strstr(errtext, "AWS credentials from ECS "
                                  "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
                                  "at http://169.254.170.2/v2/credentials/"
                                  "abc): the answer's credentials (access "
                                  "key id ASIASTALE) expired at ") != NULL &&
                  strstr(errtext, pe) != NULL &&
                  strstr(errtext, "ecs-secret") == NULL,
              "ecs: expired credentials refused, naming the source");
    }

    /* full URI + token file (trimmed, re-read each time) */
    reset();
    write_str(tmp_path("ecs-token"), "  secret-auth-token\n");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
           "http://127.0.0.1:9911/creds?x=1", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tmp_path("ecs-token"), 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-used", 1);
    route("GET", "http://127.0.0.1:9911/creds?x=1", 200, doc);
    ok = resolve(&c);
    s = find_seen("GET", "http://127.0.0.1:9911/creds?x=1");
    CHECK(ok && s != NULL && s->nhdr == 2 &&
              strcmp(s->hdr[1], "Authorization: secret-auth-token") == 0 &&
              s->hdr_secure[1],
          "ecs: full URI, token from file, trimmed, header in secure memory");
    kmsenv_aws_creds_clear(&c);
    write_str(tmp_path("ecs-token"), "rotated-token");
    stub_reset();
    route("GET", "http://127.0.0.1:9911/creds?x=1", 200, doc);
    ok = resolve(&c);
    CHECK(ok && nseen == 1 &&
              strcmp(seen[0].hdr[1], "Authorization: rotated-token") == 0,
          "ecs: token file re-read on every resolution");
    kmsenv_aws_creds_clear(&c);

    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    stub_reset();
    route("GET", "http://127.0.0.1:9911/creds?x=1", 200, doc);
    ok = resolve(&c);
    CHECK(ok && nseen == 1 &&
              strcmp(seen[0].hdr[1], "Authorization: not-used") == 0,
          "ecs: AWS_CONTAINER_AUTHORIZATION_TOKEN");
    kmsenv_aws_creds_clear(&c);

    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tmp_path("nope"), 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok &&
              strstr(errtext, "cannot read "
                              "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") != NULL,
          "ecs: missing token file is an error");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");

    /* host policy */
    {
        static const struct {
            const char *url;
            int ok;
        } v[] = {
            {"http://localhost:80/c", 1},
            {"http://LOCALHOST/c", 1},
            {"http://127.1.2.3/c", 1},
            {"http://[::1]:8080/c", 1},
            {"http://169.254.170.2/c", 1},
            {"http://169.254.170.23/v1/credentials", 1},
            {"http://[fd00:ec2::23]/v1/credentials", 1},
            {"https://creds.example.com/c", 1},
            {"http://creds.example.com/c", 0},
            {"http://169.254.170.3/c", 0},
            {"http://127.0.0.1.evil.com/c", 0},
            {"http://localhost.evil.com/c", 0},
            {"http://user@127.0.0.1/c", 0},
            {"http://[::2]/c", 0},
            {"ftp://127.0.0.1/c", 0},
            {"127.0.0.1/c", 0},
            {"http://127.0.0.1/c d", 0},
            {"http://127.0.0.1%2e/c", 0},
            {"http://127.0.0.1\\@evil.com/c", 0},
            {"http://[::1]evil.com/c", 0},
            {"http://[::1%25lo]/c", 0},
            {"http://127.0.0.1:80x/c", 0},
            {"http://127.0.0.1:/c", 0},
            {"http://127.0.0.1:8080", 1},
            {"http://127.0.0.1?x=1", 1},
            {"https://user@creds.example.com/c", 0},
        };
        size_t i;

        for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            reset();
            setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", v[i].url, 1);
            route("GET", v[i].url, 200, doc);
            ok = resolve(&c);
            take_errors();
            CHECK(ok == v[i].ok && (ok || ncalls == 0),
                  "ecs: full URI %s %s%s%s", v[i].url,
                  v[i].ok ? "allowed" : "refused", ok ? "" : ": ",
                  ok ? "" : errtext);
            kmsenv_aws_creds_clear(&c);
        }
    }

    /* a configured ECS endpoint that fails stops the chain */
    reset();
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/x", 1);
    route("GET", "http://169.254.170.2/v2/x", 403,
          "{\"code\":\"AccessDenied\",\"message\":\"bad token\"}");
    imds_routes(now + 3600);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 1 &&
              strstr(errtext, "http://169.254.170.2/v2/x answered HTTP 403: "
                              "AccessDenied: bad token") != NULL,
          "ecs: HTTP 403 is an error naming ECS; IMDS not tried");

    reset();
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 3 && strstr(errtext, "unreachable") != NULL,
          "ecs: unreachable after 3 attempts");
}

static void test_web_identity(void)
{
    KMSENV_AWS_CREDS c;
    const SEEN *s;
    char doc[2048], e[40];
    long long now = (long long)time(NULL);
    int ok;

    iso_time(now + 3600, e, sizeof(e));
    snprintf(doc, sizeof(doc), STS_OK_FMT, "sts-session-token",
             "sts-secret-key", e, "ASIASTS");

    reset();
    write_str(tmp_path("wi-token"), "eyJhbGciOi.JWT+/=&token\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("wi-token"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/my role", 1);
    setenv("AWS_ROLE_SESSION_NAME", "sess@1", 1);
    setenv("AWS_REGION", "eu-central-1", 1);
    route("POST", "https://sts.eu-central-1.amazonaws.com", 200, doc);
    ok = resolve(&c);
    s = find_seen("POST", "https://sts.eu-central-1.amazonaws.com");
    CHECK(ok && strcmp(c.source, "web-identity") == 0 &&
              strcmp(c.akid, "ASIASTS") == 0 &&
              sec_is(&c.secret, "sts-secret-key") &&
              sec_is(&c.token, "sts-session-token") &&
              c.expiration == now + 3600 && creds_secure(&c),
          "web identity: STS answer parsed");
    kmsenv_aws_creds_clear(&c);
    CHECK(
        s != NULL &&
            strcmp(s->body,
                   "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                   "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fmy"
                   "%20role&RoleSessionName=sess%401"
                   "&WebIdentityToken=eyJhbGciOi.JWT%2B%2F%3D%26token") == 0 &&
            s->body_secure && s->secure_response &&
            s->policy == KMSENV_HTTP_HTTPS_ONLY && s->nhdr >= 1 &&
            strncmp(s->hdr[0],
                    "Content-Type: application/x-www-form-urlencoded", 47) == 0,
        "web identity: form body URL-encoded, in secure memory, https");

    /* endpoint choice */
    stub_reset();
    unsetenv("AWS_REGION");
    unsetenv("AWS_ROLE_SESSION_NAME");
    route("POST", "https://sts.amazonaws.com", 200, doc);
    ok = resolve(&c);
    CHECK(ok && nseen == 1 &&
              strcmp(seen[0].url, "https://sts.amazonaws.com") == 0 &&
              strstr(seen[0].body, "RoleSessionName=kmsenv-") != NULL,
          "web identity: no region -> global STS, default session name");
    kmsenv_aws_creds_clear(&c);

    stub_reset();
    setenv("AWS_REGION", "us-east-2", 1);
    setenv("AWS_USE_FIPS_ENDPOINT", "true", 1);
    route("POST", "https://sts-fips.us-east-2.amazonaws.com", 200, doc);
    ok = resolve(&c);
    CHECK(ok, "web identity: AWS_USE_FIPS_ENDPOINT -> sts-fips");
    kmsenv_aws_creds_clear(&c);
    unsetenv("AWS_USE_FIPS_ENDPOINT");
    unsetenv("AWS_REGION");

    stub_reset();
    setenv("AWS_DEFAULT_REGION", "cn-north-1", 1);
    route("POST", "https://sts.cn-north-1.amazonaws.com.cn", 200, doc);
    ok = resolve(&c);
    CHECK(ok, "web identity: China region endpoint");
    kmsenv_aws_creds_clear(&c);

    stub_reset();
    setenv("AWS_ENDPOINT_URL", "https://generic.example", 1);
    route("POST", "https://generic.example", 200, doc);
    ok = resolve(&c);
    CHECK(ok, "web identity: AWS_ENDPOINT_URL");
    kmsenv_aws_creds_clear(&c);

    stub_reset();
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566", 1);
    route("POST", "http://127.0.0.1:4566", 200, doc);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 0 && strstr(errtext, "plain http") != NULL,
          "web identity: http STS refused without allow_http");
    cfg0.allow_http = 1;
    ok = resolve(&c);
    CHECK(ok && nseen == 1 && seen[0].policy == KMSENV_HTTP_LOOPBACK_OK,
          "web identity: AWS_ENDPOINT_URL_STS, loopback http with "
          "allow_http");
    kmsenv_aws_creds_clear(&c);

    /* STS errors */
    stub_reset();
    route("POST", "http://127.0.0.1:4566", 400,
          "<ErrorResponse><Error><Type>Sender</Type><Code>"
          "InvalidIdentityToken</Code><Message>Token expired</Message>"
          "</Error></ErrorResponse>");
    ok = resolve(&c);
    take_errors();
    note("error", errtext);
    CHECK(!ok && ncalls == 1 &&
              strstr(errtext, "HTTP 400: InvalidIdentityToken: Token "
                              "expired (request id req-1234)") != NULL &&
              strstr(errtext, "JWT") == NULL,
          "web identity: STS error Code/Message, token not shown");

    stub_reset();
    route("POST", "http://127.0.0.1:4566", 400,
          "<ErrorResponse><Error><Code>IDPCommunicationError</Code>"
          "</Error></ErrorResponse>");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 3, "web identity: IDPCommunicationError retried");

    stub_reset();
    route("POST", "http://127.0.0.1:4566", 200, "<html>hello</html>");
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "no <Credentials>") != NULL,
          "web identity: 200 without credentials");
    cfg0.allow_http = 0;

    /* configuration errors */
    reset();
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("wi-token"), 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "AWS_ROLE_ARN is not") != NULL,
          "web identity: token file without role ARN is an error");

    reset();
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("missing-token"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok &&
              strstr(errtext, "cannot read the web identity token "
                              "file") != NULL &&
              ncalls == 0,
          "web identity: missing token file is an error");

    reset();
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
    imds_routes(now + 3600);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "imds") == 0,
          "web identity: role ARN alone is not web identity");
    kmsenv_aws_creds_clear(&c);
}

static void test_profile_source(void)
{
    KMSENV_AWS_CREDS c;
    char doc[2048], e[40];
    long long now = (long long)time(NULL);
    int ok;

    reset();
    write_str(tmp_path("credentials"),
              "[default]\naws_access_key_id = AKIAPROF\n"
              "aws_secret_access_key = prof-secret\n"
              "[dev]\naws_access_key_id = AKIADEV\n"
              "[wi]\nrole_arn = arn:aws:iam::1:role/wi\n"
              "web_identity_token_file = ~/wi-token\n"
              "role_session_name = s1\n"
              "[proc]\ncredential_process = /bin/true\n"
              "[sso]\nsso_session = x\n"
              "[chain]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = "
              "default\n"
              "[regiononly]\nregion = us-west-2\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    setenv("AWS_CONFIG_FILE", tmp_path("config-none"), 1);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "profile default") == 0 &&
              strcmp(c.akid, "AKIAPROF") == 0 &&
              sec_is(&c.secret, "prof-secret") && c.token.data == NULL &&
              creds_secure(&c) && ncalls == 0,
          "profile: default from the credentials file");
    kmsenv_aws_creds_clear(&c);

    setenv("AWS_PROFILE", "dev", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "profile 'dev'") != NULL &&
              strstr(errtext, "aws_access_key_id is set but "
                              "aws_secret_access_key is not") != NULL,
          "profile: key id without secret is an error");

    setenv("AWS_PROFILE", "nosuch", 1);
    imds_routes(now + 3600);
    ok = resolve(&c);
    take_errors();
    note("error", errtext);
    CHECK(!ok && ncalls == 0 &&
              strstr(errtext, "AWS profile 'nosuch' (chosen by AWS_PROFILE) "
                              "not found") != NULL &&
              strstr(errtext, "has no [nosuch]") != NULL &&
              strstr(errtext, "config-none does not exist") != NULL,
          "profile: explicit missing profile is an error naming the files");

    cfg0.profile = "nosuch2";
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "'nosuch2' (chosen by aws_profile)") != NULL,
          "profile: aws_profile wins over AWS_PROFILE");
    cfg0.profile = NULL;

    setenv("AWS_PROFILE", "proc", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "credential_process") != NULL,
          "profile: credential_process unsupported, said so");
    setenv("AWS_PROFILE", "sso", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "sso") != NULL, "profile: sso unsupported");
    setenv("AWS_PROFILE", "chain", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "assume-role chaining") != NULL,
          "profile: source_profile unsupported");

    setenv("AWS_PROFILE", "regiononly", 1);
    stub_reset();
    imds_routes(now + 3600);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "imds") == 0,
          "profile: a profile without credentials falls through");
    kmsenv_aws_creds_clear(&c);

    /* web identity from a profile, ~ expanded, region from the profile */
    iso_time(now + 900, e, sizeof(e));
    snprintf(doc, sizeof(doc), STS_OK_FMT, "t", "s", e, "ASIAPWI");
    {
        char p[400];

        snprintf(p, sizeof(p), "%s/home/wi-token", tmpdir);
        write_str(p, "jwt");
    }
    write_str(tmp_path("config-wi"), "[profile wi]\nregion = us-west-1\n");
    setenv("AWS_CONFIG_FILE", tmp_path("config-wi"), 1);
    setenv("AWS_PROFILE", "wi", 1);
    stub_reset();
    route("POST", "https://sts.us-west-1.amazonaws.com", 200, doc);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "profile wi (web-identity)") == 0 &&
              strcmp(c.akid, "ASIAPWI") == 0 && c.expiration == now + 900 &&
              nseen == 1 &&
              strstr(seen[0].body, "RoleSessionName=s1&") != NULL &&
              strstr(seen[0].body, "WebIdentityToken=jwt") != NULL,
          "profile: role_arn + web_identity_token_file");
    kmsenv_aws_creds_clear(&c);

    /* keys split across the two files: an error naming both (botocore:
     * PartialCredentialsError from the provider of the first file) */
    reset();
    write_str(tmp_path("credentials"),
              "[split]\naws_access_key_id = AKIASPLIT\n");
    write_str(tmp_path("config"),
              "[profile split]\naws_secret_access_key = split-secret\n"
              "[profile split2]\naws_access_key_id = AKIASPLIT2\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    setenv("AWS_CONFIG_FILE", tmp_path("config"), 1);
    setenv("AWS_PROFILE", "split", 1);
    imds_routes(now + 3600);
    ok = resolve(&c);
    take_errors();
    note("error", errtext);
    {
        char want[900];

        snprintf(want, sizeof(want),
                 "AWS credentials from profile 'split' in %s: "
                 "aws_access_key_id is set but aws_secret_access_key is not "
                 "there (it is in %s; both keys must be in the same file)",
                 tmp_path("credentials"), tmp_path("config"));
        CHECK(!ok && ncalls == 0 && strstr(errtext, want) != NULL &&
                  strstr(errtext, "split-secret") == NULL,
              "profile: aws_access_key_id in credentials, secret in config: "
              "error naming both files");
    }
    write_str(tmp_path("credentials"),
              "[split2]\naws_secret_access_key = split-secret\n");
    setenv("AWS_PROFILE", "split2", 1);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && strstr(errtext, "profile 'split2' in ") != NULL &&
              strstr(errtext,
                     "aws_secret_access_key is set but "
                     "aws_access_key_id is not there (it is in ") != NULL,
          "profile: secret in credentials, key id in config: error");

    /* aws_security_token end to end */
    reset();
    write_str(tmp_path("credentials"),
              "[legacy]\naws_access_key_id = AKIALEGACY\n"
              "aws_secret_access_key = prof-secret\n"
              "aws_security_token = legacy-session-token\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    setenv("AWS_CONFIG_FILE", tmp_path("config-none"), 1);
    setenv("AWS_PROFILE", "legacy", 1);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.akid, "AKIALEGACY") == 0 &&
              sec_is(&c.token, "legacy-session-token") && creds_secure(&c),
          "profile: aws_security_token is the session token");
    kmsenv_aws_creds_clear(&c);

    /* a malformed file stops the chain with its error */
    reset();
    write_str(tmp_path("credentials"),
              "aws_access_key_id = AKIATOP\n[default]\n"
              "aws_secret_access_key = prof-secret\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    setenv("AWS_CONFIG_FILE", tmp_path("config-none"), 1);
    imds_routes(now + 3600);
    ok = resolve(&c);
    take_errors();
    CHECK(!ok && ncalls == 0 &&
              strstr(errtext, "line 1: a setting before any [section]") != NULL,
          "profile: a malformed credentials file is an error, not skipped");

    /* an explicit profile (aws_profile) takes the environment out of the
     * chain, as botocore's Session(profile=...); AWS_PROFILE does not */
    reset();
    write_str(tmp_path("credentials"), "[team]\naws_access_key_id = AKIATEAM\n"
                                       "aws_secret_access_key = prof-secret\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("credentials"), 1);
    setenv("AWS_CONFIG_FILE", tmp_path("config-none"), 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("nonexistent"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/x", 1);
    cfg0.profile = "team";
    ok = resolve(&c);
    CHECK(ok && strcmp(c.akid, "AKIATEAM") == 0 &&
              strcmp(c.source, "profile team") == 0 && ncalls == 0,
          "profile: aws_profile wins over AWS_ACCESS_KEY_ID and web identity "
          "variables");
    kmsenv_aws_creds_clear(&c);
    write_str(tmp_path("credentials"), "[team]\nregion = us-east-1\n");
    imds_routes(now + 3600);
    ok = resolve(&c);
    take_errors();
    CHECK(ok && strcmp(c.source, "imds") == 0,
          "profile: aws_profile without keys: environment still skipped, "
          "then ECS/IMDS");
    kmsenv_aws_creds_clear(&c);
    cfg0.profile = NULL;
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_ROLE_ARN");
    write_str(tmp_path("credentials"), "[team]\naws_access_key_id = AKIATEAM\n"
                                       "aws_secret_access_key = prof-secret\n");
    setenv("AWS_PROFILE", "team", 1);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "environment") == 0 &&
              strcmp(c.akid, "AKIAENV") == 0,
          "profile: AWS_PROFILE alone: AWS_ACCESS_KEY_ID still first, as "
          "botocore");
    kmsenv_aws_creds_clear(&c);

    /* implicit default absent -> next source; environment beats profile */
    reset();
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
    setenv("AWS_PROFILE", "nosuch", 1);
    ok = resolve(&c);
    CHECK(ok && strcmp(c.source, "environment") == 0,
          "profile: the environment comes first");
    kmsenv_aws_creds_clear(&c);
}

static void test_regions(void)
{
    KMSENV_AWS_CFG cfg;
    char r[64], small[4];
    char *pr;

    reset();
    memset(&cfg, 0, sizeof(cfg));
    CHECK(kmsenv_aws_spec_region(
              &cfg,
              "aws-kms:arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab", r,
              sizeof(r)) &&
              strcmp(r, "us-east-2") == 0,
          "region: key ARN");
    CHECK(kmsenv_aws_spec_region(
              &cfg, "aws-kms:arn:aws-us-gov:kms:us-gov-west-1:1:alias/x", r,
              sizeof(r)) &&
              strcmp(r, "us-gov-west-1") == 0,
          "region: alias ARN, other partition");
    CHECK(!kmsenv_aws_spec_region(&cfg, "aws-kms:arn:aws:kms", r, sizeof(r)) &&
              !kmsenv_aws_spec_region(&cfg, "aws-kms:arn:aws:kms::1:key/x", r,
                                      sizeof(r)) &&
              !kmsenv_aws_spec_region(&cfg, "aws-kms:arn:aws:kms:us/x:1:key/x",
                                      r, sizeof(r)),
          "region: malformed ARNs");
    CHECK(!kmsenv_aws_spec_region(&cfg, "aws-kms:alias/x", r, sizeof(r)),
          "region: none configured");
    write_str(tmp_path("config-r"),
              "[default]\nregion = ap-northeast-1\n[profile p]\nregion=x\n");
    setenv("AWS_CONFIG_FILE", tmp_path("config-r"), 1);
    CHECK(kmsenv_aws_spec_region(&cfg, "aws-kms:alias/x", r, sizeof(r)) &&
              strcmp(r, "ap-northeast-1") == 0,
          "region: profile region");
    pr = kmsenv_aws_profile_region(&cfg);
    CHECK(pr != NULL && strcmp(pr, "ap-northeast-1") == 0,
          "profile_region: default profile");
    OPENSSL_free(pr);
    setenv("AWS_DEFAULT_REGION", "eu-north-1", 1);
    CHECK(kmsenv_aws_spec_region(&cfg, "aws-kms:alias/x", r, sizeof(r)) &&
              strcmp(r, "eu-north-1") == 0,
          "region: AWS_DEFAULT_REGION over the profile");
    setenv("AWS_REGION", "eu-south-1", 1);
    CHECK(kmsenv_aws_spec_region(&cfg, "aws-kms:1234abcd", r, sizeof(r)) &&
              strcmp(r, "eu-south-1") == 0,
          "region: AWS_REGION over AWS_DEFAULT_REGION");
    cfg.region = "me-south-1";
    CHECK(kmsenv_aws_spec_region(&cfg, "aws-kms:1234abcd", r, sizeof(r)) &&
              strcmp(r, "me-south-1") == 0,
          "region: configured region first");
    CHECK(
        !kmsenv_aws_spec_region(&cfg, "aws-kms:1234abcd", small, sizeof(small)),
        "region: output too small");
    cfg.region = "evil.com/";
    CHECK(!kmsenv_aws_spec_region(&cfg, "aws-kms:1234abcd", r, sizeof(r)),
          "region: invalid characters refused");
    cfg.profile = "p";
    cfg.region = NULL;
    pr = kmsenv_aws_profile_region(&cfg);
    CHECK(pr != NULL && strcmp(pr, "x") == 0, "profile_region: named profile");
    OPENSSL_free(pr);
    cfg.profile = "none";
    pr = kmsenv_aws_profile_region(&cfg);
    CHECK(pr == NULL && ERR_peek_error() == 0,
          "profile_region: missing profile, no error left behind");
}

/* ------------------------------------------------------------------------ */
/* Cache                                                                     */
/* ------------------------------------------------------------------------ */

static KMSENV_AWS_STATE *g_st;
static int thread_ok[8];

static void *thread_main(void *arg)
{
    int i, k = (int)(long)arg;
    KMSENV_AWS_CREDS c, prev;

    memset(&prev, 0, sizeof(prev));
    thread_ok[k] = 1;
    for (i = 0; i < 200; i++) {
        /* now and then, report the last credentials as expired */
        if (!kmsenv_aws_get_creds(g_st, &cfg0,
                                  i % 50 == 49 && i > 0 ? &prev : NULL, &c) ||
            strcmp(c.akid, "ASIAIMDS") != 0)
            thread_ok[k] = 0;
        kmsenv_aws_creds_clear(&prev);
        prev = c;
    }
    kmsenv_aws_creds_clear(&prev);
    return NULL;
}

static void test_cache(void)
{
    KMSENV_AWS_STATE *st = kmsenv_aws_state_new();
    KMSENV_AWS_CREDS c, other;
    long long now = (long long)time(NULL);
    int ok, i, status;
    pid_t pid;
    pthread_t th[8];

    reset();
    imds_routes(now + 3600);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && ncalls == 3 && strcmp(c.akid, "ASIAIMDS") == 0 &&
              creds_secure(&c),
          "cache: first call resolves");
    kmsenv_aws_creds_clear(&c);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && ncalls == 3 && sec_is(&c.secret, "imds/secret") &&
              creds_secure(&c),
          "cache: second call served from the cache (a secure copy)");
    kmsenv_aws_creds_clear(&c);

    memset(&other, 0, sizeof(other));
    strcpy(other.akid, "ASIAOTHER");
    ok = kmsenv_aws_get_creds(st, &cfg0, &other, &c);
    CHECK(ok && ncalls == 3,
          "cache: rejected credentials that are no longer cached: cache used");
    kmsenv_aws_creds_clear(&c);
    st->filled_ms -= 10000;
    ok = kmsenv_aws_get_creds(st, &cfg0, &st->creds, &c);
    CHECK(ok && ncalls == 6,
          "cache: the cached credentials were rejected: resolves again");
    kmsenv_aws_creds_clear(&c);

    /* expiring within 5 minutes: refreshed */
    stub_reset();
    imds_routes(now + 200);
    st->filled_ms -= 10000;
    ok = kmsenv_aws_get_creds(st, &cfg0, &st->creds, &c);
    kmsenv_aws_creds_clear(&c);
    stub_reset();
    imds_routes(now + 3600);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && ncalls == 3 && c.expiration == now + 3600,
          "cache: credentials expiring within 5 min are refreshed");
    kmsenv_aws_creds_clear(&c);

    /* refresh fails, cached still valid: kept, and not retried at once */
    stub_reset();
    imds_routes(now + 200);
    st->filled_ms -= 10000;
    kmsenv_aws_get_creds(st, &cfg0, &st->creds, &c);
    kmsenv_aws_creds_clear(&c);
    stub_reset(); /* IMDS now unreachable */
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && c.expiration == now + 200 && ERR_peek_error() == 0 &&
              ncalls == 2,
          "cache: failed refresh keeps valid credentials, no error left");
    kmsenv_aws_creds_clear(&c);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && ncalls == 2, "cache: no new attempt right after a failure");
    kmsenv_aws_creds_clear(&c);

    /* expired and refresh fails: error */
    st->creds.expiration = now - 1;
    st->retry_after = 0;
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    take_errors();
    CHECK(!ok && !st->have && strstr(errtext, "no AWS credentials") != NULL,
          "cache: expired and unrefreshable is an error");

    /* fork: the child never reuses the parent's cache */
    stub_reset();
    imds_routes(now + 3600);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    kmsenv_aws_creds_clear(&c);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int before = ncalls, r;

        r = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
        kmsenv_aws_creds_clear(&c);
        _exit(r && ncalls == before + 3 && st->pid == getpid() ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    CHECK(ok && pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "cache: a forked child resolves afresh");
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && ncalls == 3, "cache: the parent keeps its cache");
    kmsenv_aws_creds_clear(&c);

    /* threads: no double free, always valid (ASan/TSan) */
    g_st = st;
    for (i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, thread_main, (void *)(long)i);
    ok = 1;
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok &= thread_ok[i];
    }
    CHECK(ok, "cache: 8 threads x 200 calls with forced refreshes");

    kmsenv_aws_state_free(st);
    ok = kmsenv_aws_get_creds(NULL, &cfg0, 0, &c);
    CHECK(ok && strcmp(c.source, "imds") == 0, "cache: NULL state resolves");
    kmsenv_aws_creds_clear(&c);

    /* copy */
    {
        KMSENV_AWS_CREDS a, b;

        memset(&a, 0, sizeof(a));
        creds_fill(&a, "t", "AK", 2, "sec", 3, NULL, 0, 5, "src");
        ok = kmsenv_aws_creds_copy(&b, &a);
        CHECK(ok && strcmp(b.akid, "AK") == 0 && sec_is(&b.secret, "sec") &&
                  b.secret.data != a.secret.data && b.token.data == NULL &&
                  b.expiration == 5 && strcmp(b.source, "src") == 0,
              "creds_copy");
        kmsenv_aws_creds_clear(&a);
        kmsenv_aws_creds_clear(&b);
    }
}

/* ---- the cache lock is never held across a fetch ---- */

static pthread_mutex_t cc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cc_cv = PTHREAD_COND_INITIALIZER;
static int cc_done, cc_bad;
static long long cc_exp;

/* One thread that fetches (it stops at the gate). */
static void *cc_fetcher(void *arg)
{
    KMSENV_AWS_CREDS c;
    int ok = kmsenv_aws_get_creds(arg, &cfg0, NULL, &c);

    pthread_mutex_lock(&cc_mu);
    cc_exp = ok ? c.expiration : -1;
    pthread_mutex_unlock(&cc_mu);
    kmsenv_aws_creds_clear(&c);
    return NULL;
}

/* Readers while that fetch is in flight. */
static void *cc_reader(void *arg)
{
    KMSENV_AWS_CREDS c;
    int i, bad = 0;

    for (i = 0; i < 20; i++) {
        if (!kmsenv_aws_get_creds(arg, &cfg0, NULL, &c) ||
            strcmp(c.akid, "ASIAIMDS") != 0 || !creds_secure(&c))
            bad = 1;
        kmsenv_aws_creds_clear(&c);
    }
    pthread_mutex_lock(&cc_mu);
    cc_bad |= bad;
    cc_done++;
    pthread_cond_broadcast(&cc_cv);
    pthread_mutex_unlock(&cc_mu);
    return NULL;
}

/* Holds the state's mutex until told to let go. */
static int hold_state, hold_go;

static void *cc_holder(void *arg)
{
    KMSENV_AWS_STATE *st = arg;

    pthread_mutex_lock(&st->mu);
    pthread_mutex_lock(&cc_mu);
    hold_state = 1;
    pthread_cond_broadcast(&cc_cv);
    while (!hold_go)
        pthread_cond_wait(&cc_cv, &cc_mu);
    pthread_mutex_unlock(&cc_mu);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Forks; the child gets credentials (bounded by alarm()). Returns 1 if the
 * child succeeded with a fetch of its own. */
static int fork_and_get(KMSENV_AWS_STATE *st)
{
    pid_t pid;
    int status = 0;

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        KMSENV_AWS_CREDS c;
        int before, r;

        alarm(20);
        gate_release(); /* the parent's gate is not this child's */
        before = ncalls;
        r = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
        r = r && strcmp(c.akid, "ASIAIMDS") == 0 && ncalls == before + 3;
        kmsenv_aws_creds_clear(&c);
        _exit(r ? 0 : 1);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    if (WIFSIGNALED(status))
        printf("#   child killed by signal %d (deadlock?)\n", WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_cache_concurrency(void)
{
    KMSENV_AWS_STATE *st = kmsenv_aws_state_new();
    KMSENV_AWS_CREDS c;
    long long now = (long long)time(NULL);
    pthread_t fetcher, readers[4], holder;
    int ok, i, entered, done;

    /* cached credentials expire in 200 s: valid, but due for a refresh */
    reset();
    imds_routes(now + 200);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    kmsenv_aws_creds_clear(&c);
    CHECK(ok && ncalls == 3, "lock: cache filled (expiring in 200 s)");

    /* a refresh stops inside its fetch (IMDS credentials request) */
    gate_arm(IMDS_ROLE_URL);
    cc_done = cc_bad = 0;
    cc_exp = 0;
    pthread_create(&fetcher, NULL, cc_fetcher, st);
    entered = wait_count(&gate_mu, &gate_cv, &gate_entered, 1, 20);
    CHECK(entered, "lock: a refresh is in flight");

    /* readers get the still-valid credentials meanwhile */
    for (i = 0; i < 4; i++)
        pthread_create(&readers[i], NULL, cc_reader, st);
    done = wait_count(&cc_mu, &cc_cv, &cc_done, 4, 20);
    pthread_mutex_lock(&gate_mu);
    entered = gate_entered;
    pthread_mutex_unlock(&gate_mu);
    CHECK(done && !cc_bad && entered == 1,
          "lock: 4 readers x 20 calls complete while the fetch is in "
          "flight, with the cached credentials (no second fetch)");

    /* the fetch completes and is published */
    {
        /* the answer of the request stopped at the gate (read after the
         * gate opens) */
        char e[40];

        iso_time(now + 3600, e, sizeof(e));
        pthread_mutex_lock(&stub_lock);
        snprintf(imds_doc, sizeof(imds_doc),
                 "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAIMDS\","
                 "\"SecretAccessKey\":\"imds\\/secret\",\"Token\":"
                 "\"imds-token\",\"Expiration\":\"%s\"}",
                 e);
        pthread_mutex_unlock(&stub_lock);
    }
    gate_release();
    pthread_join(fetcher, NULL);
    for (i = 0; i < 4; i++)
        pthread_join(readers[i], NULL);
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(cc_exp == now + 3600 && ok && c.expiration == now + 3600 &&
              ncalls == 6,
          "lock: the refreshed credentials are published to everyone");
    kmsenv_aws_creds_clear(&c);
    kmsenv_aws_state_free(st);

    /* single flight: a thread with nothing valid waits for the fetch in
     * flight instead of starting its own */
    st = kmsenv_aws_state_new();
    reset();
    imds_routes(now + 3600);
    gate_arm(IMDS_ROLE_URL);
    cc_done = cc_bad = 0;
    pthread_create(&fetcher, NULL, cc_fetcher, st);
    wait_count(&gate_mu, &gate_cv, &gate_entered, 1, 20);
    for (i = 0; i < 4; i++)
        pthread_create(&readers[i], NULL, cc_reader, st);
    gate_release();
    pthread_join(fetcher, NULL);
    for (i = 0; i < 4; i++)
        pthread_join(readers[i], NULL);
    CHECK(!cc_bad && ncalls == 3,
          "lock: concurrent first calls share one fetch");
    kmsenv_aws_state_free(st);

    /* fork() while another thread is in the middle of a fetch: the child
     * neither waits for that thread (which it does not have) nor reuses
     * anything; it fetches for itself */
    st = kmsenv_aws_state_new();
    reset();
    imds_routes(now + 3600);
    gate_arm(IMDS_ROLE_URL);
    pthread_create(&fetcher, NULL, cc_fetcher, st);
    entered = wait_count(&gate_mu, &gate_cv, &gate_entered, 1, 20);
    ok = entered && fork_and_get(st);
    CHECK(ok, "fork: during another thread's fetch, the child gets "
              "credentials (no deadlock)");
    gate_release();
    pthread_join(fetcher, NULL);
    CHECK(cc_exp == now + 3600, "fork: the parent's fetch completes");

    /* fork() while another thread holds the cache mutex itself */
    hold_state = hold_go = 0;
    pthread_create(&holder, NULL, cc_holder, st);
    wait_count(&cc_mu, &cc_cv, &hold_state, 1, 20);
    ok = fork_and_get(st);
    pthread_mutex_lock(&cc_mu);
    hold_go = 1;
    pthread_cond_broadcast(&cc_cv);
    pthread_mutex_unlock(&cc_mu);
    pthread_join(holder, NULL);
    CHECK(ok, "fork: while another thread holds the cache lock, the child "
              "gets credentials (lock re-initialised)");
    ok = kmsenv_aws_get_creds(st, &cfg0, NULL, &c);
    CHECK(ok && c.expiration == now + 3600,
          "fork: the parent's cache is intact");
    kmsenv_aws_creds_clear(&c);
    kmsenv_aws_state_free(st);
}

/* ------------------------------------------------------------------------ */

static void test_log_has_no_secrets(void)
{
    static const char *const secrets[] = {
        "envsecret",     "envtoken",       "imds/secret",
        "imds\\/secret", "imds-token",     "AQAEAIMDSSESSIONTOKEN",
        "ecs-secret",    "ecs-token",      "secret-auth-token",
        "rotated-token", "sts-secret-key", "sts-session-token",
        "eyJhbGciOi",    "prof-secret",    "se/cr+et",
        "leak-me-not",   "sekrit-value",   NULL};
    size_t len = 0;
    char *log;
    int i, found = 0;

    kmsenv_log_close();
    log = read_all(logpath, &len);
    for (i = 0; log != NULL && secrets[i] != NULL; i++)
        if (strstr(log, secrets[i]) != NULL) {
            printf("#   secret '%s' found in the log\n", secrets[i]);
            found = 1;
        }
    CHECK(log != NULL && len > 1000 && !found &&
              strstr(log, "AWS credentials from imds") != NULL,
          "log (level 2, %zu bytes): sources named, no secret", len);
    free(log);
}

int main(int argc, char **argv)
{
    char home[300];

    if (argc > 1 && strcmp(argv[1], "-v") == 0)
        opt_verbose = 1;
    signal(SIGPIPE, SIG_IGN);
    /* KMSENV_TEST_NO_SECURE_HEAP=1: plain malloc behind OPENSSL_secure_*,
     * so that AddressSanitizer sees every secure buffer too */
    sec_heap = getenv("KMSENV_TEST_NO_SECURE_HEAP") == NULL;
    if (sec_heap && !CRYPTO_secure_malloc_init(32 << 20, 16)) {
        printf("not ok 1 - secure heap\n");
        return 1;
    }
    {
        /* the DRBG keeps its state in the secure heap: allocate it first */
        unsigned char b[16];
        RAND_bytes(b, sizeof(b));
        /* (CRYPTO_secure_used() crashes in 3.0 without a secure heap) */
        sec_baseline = sec_heap ? CRYPTO_secure_used() : 0;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kmsenv-cred-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    mkdir(home, 0700);
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    {
        char spec[400];
        snprintf(spec, sizeof(spec), "file:%s,level:2", logpath);
        kmsenv_log_init(spec);
    }

    test_iso8601();
    test_json();
    test_xml();
    test_fuzz();
    test_ini();
    test_env_source();
    test_nothing();
    test_imds();
    test_ecs();
    test_web_identity();
    test_profile_source();
    test_regions();
    test_cache();
    test_cache_concurrency();
    test_log_has_no_secrets();
    {
        size_t used = sec_heap ? CRYPTO_secure_used() : 0;

        CHECK(used == sec_baseline,
              "secure heap: everything freed (%zu bytes in use, baseline "
              "%zu)",
              used, sec_baseline);
    }

    {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
    }
    return harness_done();
}
