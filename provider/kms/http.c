/* SPDX-License-Identifier: Apache-2.0 */
#include "kms/http.h"
#include "util/err.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>

long long kmsenv_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- curl ---- */

/* Each request runs curl_easy_perform on a short-lived worker thread:
 *  - libcurl clears the calling thread's OpenSSL error queue (marks
 *    included) around TLS I/O; our callers' errors and marks (the keyring's
 *    failover, OSSL_DECODER's) stay intact on their own thread;
 *  - libcurl's TLS uses OpenSSL's default library context of its thread.
 *    The worker points that at a private context with only OpenSSL's
 *    default provider, so the application's openssl.cnf (which may load
 *    kmsenv itself) never reaches the KMS connection, and no application
 *    thread fetches from that context. OpenSSL 3.0 can fail first-time
 *    fetches made concurrently with other threads' first fetches (seen: a
 *    ClientHello without ECDSA signature algorithms while other threads
 *    opened OSSL_STOREs); the private context is warmed once, under the
 *    init lock, with an SSL_CTX of the kind libcurl builds. */
static pthread_mutex_t users_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static int users;   /* provider instances (kmsenv_http_global_ref) */
static int curl_ok; /* curl_global_init done, tls_libctx ready */
static OSSL_LIB_CTX *tls_libctx;
static OSSL_PROVIDER *tls_default;

/* users_mu is never held while calling out: curl_global_init may load the
 * application's openssl.cnf, which may start another kmsenv instance whose
 * init takes a reference (on this very thread). */
void kmsenv_http_global_ref(void)
{
    pthread_mutex_lock(&users_mu);
    users++;
    pthread_mutex_unlock(&users_mu);
}

/* Frees what the first request set up once the last provider instance
 * goes: the module may be unloaded next. curl_global_init/cleanup are
 * reference counted inside libcurl, so an application using libcurl
 * itself is unaffected. */
void kmsenv_http_global_unref(void)
{
    int last;

    pthread_mutex_lock(&users_mu);
    last = users > 0 && --users == 0;
    pthread_mutex_unlock(&users_mu);
    if (!last)
        return;
    pthread_mutex_lock(&init_mu);
    if (curl_ok) {
        OSSL_PROVIDER_unload(tls_default);
        OSSL_LIB_CTX_free(tls_libctx);
        curl_global_cleanup();
        tls_default = NULL;
        tls_libctx = NULL;
        curl_ok = 0;
    }
    pthread_mutex_unlock(&init_mu);
}

static int global_init(void)
{
    int ok;
    SSL_CTX *warm;

    pthread_mutex_lock(&init_mu);
    if (!curl_ok) {
        /* curl_global_init is not thread-safe in 7.88: under our lock */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) {
            if ((tls_libctx = OSSL_LIB_CTX_new()) != NULL &&
                (tls_default = OSSL_PROVIDER_load(tls_libctx, "default")) !=
                    NULL &&
                (warm = SSL_CTX_new_ex(tls_libctx, NULL,
                                       TLS_client_method())) != NULL) {
                SSL_CTX_free(warm);
                curl_ok = 1;
            } else {
                OSSL_PROVIDER_unload(tls_default);
                tls_default = NULL;
                OSSL_LIB_CTX_free(tls_libctx);
                tls_libctx = NULL;
                curl_global_cleanup();
            }
        }
    }
    ok = curl_ok;
    pthread_mutex_unlock(&init_mu);
    return ok;
}

typedef struct {
    CURL *c;
    CURLcode rc;
} PERFORM;

static void *perform_main(void *arg)
{
    PERFORM *p = arg;

    OSSL_LIB_CTX_set0_default(tls_libctx);
    p->rc = curl_easy_perform(p->c);
    OPENSSL_thread_stop_ex(tls_libctx);
    OPENSSL_thread_stop();
    return NULL;
}

static CURLcode perform(CURL *c)
{
    PERFORM p = {c, CURLE_FAILED_INIT};
    pthread_t t;

    if (pthread_create(&t, NULL, perform_main, &p) == 0) {
        pthread_join(t, NULL);
    } else {
        /* no thread: run here; errors of ours may be cleared by curl */
        OSSL_LIB_CTX *prev = OSSL_LIB_CTX_set0_default(tls_libctx);
        ERR_set_mark();
        p.rc = curl_easy_perform(c);
        ERR_pop_to_mark();
        OSSL_LIB_CTX_set0_default(prev);
    }
    return p.rc;
}

/* Keeps TLS plaintext (KMS requests and answers carry data keys) out of
 * freed record buffers. */
static CURLcode on_ssl_ctx(CURL *c, void *sslctx, void *arg)
{
    SSL_CTX_set_options((SSL_CTX *)sslctx, SSL_OP_CLEANSE_PLAINTEXT);
    return CURLE_OK;
}

static int host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
        strcmp(host, "[::1]") == 0)
        return 1;
    return strncmp(host, "127.", 4) == 0 &&
           strspn(host, "0123456789.") == strlen(host);
}

