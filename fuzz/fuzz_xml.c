/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the XML scanners of provider/kms/credentials.c (xml_elem,
 * xml_text, xml_value), through sts_parse (an STS
 * AssumeRoleWithWebIdentity answer, with parse_iso8601 and creds_fill) and
 * xml_error (an AWS query-protocol error document), on arbitrary bytes.
 *
 * Invariants checked: no crash or leak; a parse that succeeds yields
 * credentials with a non-empty access key id and secret (NUL-terminated),
 * and one that fails says why; the error summary is a terminated string.
 * This target #includes credentials.c; adapt it when that file's XML
 * reader changes. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "fuzz_cred_stub.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc = (const char *)data;
    KMSENV_AWS_CREDS creds;
    char why[256], err[300];
    long long t;
    int r;

    memset(&creds, 0, sizeof(creds));
    why[0] = '\0';
    r = sts_parse(doc, size, "web-identity", &creds, why, sizeof(why));
    FUZZ_CHECK(r >= -1 && r <= 1);
    if (r == 1) {
        FUZZ_CHECK(creds.akid[0] != '\0' && strlen(creds.akid) <= AKID_MAX);
        FUZZ_CHECK(creds.secret.data != NULL && creds.secret.len > 0 &&
                   creds.secret.data[creds.secret.len] == '\0');
        FUZZ_CHECK(creds.token.data != NULL && creds.token.len > 0);
    } else if (r == 0) {
        FUZZ_CHECK(why[0] != '\0');
    }
    kmsenv_aws_creds_clear(&creds);

    memset(err, 'x', sizeof(err));
    xml_error(doc, size, err, sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);

    /* The timestamp reader on its own. */
    if (parse_iso8601(doc, size, &t))
        FUZZ_CHECK(t > -86400 && t < 253402387200LL); /* 1970..9999 +- 1 day */
    ERR_clear_error();
    return 0;
}
