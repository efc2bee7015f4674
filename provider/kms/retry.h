/* SPDX-License-Identifier: Apache-2.0 */
/* The one retry policy for every remote call (KMS operations, STS, ECS,
 * IMDS): AWS SDK "standard" mode. Attempts are capped; after attempt n
 * fails (n = 1, 2, ...) the wait is full jitter, rand * min(base * 2^(n-1),
 * 20 s); everything ends by a deadline, which clamps the waits and refuses
 * to start an attempt without time for a round trip. Which failures are
 * worth a retry is the caller's business.
 *
 *     KMSENV_RETRY rt;
 *     kmsenv_retry_init(&rt, 3, KMSENV_RETRY_BASE_MS, deadline);
 *     while (kmsenv_retry_start(&rt)) {
 *         timeout = kmsenv_retry_clamp(&rt, timeout_ms);
 *         ...one attempt...
 *         if (done || !retryable || !kmsenv_retry_backoff(&rt))
 *             break;
 *     } */
#ifndef KMSENV_KMS_RETRY_H
#define KMSENV_KMS_RETRY_H

#define KMSENV_RETRY_BASE_MS 1000L /* AWS standard mode */
#define KMSENV_RETRY_MAX_BACKOFF_MS 20000L
#define KMSENV_RETRY_MIN_MS 100L /* a later attempt needs this much time */

typedef struct {
    int max_attempts;
    long base_ms;
    long long deadline; /* kmsenv_now_ms() */
    int attempts;       /* started so far */
    int deadline_hit;   /* an attempt or a wait was cut by the deadline */
} KMSENV_RETRY;

void kmsenv_retry_init(KMSENV_RETRY *r, int max_attempts, long base_ms,
                       long long deadline);
/* Starts an attempt: 1, or 0 when the attempts are used up or there is no
 * time left for one (deadline_hit). The first attempt needs any time, a
 * later one KMSENV_RETRY_MIN_MS. */
int kmsenv_retry_start(KMSENV_RETRY *r);
/* ms clamped to the time left (at least 1). */
long kmsenv_retry_clamp(const KMSENV_RETRY *r, long ms);
/* After a failed attempt worth retrying: waits the backoff (clamped so the
 * next attempt still has KMSENV_RETRY_MIN_MS) and returns 1, or returns 0
 * at once when no attempt is left or no time (deadline_hit). */
int kmsenv_retry_backoff(KMSENV_RETRY *r);
/* Sleeps ms milliseconds (interrupted sleeps resume). */
void kmsenv_sleep_ms(long long ms);

#endif
