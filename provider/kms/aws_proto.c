/* SPDX-License-Identifier: Apache-2.0 */
/* The AWS KMS JSON protocol (kms/aws_proto.h). */
#include "kms/aws_proto.h"
#include "util/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

static int env_true(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Endpoint for region: the configured URL or REGION=URL map, then
 * AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, then the public one. */
char *aws_endpoint_for(const KMSENV_AWS_CFG *cfg, const char *region)
{
    const char *e = cfg->endpoint;
    char buf[256];

    if (e != NULL && *e != '\0') {
        if (strchr(e, '=') == NULL)
            return OPENSSL_strdup(e);
        {
            char *copy = OPENSSL_strdup(e), *tok, *save = NULL, *res = NULL,
                 *star = NULL;
            if (copy == NULL)
                return NULL;
            for (tok = strtok_r(copy, ";, ", &save); tok != NULL;
                 tok = strtok_r(NULL, ";, ", &save)) {
                char *eq = strchr(tok, '=');
                if (eq == NULL)
                    continue;
                *eq = '\0';
                if (strcmp(tok, region) == 0 && res == NULL)
                    res = eq + 1;
                else if (strcmp(tok, "*") == 0 && star == NULL)
                    star = eq + 1;
            }
            res = res != NULL ? res : star;
            res = res != NULL ? OPENSSL_strdup(res) : NULL;
            OPENSSL_free(copy);
            if (res != NULL)
                return res;
        }
    }
    if ((e = getenv("AWS_ENDPOINT_URL_KMS")) != NULL && *e != '\0')
        return OPENSSL_strdup(e);
    if ((e = getenv("AWS_ENDPOINT_URL")) != NULL && *e != '\0')
        return OPENSSL_strdup(e);
    snprintf(buf, sizeof(buf), "https://kms%s.%s.%s",
             cfg->use_fips || env_true("AWS_USE_FIPS_ENDPOINT") ? "-fips" : "",
             region,
             strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn"
                                            : "amazonaws.com");
    return OPENSSL_strdup(buf);
}

/* ---- JSON request building (secure buffer) ---- */

int aws_json_str(KMSENV_BUF *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int ok = kmsenv_buf_append(b, "\"", 1);

    for (; ok && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            ok = kmsenv_buf_appendf(b, "\\%c", *p);
        else if (*p < 0x20)
            ok = kmsenv_buf_appendf(b, "\\u%04x", *p);
        else
            ok = kmsenv_buf_append(b, p, 1);
    }
    return ok && kmsenv_buf_append(b, "\"", 1);
}

int aws_json_key(KMSENV_BUF *b, const char *name)
{
    return (b->len <= 1 || kmsenv_buf_append(b, ",", 1)) &&
           aws_json_str(b, name) && kmsenv_buf_append(b, ":", 1);
}

int aws_json_b64(KMSENV_BUF *b, const char *name, const unsigned char *p,
                 size_t n)
{
    size_t enc = 4 * ((n + 2) / 3);
    char *tmp;
    int ok;

    if (enc + 1 > ((size_t)1 << 20) || !aws_json_key(b, name) ||
        !kmsenv_buf_append(b, "\"", 1))
        return 0;
    /* the base64 of a data key is as secret as the key: same memory kind */
    tmp = b->secure ? OPENSSL_secure_zalloc(enc + 1) : OPENSSL_zalloc(enc + 1);
    if (tmp == NULL)
        return 0;
    EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
    ok = kmsenv_buf_append(b, tmp, enc) && kmsenv_buf_append(b, "\"", 1);
    if (b->secure)
        OPENSSL_secure_clear_free(tmp, enc + 1);
    else
        OPENSSL_clear_free(tmp, enc + 1);
    return ok;
}

int aws_json_context(KMSENV_BUF *b, const char *name,
                     const KMSENV_CONTEXT *ectx)
{
    size_t i;

    if (!aws_json_key(b, name) || !kmsenv_buf_append(b, "{", 1))
        return 0;
    for (i = 0; i < ectx->n; i++)
        if ((i > 0 && !kmsenv_buf_append(b, ",", 1)) ||
            !aws_json_str(b, ectx->pairs[i].key) ||
            !kmsenv_buf_append(b, ":", 1) ||
            !aws_json_str(b, ectx->pairs[i].value))
            return 0;
    return kmsenv_buf_append(b, "}", 1);
}

int aws_json_grants(KMSENV_BUF *b, const KMSENV_AWS_CFG *cfg)
{
    char *copy, *tok, *save = NULL;
    int ok = 1, n = 0;

    if (cfg->grant_tokens == NULL || *cfg->grant_tokens == '\0')
        return 1;
    if ((copy = OPENSSL_strdup(cfg->grant_tokens)) == NULL)
        return 0;
    ok = aws_json_key(b, "GrantTokens") && kmsenv_buf_append(b, "[", 1);
    for (tok = strtok_r(copy, ", ", &save); ok && tok != NULL;
         tok = strtok_r(NULL, ", ", &save))
        ok = (n++ == 0 || kmsenv_buf_append(b, ",", 1)) && aws_json_str(b, tok);
    OPENSSL_free(copy);
    return ok && kmsenv_buf_append(b, "]", 1);
}

/* ---- responses ---- */

/* Decodes standard base64 (with padding) into out (cap bytes). */
int aws_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap,
                   size_t *outlen)
{
    int n;
    size_t pad = 0;

    if (inlen == 0 || inlen % 4 != 0 || inlen / 4 * 3 > cap ||
        inlen > (size_t)1 << 20)
        return 0;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
    if (n < 0)
        return 0;
    if (in[inlen - 1] == '=')
        pad++;
    if (in[inlen - 2] == '=')
        pad++;
    *outlen = (size_t)n - pad;
    return 1;
}

