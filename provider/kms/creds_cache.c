/* SPDX-License-Identifier: Apache-2.0 */
/* The per-provider AWS credentials cache (kmsenv_aws_get_creds). */
#include "kms/creds.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <unistd.h>

#define REFRESH_WINDOW_S 300 /* refresh when expiring within 5 min */
#define REFRESH_RETRY_S 30   /* after a failed refresh, reuse for 30 s */

/* The mutex is only ever held for a few memory operations, never across
 * I/O: a thread that needs fresh credentials marks the cache "fetching",
 * unlocks, resolves the chain, then publishes under the lock and wakes the
 * waiters. Meanwhile other threads use still-valid credentials without
 * waiting; only threads that have nothing valid wait for that one fetch
 * (single flight) and share its result or its error.
 *
 * fork(): the child is a copy in which no other thread runs, so the mutex
 * may be held forever and "fetching" may be set by a thread that is gone.
 * `owner` is the pid whose mutex and condition variable are valid; the
 * first call in a new process re-initialises them (with -pid meaning "in
 * progress") and drops the parent's cache. */
struct kmsenv_aws_state_st {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast when a fetch ends */
    atomic_int owner;  /* see above */
    KMSENV_AWS_CREDS creds;
    int have;
    pid_t pid;               /* process that filled the cache */
    long long retry_after;   /* unix s: no refresh attempt before this */
    long long filled_ms;     /* kmsenv_now_ms() of the last fill */
    int fetching;            /* a thread of this process is resolving */
    unsigned long fetch_gen; /* incremented when a fetch ends */
    int fetch_failed;        /* ... and it left nothing usable */
    char fail_msg[1024];     /* its error (no secret), for its waiters */
};

KMSENV_AWS_STATE *kmsenv_aws_state_new(void)
{
    KMSENV_AWS_STATE *st = OPENSSL_zalloc(sizeof(*st));

    if (st == NULL) {
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "AWS credentials cache");
        return NULL;
    }
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        OPENSSL_free(st);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "AWS credentials cache lock");
        return NULL;
    }
    if (pthread_cond_init(&st->cv, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        OPENSSL_free(st);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "AWS credentials cache lock");
        return NULL;
    }
    atomic_init(&st->owner, (int)getpid());
    return st;
}

void kmsenv_aws_state_free(KMSENV_AWS_STATE *st)
{
    if (st == NULL)
        return;
    kmsenv_aws_creds_clear(&st->creds);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    OPENSSL_free(st);
}

/* Moves the cached credentials to *old (cleared by the caller after
 * unlocking: nothing is freed under the lock, so that a fork() can never
 * catch the cache half-freed). */
static void cache_take(KMSENV_AWS_STATE *st, KMSENV_AWS_CREDS *old)
{
    kmsenv_aws_creds_clear(old);
    *old = st->creds;
    memset(&st->creds, 0, sizeof(st->creds));
    st->have = 0;
    st->retry_after = 0;
    st->filled_ms = 0;
}

/* First use in a forked child (see above). */
static void state_after_fork(KMSENV_AWS_STATE *st)
{
    KMSENV_AWS_CREDS old;

    memset(&old, 0, sizeof(old));
    if (pthread_mutex_trylock(&st->mu) == 0) {
        /* nobody was inside at fork(): the copy is consistent */
        cache_take(st, &old);
        pthread_mutex_unlock(&st->mu);
    } else {
        /* a parent thread held it mid-update: abandon this copy of its
         * credentials (freeing a possibly torn copy could corrupt the
         * heap) and take a fresh lock */
        pthread_mutex_init(&st->mu, NULL);
        memset(&st->creds, 0, sizeof(st->creds));
        st->have = 0;
        st->retry_after = 0;
        st->filled_ms = 0;
    }
    /* waiters and fetchers of the parent do not exist here */
    pthread_cond_init(&st->cv, NULL);
    st->fetching = 0;
    st->fetch_failed = 0;
    kmsenv_aws_creds_clear(&old);
    kmsenv_log(2, "aws credentials: new process, cache dropped");
}

static void state_lock(KMSENV_AWS_STATE *st)
{
    int pid = (int)getpid(), owner;

    for (;;) {
        owner = atomic_load(&st->owner);
        if (owner == pid) {
            pthread_mutex_lock(&st->mu);
            return;
        }
        if (owner != -pid &&
            atomic_compare_exchange_strong(&st->owner, &owner, -pid)) {
            state_after_fork(st);
            atomic_store(&st->owner, pid);
            continue;
        }
        sched_yield(); /* another thread of this child re-initialises */
    }
}

