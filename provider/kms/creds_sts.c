/* SPDX-License-Identifier: Apache-2.0 */
/* AWS credentials through STS AssumeRoleWithWebIdentity
 * (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, or a profile naming them). */
#include "kms/creds.h"
#include "kms/xml.h"

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
int web_identity(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                 const char *label, const char *source, const char *token_file,
                 const char *role_arn, const char *session,
                 KMSENV_AWS_CREDS *out)
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

int src_web_identity(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
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
