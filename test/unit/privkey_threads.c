/* SPDX-License-Identifier: Apache-2.0 */
/* Wrapped private keys used from many threads at once (provider/keys/
 * privkey_ops.c: the inner operation templates are made and published on
 * first use, then EVP_PKEY_CTX_dup'ed concurrently; digest templates are a
 * table of PK_MAX_DIGESTS names per kind, aliases of a digest share one
 * template, names beyond the table get a context of their own).
 *
 *   privkey_threads PROVIDER_DIR THREADS ROUNDS RSA.pem EC.pem ED25519.pem
 *
 * Loads the three wrapped keys through OSSL_STORE (providers default and
 * kmsenv), then THREADS threads start together and, ROUNDS times each, in
 * an order that differs per thread: digest-sign with 12 digest names and
 * aliases (RSA PKCS#1 v1.5 and PSS, ECDSA; Ed25519 without a digest),
 * digest-verify, sign and verify of a hash, RSA decrypt (PKCS#1 v1.5 and
 * OAEP) and ECDH derive. Every result is checked with the default
 * provider: signatures verify with the plain public key, decryption gives
 * back what was encrypted, the derived secret equals the peer's. The suite
 * runs it under ThreadSanitizer (ctest -L threads) and ASan. Prints
 * "ok N - ..." lines and "N passed, N failed". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "harness.h"
#include "probe.h"

#define MAX_THREADS 32

/* More names than the template table holds (8), with aliases. */
static const char *const digests[] = {
    "SHA256",   "SHA2-256",   "SHA-256", "SHA384",   "SHA512", "SHA224",
    "SHA3-256", "SHA512-256", "SHA1",    "SHA2-384", "sha256", "SHA3-512"};
#define NDIGESTS (sizeof(digests) / sizeof(digests[0]))

enum { K_RSA, K_EC, K_ED, NKEYS };
static const char *const key_names[NKEYS] = {"RSA", "EC P-256", "Ed25519"};

static EVP_PKEY *wrapped[NKEYS];   /* kmsenv keys */
static EVP_PKEY *plain_pub[NKEYS]; /* their public keys, default provider */
static int rounds;
static pthread_barrier_t start;

/* Per operation and key: how many ran and how many failed. */
enum { OP_DSIGN, OP_DVERIFY, OP_SIGN, OP_VERIFY, OP_DECRYPT, OP_DERIVE, NOPS };
static const char *const op_names[NOPS] = {
    "digest-sign", "digest-verify", "sign", "verify", "decrypt", "derive"};
static atomic_int done[NKEYS][NOPS], failed[NKEYS][NOPS];
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(int key, int op, int ok, const char *md, int thread)
{
    atomic_fetch_add(&done[key][op], 1);
    if (ok)
        return;
    atomic_fetch_add(&failed[key][op], 1);
    pthread_mutex_lock(&print_lock);
    printf("# thread %d: %s %s%s%s failed\n", thread, key_names[key],
           op_names[op], md != NULL ? " with " : "", md != NULL ? md : "");
    ERR_print_errors_fp(stdout);
    pthread_mutex_unlock(&print_lock);
}

/* Digest-sign msg with the wrapped key (pad: RSA padding or 0), verify
 * with the plain public key. */
static int digest_sign(int key, const char *md, int pad,
                       const unsigned char *msg, size_t n)
{
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
    EVP_PKEY_CTX *sp = NULL, *vp = NULL;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    int ok;

    ok =
        s != NULL && v != NULL &&
        EVP_DigestSignInit_ex(s, &sp, md, NULL, NULL, wrapped[key], NULL) > 0 &&
        (pad == 0 || EVP_PKEY_CTX_set_rsa_padding(sp, pad) > 0) &&
        EVP_DigestSign(s, sig, &siglen, msg, n) > 0 &&
        EVP_DigestVerifyInit_ex(v, &vp, md, NULL, "provider=default",
                                plain_pub[key], NULL) > 0 &&
        (pad == 0 || EVP_PKEY_CTX_set_rsa_padding(vp, pad) > 0) &&
        EVP_DigestVerify(v, sig, siglen, msg, n) == 1;
    EVP_MD_CTX_free(s);
    EVP_MD_CTX_free(v);
    return ok;
}

/* Digest-verify with the wrapped key (its public half, through kmsenv) a
 * signature made by digest-sign; a flipped byte must not verify. */
static int digest_verify(int key, const char *md, const unsigned char *msg,
                         size_t n)
{
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    int ok;

    ok = s != NULL && v != NULL &&
         EVP_DigestSignInit_ex(s, NULL, md, NULL, NULL, wrapped[key], NULL) >
             0 &&
         EVP_DigestSign(s, sig, &siglen, msg, n) > 0 &&
         EVP_DigestVerifyInit_ex(v, NULL, md, NULL, NULL, wrapped[key], NULL) >
             0 &&
         EVP_DigestVerify(v, sig, siglen, msg, n) == 1;
    if (ok) {
        sig[siglen / 2] ^= 1;
        ok = EVP_DigestVerifyInit_ex(v, NULL, md, NULL, NULL, wrapped[key],
                                     NULL) > 0 &&
             EVP_DigestVerify(v, sig, siglen, msg, n) != 1;
        ERR_clear_error();
    }
    EVP_MD_CTX_free(s);
    EVP_MD_CTX_free(v);
    return ok;
}

