/* SPDX-License-Identifier: Apache-2.0 */
/* The AWS shared credentials / config file reader (kms/ini.h). */
#include "kms/ini.h"
#include "kms/creds.h"
#include "util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define INI_MAX_LINE (256 * 1024) /* longer lines are an error */
#define INI_CHUNK 4096            /* secure read chunk */

static int section_is(const INI *st, const char *name, size_t n)
{
    size_t wl = strlen(st->want);

    if (!st->config)
        return n == wl && memcmp(name, st->want, n) == 0;
    if (n == 7 && memcmp(name, "default", 7) == 0)
        return strcmp(st->want, "default") == 0;
    if (n > 8 && memcmp(name, "profile", 7) == 0 &&
        is_ws((unsigned char)name[7])) {
        name += 7, n -= 7;
        trim(&name, &n);
        return n == wl && memcmp(name, st->want, n) == 0;
    }
    return 0;
}

/* Raises "AWS shared credentials file PATH line N: WHY". Line contents are
 * never shown (a malformed line may hold a secret). */
__attribute__((format(printf, 2, 3))) static int ini_fail(const INI *st,
                                                          const char *fmt, ...)
{
    char why[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    KMSENV_RAISE(CRED_R,
                 "AWS shared %s file %s line %ld: %s (looking for profile "
                 "'%s'; the file is not used until it is fixed)",
                 st->config ? "config" : "credentials", st->path, st->lineno,
                 why, st->want);
    return 0;
}

/* One line (without its '\n'). Grammar of the AWS shared files as
 * botocore's configparser reads them: '#'/';' comment lines, [section],
 * key = value (or key: value), inline comments after whitespace, indented
 * continuation lines (sub-properties) belong to the previous property and
 * are ignored. Keys are case-insensitive, section names are not. What
 * configparser refuses (a setting before any section, a line that is none
 * of these, the wanted section twice) is an error for the whole file, as in
 * botocore (ConfigParseError). Returns 0 on a raised error. */
static int ini_line(INI *st, const char *line, size_t len)
{
    const char *k, *v, *close, *eq, *colon;
    size_t i = 0, kl, vl, j;
    int r;

    if (memchr(line, '\0', len) != NULL)
        return ini_fail(st, "NUL byte (not a text file?)");
    while (len > 0 && is_ws((unsigned char)line[len - 1]))
        len--;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] == '#' || line[i] == ';')
        return 1;
    if (line[i] == '[') {
        st->prop_indent = -1;
        st->in_want = 0;
        close = memchr(line + i + 1, ']', len - i - 1);
        k = line + i + 1;
        kl = close != NULL ? (size_t)(close - k) : 0;
        trim(&k, &kl);
        if (close == NULL || kl == 0)
            return ini_fail(st, "malformed [section] header");
        st->in_section = 1;
        st->in_want = section_is(st, k, kl);
        if (st->in_want && st->found)
            return ini_fail(st, "a second [%s%s] section",
                            st->config && strcmp(st->want, "default") != 0
                                ? "profile "
                                : "",
                            st->want);
        st->found |= st->in_want;
        return 1;
    }
    if (st->prop_indent >= 0 && (long)i > st->prop_indent)
        return 1; /* continuation */
    eq = memchr(line + i, '=', len - i);
    colon = memchr(line + i, ':', len - i);
    if (eq == NULL || (colon != NULL && colon < eq))
        eq = colon;
    if (!st->in_section)
        return ini_fail(st, "a setting before any [section] header");
    k = line + i;
    kl = eq != NULL ? (size_t)(eq - k) : 0;
    trim(&k, &kl);
    if (eq == NULL || kl == 0)
        return ini_fail(st, "neither 'key = value', a [section] header nor "
                            "a comment");
    st->prop_indent = (long)i;
    v = eq + 1;
    vl = (size_t)(line + len - v);
    for (j = 1; j < vl; j++)
        if ((v[j] == '#' || v[j] == ';') && is_ws((unsigned char)v[j - 1])) {
            vl = j;
            break;
        }
    trim(&v, &vl);
    if (!st->in_want)
        return 1;
    r = st->cb(st->arg, k, kl, v, vl);
    if (r < 0) {
        char shown[48];

        printable(shown, sizeof(shown), k, kl);
        return ini_fail(st, "'%s' set twice in the profile", shown);
    }
    return r;
}

/* Reads PATH through secure memory, line by line. Returns 1 when read, 0
 * when absent or unreadable (why says so; nothing raised), -1 on a raised
 * error (allocation, malformed file). */
int ini_read_file(const char *path, INI *st, char *why, size_t whylen)
{
    KMSENV_SECRET chunk = {NULL, 0};
    KMSENV_BUF line = {.secure = 1};
    struct stat sb;
    ssize_t n;
    const char *p, *nl;
    size_t rem, take;
    int fd, ret = -1;

    why[0] = '\0';
    st->path = path;
    st->lineno = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "%s",
                 errno == ENOENT || errno == ENOTDIR ? "does not exist"
                                                     : strerror(errno));
        return 0;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, whylen, "is not a regular file");
        close(fd);
        return 0;
    }
    if (!kmsenv_secret_alloc(&chunk, INI_CHUNK) || !bapp(&line, "", 0))
        goto done;
    for (;;) {
        n = kmsenv_read_some(fd, chunk.data, INI_CHUNK, why, whylen);
        if (n < 0) {
            ret = 0;
            goto done;
        }
        if (n == 0)
            break;
        p = (const char *)chunk.data;
        rem = (size_t)n;
        while (rem > 0) {
            nl = memchr(p, '\n', rem);
            take = nl != NULL ? (size_t)(nl - p) : rem;
            if (line.len + take > INI_MAX_LINE) {
                /* no silent skipping: what it holds is unknown */
                st->lineno++;
                ini_fail(st, "longer than %d bytes", INI_MAX_LINE);
                goto done;
            }
            if (!bapp(&line, p, take))
                goto done;
            if (nl == NULL)
                break;
            st->lineno++;
            if (!ini_line(st, line.data, line.len))
                goto done;
            kmsenv_buf_reset(&line);
            p = nl + 1;
            rem -= take + 1;
        }
    }
    if (line.len > 0) {
        st->lineno++;
        if (!ini_line(st, line.data, line.len))
            goto done;
    }
    ret = 1;
done:
    close(fd);
    kmsenv_buf_free(&line);
    kmsenv_secret_free(&chunk);
    return ret;
}