/* Decodes the base64 of a string member into a fresh buffer of at most
 * max bytes, in secure memory when secure. NULL if absent or invalid. */
unsigned char *aws_field_b64(const KMSENV_JFIELD *f, size_t max, int secure,
                             size_t *outlen)
{
    size_t n = f->val.len, cap = n / 4 * 3 + 3;
    unsigned char *out;

    if (!f->present || n == 0 || n > 4 * ((max + 2) / 3))
        return NULL;
    out = secure ? OPENSSL_secure_malloc(cap) : OPENSSL_malloc(cap);
    if (out == NULL)
        return NULL;
    if (!aws_b64_decode((const char *)f->val.data, n, out, cap, outlen) ||
        *outlen == 0 || *outlen > max) {
        if (secure)
            OPENSSL_secure_clear_free(out, cap);
        else
            OPENSSL_free(out);
        return NULL;
    }
    return out;
}

/* Server-supplied text (len bytes, NULs included) for errors and the log:
 * printable ASCII as is, every other byte and '\\' as \xNN, so terminal
 * escapes, NULs and line breaks show instead of acting. Cut at a whole
 * character or escape when out is full. */
void aws_escape(char *out, size_t outlen, const char *in, size_t len)
{
    size_t i, o = 0;

    if (outlen == 0)
        return;
    for (i = 0; in != NULL && i < len; i++) {
        unsigned char ch = (unsigned char)in[i];

        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            if (o + 1 >= outlen)
                break;
            out[o++] = (char)ch;
        } else {
            if (o + 4 >= outlen)
                break;
            snprintf(out + o, 5, "\\x%02x", ch);
            o += 4;
        }
    }
    out[o] = '\0';
}

/* botocore's cleanup of __type: cut at the first ':' (a URI may follow,
 * itself holding '#'), then keep what follows the last '#'. */
void aws_clean_type(const char *t, size_t len, char *out, size_t outlen)
{
    const char *end = memchr(t, ':', len), *p;

    if (end != NULL)
        len = (size_t)(end - t);
    for (p = t + len; p > t; p--)
        if (p[-1] == '#')
            break;
    aws_escape(out, outlen, p, len - (size_t)(p - t));
}

