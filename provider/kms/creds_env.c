/* SPDX-License-Identifier: Apache-2.0 */
/* AWS credentials from the environment: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. */
#include "kms/creds.h"

int src_env(const AWS_ENV *env, SUMMARY *sum, KMSENV_AWS_CREDS *out)
{
    if (env->akid == NULL && env->secret == NULL) {
        sum_add(sum, "environment (not set)");
        return 0;
    }
    if (env->akid == NULL || env->secret == NULL) {
        KMSENV_RAISE(
            CRED_R,
            "AWS credentials from the environment: %s is set but "
            "%s is not (set both, or neither)",
            env->akid != NULL ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
            env->akid != NULL ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    return creds_fill(out, "the environment", env->akid, strlen(env->akid),
                      env->secret, strlen(env->secret), env->token,
                      env->token != NULL ? strlen(env->token) : 0, 0,
                      "environment")
               ? 1
               : -1;
}
