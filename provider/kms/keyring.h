/* SPDX-License-Identifier: Apache-2.0 */
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
#include "util/secmem.h"

typedef struct kmsenv_kek_st KMSENV_KEK;

/* Settings a keyring reads from the provider's openssl.cnf section (key)
 * and the environment (env wins), stored into its config object at off. */
enum kmsenv_setting_kind {
    KMSENV_SET_STR,  /* char *, OPENSSL_strdup'ed */
    KMSENV_SET_BOOL, /* int: yes/no, true/false, on/off, 1/0 */
    KMSENV_SET_MS,   /* long: milliseconds, 1..3600000 */
    KMSENV_SET_INT   /* int: 1..10 */
};

typedef struct {
    const char *key, *env;
    enum kmsenv_setting_kind kind;
    size_t off;
} KMSENV_SETTING;

/* Each keyring method may keep a config/state object per provider
 * (settings, a credentials cache): made by conf_new, filled from its
 * settings, freed by conf_free. */
#define KMSENV_KEK_NMETHODS 2

/* What keyrings need from their surroundings: the provider's library
 * context, each keyring method's config object (indexed as
 * kmsenv_kek_methods; NULL: defaults and the environment only) and the KEK
 * policy. A NULL env means OpenSSL's default library context and no config
 * objects. */
typedef struct {
    OSSL_LIB_CTX *libctx;
    void *conf[KMSENV_KEK_NMETHODS];
    const char *allowed_keks; /* KEK policy (kms/policy.h); may be NULL */
} KMSENV_KMS_ENV;

typedef struct kmsenv_kek_method_st KMSENV_KEK_METHOD;

struct kmsenv_kek_method_st {
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

    /* Remote: calls take time, and share a load's deadline (see
     * kmsenv_keyring_unwrap). */
    int remote;
    /* Settings (NULL-key terminated) and the config object they go to;
     * all may be NULL. */
    const KMSENV_SETTING *settings;
    void *(*conf_new)(void);
    void (*conf_free)(void *conf);
    /* 1 if the KEK spec names is preferred for unwrapping (e.g. in the
     * preferred region): those copies are tried first. May be NULL. */
    int (*preferred)(const void *conf, const char *spec);
    /* How long a keyset load may take in all (ms). May be NULL. */
    long (*load_deadline_ms)(const void *conf);
    /* The identity the KEK policy checks for spec (and the fingerprint
     * recorded with a copy, or NULL) into out: 1, 0 if it does not fit.
     * NULL: the spec itself. */
    int (*policy_id)(const void *conf, const char *spec,
                     const unsigned char *fp, size_t fplen, char *out,
                     size_t outlen);
};

/* Every keyring method, in KMSENV_KMS_ENV.conf order. */
extern const KMSENV_KEK_METHOD *const kmsenv_kek_methods[KMSENV_KEK_NMETHODS];

/* The method of spec's scheme, or NULL. */
const KMSENV_KEK_METHOD *kmsenv_kek_method_of(const char *spec);
/* The config object of method m in env (NULL when there is none). */
void *kmsenv_kms_conf(const KMSENV_KMS_ENV *env, const KMSENV_KEK_METHOD *m);
/* Makes every method's config object (1), or 0 (raised). */
int kmsenv_kms_env_init(KMSENV_KMS_ENV *env, OSSL_LIB_CTX *libctx,
                        const char *allowed_keks);
void kmsenv_kms_env_cleanup(KMSENV_KMS_ENV *env);

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

/* Calls fn for each item of a ';'-separated list (whitespace around items
 * ignored, empty items skipped) until fn returns 0. Returns the number of
 * items visited, or -1 when out of memory. */
int kmsenv_keyring_each(const char *list, int (*fn)(const char *, void *),
                        void *arg);

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
/* Unwraps the first copy that works, trying copies under preferred KEKs
 * (KMSENV_KEK_METHOD.preferred, e.g. aws-kms: preferred_region) first.
 * redirect: "FROM=TO[;FROM=TO]" maps a recorded KEK spec to another (a moved
 * KEK file);
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
