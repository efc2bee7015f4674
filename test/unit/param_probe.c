/* SPDX-License-Identifier: Apache-2.0 */
/* Drives the provider through the EVP API with hostile and concurrent use:
 *   param_probe PROVIDER_DIR params KEYSET KEK
 *       string OSSL_PARAMs read by data_size: NUL inside a context, a
 *       rewrap keyring or a genpkey keyring is refused; an unterminated
 *       context binds exactly its bytes.
 *   param_probe PROVIDER_DIR race KEYSET THREADS ROUNDS
 *       THREADS threads seal and open records and read key params while
 *       one thread rotates the same key (run under TSan by the suite).
 * Prints "ok ..." / "not ok ..." lines and exits 0 only if all are ok. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "probe.h"

static int failures;

static void check(int ok, const char *what)
{
    printf("%sok - %s\n", ok ? "" : "not ", what);
    if (!ok) {
        failures++;
        ERR_print_errors_fp(stdout);
    }
    ERR_clear_error();
}

static int errors_mention(const char *text)
{
    unsigned long e;
    const char *data;
    int flags, found = 0;
    char buf[256];

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        if (strstr(buf, text) != NULL ||
            ((flags & ERR_TXT_STRING) && strstr(data, text) != NULL))
            found = 1;
    }
    return found;
}

/* A context param of exactly len bytes (no terminator unless counted). */
static int crypt_ctx(EVP_PKEY *pk, int enc, const char *ctx, size_t len,
                     const unsigned char *in, size_t inlen, unsigned char *out,
                     size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    char *copy = malloc(len > 0 ? len : 1);
    OSSL_PARAM p[2];
    size_t cap = *outlen;
    int ok;

    memcpy(copy, ctx, len);
    p[0] = OSSL_PARAM_construct_utf8_string("context", copy, len);
    p[1] = OSSL_PARAM_construct_end();
    ok = c != NULL && (enc ? EVP_PKEY_encrypt_init_ex(c, p)
                           : EVP_PKEY_decrypt_init_ex(c, p));
    if (ok) {
        *outlen = cap;
        ok = enc ? EVP_PKEY_encrypt(c, out, outlen, in, inlen)
                 : EVP_PKEY_decrypt(c, out, outlen, in, inlen);
    }
    free(copy);
    EVP_PKEY_CTX_free(c);
    return ok > 0;
}

static unsigned int primary_of(EVP_PKEY *pk)
{
    unsigned int v = 0;
    OSSL_PARAM q[2] = {OSSL_PARAM_construct_uint("kmsenv-primary-version", &v),
                       OSSL_PARAM_construct_end()};

    return EVP_PKEY_get_params(pk, q) ? v : 0;
}

/* EVP_PKEY_dup gives an independent key: records cross, rotations don't. */
static void dup_checks(EVP_PKEY *pk)
{
    unsigned char rec[256], pt[256];
    size_t rlen = sizeof(rec), plen = sizeof(pt);
    EVP_PKEY *d = EVP_PKEY_dup(pk);
    unsigned int before = primary_of(pk);
    int one = 1;
    OSSL_PARAM rot[2] = {OSSL_PARAM_construct_int("kmsenv-rotate", &one),
                         OSSL_PARAM_construct_end()};

    check(d != NULL, "EVP_PKEY_dup works");
    if (d == NULL)
        return;
    check(crypt_ctx(d, 1, "row=1", 5, (const unsigned char *)"dup", 3, rec,
                    &rlen) &&
              crypt_ctx(pk, 0, "row=1", 5, rec, rlen, pt, &plen) && plen == 3 &&
              memcmp(pt, "dup", 3) == 0,
          "a record sealed with the copy opens with the original");
    check(EVP_PKEY_set_params(d, rot) && primary_of(d) == before + 1 &&
              primary_of(pk) == before,
          "rotating the copy leaves the original's primary alone");
    EVP_PKEY_free(d);
}

