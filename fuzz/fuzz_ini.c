/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the AWS shared credentials/config file reader of
 * provider/kms/credentials.c (ini_read_file, ini_line, section_is and the
 * profile callback), on arbitrary file contents: the input is written to a
 * temporary file (in /dev/shm where possible) and read for the profiles
 * "default" and "dev", as a credentials file and as a config file ([profile
 * NAME]).
 *
 * Invariants checked: no crash or leak; the read succeeds (only an
 * allocation failure may fail it); a value is only ever taken from inside
 * the wanted section (found), secrets are NUL-terminated with their length,
 * and values hold no line break. This target #includes credentials.c;
 * adapt it when that file's INI reader changes. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "fuzz_cred_stub.h"
#include "fuzz_common.h"

static char dir[256], path[300];

static void cleanup(void)
{
    if (path[0] != '\0')
        unlink(path);
    if (dir[0] != '\0')
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *t = getenv("TMPDIR");

    /* A file per input: in memory where possible (5x the speed). */
    if (access("/dev/shm", W_OK) == 0)
        t = "/dev/shm";
    snprintf(dir, sizeof(dir), "%s/kmsenv-fuzz-XXXXXX",
             t != NULL && *t != '\0' ? t : "/tmp");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/credentials", dir);
    atexit(cleanup);
    return 0;
}

static void check_str(const char *s)
{
    FUZZ_CHECK(s == NULL || strpbrk(s, "\n") == NULL);
}

static void check_sec(const KMSENV_SECRET *s, int has)
{
    if (!has)
        return;
    FUZZ_CHECK(s->data != NULL && s->data[s->len] == '\0');
    FUZZ_CHECK(memchr(s->data, '\n', s->len) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const want[] = {"default", "dev"};
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t w, c;
    char why[200];
    int r;

    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    FUZZ_CHECK(close(fd) == 0);
    for (w = 0; w < 2; w++)
        for (c = 0; c < 2; c++) {
            PROFILE p;
            INI st;

            memset(&p, 0, sizeof(p));
            memset(&st, 0, sizeof(st));
            st.want = want[w];
            st.config = (int)c;
            st.prop_indent = -1;
            st.cb = profile_cb;
            st.arg = &p;
            r = ini_read_file(path, &st, why, sizeof(why));
            /* read (1), or a malformed file refused with an error (-1) */
            FUZZ_CHECK(r == 1 || (r == -1 && ERR_peek_error() != 0));
            if (r != 1) {
                profile_free(&p);
                ERR_clear_error();
                continue;
            }
            if (!st.found)
                FUZZ_CHECK(p.akid == NULL && !p.has_secret && !p.has_token &&
                           p.region == NULL && p.role_arn == NULL &&
                           !p.source_profile);
            check_str(p.akid);
            check_str(p.region);
            check_str(p.role_arn);
            check_str(p.wi_file);
            check_str(p.session_name);
            check_sec(&p.secret, p.has_secret);
            check_sec(&p.token, p.has_token);
            profile_free(&p);
        }
    ERR_clear_error();
    return 0;
}
