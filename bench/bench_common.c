/* SPDX-License-Identifier: Apache-2.0 */
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

static char tmp_dir[4096];
char bench_kek_path[BENCH_PATH_MAX];

static void remove_tmp(void)
{
    if (bench_kek_path[0] != '\0')
        unlink(bench_kek_path);
    if (tmp_dir[0] != '\0')
        rmdir(tmp_dir);
}

static void on_signal(int sig)
{
    remove_tmp(); /* unlink and rmdir are async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

int bench_make_kek(const char *name)
{
    const char *base = getenv("TMPDIR");
    unsigned char key[32];
    int fd, n;
    ssize_t w;

    atexit(remove_tmp);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    n = snprintf(tmp_dir, sizeof(tmp_dir), "%s/kmsenv-bench-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof(tmp_dir) || mkdtemp(tmp_dir) == NULL) {
        fprintf(stderr, "%s: cannot make a temporary directory under %s\n",
                name, base);
        tmp_dir[0] = '\0';
        return 0;
    }
    snprintf(bench_kek_path, sizeof(bench_kek_path), "%s/kek", tmp_dir);
    fd = open(bench_kek_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "%s: create %s: %s\n", name, bench_kek_path,
                strerror(errno));
        bench_kek_path[0] = '\0';
        return 0;
    }
    if (RAND_bytes(key, sizeof(key)) <= 0) {
        fprintf(stderr, "%s: RAND_bytes failed for the KEK\n", name);
        close(fd);
        return 0;
    }
    w = write(fd, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    /* umask can only remove bits; make sure it is exactly 0600 anyway */
    if (w != (ssize_t)sizeof(key) || fchmod(fd, 0600) != 0 || close(fd) != 0) {
        fprintf(stderr, "%s: writing %s failed\n", name, bench_kek_path);
        return 0;
    }
    return 1;
}

double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bench_err(const char *name, const char *what)
{
    fprintf(stderr, "%s: %s failed\n", name, what);
    ERR_print_errors_fp(stderr);
}

double bench_seconds(const char *name, int argc, char **argv)
{
    const char *s = argc > 2 ? argv[2] : getenv("BENCH_SECONDS");
    char *end;
    double v;

    if (s == NULL || *s == '\0')
        return 1.0;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0.0 || v > 3600) {
        fprintf(stderr, "%s: bad duration '%s' (seconds, > 0)\n", name, s);
        return -1;
    }
    return v;
}

int bench_rounds(const char *name)
{
    const char *s = getenv("BENCH_ROUNDS");
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return 3;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > 64) {
        fprintf(stderr, "%s: bad BENCH_ROUNDS '%s' (1..64)\n", name, s);
        return -1;
    }
    return (int)v;
}
