/* SPDX-License-Identifier: Apache-2.0 */
/* KEK policy (allowed_keks / KMSENV_ALLOWED_KEKS). A keyset file names the
 * KEKs it is wrapped under, and a keyset file is not authenticated until it
 * is unwrapped: whoever can replace it could name a KEK of their own, and
 * new records would then be sealed under keys they hold. With a policy set,
 * a keyset (or a generate/rewrap keyring) that names any KEK outside it is
 * refused before any keyring call.
 *
 * The policy is a ';'-separated list of entries:
 *   file:/etc/kmsenv/kek        that KEK file (compared after realpath)
 *   file:/etc/kmsenv/           any KEK file below that directory
 *   0123...cdef                 a file: KEK fingerprint (32 hex digits, as
 *                               `kmsenv inspect` shows); the file keyring
 *                               refuses a KEK whose real fingerprint differs
 *   aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID   that key
 *   aws-kms:arn:aws:kms:REGION:ACCOUNT:key/     any key of that prefix (an
 *                               entry ending in '/' or ':' is a prefix)
 * An aws-kms: KEK is checked by the key id its Decrypt calls name: the key
 * ARN recorded in the keyset when that is in the spec's region, else the
 * spec's own key id (so an alias or a bare key id must be listed as such). */
#ifndef KMSENV_KMS_POLICY_H
#define KMSENV_KMS_POLICY_H

#include <stddef.h>
#include "kms/keyring.h"

/* 1 when env has no policy, or when it allows the KEK spec (as it will be
 * used, after redirects) with the recorded fingerprint fp (may be NULL).
 * Otherwise raises KMSENV_R_KEK_NOT_ALLOWED naming name, the KEK and the
 * policy, and returns 0. */
int kmsenv_kek_allowed(const KMSENV_KMS_ENV *env, const char *spec,
                       const unsigned char *fp, size_t fplen, const char *name);

#endif
