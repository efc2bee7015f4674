/* SPDX-License-Identifier: Apache-2.0 */
/* The aws-kms: keyring: AWS KMS through its JSON 1.1 API, signed with
 * libcurl's SigV4. One KEK is one KMS key (key id, key ARN, alias/NAME or
 * alias ARN). Every call sends the encryption context; Decrypt always names
 * the key, so a blob made under another key is refused by KMS: the key ARN
 * KMS reported when the copy was made (so a keyset made under an alias
 * still loads after the alias moves to another key), and the answer must
 * name that same key. Text from the server (error types and messages,
 * request ids, key ids) reaches errors and the log only escaped (\xNN).
 *
 * Secrets: request bodies that carry a data key and responses that return
 * one are built and received in secure memory, and answers are read with
 * kms/json.c, which decodes members straight into secure memory: no
 * general-purpose parser ever holds a data key. */
#include "kms/aws.h"
#include "kms/http.h"
#include "kms/aws_proto.h"
#include "kms/json.h"
#include "kms/retry.h"
#include "util/err.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define AWS_SCHEME "aws-kms:"
#define AWS_MAX_KEY_ID 2048
#define AWS_MAX_BLOB 6144 /* KMS ciphertext blobs are at most 6144 bytes */

typedef struct {
    KMSENV_KEK base;
    const KMSENV_KMS_ENV *env;
    const char *key_id; /* into base.spec */
    char region[64];
    char *endpoint;
    enum kmsenv_http_policy policy;
} AWS_KEK;

static const KMSENV_AWS_CFG *cfg_of(const AWS_KEK *k)
{
    return kmsenv_aws_cfg_of(kmsenv_kms_conf(k->env, &kmsenv_aws_kek_method));
}

static KMSENV_AWS_STATE *state_of(const AWS_KEK *k)
{
    const KMSENV_AWS_CONF *c = kmsenv_kms_conf(k->env, &kmsenv_aws_kek_method);

    return c != NULL ? c->state : NULL;
}

static long cfg_long(long v, const char *env, long def)
{
    const char *e;
    char *end;
    long n;

    if (v > 0)
        return v;
    if (env != NULL && (e = getenv(env)) != NULL && *e != '\0') {
        errno = 0;
        n = strtol(e, &end, 10);
        if (errno == 0 && *end == '\0' && n > 0)
            return n;
    }
    return def;
}

/* ---- spec, region, endpoint ---- */

static int key_id_valid(const char *id)
{
    size_t i, n = strlen(id);

    if (n == 0 || n > AWS_MAX_KEY_ID)
        return 0;
    for (i = 0; i < n; i++)
        if (!isgraph((unsigned char)id[i]))
            return 0;
    return 1;
}

static void aws_free(KMSENV_KEK *kk)
{
    AWS_KEK *k = (AWS_KEK *)kk;

    if (k == NULL)
        return;
    OPENSSL_free(k->endpoint);
    OPENSSL_free(k->base.spec);
    OPENSSL_free(k);
}

static KMSENV_KEK *aws_open(const KMSENV_KMS_ENV *env, const char *spec)
{
    AWS_KEK *k = OPENSSL_zalloc(sizeof(*k));
    const KMSENV_AWS_CFG *cfg;
    size_t i;

    if (k == NULL)
        return NULL;
    k->base.meth = &kmsenv_aws_kek_method;
    k->env = env;
    cfg = cfg_of(k);
    if ((k->base.spec = OPENSSL_strdup(spec)) == NULL)
        goto err;
    k->key_id = k->base.spec + strlen(AWS_SCHEME);
    if (!key_id_valid(k->key_id)) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC,
                     "keyring '%s': expected aws-kms:KEY-ID, KEY-ARN, "
                     "alias/NAME or ALIAS-ARN",
                     spec);
        goto err;
    }
    if (!kmsenv_aws_spec_region(cfg, spec, k->region, sizeof(k->region))) {
        KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC,
                     "keyring '%s': no AWS region (use a key ARN, or set "
                     "aws_region in the provider config, AWS_REGION or "
                     "AWS_DEFAULT_REGION)",
                     spec);
        goto err;
    }
    for (i = 0; k->region[i] != '\0'; i++)
        if (!isalnum((unsigned char)k->region[i]) && k->region[i] != '-') {
            KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC,
                         "keyring '%s': invalid AWS region '%s'", spec,
                         k->region);
            goto err;
        }
    k->policy =
        cfg->allow_http ? KMSENV_HTTP_LOOPBACK_OK : KMSENV_HTTP_HTTPS_ONLY;
    if ((k->endpoint = aws_endpoint_for(cfg, k->region)) == NULL ||
        !kmsenv_http_url_allowed(k->endpoint, k->policy, spec))
        goto err;
    /* No fingerprint check before calling KMS: KMS itself refuses a blob
     * of another key (Decrypt names the key). Wraps record the key ARN. */
    k->base.fplen = 0;
    return &k->base;