/* Usable without a refresh: not expiring within the window, or a failed
 * refresh asked to keep them a little (while still valid). */
static int cache_fresh(const KMSENV_AWS_STATE *st, long long now)
{
    const KMSENV_AWS_CREDS *c = &st->creds;

    return c->expiration == 0 || c->expiration - now > REFRESH_WINDOW_S ||
           (now < st->retry_after && c->expiration > now);
}

static int same_creds(const KMSENV_AWS_CREDS *a, const KMSENV_AWS_CREDS *b)
{
    return strcmp(a->akid, b->akid) == 0 && a->token.len == b->token.len &&
           (a->token.len == 0 ||
            CRYPTO_memcmp(a->token.data, b->token.data, a->token.len) == 0);
}

/* The text of the last error raised (our messages never hold secrets). */
static void last_error_text(char *out, size_t outlen)
{
    const char *data = NULL;
    int flags = 0;

    if (ERR_peek_last_error_data(&data, &flags) == 0 ||
        !(flags & ERR_TXT_STRING) || data == NULL)
        data = "no AWS credentials";
    snprintf(out, outlen, "%s", data);
}

int kmsenv_aws_get_creds(KMSENV_AWS_STATE *st, const KMSENV_AWS_CFG *cfg,
                         const KMSENV_AWS_CREDS *rejected,
                         KMSENV_AWS_CREDS *out)
{
    KMSENV_AWS_CREDS nc, old;
    unsigned long gen;
    long long now;
    int ok = 0, fetched, waited = 0;

    memset(out, 0, sizeof(*out));
    memset(&old, 0, sizeof(old));
    if (st == NULL)
        return kmsenv_aws_resolve_creds(cfg, out);

    state_lock(st);
    if (rejected != NULL && st->have && same_creds(&st->creds, rejected)) {
        /* KMS refused exactly these: never hand them out again. (If the
         * cache holds others, another thread has refreshed since.) */
        kmsenv_log(2, "aws credentials: forced refresh");
        cache_take(st, &old);
    }
    for (;;) {
        now = (long long)time(NULL);
        /* fresh; or still valid while another thread refreshes them, or
         * just fetched by the thread this one waited for */
        if (st->have &&
            (cache_fresh(st, now) ||
             ((st->fetching || waited) && st->creds.expiration > now))) {
            ok = kmsenv_aws_creds_copy(out, &st->creds);
            goto unlock;
        }
        if (!st->fetching)
            break; /* this thread fetches */
        gen = st->fetch_gen;
        while (st->fetching && st->fetch_gen == gen)
            pthread_cond_wait(&st->cv, &st->mu);
        waited = 1;
        if (st->fetch_gen != gen && st->fetch_failed && !st->have) {
            KMSENV_RAISE(CRED_R, "%s (fetched by another thread meanwhile)",
                         st->fail_msg);
            goto unlock;
        }
    }

    st->fetching = 1;
    pthread_mutex_unlock(&st->mu);

    ERR_set_mark();
    memset(&nc, 0, sizeof(nc));
    fetched = kmsenv_aws_resolve_creds(cfg, &nc);

    state_lock(st);
    now = (long long)time(NULL);
    st->fetching = 0;
    st->fetch_gen++;
    st->fetch_failed = 0;
    if (fetched) {
        ERR_clear_last_mark();
        cache_take(st, &old);
        st->creds = nc; /* ownership moves */
        memset(&nc, 0, sizeof(nc));
        st->have = 1;
        st->pid = getpid();
        st->filled_ms = kmsenv_now_ms();
        ok = kmsenv_aws_creds_copy(out, &st->creds);
    } else if (st->have && st->creds.expiration > now) {
        ERR_pop_to_mark();
        kmsenv_log(1,
                   "AWS credentials refresh failed; still using those from "
                   "%s (access key id %s, valid for %lld s)",
                   st->creds.source, st->creds.akid,
                   st->creds.expiration - now);
        st->retry_after = now + REFRESH_RETRY_S;
        ok = kmsenv_aws_creds_copy(out, &st->creds);
    } else {
        ERR_clear_last_mark();
        if (st->have)
            cache_take(st, &old); /* expired */
        st->fetch_failed = 1;
        last_error_text(st->fail_msg, sizeof(st->fail_msg));
    }
    pthread_cond_broadcast(&st->cv);
unlock:
    pthread_mutex_unlock(&st->mu);
    kmsenv_aws_creds_clear(&old);
    return ok;
}
