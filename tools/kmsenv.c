/* SPDX-License-Identifier: Apache-2.0 */
/* kmsenv: keyset management, a thin client of the provider.
 *
 * It loads a keyset (PEM or DER) through OpenSSL's decoders (the provider
 * unwraps it), changes it with EVP_PKEY_set_params, and writes it back in
 * the same form with the provider's encoders. In a PEM file only the
 * kmsenv block is replaced: other blocks and text around it (a certificate
 * in a combined file) stay byte for byte (tools/pemblock.h).
 *
 * Files: the keyset path is resolved (symlinks, however many, are followed:
 * the file applications read is the one rewritten, the links stay). It is
 * opened non-blocking and must be a regular file of at most 1 MiB. Rewrites
 * are serialised with flock(2) on the keyset file, so concurrent rotations
 * never lose a version, and are atomic: the new content goes to an unnamed
 * O_TMPFILE (or, where that is unsupported, a named temp file) in the
 * keyset's directory, gets the original's owner, group and mode, is fsynced,
 * linked in and renamed over the keyset; then the directory is fsynced.
 * Temp files a killed run left behind are removed by the next run, under the
 * lock. */
#define _GNU_SOURCE
#include "tools/pemblock.h"
#include "tools/wrap.h"
#include "tools/wrapped.h"
#include "util/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#define KEYSET_MAX (1024 * 1024) /* bytes; larger files are refused */
/* Temp files: TMP_PREFIX + keyset name (at most TMP_NAME_MAX bytes of it) +
 * "." + TMP_RAND random characters. Earlier kmsenv versions named them
 * TMP_PREFIX + TMP_RAND characters ("legacy"). */
#define TMP_PREFIX ".kmsenv-keyset."
#define TMP_NAME_MAX 200
#define TMP_RAND 6
#define LEGACY_STALE_SECS 600

static const char *prog = "kmsenv";

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: %s [--provider-path DIR] COMMAND KEYSET [options]\n"
        "commands:\n"
        "  inspect KEYSET                   print metadata (never keys)\n"
        "  rotate KEYSET                    add a primary version; the\n"
        "                                   old primary becomes "
        "decrypt-only\n"
        "  disable KEYSET --version N       refuse records of version N\n"
        "  enable KEYSET --version N        make version N decrypt-only\n"
        "  promote KEYSET --version N       make version N primary\n"
        "  wrap --in KEY|--generate TYPE --out FILE [--keyring SPEC]\n"
        "                                   wrap a private key (kmsenv wrap\n"
        "                                   for the details)\n"
        "  rewrap KEYSET --keyring SPEC     wrap under new KEK(s); data\n"
        "                                   keys are unchanged\n"
        "    [--allow-local-wrap]           if ReEncrypt fails, wrap\n"
        "                                   locally (else an error)\n"
        "KEYSET is PEM or DER and is rewritten in the same form; other\n"
        "PEM blocks and text in the file stay as they are. A\n"
        "wrapped private key (kmsenv wrap) takes inspect and rewrap. A\n"
        "symlink is followed and its target rewritten.\n"
        "The provider is found in --provider-path, OPENSSL_MODULES or\n"
        "OpenSSL's modules directory.\n",
        prog);
}

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "%s: %s%s%s\n", prog, what, path ? " " : "",
            path ? path : "");
    ERR_print_errors_fp(stderr);
    return 1;
}

static EVP_PKEY *load_keyset(const unsigned char *buf, size_t len,
                             const char *form)
{
    BIO *in = BIO_new_mem_buf(buf, (int)len);
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx;

    if (in == NULL)
        return NULL;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, form, NULL, "KMSENV-KEYSET",
                                         OSSL_KEYMGMT_SELECT_ALL, NULL, NULL);
    if (dctx == NULL || !OSSL_DECODER_from_bio(dctx, in)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(in);
    return pkey;
}

/* The wrapped keyset in form (PEM or DER), in OPENSSL_malloc'd memory. */
static int encode_keyset(EVP_PKEY *pkey, const char *form, unsigned char **out,
                         size_t *outlen)
{
    OSSL_ENCODER_CTX *ectx = OSSL_ENCODER_CTX_new_for_pkey(
        pkey, OSSL_KEYMGMT_SELECT_ALL, form, "PrivateKeyInfo", NULL);
    int ok = ectx != NULL && OSSL_ENCODER_CTX_get_num_encoders(ectx) > 0 &&
             OSSL_ENCODER_to_data(ectx, out, outlen);

    OSSL_ENCODER_CTX_free(ectx);
    return ok;
}