err:
    aws_free(&k->base);
    return NULL;
}

/* ---- the call loop: AWS standard retry mode ---- */

enum { F_PLAINTEXT, F_BLOB, F_KEYID, F_N };

typedef struct {
    const char *op;         /* "Decrypt" */
    const char *what;       /* for errors: "unwrap" */
    KMSENV_SECRET *pt;      /* Plaintext goes here (exact length), or NULL */
    const char *want_key;   /* the answer's KeyId must name this key, or NULL */
    KMSENV_JFIELD out[F_N]; /* the answer's members, on success */
} AWS_CALL;

#define AWS_CALL_INIT(op, what, pt, want)                                      \
    {                                                                          \
        (op), (what), (pt), (want),                                            \
        {                                                                      \
            {"Plaintext", {NULL, 0}, 0}, {"CiphertextBlob", {NULL, 0}, 0},     \
                {"KeyId", {NULL, 0}, 0},                                       \
        }                                                                      \
    }

/* What a 200 answer turned out to be. */
enum {
    ANS_OK = 1,
    ANS_MALFORMED = 0,   /* cut or garbled: retried */
    ANS_KEY_LENGTH = -1, /* a Plaintext of another length */
    ANS_NO_MEMORY = -2,  /* out of (secure) memory reading it */
    ANS_KEY_ID = -3      /* names another key than the one asked for */
};

/* Decodes the Plaintext member into call->pt. */
static int take_plaintext(AWS_CALL *call)
{
    const KMSENV_JFIELD *f = &call->out[F_PLAINTEXT];
    size_t got = 0, n = f->val.len, cap = n / 4 * 3 + 3;
    unsigned char *k;

    if (call->pt == NULL)
        return ANS_OK;
    if (!f->present || n == 0 || n % 4 != 0 || n > 4 * ((4096 + 2) / 3))
        return ANS_MALFORMED;
    if ((k = OPENSSL_secure_malloc(cap)) == NULL)
        return ANS_NO_MEMORY;
    if (!aws_b64_decode((const char *)f->val.data, n, k, cap, &got) ||
        got == 0) {
        OPENSSL_secure_clear_free(k, cap);
        return ANS_MALFORMED;
    }
    if (got == call->pt->len)
        memcpy(call->pt->data, k, got);
    OPENSSL_secure_clear_free(k, cap);
    return got == call->pt->len ? ANS_OK : ANS_KEY_LENGTH;
}

long kmsenv_aws_deadline_ms(const KMSENV_AWS_CFG *cfg)
{
    return cfg != NULL && cfg->deadline_ms > 0 ? cfg->deadline_ms : 30000;
}

/* One KMS operation with its retries. It ends by deadline_ms from now, or
 * earlier by k->base.deadline: the share of a load's deadline_ms the
 * keyring gave this KEK (see kmsenv_keyring_unwrap). */
