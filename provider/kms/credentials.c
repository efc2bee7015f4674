/* SPDX-License-Identifier: Apache-2.0 */
/* AWS credentials: the provider chain in AWS SDK order (environment, web
 * identity through STS, shared credentials/config files, ECS container
 * endpoint, EC2 IMDSv2) (the sources are
 * creds_env.c, creds_sts.c, creds_profile.c, creds_ecs.c, creds_imds.c;
 * the cache is creds_cache.c).
 *
 * Secrets (secret access keys, session tokens, web identity tokens, IMDS and
 * ECS authorization tokens) only ever live in OPENSSL_secure_* memory: files
 * are read through a secure chunk into a secure line buffer, HTTP responses
 * that carry credentials are secure buffers, and the small JSON and XML
 * scanners below decode string values straight into secure memory (no
 * general-purpose parser ever sees a secret). Messages and logs name access
 * key ids, files, URLs and profiles, never a secret. */
#include "kms/creds.h"

__attribute__((format(printf, 2, 3))) void sum_add(SUMMARY *s, const char *fmt,
                                                   ...)
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

static const char *env_get(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : NULL;
}

void env_load(AWS_ENV *e)
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