/* Sign a SHA-256 hash with the wrapped key; verify with the plain public
 * key (which_verify 0) or through kmsenv (1). */
static int sign_hash(int key, const unsigned char *msg, size_t n,
                     int through_kmsenv)
{
    unsigned char h[32], sig[1024];
    size_t siglen = sizeof(sig);
    EVP_PKEY_CTX *s, *v = NULL;
    int ok;

    if (!EVP_Digest(msg, n, h, NULL, EVP_sha256(), NULL))
        return 0;
    s = EVP_PKEY_CTX_new_from_pkey(NULL, wrapped[key], NULL);
    ok = s != NULL && EVP_PKEY_sign_init(s) > 0 &&
         EVP_PKEY_CTX_set_signature_md(s, EVP_sha256()) > 0 &&
         EVP_PKEY_sign(s, sig, &siglen, h, sizeof(h)) > 0;
    if (ok)
        v = through_kmsenv
                ? EVP_PKEY_CTX_new_from_pkey(NULL, wrapped[key], NULL)
                : EVP_PKEY_CTX_new_from_pkey(NULL, plain_pub[key],
                                             "provider=default");
    ok = ok && v != NULL && EVP_PKEY_verify_init(v) > 0 &&
         EVP_PKEY_CTX_set_signature_md(v, EVP_sha256()) > 0 &&
         EVP_PKEY_verify(v, sig, siglen, h, sizeof(h)) == 1;
    EVP_PKEY_CTX_free(s);
    EVP_PKEY_CTX_free(v);
    return ok;
}

/* Encrypt with the plain public key, decrypt with the wrapped key. */
static int decrypt(int pad, const unsigned char *msg, size_t n)
{
    EVP_PKEY_CTX *e =
        EVP_PKEY_CTX_new_from_pkey(NULL, plain_pub[K_RSA], "provider=default");
    EVP_PKEY_CTX *d = EVP_PKEY_CTX_new_from_pkey(NULL, wrapped[K_RSA], NULL);
    unsigned char ct[512], pt[512];
    size_t ctlen = sizeof(ct), ptlen = sizeof(pt);
    int ok;

    ok = e != NULL && d != NULL && EVP_PKEY_encrypt_init(e) > 0 &&
         EVP_PKEY_CTX_set_rsa_padding(e, pad) > 0 &&
         EVP_PKEY_encrypt(e, ct, &ctlen, msg, n) > 0 &&
         EVP_PKEY_decrypt_init(d) > 0 &&
         EVP_PKEY_CTX_set_rsa_padding(d, pad) > 0 &&
         EVP_PKEY_decrypt(d, pt, &ptlen, ct, ctlen) > 0 && ptlen == n &&
         memcmp(pt, msg, n) == 0;
    EVP_PKEY_CTX_free(e);
    EVP_PKEY_CTX_free(d);
    return ok;
}

static int derive_one(EVP_PKEY *priv, EVP_PKEY *peer, const char *propq,
                      unsigned char *out, size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, propq);
    int ok = c != NULL && EVP_PKEY_derive_init(c) > 0 &&
             EVP_PKEY_derive_set_peer(c, peer) > 0 &&
             EVP_PKEY_derive(c, out, outlen) > 0;

    EVP_PKEY_CTX_free(c);
    return ok;
}

/* ECDH: the wrapped key with the peer's public key, and the peer with the
 * wrapped key's plain public key, agree. */
static int derive(EVP_PKEY *peer, EVP_PKEY *peer_pub)
{
    unsigned char a[128], b[128];
    size_t al = sizeof(a), bl = sizeof(b);

    return derive_one(wrapped[K_EC], peer_pub, NULL, a, &al) &&
           derive_one(peer, plain_pub[K_EC], "provider=default", b, &bl) &&
           al == bl && al == 32 && memcmp(a, b, al) == 0;
}

