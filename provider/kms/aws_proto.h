/* SPDX-License-Identifier: Apache-2.0 */
/* The AWS KMS JSON protocol, for aws.c: endpoints, request bodies (built
 * in the caller's buffer, secure when it carries a key), answers (base64
 * members, error types and how they are handled), key ids and ARNs, and
 * server text made safe for messages. */
#ifndef KMSENV_KMS_AWS_PROTO_H
#define KMSENV_KMS_AWS_PROTO_H

#include <stddef.h>
#include "envelope/context.h"
#include "kms/aws.h"
#include "kms/json.h"
#include "util/buf.h"

/* Endpoint for region: the configured URL or REGION=URL map, then
 * AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, then the public one. */
char *aws_endpoint_for(const KMSENV_AWS_CFG *cfg, const char *region);

/* Request bodies: JSON members appended to b (1, or 0: out of memory). */
int aws_json_str(KMSENV_BUF *b, const char *s);
int aws_json_key(KMSENV_BUF *b, const char *name);
int aws_json_b64(KMSENV_BUF *b, const char *name, const unsigned char *p,
                 size_t n);
int aws_json_context(KMSENV_BUF *b, const char *name,
                     const KMSENV_CONTEXT *ectx);
int aws_json_grants(KMSENV_BUF *b, const KMSENV_AWS_CFG *cfg);

/* Answers. */
int aws_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap,
                   size_t *outlen);
unsigned char *aws_field_b64(const KMSENV_JFIELD *f, size_t max, int secure,
                             size_t *outlen);
/* Server text (NULs included) as printable ASCII, other bytes as \\xNN. */
void aws_escape(char *out, size_t outlen, const char *in, size_t len);
/* botocore's cleanup of __type; which types are retried, which are about
 * credentials or permissions. */
void aws_clean_type(const char *t, size_t len, char *out, size_t outlen);
int aws_type_retryable(const char *t);
int aws_type_auth(const char *t);

/* Key ids and ARNs. */
int aws_arn_parts(const char *s, size_t len, const char **region, size_t *rlen,
                  const char **rest);
int aws_key_matches(const char *region, const char *want, const char *id,
                    size_t idlen);
int aws_recorded_arn(const char *region, const unsigned char *fp, size_t fplen,
                     char *buf, size_t buflen);

#endif