static int aws_call(AWS_KEK *k, AWS_CALL *call, const KMSENV_BUF *body)
{
    const KMSENV_AWS_CFG *cfg = cfg_of(k);
    long max_l = cfg_long(cfg->max_attempts, "AWS_MAX_ATTEMPTS", 3);
    int max_attempts = max_l > 10 ? 10 : (int)max_l;
    long connect_ms = cfg_long(cfg->connect_timeout_ms, NULL, 3000);
    long request_ms = cfg_long(cfg->request_timeout_ms, NULL, 10000);
    long long start = kmsenv_now_ms();
    long long deadline = start + kmsenv_aws_deadline_ms(cfg);
    KMSENV_RETRY rt;
    char target[80], sigv4[96], type[128] = "", msg[768] = "", rid[160] = "";
    char transport[768] = "";
    /* the last KMS error answer, kept when a later attempt gets none */
    char last_type[128] = "", last_msg[768] = "", last_rid[160] = "";
    long last_status = 0;
    const char *headers[3];
    long status = 0;
    int attempt, refreshed = 0, retryable = 0, fatal = 0;
    int reason = KMSENV_R_KMS_ERROR, oom = 0, tls = 0;
    KMSENV_AWS_CREDS creds, rejected;
    int have_rejected = 0;

    if (k->base.deadline > 0 && k->base.deadline < deadline)
        deadline = k->base.deadline;
    snprintf(target, sizeof(target), "X-Amz-Target: TrentService.%s", call->op);
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:kms", k->region);
    headers[0] = "Content-Type: application/x-amz-json-1.1";
    headers[1] = target;
    headers[2] = NULL;

    /* An attempt needs time for a round trip: starting one in the last few
     * milliseconds would only turn the last KMS error into a timeout. */
    kmsenv_retry_init(&rt, max_attempts, KMSENV_RETRY_BASE_MS, deadline);
    while (kmsenv_retry_start(&rt)) {
        KMSENV_HTTP_REQ req;
        KMSENV_HTTP_RESP resp;

        attempt = rt.attempts;
        memset(&creds, 0, sizeof(creds));
        if (!kmsenv_aws_get_creds(state_of(k), cfg,
                                  have_rejected ? &rejected : NULL, &creds)) {
            if (have_rejected)
                kmsenv_aws_creds_clear(&rejected);
            KMSENV_RAISE(KMSENV_R_NO_CREDENTIALS,
                         "aws-kms %s under %s: no AWS credentials", call->op,
                         k->base.spec);
            return 0;
        }
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.url = k->endpoint;
        req.headers = headers;
        req.body = body->data;
        req.bodylen = body->len;
        req.sigv4 = sigv4;
        req.creds = &creds;
        req.policy = k->policy;
        req.ca_file = cfg->ca_file;
        req.connect_timeout_ms = kmsenv_retry_clamp(&rt, connect_ms);
        req.timeout_ms = kmsenv_retry_clamp(&rt, request_ms);
        req.secure_response = call->pt != NULL;
        kmsenv_log(2, "aws-kms %s key=%s region=%s attempt %d/%d creds=%s",
                   call->op, k->key_id, k->region, attempt, max_attempts,
                   creds.source);
        kmsenv_http_do(&req, &resp);
        if (have_rejected)
            kmsenv_aws_creds_clear(&rejected);
        have_rejected = 0;

        if (type[0] != '\0') {
            memcpy(last_type, type, sizeof(last_type));
            memcpy(last_msg, msg, sizeof(last_msg));
            memcpy(last_rid, rid, sizeof(last_rid));
            last_status = status;
        }
        type[0] = msg[0] = '\0';
        status = resp.status;
        snprintf(rid, sizeof(rid), "%s", resp.request_id); /* escaped */
        if (resp.transport_error) {
            aws_escape(transport, sizeof(transport), resp.error,
                       strlen(resp.error));
            /* a refused certificate stays refused: no retry */
            tls = resp.tls_cert_error;
            oom = resp.out_of_memory;
            retryable = !tls && !oom;
            fatal = !retryable;
        } else if (status == 200) {
            const KMSENV_JFIELD *id = &call->out[F_KEYID];
            int got = kmsenv_json_fields(resp.body.data, resp.body.len,
                                         call->out, F_N);

            if (got == -1)
                got = ANS_NO_MEMORY;
            else if (got == 1)
                got = take_plaintext(call);
            if (got == ANS_OK && call->want_key != NULL &&
                (!id->present ||
                 !aws_key_matches(k->region, call->want_key,
                                  (const char *)id->val.data, id->val.len)))
                got = ANS_KEY_ID;
            kmsenv_http_resp_free(&resp);
            if (got == ANS_OK) {
                kmsenv_aws_creds_clear(&creds);
                return 1;
            }
            if (got == ANS_KEY_ID) {
                char named[300] = "(none)";
                if (id->present)
                    aws_escape(named, sizeof(named), (const char *)id->val.data,
                               id->val.len);
                snprintf(type, sizeof(type), "%s", "UnexpectedKeyId");
                snprintf(msg, sizeof(msg),
                         "the answer is for key %s, not the requested %s: "
                         "refused",
                         named, call->want_key);
            }
            kmsenv_jfields_free(call->out, F_N);
            if (call->pt != NULL)
                OPENSSL_cleanse(call->pt->data, call->pt->len);
            transport[0] = '\0';
            retryable = 0;
            fatal = 1;
            if (got == ANS_KEY_LENGTH) {
                /* well-formed, but a key of the wrong size: deterministic */
                snprintf(type, sizeof(type), "%s", "UnexpectedKeyLength");
                snprintf(msg, sizeof(msg), "Plaintext is not a %zu-byte key",
                         call->pt != NULL ? call->pt->len : (size_t)0);
            } else if (got == ANS_NO_MEMORY) {
                oom = 1;
            } else if (got == ANS_MALFORMED) {
                /* a cut or garbled 200: retry as a transient fault */
                snprintf(type, sizeof(type), "%s", "MalformedResponse");
                snprintf(msg, sizeof(msg), "%s",
                         "response is not the expected JSON (truncated or "
                         "garbled)");
                retryable = 1;
                fatal = 0;
            }
            kmsenv_aws_creds_clear(&creds);
            goto next;
        } else {
            KMSENV_JFIELD e[3] = {{"__type", {NULL, 0}, 0},
                                  {"message", {NULL, 0}, 0},
                                  {"Message", {NULL, 0}, 0}};
            /* NULs kept: shown escaped, like every other byte */
            if (resp.body.data != NULL &&
                kmsenv_json_fields_ex(resp.body.data, resp.body.len, e, 3, 1) ==
                    1) {
                const KMSENV_JFIELD *m = e[1].present ? &e[1] : &e[2];
                if (e[0].present)
                    aws_clean_type((const char *)e[0].val.data, e[0].val.len,
                                   type, sizeof(type));
                if (m->present)
                    aws_escape(msg, sizeof(msg), (const char *)m->val.data,
                               m->val.len);
            }
            kmsenv_jfields_free(e, 3);
            transport[0] = '\0';
            fatal = 0;
            retryable = status == 429 || status == 500 || status == 502 ||
                        status == 503 || status == 504 ||
                        aws_type_retryable(type);
            if ((strcmp(type, "ExpiredTokenException") == 0 ||
                 strcmp(type, "ExpiredToken") == 0) &&
                !refreshed) {
                /* refresh temporary credentials once */
                refreshed = 1;
                retryable = 1;
                rejected = creds;
                memset(&creds, 0, sizeof(creds));
                have_rejected = 1;
            }
        }
        kmsenv_aws_creds_clear(&creds);
        kmsenv_http_resp_free(&resp);
    next:
        if (!retryable)
            break;
        if (attempt < max_attempts) {
            kmsenv_log(1,
                       "aws-kms %s key=%s region=%s attempt %d failed (%s); "
                       "retrying",
                       call->op, k->key_id, k->region, attempt,
                       transport[0] != '\0' ? transport
                       : type[0] != '\0'    ? type
                                            : "HTTP error");
        }
        if (!kmsenv_retry_backoff(&rt))
            break;
    }
    if (have_rejected)
        kmsenv_aws_creds_clear(&rejected);
    attempt = rt.attempts;
    if (oom) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY,
                     "aws-kms %s (%s) with key %s in %s: out of secure memory "
                     "for KMS's answer (the OpenSSL secure heap, "
                     "CRYPTO_secure_malloc_init, is too small or full); not "
                     "retried (request id %s; %d attempt%s in %lld ms)",
                     call->op, call->what, k->key_id, k->region,
                     rid[0] != '\0' ? rid : "none", attempt,
                     attempt == 1 ? "" : "s", kmsenv_now_ms() - start);
        return 0;
    }
    if (tls) {
        KMSENV_RAISE(KMSENV_R_KMS_ERROR,
                     "aws-kms %s (%s) with key %s in %s: TLS certificate "
                     "verification of endpoint %s failed: %s; not retried "
                     "(check ca_file / AWS_CA_BUNDLE and the endpoint's host "
                     "name; %d attempt%s in %lld ms)",
                     call->op, call->what, k->key_id, k->region, k->endpoint,
                     transport, attempt, attempt == 1 ? "" : "s",
                     kmsenv_now_ms() - start);
        return 0;
    }
    if (rt.attempts == 0) {
        KMSENV_RAISE(KMSENV_R_KMS_UNREACHABLE,
                     "aws-kms %s (%s) with key %s in %s: no time left to ask "
                     "KMS (deadline_ms spent on other copies of the key; 0 "
                     "attempts)",
                     call->op, call->what, k->key_id, k->region);
        return 0;
    }
    if (transport[0] != '\0') {
        char earlier[1200] = "";

        if (last_type[0] != '\0')
            snprintf(earlier, sizeof(earlier),
                     "; an earlier attempt was answered %s: %s (HTTP %ld, "
                     "request id %s)",
                     last_type, last_msg[0] != '\0' ? last_msg : "(no message)",
                     last_status, last_rid[0] != '\0' ? last_rid : "none");
        reason = KMSENV_R_KMS_UNREACHABLE;
        KMSENV_RAISE(reason,
                     "aws-kms %s (%s) with key %s in %s: endpoint %s "
                     "unreachable: %s; %d attempt%s in %lld ms%s%s",
                     call->op, call->what, k->key_id, k->region, k->endpoint,
                     transport, attempt, attempt == 1 ? "" : "s",
                     kmsenv_now_ms() - start,
                     rt.deadline_hit ? " (deadline_ms reached)" : "", earlier);
        return 0;
    }
    if (aws_type_auth(type))
        reason = KMSENV_R_KMS_AUTH_FAILED;
    else if (retryable && !fatal)
        reason = KMSENV_R_KMS_UNREACHABLE;
    KMSENV_RAISE(reason,
                 "aws-kms %s (%s) with key %s in %s: %s: %s (HTTP %ld, "
                 "request id %s; %d attempt%s in %lld ms%s)",
                 call->op, call->what, k->key_id, k->region,
                 type[0] != '\0' ? type : "error",
                 msg[0] != '\0' ? msg : "(no message)", status,
                 rid[0] != '\0' ? rid : "none", attempt,
                 attempt == 1 ? "" : "s", kmsenv_now_ms() - start,
                 rt.deadline_hit ? "; deadline_ms reached" : "");
    return 0;
}