/* Reads all of fd (a regular file, see kmsenv_open_regular) into malloc'd
 * memory; a file over KEYSET_MAX bytes is refused, never truncated. The
 * content is the wrapped keyset: no secret. */
static int read_bounded(int fd, const char *path, unsigned char **buf,
                        size_t *len)
{
    struct stat st;
    unsigned char *b;
    size_t got = 0;
    ssize_t n;

    *buf = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 0;
    }
    if (st.st_size > KEYSET_MAX) {
        fprintf(stderr, "%s: %s: is %lld bytes, larger than the limit of %d\n",
                prog, path, (long long)st.st_size, KEYSET_MAX);
        return 0;
    }
    if ((b = malloc(KEYSET_MAX + 1)) == NULL) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, path);
        return 0;
    }
    for (;;) {
        n = read(fd, b + got, KEYSET_MAX + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: %s: read error: %s\n", prog, path,
                    strerror(errno));
            break;
        }
        if (n == 0) {
            *buf = b;
            *len = got;
            return 1;
        }
        got += (size_t)n;
        if (got > KEYSET_MAX) {
            fprintf(stderr, "%s: %s: is larger than the limit of %d bytes\n",
                    prog, path, KEYSET_MAX);
            break;
        }
    }
    free(b);
    return 0;
}

/* Opens (non-blocking, regular files only) and exclusively locks the file
 * that is at path now, retrying if a concurrent writer renamed a new file
 * over it while we waited. *st describes the locked file. */
static int open_locked(const char *path, struct stat *st)
{
    char why[256];

    for (;;) {
        struct stat b;
        int fd = kmsenv_open_regular(path, st, why, sizeof(why));

        if (fd < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, path, why);
            return -1;
        }
        if (flock(fd, LOCK_EX) != 0) {
            fprintf(stderr, "%s: %s: lock: %s\n", prog, path, strerror(errno));
            close(fd);
            return -1;
        }
        if (fstat(fd, st) == 0 && stat(path, &b) == 0 &&
            st->st_dev == b.st_dev && st->st_ino == b.st_ino)
            return fd;
        close(fd);
    }
}

/* The temp file name prefix for keyset name base: TMP_PREFIX + base (cut). */
static void tmp_prefix(char *p, size_t plen, const char *base)
{
    snprintf(p, plen, "%s%.*s.", TMP_PREFIX, TMP_NAME_MAX, base);
}

static int is_rand_suffix(const char *s)
{
    size_t i;

    for (i = 0; i < TMP_RAND; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return s[TMP_RAND] == '\0';
}

static int make_tmp_name(char *name, size_t namelen, const char *prefix)
{
    static const char al[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[TMP_RAND];
    char s[TMP_RAND + 1];
    size_t i;

    if (RAND_bytes(r, sizeof(r)) != 1)
        return 0;
    for (i = 0; i < TMP_RAND; i++)
        s[i] = al[r[i] % (sizeof(al) - 1)];
    s[TMP_RAND] = '\0';
    return snprintf(name, namelen, "%s%s", prefix, s) < (int)namelen;
}

/* Under the keyset's lock, nobody else writes its temp files: any that exist
 * were left by a killed run. Legacy names do not say which keyset they
 * belong to, so they are removed only once clearly stale. Only regular
 * files with exactly these names are touched. */
static void clean_stale(int dfd, const char *dir, const char *prefix)
{
    size_t pl = strlen(prefix), ll = strlen(TMP_PREFIX);
    time_t now = time(NULL);
    struct dirent *e;
    struct stat st;
    DIR *dh;
    int d2 = dup(dfd);

    if (d2 < 0 || (dh = fdopendir(d2)) == NULL) {
        if (d2 >= 0)
            close(d2);
        return;
    }
    while ((e = readdir(dh)) != NULL) {
        const char *n = e->d_name;
        int ours = strncmp(n, prefix, pl) == 0 && is_rand_suffix(n + pl);
        int legacy = strncmp(n, TMP_PREFIX, ll) == 0 && is_rand_suffix(n + ll);

        if (!ours && !legacy)
            continue;
        if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) ||
            (!ours && st.st_mtime > now - LEGACY_STALE_SECS))
            continue;
        if (unlinkat(dfd, n, 0) == 0)
            fprintf(stderr,
                    "%s: removed %s/%s, a temp file left by an interrupted "
                    "run\n",
                    prog, dir, n);
    }
    closedir(dh);
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        buf += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Content, then the original's owner, group and mode (chown first: it may
 * clear set-id bits), then fsync. */