static int params_mode(const char *keyset, const char *kek)
{
    static const char nul_ctx[] = "user=alice\0,doc=7";
    unsigned char rec[256], pt[256];
    size_t rlen = sizeof(rec), plen = sizeof(pt);
    char spec[1024], genspec[1024];
    EVP_PKEY *pk = probe_load(keyset), *gen = NULL;
    EVP_PKEY_CTX *g;
    OSSL_PARAM p[2];
    size_t n;

    check(pk != NULL, "keyset loads");
    if (pk == NULL)
        return 1;

    rlen = sizeof(rec);
    check(!crypt_ctx(pk, 1, nul_ctx, sizeof(nul_ctx) - 1,
                     (const unsigned char *)"x", 1, rec, &rlen) &&
              errors_mention("NUL"),
          "context with a NUL inside is refused, naming the NUL");

    rlen = sizeof(rec);
    check(crypt_ctx(pk, 1, "user=alice", 10, (const unsigned char *)"secret", 6,
                    rec, &rlen),
          "unterminated context (data_size 10) seals");
    plen = sizeof(pt);
    check(crypt_ctx(pk, 0, "user=alice", 11, rec, rlen, pt, &plen) &&
              plen == 6 && memcmp(pt, "secret", 6) == 0,
          "it opens under the same text with its terminator counted");
    plen = sizeof(pt);
    check(!crypt_ctx(pk, 0, "user=alice,doc=7", 16, rec, rlen, pt, &plen),
          "it does not open under another context");

    n = (size_t)snprintf(spec, sizeof(spec), "file:%s", kek);
    memcpy(spec + n, "\0;file:/nonexistent", 20);
    p[0] =
        OSSL_PARAM_construct_utf8_string("kmsenv-rewrap-keyring", spec, n + 19);
    p[1] = OSSL_PARAM_construct_end();
    check(!EVP_PKEY_set_params(pk, p) && errors_mention("NUL"),
          "rewrap keyring with a NUL inside is refused");

    memcpy(genspec, spec, n + 20);
    g = EVP_PKEY_CTX_new_from_name(NULL, "KMSENV-KEYSET", NULL);
    p[0] = OSSL_PARAM_construct_utf8_string("keyring", genspec, n + 19);
    check(g != NULL && EVP_PKEY_keygen_init(g) > 0 &&
              (EVP_PKEY_CTX_set_params(g, p) <= 0 ||
               EVP_PKEY_generate(g, &gen) <= 0) &&
              gen == NULL && errors_mention("NUL"),
          "genpkey keyring with a NUL inside is refused");
    p[0] = OSSL_PARAM_construct_utf8_string("keyring", genspec, n);
    check(EVP_PKEY_CTX_set_params(g, p) > 0 && EVP_PKEY_generate(g, &gen) > 0 &&
              gen != NULL,
          "genpkey keyring by data_size (unterminated) generates");
    EVP_PKEY_free(gen);
    EVP_PKEY_CTX_free(g);
    dup_checks(pk);
    EVP_PKEY_free(pk);
    return failures != 0;
}

struct race {
    EVP_PKEY *pk;
    int rounds, ok;
};

static void *worker(void *arg)
{
    struct race *r = arg;
    unsigned char rec[128], pt[128];
    unsigned int primary;
    size_t rlen, plen;
    int i;

    for (i = 0; i < r->rounds; i++) {
        OSSL_PARAM q[2] = {
            OSSL_PARAM_construct_uint("kmsenv-primary-version", &primary),
            OSSL_PARAM_construct_end()};
        rlen = sizeof(rec);
        plen = sizeof(pt);
        if (!crypt_ctx(r->pk, 1, "row=1", 5, (const unsigned char *)"pan", 3,
                       rec, &rlen) ||
            !crypt_ctx(r->pk, 0, "row=1", 5, rec, rlen, pt, &plen) ||
            plen != 3 || !EVP_PKEY_get_params(r->pk, q) ||
            EVP_PKEY_get_bits(r->pk) != 256) {
            r->ok = 0;
            ERR_print_errors_fp(stderr);
            return NULL;
        }
    }
    return NULL;
}

static void *rotator(void *arg)
{
    struct race *r = arg;
    int one = 1, i;
    OSSL_PARAM p[2] = {OSSL_PARAM_construct_int("kmsenv-rotate", &one),
                       OSSL_PARAM_construct_end()};

    for (i = 0; i < r->rounds / 8 + 1; i++)
        if (!EVP_PKEY_set_params(r->pk, p)) {
            r->ok = 0;
            ERR_print_errors_fp(stderr);
            return NULL;
        }
    return NULL;
}

static int race_mode(const char *keyset, int nthreads, int rounds)
{
    pthread_t t[33];
    struct race r = {probe_load(keyset), rounds, 1};
    int i;

    check(r.pk != NULL, "keyset loads");
    if (r.pk == NULL || nthreads < 1 || nthreads > 32)
        return 1;
    for (i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, worker, &r);
    pthread_create(&t[nthreads], NULL, rotator, &r);
    for (i = 0; i <= nthreads; i++)
        pthread_join(t[i], NULL);
    check(r.ok, "records, params and rotation from several threads");
    EVP_PKEY_free(r.pk);
    return failures != 0;
}

typedef struct {
    OSSL_LIB_CTX *l;
    OSSL_PROVIDER *def, *kms;
} INSTANCE;

static int instance_up(INSTANCE *i, const char *dir)
{
    memset(i, 0, sizeof(*i));
    return (i->l = OSSL_LIB_CTX_new()) != NULL &&
           OSSL_PROVIDER_set_default_search_path(i->l, dir) &&
           (i->def = OSSL_PROVIDER_load(i->l, "default")) != NULL &&
           (i->kms = OSSL_PROVIDER_load(i->l, "kmsenv")) != NULL;
}

