/* SPDX-License-Identifier: Apache-2.0 */
/* Loads keysets the way applications do (OSSL_STORE) and uses them, so that
 * the KMS tests can count KMS calls against known work:
 *   kms_probe PROVIDER_DIR records URI N   one load, N record round trips
 *   kms_probe PROVIDER_DIR loads URI N     N loads one after another
 *   kms_probe PROVIDER_DIR threads URI T   T threads load URI at once
 *   kms_probe PROVIDER_DIR fork URI        load, fork; the child uses the
 *                                          parent's key, then loads anew
 *   kms_probe PROVIDER_DIR generate KEYRING  generate a keyset (not saved)
 *   kms_probe PROVIDER_DIR rewrap URI KEYRING  load, rewrap under KEYRING
 *                                          (not saved)
 * KMS_PROBE_SECURE_HEAP=BYTES: CRYPTO_secure_malloc_init(BYTES, 16) first,
 * as an application with a small secure heap does.
 * KMS_PROBE_ALLOW_LOCAL_WRAP=1: rewrap with kmsenv-rewrap-allow-local-wrap.
 * Prints "ok ..." and exits 0 on success; errors go to stderr. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "probe.h"

static int crypt1(EVP_PKEY *pk, int enc, const unsigned char *in, size_t inl,
                  unsigned char *out, size_t *outl)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    OSSL_PARAM p[2];
    int ok;

    p[0] = OSSL_PARAM_construct_utf8_string("context", "probe=1", 0);
    p[1] = OSSL_PARAM_construct_end();
    ok = c != NULL &&
         (enc ? EVP_PKEY_encrypt_init_ex(c, p)
              : EVP_PKEY_decrypt_init_ex(c, p)) > 0 &&
         (enc ? EVP_PKEY_encrypt(c, out, outl, in, inl)
              : EVP_PKEY_decrypt(c, out, outl, in, inl)) > 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

static int round_trip(EVP_PKEY *pk, int i)
{
    unsigned char msg[64], ct[256], pt[256];
    size_t ctl = sizeof(ct), ptl = sizeof(pt);

    snprintf((char *)msg, sizeof(msg), "record %d", i);
    return crypt1(pk, 1, msg, strlen((char *)msg), ct, &ctl) &&
           crypt1(pk, 0, ct, ctl, pt, &ptl) && ptl == strlen((char *)msg) &&
           memcmp(pt, msg, ptl) == 0;
}

static const char *g_uri;

static void *thread_main(void *arg)
{
    EVP_PKEY *pk = probe_load(g_uri);
    long ok = pk != NULL && round_trip(pk, (int)(long)arg);

    if (!ok)
        ERR_print_errors_fp(stderr);
    EVP_PKEY_free(pk);
    OPENSSL_thread_stop();
    return (void *)ok;
}

int main(int argc, char **argv)
{
    OSSL_PROVIDER *def, *kms;
    EVP_PKEY *pk = NULL;
    int n, i, ok = 1;

    const char *heap = getenv("KMS_PROBE_SECURE_HEAP");

    if (argc != 5 && !(argc == 4 && (strcmp(argv[2], "fork") == 0 ||
                                     strcmp(argv[2], "generate") == 0))) {
        fprintf(stderr, "usage: kms_probe DIR records|loads|threads|fork URI "
                        "[N] | generate KEYRING | rewrap URI KEYRING\n");
        return 2;
    }
    if (heap != NULL && *heap != '\0' &&
        CRYPTO_secure_malloc_init((size_t)atol(heap), 16) != 1) {
        fprintf(stderr, "CRYPTO_secure_malloc_init(%s, 16) failed\n", heap);
        return 1;
    }
    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    def = OSSL_PROVIDER_load(NULL, "default");
    kms = OSSL_PROVIDER_load(NULL, "kmsenv");
    if (def == NULL || kms == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    g_uri = argv[3];
    n = argc == 5 ? atoi(argv[4]) : 0;
    if (strcmp(argv[2], "generate") == 0) {
        EVP_PKEY_CTX *c =
            EVP_PKEY_CTX_new_from_name(NULL, "KMSENV-KEYSET", NULL);
        OSSL_PARAM p[2];

        p[0] = OSSL_PARAM_construct_utf8_string("keyring", argv[3], 0);
        p[1] = OSSL_PARAM_construct_end();
        ok = c != NULL && EVP_PKEY_keygen_init(c) > 0 &&
             EVP_PKEY_CTX_set_params(c, p) > 0 && EVP_PKEY_generate(c, &pk) > 0;
        EVP_PKEY_CTX_free(c);
        if (ok)
            printf("ok generate\n");
    } else if (strcmp(argv[2], "rewrap") == 0) {
        const char *al = getenv("KMS_PROBE_ALLOW_LOCAL_WRAP");
        int allow = al != NULL && strcmp(al, "1") == 0;
        OSSL_PARAM p[3];

        p[0] = OSSL_PARAM_construct_utf8_string("kmsenv-rewrap-keyring",
                                                argv[4], 0);
        p[1] =
            OSSL_PARAM_construct_int("kmsenv-rewrap-allow-local-wrap", &allow);
        p[2] = OSSL_PARAM_construct_end();
        ok = (pk = probe_load(g_uri)) != NULL && EVP_PKEY_set_params(pk, p) > 0;
        if (ok)
            printf("ok rewrap\n");
    } else if (strcmp(argv[2], "records") == 0) {
        ok = (pk = probe_load(g_uri)) != NULL;
        for (i = 0; ok && i < n; i++)
            ok = round_trip(pk, i);
        if (ok)
            printf("ok %d records\n", n);
    } else if (strcmp(argv[2], "loads") == 0) {
        for (i = 0; ok && i < n; i++) {
            EVP_PKEY *one = probe_load(g_uri);
            ok = one != NULL && round_trip(one, i);
            EVP_PKEY_free(one);
        }
        if (ok)
            printf("ok %d loads\n", n);
    } else if (strcmp(argv[2], "threads") == 0) {
        pthread_t t[64];
        if (n < 1 || n > 64)
            return 2;
        for (i = 0; i < n; i++)
            if (pthread_create(&t[i], NULL, thread_main, (void *)(long)i) != 0)
                return 1;
        for (i = 0; i < n; i++) {
            void *r = NULL;
            pthread_join(t[i], &r);
            ok = ok && r != NULL;
        }
        if (ok)
            printf("ok %d threads\n", n);
    } else if (strcmp(argv[2], "fork") == 0) {
        pid_t pid;
        int st = 0;
        ok = (pk = probe_load(g_uri)) != NULL && round_trip(pk, 0);
        if (ok) {
            fflush(NULL);
            if ((pid = fork()) < 0)
                return 1;
            if (pid == 0) {
                /* the parent's unwrapped key works without KMS; a new load
                 * builds its own HTTP handle and credentials */
                EVP_PKEY *again;
                int cok = round_trip(pk, 1) &&
                          (again = probe_load(g_uri)) != NULL &&
                          round_trip(again, 2);
                if (!cok)
                    ERR_print_errors_fp(stderr);
                else
                    EVP_PKEY_free(again);
                EVP_PKEY_free(pk);
                OSSL_PROVIDER_unload(kms);
                OSSL_PROVIDER_unload(def);
                _exit(cok ? 0 : 1);
            }
            waitpid(pid, &st, 0);
            ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && round_trip(pk, 3);
            if (ok)
                printf("ok fork\n");
        }
    } else {
        return 2;
    }
    if (!ok)
        ERR_print_errors_fp(stderr);
    EVP_PKEY_free(pk);
    OSSL_PROVIDER_unload(kms);
    OSSL_PROVIDER_unload(def);
    return ok ? 0 : 1;
}