static const char *fill_tmp(int fd, const unsigned char *buf, size_t len,
                            const struct stat *orig)
{
    struct stat st;

    if (!write_all(fd, buf, len))
        return "write";
    if (fstat(fd, &st) != 0)
        return "fstat";
    if ((st.st_uid != orig->st_uid || st.st_gid != orig->st_gid) &&
        fchown(fd, orig->st_uid, orig->st_gid) != 0)
        return "keeping its owner and group";
    if (fchmod(fd, orig->st_mode & 07777) != 0)
        return "keeping its mode";
    if (fsync(fd) != 0)
        return "fsync";
    return NULL;
}

/* Gives the unnamed file fd the name name in dfd. */
static int link_tmpfile(int fd, int dfd, const char *name)
{
    char proc[64];

    if (linkat(fd, "", dfd, name, AT_EMPTY_PATH) == 0)
        return 1;
    if (errno == EEXIST)
        return 0;
    /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc does not. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) == 0;
}

/* Writes a named temp file in dfd with the content, returning 1 with its
 * name in name, or 0 with errno and *step set. */
static int write_tmp(int dfd, const char *prefix, char *name, size_t namelen,
                     const unsigned char *buf, size_t len,
                     const struct stat *orig, const char **step)
{
    int fd, tries, err;

    /* Unnamed first: a run killed before the link leaves nothing behind. */
    fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if ((*step = fill_tmp(fd, buf, len, orig)) != NULL) {
            err = errno;
            close(fd);
            errno = err;
            return 0;
        }
        for (tries = 0; tries < 100; tries++) {
            if (!make_tmp_name(name, namelen, prefix)) {
                close(fd);
                *step = "generating a temp file name";
                errno = EIO;
                return 0;
            }
            if (link_tmpfile(fd, dfd, name)) {
                close(fd);
                return 1;
            }
            if (errno != EEXIST)
                break;
        }
        close(fd); /* no link possible: fall back to a named temp file */
    }
    for (tries = 0; tries < 100; tries++) {
        if (!make_tmp_name(name, namelen, prefix)) {
            *step = "generating a temp file name";
            errno = EIO;
            return 0;
        }
        fd = openat(dfd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        *step = "creating a temp file";
        return 0;
    }
    if ((*step = fill_tmp(fd, buf, len, orig)) != NULL) {
        err = errno;
        close(fd);
        unlinkat(dfd, name, 0);
        errno = err;
        return 0;
    }
    close(fd);
    return 1;
}

/* Replaces real (a resolved path, locked by the caller, described by orig)
 * with buf. */
static int write_atomic(const char *real, const unsigned char *buf, size_t len,
                        const struct stat *orig)
{
    char *d = strdup(real), *b = strdup(real);
    char prefix[NAME_MAX + 1], name[NAME_MAX + 1];
    const char *dir, *base, *step = "opening the directory";
    int dfd = -1, ok = 0, renamed = 0;

    if (d == NULL || b == NULL) {
        free(d);
        free(b);
        fprintf(stderr, "%s: %s: out of memory\n", prog, real);
        return 0;
    }
    dir = dirname(d);
    base = basename(b);
    tmp_prefix(prefix, sizeof(prefix), base);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        goto end;
    clean_stale(dfd, dir, prefix);
    if (!write_tmp(dfd, prefix, name, sizeof(name), buf, len, orig, &step))
        goto end;
    if (renameat(dfd, name, dfd, base) != 0) {
        int err = errno;

        unlinkat(dfd, name, 0);
        errno = err;
        step = "rename";
        goto end;
    }
    renamed = 1;
    if (fsync(dfd) != 0) {
        step = "fsync of the directory";
        goto end;
    }
    ok = 1;
end:
    if (!ok)
        fprintf(stderr, "%s: writing %s (owner %lu:%lu, mode %04o): %s: %s%s\n",
                prog, real, (unsigned long)orig->st_uid,
                (unsigned long)orig->st_gid, (unsigned)(orig->st_mode & 07777),
                step, strerror(errno),
                renamed ? "" : "; the keyset is unchanged");
    if (dfd >= 0)
        close(dfd);
    free(d);
    free(b);
    return ok;
}

static unsigned int get_uint(EVP_PKEY *pkey, const char *name)
{
    unsigned int v = 0;
    OSSL_PARAM p[2] = {OSSL_PARAM_uint((char *)name, &v), OSSL_PARAM_END};

    EVP_PKEY_get_params(pkey, p);
    return v;
}

static int parse_version(const char *s, unsigned int *v)
{
    char *end;
    unsigned long l;

    errno = 0;
    l = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || l == 0 || l > 0xffffffffUL)
        return 0;
    *v = (unsigned int)l;
    return 1;
}