static EVP_PKEY *public_copy(EVP_PKEY *pk, const char *propq)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    EVP_PKEY *pub = NULL;
    int n = i2d_PUBKEY(pk, &der);

    if (n > 0) {
        p = der;
        pub = d2i_PUBKEY_ex(NULL, &p, n, NULL, propq);
    }
    OPENSSL_free(der);
    return pub;
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg, r;
    EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, "provider=default", "EC", "P-256");
    EVP_PKEY *peer_pub = peer != NULL ? public_copy(peer, NULL) : NULL;
    unsigned char msg[64];
    size_t i;

    memset(msg, 'a' + t, sizeof(msg));
    pthread_barrier_wait(&start);
    for (r = 0; r < rounds; r++) {
        msg[0] = (unsigned char)r;
        /* Each thread walks the names from another place, so the first
         * use of each (and the table filling up) races. */
        for (i = 0; i < NDIGESTS; i++) {
            const char *md =
                digests[(i + (size_t)t * 5 + (size_t)r) % NDIGESTS];

            note(K_RSA, OP_DSIGN,
                 digest_sign(K_RSA, md,
                             (t + r + (int)i) % 2 ? RSA_PKCS1_PSS_PADDING
                                                  : RSA_PKCS1_PADDING,
                             msg, sizeof(msg)),
                 md, t);
            note(K_EC, OP_DSIGN, digest_sign(K_EC, md, 0, msg, sizeof(msg)), md,
                 t);
            if ((i + (size_t)t) % 3 == 0) {
                note(K_RSA, OP_DVERIFY,
                     digest_verify(K_RSA, md, msg, sizeof(msg)), md, t);
                note(K_EC, OP_DVERIFY,
                     digest_verify(K_EC, md, msg, sizeof(msg)), md, t);
            }
        }
        note(K_ED, OP_DSIGN, digest_sign(K_ED, NULL, 0, msg, sizeof(msg)), NULL,
             t);
        note(K_ED, OP_DVERIFY, digest_verify(K_ED, NULL, msg, sizeof(msg)),
             NULL, t);
        note(K_RSA, OP_SIGN, sign_hash(K_RSA, msg, sizeof(msg), 0), NULL, t);
        note(K_EC, OP_SIGN, sign_hash(K_EC, msg, sizeof(msg), 0), NULL, t);
        note(K_RSA, OP_VERIFY, sign_hash(K_RSA, msg, sizeof(msg), 1), NULL, t);
        note(K_EC, OP_VERIFY, sign_hash(K_EC, msg, sizeof(msg), 1), NULL, t);
        note(K_RSA, OP_DECRYPT, decrypt(RSA_PKCS1_OAEP_PADDING, msg, 32),
             "OAEP", t);
        note(K_RSA, OP_DECRYPT, decrypt(RSA_PKCS1_PADDING, msg, 48),
             "PKCS#1 v1.5", t);
        note(K_EC, OP_DERIVE, peer_pub != NULL && derive(peer, peer_pub), NULL,
             t);
    }
    EVP_PKEY_free(peer_pub);
    EVP_PKEY_free(peer);
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

int main(int argc, char **argv)
{
    OSSL_PROVIDER *def = NULL, *kms = NULL;
    pthread_t th[MAX_THREADS];
    int nthreads, i, j, started = 0;

    (void)opt_verbose;
    if (argc != 7) {
        fprintf(stderr,
                "usage: %s PROVIDER_DIR THREADS ROUNDS RSA.pem EC.pem "
                "ED25519.pem\n",
                argv[0]);
        return 2;
    }
    nthreads = atoi(argv[2]);
    rounds = atoi(argv[3]);
    if (nthreads < 1 || nthreads > MAX_THREADS || rounds < 1)
        return 2;
    CHECK(OSSL_PROVIDER_set_default_search_path(NULL, argv[1]) &&
              (def = OSSL_PROVIDER_load(NULL, "default")) != NULL &&
              (kms = OSSL_PROVIDER_load(NULL, "kmsenv")) != NULL,
          "providers default and kmsenv loaded");
    for (i = 0; i < NKEYS; i++) {
        const OSSL_PROVIDER *p;

        wrapped[i] = probe_load(argv[4 + i]);
        p = wrapped[i] != NULL ? EVP_PKEY_get0_provider(wrapped[i]) : NULL;
        CHECK(p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "kmsenv") == 0,
              "%s: the wrapped key loads as a kmsenv key", key_names[i]);
        plain_pub[i] = wrapped[i] != NULL
                           ? public_copy(wrapped[i], "provider=default")
                           : NULL;
        CHECK(plain_pub[i] != NULL, "%s: its public key, default provider",
              key_names[i]);
    }
    if (n_failed > 0)
        goto end;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0)
            started++;
    CHECK(started == nthreads, "%d threads started", nthreads);
    if (started != nthreads) /* the barrier would wait for ever */
        return harness_done();
    for (i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (i = 0; i < NKEYS; i++)
        for (j = 0; j < NOPS; j++) {
            int n = atomic_load(&done[i][j]), f = atomic_load(&failed[i][j]);

            if (n > 0)
                CHECK(f == 0, "%s: %d %s from %d threads, %d failed",
                      key_names[i], n, op_names[j], nthreads, f);
        }
    CHECK(atomic_load(&done[K_RSA][OP_DSIGN]) ==
              nthreads * rounds * (int)NDIGESTS,
          "every RSA digest-sign ran");
end:
    for (i = 0; i < NKEYS; i++) {
        EVP_PKEY_free(wrapped[i]);
        EVP_PKEY_free(plain_pub[i]);
    }
    OSSL_PROVIDER_unload(kms);
    OSSL_PROVIDER_unload(def);
    return harness_done();
}