/* Unloads both providers and frees the context: kmsenv's teardown runs. */
static void instance_down(INSTANCE *i)
{
    OSSL_PROVIDER_unload(i->kms);
    OSSL_PROVIDER_unload(i->def);
    OSSL_LIB_CTX_free(i->l);
    memset(i, 0, sizeof(*i));
}

/* An error raised in l names kmsenv and its reason text. */
static int raises_kmsenv_error(OSSL_LIB_CTX *l)
{
    EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(l, "KMSENV-KEYSET", NULL);
    EVP_PKEY *k = NULL;
    unsigned long e;
    const char *lib, *why;
    int found = 0;

    ERR_clear_error();
    if (g == NULL || EVP_PKEY_keygen_init(g) <= 0 ||
        EVP_PKEY_generate(g, &k) > 0) /* no keyring: must fail */
        found = -1;
    while ((e = ERR_get_error()) != 0) {
        lib = ERR_lib_error_string(e);
        why = ERR_reason_error_string(e);
        if (found == 0 && lib != NULL && strcmp(lib, "kmsenv") == 0 &&
            why != NULL && strstr(why, "no keyring") != NULL)
            found = 1;
    }
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(g);
    return found == 1;
}

/* Two provider instances (two library contexts): when either is torn
 * down, the other's errors still carry its library and reason text. */
static int instances_mode(const char *dir)
{
    INSTANCE a, b, c;

    check(instance_up(&a, dir) && instance_up(&b, dir),
          "kmsenv loads in two library contexts");
    instance_down(&b); /* tears down the newer instance */
    check(raises_kmsenv_error(a.l),
          "after the newer instance is torn down, the older one's errors "
          "name kmsenv and their reason");
    check(instance_up(&c, dir), "a third instance loads");
    instance_down(&a); /* now the older one */
    check(raises_kmsenv_error(c.l),
          "after the older instance is torn down, the newer one's errors "
          "name kmsenv and their reason");
    instance_down(&c);
    return failures != 0;
}

/* After fork(), parent and child sealing with the same (inherited) context
 * never use the same nonce: the nonce pool is per process. */
static int fork_mode(const char *keyset)
{
    EVP_PKEY *pk = probe_load(keyset);
    EVP_PKEY_CTX *c =
        pk != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL) : NULL;
    unsigned char rec[128], kid[128];
    size_t rlen = sizeof(rec);
    int fd[2], round, same = 0, ok = 1;

    check(c != NULL && EVP_PKEY_encrypt_init(c) > 0, "context ready");
    for (round = 0; round < 20 && ok; round++) {
        pid_t pid;
        ssize_t got;

        rlen = sizeof(rec);
        /* draws a pool in the parent before the fork */
        ok = EVP_PKEY_encrypt(c, rec, &rlen, (const unsigned char *)"x", 1) > 0;
        if (!ok || pipe(fd) != 0)
            break;
        if ((pid = fork()) == 0) {
            size_t l = sizeof(rec);
            int w = EVP_PKEY_encrypt(c, rec, &l, (const unsigned char *)"x",
                                     1) > 0 &&
                    write(fd[1], rec, l) == (ssize_t)l;
            _exit(w ? 0 : 1);
        }
        rlen = sizeof(rec);
        ok = EVP_PKEY_encrypt(c, rec, &rlen, (const unsigned char *)"x", 1) > 0;
        close(fd[1]);
        got = read(fd[0], kid, sizeof(kid));
        close(fd[0]);
        waitpid(pid, NULL, 0);
        ok = ok && got == (ssize_t)rlen;
        /* header: "KE" 01 version(4) nonce(24) */
        if (ok && memcmp(rec + 7, kid + 7, 24) == 0)
            same++;
    }
    check(ok, "parent and child seal records after fork");
    check(same == 0, "no nonce is used by both parent and child");
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pk);
    return failures != 0;
}

int main(int argc, char **argv)
{
    OSSL_PROVIDER *def, *kms;
    int rc = 2;

    if (argc == 3 && strcmp(argv[2], "instances") == 0)
        return instances_mode(argv[1]);
    if (argc < 4)
        return 2;
    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    def = OSSL_PROVIDER_load(NULL, "default");
    kms = OSSL_PROVIDER_load(NULL, "kmsenv");
    if (def == NULL || kms == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    if (strcmp(argv[2], "params") == 0 && argc == 5)
        rc = params_mode(argv[3], argv[4]);
    else if (strcmp(argv[2], "fork") == 0 && argc == 4)
        rc = fork_mode(argv[3]);
    else if (strcmp(argv[2], "race") == 0 && argc == 6)
        rc = race_mode(argv[3], atoi(argv[4]), atoi(argv[5]));
    OSSL_PROVIDER_unload(kms);
    OSSL_PROVIDER_unload(def);
    return rc;
}