int kmsenv_http_url_allowed(const char *url, enum kmsenv_http_policy policy,
                            const char *what)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;

    if (u == NULL ||
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
            CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s: '%s' is not a valid URL",
                     what, url);
    } else if (strcasecmp(scheme, "https") == 0) {
        ok = 1;
    } else if (strcasecmp(scheme, "http") != 0) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: '%s': only https:// URLs are allowed", what, url);
    } else if (policy == KMSENV_HTTP_ANY) {
        ok = 1;
    } else if (policy == KMSENV_HTTP_LOOPBACK_OK && host_is_loopback(host)) {
        ok = 1;
    } else if (policy == KMSENV_HTTP_LOOPBACK_OK) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: '%s': plain http is allowed only to a loopback "
                     "address (127.0.0.0/8, ::1, localhost)",
                     what, url);
    } else {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "%s: '%s': plain http is refused (TLS is required; "
                     "allow_http = yes permits http to loopback only)",
                     what, url);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    KMSENV_HTTP_RESP *r = arg;
    size_t len = size * n;

    if (r->body.len + len > ((size_t)4 << 20)) /* 4 MiB: no KMS answer */
        return 0;
    if (!kmsenv_buf_append(&r->body, p, len)) {
        r->out_of_memory = 1;
        return 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    KMSENV_HTTP_RESP *r = arg;
    size_t len = size * n, i;
    static const char *const names[] = {"x-amzn-requestid:",
                                        "x-amz-request-id:"};

    for (i = 0; i < 2; i++) {
        size_t nl = strlen(names[i]);
        if (len > nl && strncasecmp(p, names[i], nl) == 0) {
            const char *v = p + nl;
            size_t vl = len - nl;
            while (vl > 0 && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl > 0 &&
                   (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                vl--;
            /* it goes into errors and logs: printable ASCII as is, other
             * bytes and '\\' as \xNN (never half an escape) */
            size_t o = 0, cap = sizeof(r->request_id);
            for (size_t j = 0; j < vl; j++) {
                unsigned char ch = (unsigned char)v[j];
                if (ch > 0x20 && ch < 0x7f && ch != '\\') {
                    if (o + 1 >= cap)
                        break;
                    r->request_id[o++] = (char)ch;
                } else {
                    if (o + 4 >= cap)
                        break;
                    snprintf(r->request_id + o, 5, "\\x%02x", ch);
                    o += 4;
                }
            }
            r->request_id[o] = '\0';
        }
    }
    return len;
}

void kmsenv_http_resp_free(KMSENV_HTTP_RESP *resp)
{
    kmsenv_buf_free(&resp->body);
}

/* "user:password" for CURLOPT_USERPWD is avoided: USERNAME and PASSWORD are
 * set separately so that a ':' in either cannot split wrongly. */
int kmsenv_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp)
{
    CURL *c = NULL;
    struct curl_slist *hdrs = NULL, *t;
    char errbuf[CURL_ERROR_SIZE] = "";
    const char *ca = req->ca_file;
    KMSENV_BUF tokhdr = {.secure = 1};
    CURLcode rc;
    size_t i;
    int ok = 0;

    memset(resp, 0, sizeof(*resp));
    resp->body.secure = req->secure_response;
    if (!kmsenv_http_url_allowed(req->url, req->policy, "endpoint"))
        return 0;
    if (!global_init() || (c = curl_easy_init()) == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "libcurl could not be initialised");
        return 0;
    }
    for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        if ((t = curl_slist_append(hdrs, req->headers[i])) == NULL)
            goto oom;
        hdrs = t;
    }
    if (req->sigv4 != NULL && req->creds != NULL && req->creds->token.len > 0) {
        /* the session token is a secret: built in secure memory; curl
         * copies slist strings to its own heap, which we cannot avoid */
        if (!kmsenv_buf_appendf(&tokhdr, "X-Amz-Security-Token: %s",
                                (const char *)req->creds->token.data) ||
            (t = curl_slist_append(hdrs, tokhdr.data)) == NULL)
            goto oom;
        hdrs = t;
    }
    if (ca == NULL || *ca == '\0')
        ca = getenv("AWS_CA_BUNDLE");

    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
                     req->policy == KMSENV_HTTP_HTTPS_ONLY ? "https"
                                                           : "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca != NULL && *ca != '\0')
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                                 : 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms : 10000L);
    /* a proxy would see plain http in clear: only https may use one */
    if (req->no_proxy || strncasecmp(req->url, "http:", 5) == 0)
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kmsenv/0.1");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (strcmp(req->method, "GET") != 0) {
        /* POSTFIELDS: the body SigV4 hashes. curl copies small bodies into
         * its own (uncleansed) send buffer: see the README on residues. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                         req->body != NULL ? (const char *)req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body != NULL ? req->bodylen : 0));
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (hdrs != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (req->sigv4 != NULL) {
        if (req->creds == NULL)
            goto oom;
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, req->sigv4);
        curl_easy_setopt(c, CURLOPT_USERNAME, req->creds->akid);
        curl_easy_setopt(c, CURLOPT_PASSWORD,
                         (const char *)req->creds->secret.data);
    }

    rc = perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        ok = 1;
    } else {
        int oom = resp->out_of_memory;

        resp->transport_error = 1;
        resp->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        resp->tls_cert_error = rc == CURLE_PEER_FAILED_VERIFICATION ||
                               rc == CURLE_SSL_CACERT_BADFILE ||
                               rc == CURLE_SSL_ISSUER_ERROR ||
                               rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
                               rc == CURLE_SSL_INVALIDCERTSTATUS;
        resp->out_of_memory = oom && rc == CURLE_WRITE_ERROR;
        snprintf(resp->error, sizeof(resp->error), "%.300s (curl %d: %.120s)",
                 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc), (int)rc,
                 curl_easy_strerror(rc));
        resp->status = 0;
        kmsenv_buf_free(&resp->body);
        resp->body.secure = req->secure_response;
    }
    kmsenv_log(2, "http %s %s -> %ld%s%s", req->method, req->url, resp->status,
               ok ? "" : " ", ok ? "" : resp->error);
    goto done;
oom:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "building an HTTP request");
done:
    if (req->sigv4 != NULL) {
        /* drop curl's copies of the secret as early as we can */
        curl_easy_setopt(c, CURLOPT_PASSWORD, "");
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    kmsenv_buf_free(&tokhdr);
    return ok;
}
