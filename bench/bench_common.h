/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the benchmarks: a temporary KEK file (removed at exit, also on
 * SIGINT/SIGTERM), a monotonic clock and error printing. */
#ifndef KMSENV_BENCH_COMMON_H
#define KMSENV_BENCH_COMMON_H

#define BENCH_PATH_MAX (4096 + 16)
extern char bench_kek_path[BENCH_PATH_MAX];

/* Creates a mode-0600 random 32-byte KEK under $TMPDIR; name prefixes
 * messages. 1 on success. */
int bench_make_kek(const char *name);
double bench_now(void);
/* CPU time of the calling thread: what a single-threaded loop costs, less
 * sensitive than bench_now to other processes on a shared machine. */
double bench_cpu_now(void);
void bench_err(const char *name, const char *what);
/* Seconds per measurement from argv[2] or $BENCH_SECONDS (default 1.0),
 * rounds from $BENCH_ROUNDS (default 3): -1 on bad input. */
double bench_seconds(const char *name, int argc, char **argv);
int bench_rounds(const char *name);

#endif
