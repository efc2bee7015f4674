/* SPDX-License-Identifier: Apache-2.0 */
/* One HTTP exchange over libcurl: TLS always verified, plain http only where
 * the caller's policy allows it, timeouts per attempt, SigV4 through
 * CURLOPT_AWS_SIGV4. No curl handle outlives a call, so nothing crosses a
 * fork. Retries are the caller's business (it knows which errors retry). */
#ifndef KMSENV_KMS_HTTP_H
#define KMSENV_KMS_HTTP_H

#include <stddef.h>
#include "util/buf.h"
#include "util/secmem.h"

enum kmsenv_http_policy {
    KMSENV_HTTP_HTTPS_ONLY = 0, /* https:// only */
    KMSENV_HTTP_LOOPBACK_OK,    /* http:// too, if the host is loopback */
    KMSENV_HTTP_ANY             /* http:// anywhere (IMDS, ECS: caller
                                   has checked the host) */
};

/* AWS credentials. The secret key and the session token live in secure
 * memory, NUL-terminated (len excludes the NUL). token.len == 0: none. */
typedef struct {
    char akid[129];
    KMSENV_SECRET secret;
    KMSENV_SECRET token;
    long long expiration; /* unix seconds; 0 = does not expire */
    char source[96];      /* e.g. "environment", "profile default",
                             "web-identity", "ecs", "imds" (no secrets) */
} KMSENV_AWS_CREDS;

void kmsenv_aws_creds_clear(KMSENV_AWS_CREDS *c); /* frees + zeroes */
int kmsenv_aws_creds_copy(KMSENV_AWS_CREDS *dst, const KMSENV_AWS_CREDS *src);

typedef struct {
    const char *method; /* "GET", "PUT" or "POST" */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value", or NULL */
    const void *body;           /* request body (POST/PUT), may be NULL */
    size_t bodylen;
    const char *sigv4;             /* "aws:amz:REGION:SERVICE", or NULL */
    const KMSENV_AWS_CREDS *creds; /* with sigv4 */
    enum kmsenv_http_policy policy;
    const char *ca_file; /* NULL: AWS_CA_BUNDLE, else the system store */
    long connect_timeout_ms;
    long timeout_ms; /* whole attempt */
    int no_proxy;    /* 1 for link-local metadata endpoints */
    int secure_response;
} KMSENV_HTTP_REQ;

typedef struct {
    long status;          /* HTTP status; 0 when no response arrived */
    KMSENV_BUF body;      /* secure iff req->secure_response */
    char request_id[128]; /* x-amzn-RequestId / x-amz-request-id, or "";
                             escaped (\xNN) for errors and logs */
    int transport_error;  /* 1: no complete response (connect, TLS,
                             timeout, reset) */
    int timed_out;
    int tls_cert_error; /* the server's certificate was refused (unknown
                           CA, wrong host name, expired...) or the CA file
                           is unusable: retrying cannot help */
    int out_of_memory;  /* the answer did not fit in (secure) memory */
    char error[512];    /* curl's message for transport errors */
} KMSENV_HTTP_RESP;

/* Checks the URL against the policy. Returns 0 (with a raised error naming
 * what) if it is not allowed. */
int kmsenv_http_url_allowed(const char *url, enum kmsenv_http_policy policy,
                            const char *what);

/* One attempt. Returns 1 if an HTTP response (any status) arrived, 0 on a
 * transport failure (resp->transport_error set, resp->error says why) or a
 * refused URL. Does not raise errors for transport failures: the caller
 * decides (retry or report). */
int kmsenv_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp);
void kmsenv_http_resp_free(KMSENV_HTTP_RESP *resp);

/* Each provider instance holds a reference; the last unref frees the
 * private TLS library context and libcurl's global state. */
void kmsenv_http_global_ref(void);
void kmsenv_http_global_unref(void);

/* Monotonic milliseconds. */
long long kmsenv_now_ms(void);

#endif