/* ---- operations ---- */

static int fill_wrap(AWS_KEK *k, AWS_CALL *call, KMSENV_WRAP *w)
{
    const KMSENV_JFIELD *id = &call->out[F_KEYID];

    memset(w, 0, sizeof(*w));
    if ((w->blob = aws_field_b64(&call->out[F_BLOB], AWS_MAX_BLOB, 0,
                                 &w->bloblen)) == NULL) {
        KMSENV_RAISE(KMSENV_R_KMS_ERROR,
                     "aws-kms %s with key %s: response has no valid "
                     "CiphertextBlob",
                     call->op, k->key_id);
        return 0;
    }
    if ((w->spec = OPENSSL_strdup(k->base.spec)) == NULL) {
        kmsenv_wrap_free(w);
        return 0;
    }
    /* the key ARN KMS used (checked by aws_call): shown by inspect, named
     * by Decrypt; never secret */
    if (id->present && id->val.len <= sizeof(w->fp)) {
        w->fplen = id->val.len;
        memcpy(w->fp, id->val.data, w->fplen);
    }
    return 1;
}

static int recorded_arn(const char *region, const KMSENV_WRAP *w, char *buf,
                        size_t buflen)
{
    return aws_recorded_arn(region, w->fp, w->fplen, buf, buflen);
}

