/* Keyrings: where key-encryption keys (KEKs) live.
 *
 * A keyring spec names one or more KEKs, separated by ';':
 *     file:/etc/kmsenv/kek
 *     aws-kms:arn:aws:kms:eu-west-1:111122223333:key/mrk-...;aws-kms:...
 * Each KEK implements four operations, all under an encryption context that
 * the KEK binds cryptographically (file: as AAD, KMS as EncryptionContext):
 *     generate  a fresh data key, returned in plaintext and wrapped
 *     wrap      an existing data key
 *     unwrap    a wrapped data key
 *     rewrap    move a wrapped key to this KEK (NULL: unwrap + wrap locally):
 *               1 done, 0 failed (raised), -1 this copy cannot be moved
 *               (nothing called, nothing raised)
 * A keyring with several KEKs generates under the first and wraps under the
 * rest; unwrap tries the wrapped copies in order. */
#ifndef KMSENV_KMS_KEYRING_H
#define KMSENV_KMS_KEYRING_H

#include <stddef.h>
#include <openssl/types.h>
#include "envelope/context.h"
#include "envelope/keyset.h"
#include "kms/aws.h"
#include "util/secmem.h"

typedef struct kmsenv_kek_st KMSENV_KEK;

/* What keyrings need from their surroundings: the provider's library
 * context and KMS settings. A NULL env means OpenSSL's default library
 * context and settings from the environment only. */
typedef struct {
    OSSL_LIB_CTX *libctx;
    const KMSENV_AWS_CFG *aws;   /* may be NULL */
    KMSENV_AWS_STATE *aws_state; /* credentials cache; may be NULL */
    const char *allowed_keks;    /* KEK policy (kms/policy.h); may be NULL */
} KMSENV_KMS_ENV;

typedef struct {
    const char *scheme; /* "file", "aws-kms" */
    KMSENV_KEK *(*open)(const KMSENV_KMS_ENV *env, const char *spec);
    int (*generate)(KMSENV_KEK *kek, const KMSENV_CONTEXT *ectx,
                    KMSENV_SECRET *out, KMSENV_WRAP *w);
    int (*wrap)(KMSENV_KEK *kek, const KMSENV_CONTEXT *ectx,
                const KMSENV_SECRET *pt, KMSENV_WRAP *w);
    int (*unwrap)(KMSENV_KEK *kek, const KMSENV_CONTEXT *ectx,
                  const KMSENV_WRAP *w, KMSENV_SECRET *out);
    int (*rewrap)(KMSENV_KEK *kek, const KMSENV_CONTEXT *ectx,
                  const KMSENV_WRAP *from, KMSENV_WRAP *to);
    void (*free)(KMSENV_KEK *kek);
} KMSENV_KEK_METHOD;

struct kmsenv_kek_st {
    const KMSENV_KEK_METHOD *meth;
    char *spec;            /* as written into keysets */
    unsigned char fp[255]; /* fingerprint; never the key */
    size_t fplen;
    long long deadline; /* kmsenv_now_ms() by which a remote KEK's calls
                           must end (a load's share of deadline_ms); 0:
                           the KEK's own per-operation deadline */
};

typedef struct {
    KMSENV_KEK **kek;
    size_t n;
} KMSENV_KEYRING;

/* Fingerprint as printable text: lower-case hex for file:, the text
 * itself where it is printable (e.g. a key ARN). */
void kmsenv_fp_text(const unsigned char *fp, size_t fplen, char *out,
                    size_t outlen);

int kmsenv_keyring_open(const KMSENV_KMS_ENV *env, const char *spec,
                        KMSENV_KEYRING **out);
void kmsenv_keyring_free(KMSENV_KEYRING *kr);

/* Generates a len-byte data key and wraps it under every KEK. */
int kmsenv_keyring_generate(KMSENV_KEYRING *kr, const KMSENV_CONTEXT *ectx,
                            size_t len, KMSENV_SECRET *dk, KMSENV_WRAP **wraps,
                            size_t *nwraps);
/* Wraps the key under every KEK of kr: through rewrap from an existing
 * wrapped copy where the KEK supports it (aws-kms: ReEncrypt, the key never
 * leaves KMS), else locally from pt. A rewrap that is tried and fails is
 * an error, unless flags has KMSENV_REWRAP_ALLOW_LOCAL: then the key is
 * wrapped locally and the failure stays on the error queue (with a note
 * saying so) for the caller to report. */
#define KMSENV_REWRAP_ALLOW_LOCAL 1
int kmsenv_keyring_rewrap(KMSENV_KEYRING *kr, const KMSENV_CONTEXT *ectx,
                          const KMSENV_WRAP *old, size_t nold,
                          const KMSENV_SECRET *pt, int flags,
                          KMSENV_WRAP **wraps, size_t *nwraps);
/* Unwraps the first copy that works, trying copies under KEKs in the
 * preferred region (env->aws->preferred_region) first. redirect:
 * "FROM=TO[;FROM=TO]" maps a recorded KEK spec to another (a moved KEK file);
 * "*=TO" maps every KEK. May be NULL. name names the key in errors. Exactly one
 * successful keyring call. */
int kmsenv_keyring_unwrap(const KMSENV_KMS_ENV *env, const KMSENV_WRAP *wraps,
                          size_t nwraps, const char *redirect,
                          const KMSENV_CONTEXT *ectx, size_t len,
                          KMSENV_SECRET *out, const char *name);

/* The encryption context every KEK call binds for a keyset's KSK. */
int kmsenv_keyring_keyset_context(KMSENV_CONTEXT *ectx,
                                  const unsigned char id[16],
                                  const char *purpose);

extern const KMSENV_KEK_METHOD kmsenv_file_kek_method;
extern const KMSENV_KEK_METHOD kmsenv_aws_kek_method;

#endif
