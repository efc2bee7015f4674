/* For fuzz_ini.c and fuzz_xml.c: provider/kms/credentials.c #included (its
 * parsers are static), as test/unit/test_credentials.c does, with
 * kmsenv_http_do replaced by a stub that never reaches a network (the
 * parsers never call it). */
#ifndef KMSENV_FUZZ_CRED_STUB_H
#define KMSENV_FUZZ_CRED_STUB_H

#define kmsenv_http_do fuzz_http_do
#include "kms/credentials.c"
#undef kmsenv_http_do

int fuzz_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp);
int fuzz_http_do(const KMSENV_HTTP_REQ *req, KMSENV_HTTP_RESP *resp)
{
    memset(resp, 0, sizeof(*resp));
    KMSENV_RAISE(KMSENV_R_KMS_ERROR, "no network in the fuzzer");
    return 0;
}

#endif
