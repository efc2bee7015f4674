/* SPDX-License-Identifier: Apache-2.0 */
/* AWS credentials from EC2 instance metadata (IMDSv2). */
#include "kms/creds.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define IMDS_HOST "http://169.254.169.254"
#define IMDS_HOST6 "http://[fd00:ec2::254]"
#define IMDS_CREDS_PATH "/latest/meta-data/iam/security-credentials/"

/* ---- EC2 instance metadata (IMDSv2) ---- */

/* One IMDS request: 1 when an answer came (any status), 0 when none did
 * (noted in sum as "IMDS (WHAT: ERROR)"), -1 when the URL was refused
 * (raised). */
static int imds_get(KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp,
                    const char *url, const char *method,
                    const char *const *headers, SUMMARY *sum, const char *what)
{
    RETRY rt = {2, 1000, 2000, 0, 0};

    rt.deadline = kmsenv_now_ms() + 5000;
    req->method = method;
    req->url = url;
    req->headers = headers;
    if (http_retry(req, resp, &rt))
        return 1;
    if (!resp->transport_error)
        return -1;
    sum_add(sum, "IMDS (%s: %s)", what, resp->error);
    return 0;
}

/* A GET that must answer 200: 1, or as imds_get (a status other than 200
 * is noted in sum, with hint404 for a 404). */
static int imds_read(KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp,
                     const char *url, const char *const *headers, SUMMARY *sum,
                     const char *hint404)
{
    int r = imds_get(req, resp, url, "GET", headers, sum, url);

    if (r == 1 && resp->status != 200) {
        sum_add(sum, "IMDS (%s: HTTP %ld%s)", url, resp->status,
                resp->status == 404 ? hint404 : "");
        r = 0;
    }
    return r;
}

int src_imds(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
             KMSENV_AWS_CREDS *out)
{
    KMSENV_HTTP_REQ req;
    KMSENV_HTTP_RESP resp;
    KMSENV_BUF tokhdr = {.secure = 1}, url = {.secure = 0};
    const char *ttl[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    const char *hdrs[2] = {NULL, NULL};
    const char *base, *s;
    char role[129], why[200], shown[64], label[400], where[600];
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
    snprintf(where, sizeof(where), "unreachable at %.*s", (int)baselen, base);
    if ((r = imds_get(&req, &resp, url.data, "PUT", ttl, sum, where)) != 1) {
        ret = r;
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
    if ((r = imds_read(&req, &resp, url.data, hdrs, sum,
                       ": no IAM role attached to this instance")) != 1) {
        ret = r;
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
    if ((r = imds_read(&req, &resp, url.data, hdrs, sum, "")) != 1) {
        ret = r;
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
