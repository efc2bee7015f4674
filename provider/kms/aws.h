/* SPDX-License-Identifier: Apache-2.0 */
/* AWS KMS keyring (aws.c, aws_conf.c, aws_proto.c, credentials.c and
 * creds_*.c): configuration, per-provider state, credentials chain. The
 * keyring interface itself is kms/keyring.h. */
#ifndef KMSENV_KMS_AWS_H
#define KMSENV_KMS_AWS_H

#include <openssl/crypto.h>
#include "kms/http.h"
#include "kms/keyring.h"

/* Provider settings (openssl.cnf provider section; KMSENV_* env wins). All
 * strings may be NULL. Numbers <= 0 mean "default". */
typedef struct {
    char *region;            /* aws_region: else AWS_REGION, AWS_DEFAULT_REGION,
                                then the profile's region */
    char *endpoint;          /* aws_endpoint: URL, or "REGION=URL;..." (with
                                "*=URL"); else AWS_ENDPOINT_URL_KMS,
                                AWS_ENDPOINT_URL */
    char *ca_file;           /* ca_file: else AWS_CA_BUNDLE */
    char *profile;           /* aws_profile: else AWS_PROFILE, "default" */
    char *preferred_region;  /* preferred_region: unwrap tries it first */
    char *grant_tokens;      /* grant_tokens: comma-separated */
    int use_fips;            /* aws_use_fips: else AWS_USE_FIPS_ENDPOINT */
    int allow_http;          /* allow_http: plain http to loopback only */
    long connect_timeout_ms; /* default 3000 */
    long request_timeout_ms; /* per attempt, default 10000 */
    long deadline_ms;        /* default 30000: a keyset load (every wrapped
                                copy, every attempt), or one generate/wrap/
                                rewrap operation with its retries */
    int max_attempts; /* default 3 (AWS standard mode); AWS_MAX_ATTEMPTS */
} KMSENV_AWS_CFG;

/* Credentials cache shared by a provider instance. Its lock is never held
 * across a fetch (one thread fetches, others keep using still-valid
 * credentials or wait for that fetch). A child process after fork()
 * re-initialises the lock and starts from scratch. */
typedef struct kmsenv_aws_state_st KMSENV_AWS_STATE;

KMSENV_AWS_STATE *kmsenv_aws_state_new(void);
void kmsenv_aws_state_free(KMSENV_AWS_STATE *st);

/* The aws-kms: keyring's config object in KMSENV_KMS_ENV (aws_conf.c):
 * its settings and the provider's credentials cache. */
typedef struct {
    KMSENV_AWS_CFG cfg;
    KMSENV_AWS_STATE *state;
} KMSENV_AWS_CONF;

extern const KMSENV_SETTING kmsenv_aws_settings[];
void *kmsenv_aws_conf_new(void);
void kmsenv_aws_conf_free(void *conf);
/* conf's settings, or the defaults (every field unset) for NULL. */
const KMSENV_AWS_CFG *kmsenv_aws_cfg_of(const void *conf);
/* KMSENV_KEK_METHOD hooks: spec in the preferred region; deadline_ms;
 * the key id Decrypt names (kmsenv_aws_decrypt_key_id). */
int kmsenv_aws_preferred(const void *conf, const char *spec);
long kmsenv_aws_load_deadline_ms(const void *conf);
int kmsenv_aws_policy_id(const void *conf, const char *spec,
                         const unsigned char *fp, size_t fplen, char *out,
                         size_t outlen);

/* Returns valid credentials (a copy the caller clears): from the cache,
 * refreshed when they expire within 5 minutes, else resolved through the
 * chain in AWS SDK order: environment, web identity (STS
 * AssumeRoleWithWebIdentity), shared credentials/config files (profile), ECS
 * container endpoint, EC2 IMDSv2. Raises KMSENV_R_KMS_ERROR naming every
 * source tried when none works. rejected: credentials KMS has just
 * answered ExpiredToken for; if the cache still holds them they are
 * fetched anew, else (another thread refreshed) the cache is used. */
int kmsenv_aws_get_creds(KMSENV_AWS_STATE *st, const KMSENV_AWS_CFG *cfg,
                         const KMSENV_AWS_CREDS *rejected,
                         KMSENV_AWS_CREDS *out);

/* The resolution chain itself, without the cache (credentials.c). */
int kmsenv_aws_resolve_creds(const KMSENV_AWS_CFG *cfg, KMSENV_AWS_CREDS *out);

/* Region from the profile's config file ("region = ..."), or NULL. Caller
 * frees with OPENSSL_free. */
char *kmsenv_aws_profile_region(const KMSENV_AWS_CFG *cfg);

/* deadline_ms: the configured value, else 30000. */
long kmsenv_aws_deadline_ms(const KMSENV_AWS_CFG *cfg);

/* Region of an aws-kms: spec (ARN region, else configured/env/profile).
 * Returns 0 if none can be found. */
/* The key id a Decrypt of a copy wrapped under spec names: the key ARN
 * recorded with it (fp) when that is a key ARN in spec's region, else the
 * spec's own key id. 0 if spec is not aws-kms: or out is too small. */
int kmsenv_aws_decrypt_key_id(const KMSENV_AWS_CFG *cfg, const char *spec,
                              const unsigned char *fp, size_t fplen, char *out,
                              size_t outlen);

int kmsenv_aws_spec_region(const KMSENV_AWS_CFG *cfg, const char *spec,
                           char *out, size_t outlen);

#endif