static int body_start(KMSENV_BUF *b, AWS_KEK *k, const char *keyfield,
                      const char *key_id)
{
    return kmsenv_buf_append(b, "{", 1) &&
           (keyfield == NULL ||
            (aws_json_key(b, keyfield) && aws_json_str(b, key_id))) &&
           aws_json_grants(b, cfg_of(k));
}

/* Ends the body (built: its members were appended), sends it, fills w
 * from the answer (when w is not NULL) and frees the body and the answer. */
static int send_op(AWS_KEK *k, AWS_CALL *call, KMSENV_BUF *b, int built,
                   KMSENV_WRAP *w)
{
    int ok = built && kmsenv_buf_append(b, "}", 1);

    if (!ok)
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY,
                     "aws-kms %s with key %s: out of %smemory building the "
                     "request",
                     call->op, k->key_id, b->secure ? "secure " : "");
    ok = ok && aws_call(k, call, b) && (w == NULL || fill_wrap(k, call, w));
    kmsenv_jfields_free(call->out, F_N);
    kmsenv_buf_free(b);
    return ok;
}

static int aws_generate(KMSENV_KEK *kk, const KMSENV_CONTEXT *ectx,
                        KMSENV_SECRET *out, KMSENV_WRAP *w)
{
    AWS_KEK *k = (AWS_KEK *)kk;
    KMSENV_BUF b = {.secure = 0};
    AWS_CALL call =
        AWS_CALL_INIT("GenerateDataKey", "generate", out, k->key_id);
    int ok;

    ok = body_start(&b, k, "KeyId", k->key_id) &&
         (out->len == 32
              ? aws_json_key(&b, "KeySpec") && aws_json_str(&b, "AES_256")
              : aws_json_key(&b, "NumberOfBytes") &&
                    kmsenv_buf_appendf(&b, "%zu", out->len)) &&
         aws_json_context(&b, "EncryptionContext", ectx);
    ok = send_op(k, &call, &b, ok, w);
    if (!ok)
        OPENSSL_cleanse(out->data, out->len);
    return ok;
}