static int inspect(const char *path)
{
    BIO *out = BIO_new_fp(stdout, BIO_NOCLOSE);
    unsigned char *buf = NULL, *text = NULL;
    size_t len = 0, textlen = 0;
    EVP_PKEY *pkey = NULL;
    KMSENV_FILE_BLOCK blk;
    struct stat st;
    char why[256];
    int fd, rc = 1;

    fd = kmsenv_open_regular(path, &st, why, sizeof(why));
    if (fd < 0)
        fprintf(stderr, "%s: %s: %s\n", prog, path, why);
    else if (!read_bounded(fd, path, &buf, &len) ||
             !kmsenv_block_find(prog, path, buf, len, &blk))
        ;
    else if (!kmsenv_block_text(&blk, buf, &text, &textlen))
        fprintf(stderr, "%s: %s: out of memory\n", prog, path);
    else if (kmsenv_block_is_wrapped(&blk))
        rc = kmsenv_wrapped_inspect(prog, path, text, textlen, stdout);
    else if ((pkey = load_keyset(text, textlen, blk.der ? "DER" : "PEM")) ==
             NULL)
        fail("cannot load keyset", path);
    else if (out != NULL)
        rc = EVP_PKEY_print_private(out, pkey, 0, NULL) > 0 ? 0 : 1;
    if (fd >= 0)
        close(fd);
    EVP_PKEY_free(pkey);
    free(text);
    free(buf);
    BIO_free(out);
    return rc;
}

/* Lock, load the file's kmsenv block, change it, write it back in the same
 * form in place: every byte around the block stays (pemblock.h). */
static int modify(const char *path, const char *cmd, OSSL_PARAM *params,
                  const char *keyring, int allow_local)
{
    unsigned char *buf = NULL, *text = NULL, *enc = NULL, *nbuf = NULL;
    size_t len = 0, textlen = 0, enclen = 0, nlen = 0, nkeks = 0;
    const char *form;
    EVP_PKEY *pkey = NULL;
    KMSENV_FILE_BLOCK blk;
    struct stat st;
    char *real;
    int fd = -1, rc = 1, wrapped;

    /* The file applications read: a symlink (chain) is not replaced. */
    if ((real = realpath(path, NULL)) == NULL) {
        fprintf(stderr, "%s: %s: %s\n", prog, path,
                errno == ENOENT ? "does not exist" : strerror(errno));
        return 1;
    }
    if ((fd = open_locked(real, &st)) < 0 ||
        !read_bounded(fd, real, &buf, &len) ||
        !kmsenv_block_find(prog, path, buf, len, &blk))
        goto end;
    if (!kmsenv_block_text(&blk, buf, &text, &textlen)) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, path);
        goto end;
    }
    form = blk.der ? "DER" : "PEM";
    wrapped = kmsenv_block_is_wrapped(&blk);
    if (wrapped && strcmp(cmd, "rewrap") != 0) {
        fprintf(stderr,
                "%s: %s: is a wrapped private key (KMSENV WRAPPED "
                "PRIVATE KEY), not a keyset: it has no versions to %s "
                "(kmsenv inspect and rewrap work on it)\n",
                prog, path, cmd);
        goto end;
    }
    ERR_clear_error(); /* what is left after the change is about it */
    if (wrapped) {
        if (!kmsenv_wrapped_rewrap(prog, path, text, textlen, form, keyring,
                                   allow_local, &enc, &enclen, &nkeks))
            goto end;
    } else {
        if ((pkey = load_keyset(text, textlen, form)) == NULL) {
            rc = fail("cannot load keyset", path);
            goto end;
        }
        ERR_clear_error();
        if (!EVP_PKEY_set_params(pkey, params)) {
            rc = fail(cmd, "failed");
            goto end;
        }
    }
    if (ERR_peek_error() != 0) { /* e.g. a rewrap that fell back */
        fprintf(stderr, "%s: %s %s: warning:\n", prog, cmd, path);
        ERR_print_errors_fp(stderr);
    }
    if (!wrapped && !encode_keyset(pkey, form, &enc, &enclen)) {
        rc = fail("cannot encode keyset", path);
        goto end;
    }
    if (!kmsenv_block_splice(&blk, buf, len, enc, enclen, &nbuf, &nlen)) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, path);
        goto end;
    }
    if (!write_atomic(real, nbuf, nlen, &st)) {
        rc = fail(wrapped ? "cannot write wrapped private key"
                          : "cannot write keyset",
                  path);
        goto end;
    }
    if (wrapped)
        printf("%s: rewrap done; wrapped private key under %zu KEK%s\n", path,
               nkeks, nkeks == 1 ? "" : "s");
    else
        printf("%s: %s done; primary version %u of %u\n", path, cmd,
               get_uint(pkey, "kmsenv-primary-version"),
               get_uint(pkey, "kmsenv-versions"));
    rc = 0;
