/* SPDX-License-Identifier: Apache-2.0 */
#include "keys/registry.h"
#include "keys/loader.h"
#include "util/err.h"
#include "util/log.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

typedef struct entry_st {
    char *path, *keyring; /* keyring may be NULL */
    KMSENV_KEYOBJ *k;     /* NULL while loading */
    int loading;
    struct entry_st *next;
} ENTRY;

struct kmsenv_registry_st {
    pthread_mutex_t lock;
    pthread_cond_t loaded;
    pid_t pid; /* a forked child re-initialises the lock */
    ENTRY *head;
};

KMSENV_REGISTRY *kmsenv_registry_new(void)
{
    KMSENV_REGISTRY *r = OPENSSL_zalloc(sizeof(*r));

    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->loaded, NULL);
    r->pid = getpid();
    return r;
}

static void entry_free(ENTRY *e)
{
    kmsenv_keyobj_free(e->k);
    OPENSSL_free(e->path);
    OPENSSL_free(e->keyring);
    OPENSSL_free(e);
}

void kmsenv_registry_free(KMSENV_REGISTRY *r)
{
    ENTRY *e, *n;

    if (r == NULL)
        return;
    for (e = r->head; e != NULL; e = n) {
        n = e->next;
        entry_free(e);
    }
    pthread_cond_destroy(&r->loaded);
    pthread_mutex_destroy(&r->lock);
    OPENSSL_free(r);
}

static int same(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Locks r. In a child forked while another thread held the lock, the lock
 * and condition are made anew (the entries are plain memory and stay). */
static void lock(KMSENV_REGISTRY *r)
{
    if (r->pid != getpid()) {
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->loaded, NULL);
        r->pid = getpid();
    }
    pthread_mutex_lock(&r->lock);
}

static void unlink_entry(KMSENV_REGISTRY *r, ENTRY *e)
{
    ENTRY **pp;

    for (pp = &r->head; *pp != NULL; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            return;
        }
}

KMSENV_KEYOBJ *kmsenv_registry_get(KMSENV_REGISTRY *r,
                                   const KMSENV_KEYS_ENV *env, const char *path,
                                   const char *keyring)
{
    KMSENV_KEYOBJ *k = NULL;
    ENTRY *e;

    lock(r);
    for (;;) {
        for (e = r->head; e != NULL; e = e->next)
            if (strcmp(e->path, path) == 0 && same(e->keyring, keyring))
                break;
        if (e == NULL || !e->loading)
            break;
        pthread_cond_wait(&r->loaded, &r->lock); /* another thread loads */
    }
    if (e != NULL) {
        /* Read under the lock: a reload may free e once it is released. */
        k = e->k;
        kmsenv_keyobj_up_ref(k);
        pthread_mutex_unlock(&r->lock);
        return k;
    }
    if ((e = OPENSSL_zalloc(sizeof(*e))) == NULL ||
        (e->path = OPENSSL_strdup(path)) == NULL ||
        (keyring != NULL && (e->keyring = OPENSSL_strdup(keyring)) == NULL)) {
        pthread_mutex_unlock(&r->lock);
        if (e != NULL)
            entry_free(e);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "registering keyset %s", path);
        return NULL;
    }
    e->loading = 1;
    e->next = r->head;
    r->head = e;
    pthread_mutex_unlock(&r->lock);

    /* The load (a keyring call) runs without the lock. */
    k = kmsenv_loader_load_file(env, path, keyring);
    kmsenv_log(2, "registry: %s %s", path, k != NULL ? "loaded" : "failed");

    lock(r);
    e->loading = 0;
    if (k != NULL) {
        e->k = k;
        kmsenv_keyobj_up_ref(k);
    } else {
        unlink_entry(r, e);
        entry_free(e);
    }
    pthread_cond_broadcast(&r->loaded);
    pthread_mutex_unlock(&r->lock);
    return k;
}

void kmsenv_registry_reload(KMSENV_REGISTRY *r, const char *path)
{
    ENTRY **pp, *e;

    lock(r);
    for (pp = &r->head; (e = *pp) != NULL;) {
        if (!e->loading && (path == NULL || strcmp(e->path, path) == 0)) {
            *pp = e->next;
            entry_free(e); /* drops the registry's reference only */
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&r->lock);
}