static int aws_wrap(KMSENV_KEK *kk, const KMSENV_CONTEXT *ectx,
                    const KMSENV_SECRET *pt, KMSENV_WRAP *w)
{
    AWS_KEK *k = (AWS_KEK *)kk;
    KMSENV_BUF b = {.secure = 1}; /* carries the key: secure */
    AWS_CALL call = AWS_CALL_INIT("Encrypt", "wrap", NULL, k->key_id);
    int ok;

    if (pt->len == 0 || pt->len > 4096) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "aws-kms Encrypt with key %s: %zu bytes (KMS takes "
                     "1..4096)",
                     k->key_id, pt->len);
        return 0;
    }
    ok = body_start(&b, k, "KeyId", k->key_id) &&
         aws_json_b64(&b, "Plaintext", pt->data, pt->len) &&
         aws_json_context(&b, "EncryptionContext", ectx);
    return send_op(k, &call, &b, ok, w);
}

/* Decrypt names the key ARN recorded with the copy when the copy is this
 * KEK's own (not redirected) and the ARN is in its region: an alias the
 * keyset was made under may point at another key by now (AWS's manual
 * rotation, UpdateAlias), and the copy is the old key's. Otherwise the
 * keyring's own key id (a redirect names the key to use). The answer must
 * be for that key. */
