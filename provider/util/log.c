/* SPDX-License-Identifier: Apache-2.0 */
#include "util/log.h"
#include "util/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;
static int log_level;
static int log_owned;

void kmsenv_log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fp != NULL && log_owned)
        fclose(log_fp);
    log_fp = NULL;
    log_owned = 0;
    log_level = 0;
    pthread_mutex_unlock(&log_lock);
}

void kmsenv_log_init(const char *spec)
{
    char buf[4096], *tok, *save = NULL;
    const char *path = NULL;
    int level = 1;

    kmsenv_log_close();
    if (spec == NULL || *spec == '\0')
        return;
    if (strlen(spec) >= sizeof(buf))
        return;
    strcpy(buf, spec);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "file:", 5) == 0)
            path = tok + 5;
        else if (strncmp(tok, "level:", 6) == 0)
            level = atoi(tok + 6);
    }
    if (level <= 0)
        return;
    pthread_mutex_lock(&log_lock);
    if (path != NULL && *path != '\0') {
        log_fp = fopen(path, "a");
        log_owned = log_fp != NULL;
    }
    if (log_fp == NULL)
        log_fp = stderr;
    log_level = level;
    pthread_mutex_unlock(&log_lock);
}

int kmsenv_log_enabled(int level)
{
    return log_fp != NULL && level <= log_level;
}

void kmsenv_log(int level, const char *fmt, ...)
{
    va_list ap;
    char raw[2048], line[4096];
    int n;

    if (!kmsenv_log_enabled(level))
        return;
    va_start(ap, fmt);
    n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* One line per entry, whatever a spec or a server put in the text. */
    kmsenv_escape(line, sizeof(line), raw,
                  (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1);
    pthread_mutex_lock(&log_lock);
    if (log_fp != NULL) {
        fprintf(log_fp, "kmsenv[%ld]: %s\n", (long)getpid(), line);
        fflush(log_fp);
    }
    pthread_mutex_unlock(&log_lock);
}
