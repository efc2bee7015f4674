/* SPDX-License-Identifier: Apache-2.0 */
#include "kms/retry.h"
#include "kms/http.h"

#include <errno.h>
#include <time.h>
#include <openssl/rand.h>

void kmsenv_retry_init(KMSENV_RETRY *r, int max_attempts, long base_ms,
                       long long deadline)
{
    r->max_attempts = max_attempts > 0 ? max_attempts : 1;
    r->base_ms = base_ms > 0 ? base_ms : KMSENV_RETRY_BASE_MS;
    r->deadline = deadline;
    r->attempts = 0;
    r->deadline_hit = 0;
}

int kmsenv_retry_start(KMSENV_RETRY *r)
{
    long long left = r->deadline - kmsenv_now_ms();

    if (r->attempts >= r->max_attempts)
        return 0;
    if (left <= 0 || (r->attempts > 0 && left < KMSENV_RETRY_MIN_MS)) {
        r->deadline_hit = 1;
        return 0;
    }
    r->attempts++;
    return 1;
}

long kmsenv_retry_clamp(const KMSENV_RETRY *r, long ms)
{
    long long left = r->deadline - kmsenv_now_ms();

    if (left < 1)
        left = 1;
    return ms < left ? ms : (long)left;
}

int kmsenv_retry_backoff(KMSENV_RETRY *r)
{
    unsigned int rnd = 0;
    int n = r->attempts - 1; /* 0 after the first attempt */
    long long cap = r->base_ms << (n < 16 ? n : 16), ms;
    long long left = r->deadline - kmsenv_now_ms() - KMSENV_RETRY_MIN_MS;

    if (r->attempts >= r->max_attempts)
        return 0;
    if (left <= 0) {
        r->deadline_hit = 1;
        return 0;
    }
    if (cap > KMSENV_RETRY_MAX_BACKOFF_MS)
        cap = KMSENV_RETRY_MAX_BACKOFF_MS;
    if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) <= 0)
        rnd = (unsigned int)kmsenv_now_ms();
    ms = (long long)((double)rnd / 4294967296.0 * (double)cap);
    kmsenv_sleep_ms(ms < left ? ms : left);
    return 1;
}

void kmsenv_sleep_ms(long long ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