static int aws_unwrap(KMSENV_KEK *kk, const KMSENV_CONTEXT *ectx,
                      const KMSENV_WRAP *w, KMSENV_SECRET *out)
{
    AWS_KEK *k = (AWS_KEK *)kk;
    KMSENV_BUF b = {.secure = 0};
    char rec[sizeof(w->fp) + 1];
    const char *kid = k->key_id;
    int ok;

    if (w->bloblen == 0 || w->bloblen > AWS_MAX_BLOB) {
        KMSENV_RAISE(KMSENV_R_UNWRAP_FAILED,
                     "wrapped key for %s is malformed (%zu bytes)",
                     k->base.spec, w->bloblen);
        return 0;
    }
    if (w->spec != NULL && strcmp(w->spec, k->base.spec) == 0 &&
        recorded_arn(k->region, w, rec, sizeof(rec))) {
        kid = rec;
        if (strcmp(kid, k->key_id) != 0)
            kmsenv_log(2, "aws-kms Decrypt for %s names the recorded key %s",
                       k->base.spec, kid);
    }
    {
        AWS_CALL call = AWS_CALL_INIT("Decrypt", "unwrap", out, kid);

        ok = body_start(&b, k, "KeyId", kid) &&
             aws_json_b64(&b, "CiphertextBlob", w->blob, w->bloblen) &&
             aws_json_context(&b, "EncryptionContext", ectx);
        return send_op(k, &call, &b, ok, NULL);
    }
}

/* ReEncrypt: the data key moves from a copy under another aws-kms key in
 * the same region to this key without leaving KMS. The source is named by
 * the key ARN recorded with the copy where there is one (its spec may be
 * an alias that has moved since). Other sources return -1 without a call
 * (and without an error), and the keyring wraps locally instead. */
static int aws_rewrap(KMSENV_KEK *kk, const KMSENV_CONTEXT *ectx,
                      const KMSENV_WRAP *from, KMSENV_WRAP *to)
{
    AWS_KEK *k = (AWS_KEK *)kk;
    KMSENV_BUF b = {.secure = 0};
    AWS_CALL call = AWS_CALL_INIT("ReEncrypt", "rewrap", NULL, k->key_id);
    char region[64], rec[sizeof(from->fp) + 1];
    const char *src;
    int ok;

    ERR_set_mark(); /* no region for the source: not ours to move */
    if (from->spec == NULL || strncmp(from->spec, AWS_SCHEME, 8) != 0 ||
        !kmsenv_aws_spec_region(cfg_of(k), from->spec, region,
                                sizeof(region)) ||
        strcmp(region, k->region) != 0 || from->bloblen == 0 ||
        from->bloblen > AWS_MAX_BLOB) {
        ERR_pop_to_mark();
        return -1;
    }
    ERR_pop_to_mark();
    src =
        recorded_arn(k->region, from, rec, sizeof(rec)) ? rec : from->spec + 8;
    ok = body_start(&b, k, NULL, NULL) &&
         aws_json_b64(&b, "CiphertextBlob", from->blob, from->bloblen) &&
         aws_json_key(&b, "SourceKeyId") && aws_json_str(&b, src) &&
         aws_json_context(&b, "SourceEncryptionContext", ectx) &&
         aws_json_key(&b, "DestinationKeyId") && aws_json_str(&b, k->key_id) &&
         aws_json_context(&b, "DestinationEncryptionContext", ectx);
    return send_op(k, &call, &b, ok, to);
}

const KMSENV_KEK_METHOD kmsenv_aws_kek_method = {
    .scheme = "aws-kms",
    .open = aws_open,
    .generate = aws_generate,
    .wrap = aws_wrap,
    .unwrap = aws_unwrap,
    .rewrap = aws_rewrap,
    .free = aws_free,
    .remote = 1,
    .settings = kmsenv_aws_settings,
    .conf_new = kmsenv_aws_conf_new,
    .conf_free = kmsenv_aws_conf_free,
    .preferred = kmsenv_aws_preferred,
    .load_deadline_ms = kmsenv_aws_load_deadline_ms,
    .policy_id = kmsenv_aws_policy_id,
};
