/* kmsenv: keyset management, a thin client of the provider.
 *
 * It loads a keyset through OpenSSL's decoders (the provider unwraps it),
 * changes it with EVP_PKEY_set_params, and writes it back with the
 * provider's PEM encoder. Rewrites are atomic (temp file, fsync, rename,
 * mode 0600) and serialised with flock(2) on the keyset file, so concurrent
 * rotations never lose a version. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

static const char *prog = "kmsenv";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--provider-path DIR] COMMAND KEYSET [options]\n"
            "commands:\n"
            "  inspect KEYSET                   print metadata (never keys)\n"
            "  rotate KEYSET                    add a primary version; the\n"
            "                                   old primary becomes "
            "decrypt-only\n"
            "  disable KEYSET --version N       refuse records of version N\n"
            "  enable KEYSET --version N        make version N decrypt-only\n"
            "  promote KEYSET --version N       make version N primary\n"
            "  rewrap KEYSET --keyring SPEC     wrap under new KEK(s); data\n"
            "                                   keys are unchanged\n"
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

static EVP_PKEY *load_keyset(int fd, const char *path)
{
    BIO *in = BIO_new_fd(fd, BIO_NOCLOSE);
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx;

    if (in == NULL)
        return NULL;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "KMSENV-KEYSET",
                                         OSSL_KEYMGMT_SELECT_ALL, NULL, NULL);
    if (dctx == NULL || !OSSL_DECODER_from_bio(dctx, in)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(in);
    (void)path;
    return pkey;
}

/* Opens and exclusively locks the file that is at path now (retrying if a
 * concurrent writer renamed a new file over it while we waited). */
static int open_locked(const char *path)
{
    for (;;) {
        struct stat a, b;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX) != 0) {
            close(fd);
            return -1;
        }
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            return fd;
        close(fd);
    }
}

static int write_atomic(const char *path, EVP_PKEY *pkey)
{
    char *d = strdup(path), *tmp = NULL;
    const char *dir;
    BIO *out = NULL;
    int fd = -1, dfd, ok = 0;

    if (d == NULL)
        return 0;
    dir = dirname(d);
    if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, "kmsenv-keyset") < 0) {
        tmp = NULL;
        goto end;
    }
    fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0 || fchmod(fd, 0600) != 0)
        goto end;
    out = BIO_new_fd(fd, BIO_NOCLOSE);
    if (out == NULL ||
        !PEM_write_bio_PrivateKey(out, pkey, NULL, NULL, 0, NULL, NULL) ||
        BIO_flush(out) != 1 || fsync(fd) != 0)
        goto end;
    if (rename(tmp, path) != 0)
        goto end;
    free(tmp);
    tmp = NULL;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    ok = 1;
end:
    if (!ok && errno != 0)
        fprintf(stderr, "%s: writing %s: %s\n", prog, path, strerror(errno));
    BIO_free(out);
    if (fd >= 0)
        close(fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    free(d);
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

int main(int argc, char **argv)
{
    const char *ppath = NULL, *cmd, *path, *keyring = NULL, *vers = NULL;
    OSSL_PROVIDER *pdef = NULL, *pkms = NULL;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM params[2];
    unsigned int version = 0;
    int i = 1, rc = 1, fd = -1, one = 1;

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
        BIO *out = BIO_new_fp(stdout, BIO_NOCLOSE);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (pkey = load_keyset(fd, path)) == NULL) {
            BIO_free(out);
            rc = fail("cannot load keyset", path);
            goto end;
        }
        rc = EVP_PKEY_print_private(out, pkey, 0, NULL) > 0 ? 0 : 1;
        BIO_free(out);
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
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
        usage(stderr);
        rc = 2;
        goto end;
    }
    params[1] = OSSL_PARAM_construct_end();

    fd = open_locked(path);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        goto end;
    }
    if ((pkey = load_keyset(fd, path)) == NULL) {
        rc = fail("cannot load keyset", path);
        goto end;
    }
    if (!EVP_PKEY_set_params(pkey, params)) {
        rc = fail(cmd, "failed");
        goto end;
    }
    if (!write_atomic(path, pkey)) {
        rc = fail("cannot write keyset", path);
        goto end;
    }
    printf("%s: %s done; primary version %u of %u\n", path, cmd,
           get_uint(pkey, "kmsenv-primary-version"),
           get_uint(pkey, "kmsenv-versions"));
    rc = 0;
end:
    if (fd >= 0)
        close(fd); /* releases the lock */
    EVP_PKEY_free(pkey);
    OSSL_PROVIDER_unload(pkms);
    OSSL_PROVIDER_unload(pdef);
    return rc;
}
