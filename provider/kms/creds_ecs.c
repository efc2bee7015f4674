/* SPDX-License-Identifier: Apache-2.0 */
/* AWS credentials from the ECS / EKS Pod Identity container endpoint. */
#include "kms/creds.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define ECS_HOST "http://169.254.170.2"

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

int url_chars_ok(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int src_ecs(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
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
