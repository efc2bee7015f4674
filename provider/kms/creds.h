/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to the AWS credential sources (credentials.c, creds_*.c): the
 * environment they read, the summary of what each source did, and the
 * helpers they share. Not an interface for the rest of kms/ (kms/aws.h). */
#ifndef KMSENV_KMS_CREDS_H
#define KMSENV_KMS_CREDS_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include "kms/aws.h"
#include "kms/json.h"
#include "kms/retry.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/log.h"

/* Every credential failure is raised with this reason. */
#define CRED_R KMSENV_R_NO_CREDENTIALS

/* What each source did, for the final "no AWS credentials" message. */
typedef struct {
    char text[1536];
    size_t len;
} SUMMARY;

/* Environment, read once per resolution. */
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

/* An HTTP exchange with retries (kms/retry.h). */
typedef struct {
    int attempts;
    long connect_ms, timeout_ms;
    long long deadline; /* kmsenv_now_ms() */
    int sts;            /* also retry STS throttling / IdP errors */
} RETRY;

/* Source results: 1 found, 0 not configured (summary noted), -1 raised. */

/* credentials.c */
void sum_add(SUMMARY *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void env_load(AWS_ENV *e);

/* creds_util.c */
int is_ws(int c);
void trim(const char **s, size_t *n);
void printable(char *dst, size_t cap, const char *src, size_t n);
int bapp(KMSENV_BUF *b, const void *p, size_t n);
int bapps(KMSENV_BUF *b, const char *s);
int sec_set(KMSENV_SECRET *s, const char *p, size_t n);
char *dupn(const char *p, size_t n);
int region_ok(const char *r, size_t n);
int secret_ok(const char *s, size_t n);
int creds_fill(KMSENV_AWS_CREDS *out, const char *what, const char *akid,
               size_t akidlen, const char *secret, size_t secretlen,
               const char *tok, size_t toklen, long long expiration,
               const char *source);
int not_expired(const char *label, const char *akid, size_t akidlen,
                const char *exp, size_t explen, long long expiration);
int parse_iso8601(const char *s, size_t n, long long *out);
int http_retry(KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp, const RETRY *rt);
int read_secret_file(const char *path, KMSENV_SECRET *out, char *why,
                     size_t whylen);
int creds_from_json(const KMSENV_BUF *body, const char *label,
                    const char *source, int imds, KMSENV_AWS_CREDS *out,
                    char *why, size_t whylen);
void json_error(const KMSENV_BUF *body, char *out, size_t outlen);

/* sources: creds_env.c, creds_sts.c, creds_profile.c, creds_ecs.c,
 * creds_imds.c */
int src_env(const AWS_ENV *env, SUMMARY *sum, KMSENV_AWS_CREDS *out);
int web_identity(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                 const char *label, const char *source, const char *token_file,
                 const char *role_arn, const char *session,
                 KMSENV_AWS_CREDS *out);
int src_web_identity(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env,
                     SUMMARY *sum, KMSENV_AWS_CREDS *out);
char *profile_region_env(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env);
int src_profile(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
                KMSENV_AWS_CREDS *out);
int url_chars_ok(const char *s);
int src_ecs(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
            KMSENV_AWS_CREDS *out);
int src_imds(const KMSENV_AWS_CFG *cfg, const AWS_ENV *env, SUMMARY *sum,
             KMSENV_AWS_CREDS *out);

#endif
