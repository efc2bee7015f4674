/* SPDX-License-Identifier: Apache-2.0 */
/* The per-process registry of loaded keysets (one per provider instance):
 * a keyset named by path (and keyring override) is read and unwrapped once,
 * then shared, until asked to reload. This is how `openssl enc` and other
 * callers that name a default keyset avoid a KMS call per stream. */
#ifndef KMSENV_KEYS_REGISTRY_H
#define KMSENV_KEYS_REGISTRY_H

#include "keys/keyobj.h"

typedef struct kmsenv_registry_st KMSENV_REGISTRY;

KMSENV_REGISTRY *kmsenv_registry_new(void);
void kmsenv_registry_free(KMSENV_REGISTRY *r);

/* The keyset at path (keyring may be NULL: the recorded KEKs), as a new
 * reference. Loaded on first use; threads asking at once share one load.
 * A failed load is not kept: the next call tries again. */
KMSENV_KEYOBJ *kmsenv_registry_get(KMSENV_REGISTRY *r,
                                   const KMSENV_KEYS_ENV *env, const char *path,
                                   const char *keyring);

/* Forgets path (every entry if NULL): the next get reads it anew. Objects
 * already handed out stay valid. */
void kmsenv_registry_reload(KMSENV_REGISTRY *r, const char *path);

#endif