end:
    if (fd >= 0)
        close(fd); /* releases the lock */
    EVP_PKEY_free(pkey);
    OPENSSL_free(enc);
    free(nbuf);
    free(text);
    free(buf);
    free(real);
    return rc;
}

int main(int argc, char **argv)
{
    const char *ppath = NULL, *cmd, *path, *keyring = NULL, *vers = NULL;
    OSSL_PROVIDER *pdef = NULL, *pkms = NULL;
    OSSL_PARAM params[3];
    unsigned int version = 0;
    int i = 1, rc = 1, one = 1, allow_local = 0;

    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--provider-path") == 0 && i + 1 < argc) {
            ppath = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i < argc && strcmp(argv[i], "wrap") == 0) {
        if (ppath != NULL &&
            !OSSL_PROVIDER_set_default_search_path(NULL, ppath))
            return fail("cannot set provider path", ppath);
        pdef = OSSL_PROVIDER_load(NULL, "default");
        pkms = OSSL_PROVIDER_load(NULL, "kmsenv");
        rc = pdef == NULL || pkms == NULL
                 ? fail("cannot load the default and kmsenv providers", NULL)
                 : kmsenv_wrap_main(prog, argc - i - 1, argv + i + 1);
        goto end;
    }
    if (argc - i < 2) {
        usage(stderr);
        return 2;
    }
    cmd = argv[i];
    path = argv[i + 1];
    for (i += 2; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 && i + 1 < argc)
            vers = argv[++i];
        else if (strcmp(argv[i], "--keyring") == 0 && i + 1 < argc)
            keyring = argv[++i];
        else if (strcmp(argv[i], "--allow-local-wrap") == 0)
            allow_local = 1;
        else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (vers != NULL && !parse_version(vers, &version)) {
        fprintf(stderr, "%s: --version takes a positive version number\n",
                prog);
        return 2;
    }
    if (ppath != NULL && !OSSL_PROVIDER_set_default_search_path(NULL, ppath))
        return fail("cannot set provider path", ppath);
    pdef = OSSL_PROVIDER_load(NULL, "default");
    pkms = OSSL_PROVIDER_load(NULL, "kmsenv");
    if (pdef == NULL || pkms == NULL) {
        rc = fail("cannot load the default and kmsenv providers", NULL);
        goto end;
    }

    if (strcmp(cmd, "inspect") == 0) {
        rc = inspect(path);
        goto end;
    }
    if (strcmp(cmd, "rotate") == 0) {
        params[0] = OSSL_PARAM_construct_int("kmsenv-rotate", &one);
    } else if (strcmp(cmd, "disable") == 0 || strcmp(cmd, "enable") == 0 ||
               strcmp(cmd, "promote") == 0) {
        if (vers == NULL) {
            fprintf(stderr, "%s: %s needs --version N\n", prog, cmd);
            rc = 2;
            goto end;
        }
        params[0] =
            OSSL_PARAM_construct_uint(cmd[0] == 'd'   ? "kmsenv-disable-version"
                                      : cmd[0] == 'e' ? "kmsenv-enable-version"
                                                      : "kmsenv-make-primary",
                                      &version);
    } else if (strcmp(cmd, "rewrap") == 0) {
        if (keyring == NULL) {
            fprintf(stderr, "%s: rewrap needs --keyring SPEC\n", prog);
            rc = 2;
            goto end;
        }
        params[0] = OSSL_PARAM_construct_utf8_string("kmsenv-rewrap-keyring",
                                                     (char *)keyring, 0);
        params[1] = OSSL_PARAM_construct_int("kmsenv-rewrap-allow-local-wrap",
                                             &allow_local);
        params[2] = OSSL_PARAM_construct_end();
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
        usage(stderr);
        rc = 2;
        goto end;
    }
    if (strcmp(cmd, "rewrap") != 0)
        params[1] = OSSL_PARAM_construct_end();
    if (allow_local && strcmp(cmd, "rewrap") != 0) {
        fprintf(stderr, "%s: --allow-local-wrap is for rewrap\n", prog);
        rc = 2;
        goto end;
    }
    rc = modify(path, cmd, params, keyring, allow_local);
end:
    OSSL_PROVIDER_unload(pkms);
    OSSL_PROVIDER_unload(pdef);
    return rc;
}