int aws_type_retryable(const char *t)
{
    static const char *const retry[] = {
        "ThrottlingException",
        "KMSInternalException",
        "KeyUnavailableException",
        "DependencyTimeoutException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestThrottledException",
        "InternalError",
        "ServiceUnavailable"};
    size_t i;

    for (i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
        if (strcmp(t, retry[i]) == 0)
            return 1;
    return 0;
}

int aws_type_auth(const char *t)
{
    return strcmp(t, "UnrecognizedClientException") == 0 ||
           strcmp(t, "InvalidSignatureException") == 0 ||
           strcmp(t, "MissingAuthenticationTokenException") == 0 ||
           strcmp(t, "IncompleteSignature") == 0 ||
           strcmp(t, "InvalidClientTokenId") == 0 ||
           strcmp(t, "ExpiredTokenException") == 0 ||
           strcmp(t, "ExpiredToken") == 0 ||
           strcmp(t, "AccessDeniedException") == 0;
}

/* Splits "arn:PARTITION:kms:REGION:ACCOUNT:REST": 1 if s has that shape,
 * with region and the text after the account (rest) pointed at. */
int aws_arn_parts(const char *s, size_t len, const char **region, size_t *rlen,
                  const char **rest)
{
    const char *p = s, *e = s + len, *f[5];
    int i;

    if (len < 4 || memcmp(s, "arn:", 4) != 0)
        return 0;
    for (i = 0; i < 5; i++) {
        f[i] = p;
        if ((p = memchr(p, ':', (size_t)(e - p))) == NULL)
            return 0;
        p++;
    }
    if ((size_t)(f[3] - f[2]) != 4 || memcmp(f[2], "kms:", 4) != 0)
        return 0;
    *region = f[3];
    *rlen = (size_t)(f[4] - f[3]) - 1;
    *rest = p;
    return 1;
}

/* Does the KeyId a Decrypt answer names (id, idlen bytes) identify the key
 * the request named (want)? A key ARN must come back exactly; for a bare key
 * id, the answer is that key's ARN in our region; for an alias (the keyring
 * names one, nothing was recorded), any key ARN in our region and the
 * alias's account. As the AWS Encryption SDK, never trust an answer for
 * another key. */
int aws_key_matches(const char *region, const char *want, const char *id,
                    size_t idlen)
{
    const char *reg, *rest, *wreg, *wrest;
    size_t rlen, wrlen, wl = strlen(want), i;

    for (i = 0; i < idlen; i++)
        if (!isgraph((unsigned char)id[i]))
            return 0;
    if (!aws_arn_parts(id, idlen, &reg, &rlen, &rest) ||
        strncmp(rest, "key/", 4) != 0 || rlen != strlen(region) ||
        memcmp(reg, region, rlen) != 0)
        return 0;
    if (aws_arn_parts(want, wl, &wreg, &wrlen, &wrest)) {
        if (strncmp(wrest, "key/", 4) == 0)
            return idlen == wl && memcmp(id, want, wl) == 0;
        /* alias ARN: same partition, region and account */
        return strncmp(wrest, "alias/", 6) == 0 &&
               (size_t)(rest - id) == (size_t)(wrest - want) &&
               memcmp(id, want, (size_t)(rest - id)) == 0;
    }
    if (strncmp(want, "alias/", 6) == 0)
        return 1;
    return idlen - (size_t)(rest - id) == 4 + wl &&
           memcmp(rest + 4, want, wl) == 0;
}

/* The key ARN recorded with copy w (what KMS reported when it was made)
 * into buf, if it is a key ARN in region. */
int aws_recorded_arn(const char *region, const unsigned char *fp, size_t fplen,
                     char *buf, size_t buflen)
{
    const char *reg, *rest;
    size_t rlen, i;

    if (fplen == 0 || fplen >= buflen)
        return 0;
    for (i = 0; i < fplen; i++)
        if (!isgraph(fp[i]))
            return 0;
    memcpy(buf, fp, fplen);
    buf[fplen] = '\0';
    return aws_arn_parts(buf, fplen, &reg, &rlen, &rest) &&
           strncmp(rest, "key/", 4) == 0 && rest[4] != '\0' &&
           rlen == strlen(region) && memcmp(reg, region, rlen) == 0;
}

int kmsenv_aws_decrypt_key_id(const KMSENV_AWS_CFG *cfg, const char *spec,
                              const unsigned char *fp, size_t fplen, char *out,
                              size_t outlen)
{
    char region[64];
    int rec;

    if (strncmp(spec, "aws-kms:", 8) != 0 || outlen == 0)
        return 0;
    ERR_set_mark(); /* a region that cannot be resolved: the spec */
    rec = fp != NULL &&
          kmsenv_aws_spec_region(cfg, spec, region, sizeof(region)) &&
          aws_recorded_arn(region, fp, fplen, out, outlen);
    ERR_pop_to_mark();
    if (rec)
        return 1;
    if (strlen(spec + 8) >= outlen)
        return 0;
    strcpy(out, spec + 8);
    return 1;
}
