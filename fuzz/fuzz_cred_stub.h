/* SPDX-License-Identifier: Apache-2.0 */
/* For fuzz_ini.c and fuzz_xml.c: the credential sources #included (some
 * parsers are static), as test/unit/test_credentials.c does, with
 * kmsenv_http_do replaced by a stub that never reaches a network (the
 * parsers never call it). */
#ifndef KMSENV_FUZZ_CRED_STUB_H
#define KMSENV_FUZZ_CRED_STUB_H

#define kmsenv_http_do fuzz_http_do
#include "kms/credentials.c"
#include "kms/creds_util.c"
#include "kms/creds_env.c"
#include "kms/creds_profile.c"
#include "kms/creds_sts.c"
#include "kms/creds_ecs.c"
#include "kms/creds_imds.c"
#include "kms/creds_cache.c"
#include "kms/ini.c"
#include "kms/xml.c"
#undef kmsenv_http_do

int fuzz_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp);
int fuzz_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp)
{
    memset(resp, 0, sizeof(*resp));
    KMSENV_RAISE(KMSENV_R_KMS_ERROR, "no network in the fuzzer");
    return 0;
}

#endif
