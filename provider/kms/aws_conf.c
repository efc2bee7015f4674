/* SPDX-License-Identifier: Apache-2.0 */
/* The aws-kms: keyring's settings and per-provider config object, and the
 * keyring hooks that read them (kms/aws.h). */
#include "kms/aws.h"

#include <stddef.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#define AT(f) offsetof(KMSENV_AWS_CONF, cfg.f)

/* Provider config keys and the KMSENV_* variables that win over them.
 * AWS_* variables are read later, where the AWS SDK conventions put them
 * (below the provider config). */
const KMSENV_SETTING kmsenv_aws_settings[] = {
    {"aws_region", "KMSENV_AWS_REGION", KMSENV_SET_STR, AT(region)},
    {"aws_endpoint", "KMSENV_AWS_ENDPOINT", KMSENV_SET_STR, AT(endpoint)},
    {"aws_profile", "KMSENV_AWS_PROFILE", KMSENV_SET_STR, AT(profile)},
    {"aws_use_fips", "KMSENV_AWS_USE_FIPS", KMSENV_SET_BOOL, AT(use_fips)},
    {"ca_file", "KMSENV_CA_FILE", KMSENV_SET_STR, AT(ca_file)},
    {"allow_http", "KMSENV_ALLOW_HTTP", KMSENV_SET_BOOL, AT(allow_http)},
    {"preferred_region", "KMSENV_PREFERRED_REGION", KMSENV_SET_STR,
     AT(preferred_region)},
    {"grant_tokens", "KMSENV_GRANT_TOKENS", KMSENV_SET_STR, AT(grant_tokens)},
    {"connect_timeout_ms", "KMSENV_CONNECT_TIMEOUT_MS", KMSENV_SET_MS,
     AT(connect_timeout_ms)},
    {"request_timeout_ms", "KMSENV_REQUEST_TIMEOUT_MS", KMSENV_SET_MS,
     AT(request_timeout_ms)},
    {"deadline_ms", "KMSENV_DEADLINE_MS", KMSENV_SET_MS, AT(deadline_ms)},
    {"max_attempts", "KMSENV_MAX_ATTEMPTS", KMSENV_SET_INT, AT(max_attempts)},
    {NULL, NULL, KMSENV_SET_STR, 0},
};

void *kmsenv_aws_conf_new(void)
{
    KMSENV_AWS_CONF *c = OPENSSL_zalloc(sizeof(*c));

    if (c != NULL && (c->state = kmsenv_aws_state_new()) == NULL) {
        OPENSSL_free(c);
        c = NULL;
    }
    return c;
}

void kmsenv_aws_conf_free(void *conf)
{
    KMSENV_AWS_CONF *c = conf;

    if (c == NULL)
        return;
    OPENSSL_free(c->cfg.region);
    OPENSSL_free(c->cfg.endpoint);
    OPENSSL_free(c->cfg.profile);
    OPENSSL_free(c->cfg.ca_file);
    OPENSSL_free(c->cfg.preferred_region);
    OPENSSL_free(c->cfg.grant_tokens);
    kmsenv_aws_state_free(c->state);
    OPENSSL_free(c);
}

const KMSENV_AWS_CFG *kmsenv_aws_cfg_of(const void *conf)
{
    static const KMSENV_AWS_CFG none;

    return conf != NULL ? &((const KMSENV_AWS_CONF *)conf)->cfg : &none;
}

int kmsenv_aws_preferred(const void *conf, const char *spec)
{
    const KMSENV_AWS_CFG *cfg = kmsenv_aws_cfg_of(conf);
    const char *pref = cfg->preferred_region;
    char region[64];

    return pref != NULL && *pref != '\0' &&
           kmsenv_aws_spec_region(cfg, spec, region, sizeof(region)) &&
           strcmp(region, pref) == 0;
}

long kmsenv_aws_load_deadline_ms(const void *conf)
{
    return kmsenv_aws_deadline_ms(kmsenv_aws_cfg_of(conf));
}

int kmsenv_aws_policy_id(const void *conf, const char *spec,
                         const unsigned char *fp, size_t fplen, char *out,
                         size_t outlen)
{
    return kmsenv_aws_decrypt_key_id(kmsenv_aws_cfg_of(conf), spec, fp, fplen,
                                     out, outlen);
}
