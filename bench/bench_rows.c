/* SPDX-License-Identifier: Apache-2.0 */
/* bench_rows: records as real callers make them, one row at a time, each
 * row under its own encryption context (table=cards,row=N), from 1 and from
 * 8 threads, against raw AES-256-GCM measured in the same run:
 *
 *   raw      a fresh EVP_CIPHER_CTX pair per row, random 12-byte IV, the
 *            row's context text as AAD (what hand-written glue does)
 *   reused   kmsenv, one EVP_PKEY_CTX pair per thread; each row replaces the
 *            context with "kmsenv-replace-context" (no re-init)
 *   fresh    kmsenv, a new EVP_PKEY_CTX pair per row, the context passed to
 *            EVP_PKEY_encrypt_init_ex/decrypt_init_ex
 *   floor    OpenSSL's own cost of creating, initialising and freeing two
 *            EVP_PKEY_CTXs (an RSA key's encrypt/decrypt init: no crypto)
 *
 * One op is one encryption plus one decryption of a 64-byte row, checked.
 *   bench_rows [BUILD_DIR [SECONDS]]   ($BENCH_ROUNDS rounds, best kept)
 * Exit status 0 when every operation succeeded, whether or not the goals
 * are met (a benchmark, not a test). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "bench_common.h"

#define NAME "bench_rows"
#define MSG_LEN 64
#define BUF_LEN 256
#define MAX_THREADS 8
#define CHECK_EVERY 32

enum { P_RAW, P_REUSED, P_FRESH, P_FLOOR, NPAT };
static const char *const pat_name[NPAT] = {
    "raw GCM, fresh ctx", "kmsenv, reused ctx", "kmsenv, fresh ctx",
    "OpenSSL floor (2 ctx)"};

static OSSL_LIB_CTX *libctx;
static EVP_PKEY *keyset, *rsa;
static EVP_CIPHER *gcm;
static unsigned char raw_key[32];

typedef struct {
    int pat;
    double secs;
    uint64_t ops, base;
    int ok;
    EVP_PKEY_CTX *ectx, *dctx; /* P_REUSED */
} WORKER;

static void fill(unsigned char pt[MSG_LEN], uint64_t i)
{
    memset(pt, 0xA5, MSG_LEN);
    memcpy(pt, &i, sizeof(i));
}

static int raw_op(uint64_t row)
{
    unsigned char pt[MSG_LEN], ct[MSG_LEN], out[MSG_LEN], iv[12], tag[16];
    char aad[64];
    int alen = snprintf(aad, sizeof(aad), "table=cards,row=%llu",
                        (unsigned long long)row);
    EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new(), *d = EVP_CIPHER_CTX_new();
    int l = 0, f = 0, ok;

    fill(pt, row);
    ok = e != NULL && d != NULL && RAND_bytes_ex(libctx, iv, 12, 0) > 0 &&
         EVP_EncryptInit_ex2(e, gcm, raw_key, iv, NULL) &&
         EVP_EncryptUpdate(e, NULL, &l, (unsigned char *)aad, alen) &&
         EVP_EncryptUpdate(e, ct, &l, pt, MSG_LEN) &&
         EVP_EncryptFinal_ex(e, ct + l, &f) &&
         EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_AEAD_GET_TAG, 16, tag) &&
         EVP_DecryptInit_ex2(d, gcm, raw_key, iv, NULL) &&
         EVP_DecryptUpdate(d, NULL, &l, (unsigned char *)aad, alen) &&
         EVP_DecryptUpdate(d, out, &l, ct, MSG_LEN) &&
         EVP_CIPHER_CTX_ctrl(d, EVP_CTRL_AEAD_SET_TAG, 16, tag) &&
         EVP_DecryptFinal_ex(d, out + l, &f) > 0 &&
         memcmp(out, pt, MSG_LEN) == 0;
    EVP_CIPHER_CTX_free(e);
    EVP_CIPHER_CTX_free(d);
    return ok;
}

static OSSL_PARAM row_param(const char *key, char *buf, size_t len,
                            uint64_t row)
{
    snprintf(buf, len, "table=cards,row=%llu", (unsigned long long)row);
    return OSSL_PARAM_construct_utf8_string(key, buf, 0);
}

static int kms_round_trip(EVP_PKEY_CTX *e, EVP_PKEY_CTX *d, uint64_t row)
{
    unsigned char pt[MSG_LEN], ct[BUF_LEN], out[BUF_LEN];
    size_t clen = sizeof(ct), olen = sizeof(out);

    fill(pt, row);
    return EVP_PKEY_encrypt(e, ct, &clen, pt, MSG_LEN) > 0 &&
           EVP_PKEY_decrypt(d, out, &olen, ct, clen) > 0 && olen == MSG_LEN &&
           memcmp(out, pt, MSG_LEN) == 0;
}

static int reused_op(WORKER *w, uint64_t row)
{
    char buf[64];
    OSSL_PARAM p[2] = {
        row_param("kmsenv-replace-context", buf, sizeof(buf), row),
        OSSL_PARAM_construct_end()};

    return EVP_PKEY_CTX_set_params(w->ectx, p) > 0 &&
           EVP_PKEY_CTX_set_params(w->dctx, p) > 0 &&
           kms_round_trip(w->ectx, w->dctx, row);
}

static int fresh_op(uint64_t row)
{
    char buf[64];
    OSSL_PARAM p[2] = {row_param("context", buf, sizeof(buf), row),
                       OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX *e = EVP_PKEY_CTX_new_from_pkey(libctx, keyset, NULL);
    EVP_PKEY_CTX *d = EVP_PKEY_CTX_new_from_pkey(libctx, keyset, NULL);
    int ok = e != NULL && d != NULL && EVP_PKEY_encrypt_init_ex(e, p) > 0 &&
             EVP_PKEY_decrypt_init_ex(d, p) > 0 && kms_round_trip(e, d, row);

    EVP_PKEY_CTX_free(e);
    EVP_PKEY_CTX_free(d);
    return ok;
}

static int floor_op(void)
{
    EVP_PKEY_CTX *e = EVP_PKEY_CTX_new_from_pkey(libctx, rsa, NULL);
    EVP_PKEY_CTX *d = EVP_PKEY_CTX_new_from_pkey(libctx, rsa, NULL);
    int ok = e != NULL && d != NULL && EVP_PKEY_encrypt_init(e) > 0 &&
             EVP_PKEY_decrypt_init(d) > 0;

    EVP_PKEY_CTX_free(e);
    EVP_PKEY_CTX_free(d);
    return ok;
}

static void *work(void *arg)
{
    WORKER *w = arg;
    double t0 = bench_now();
    uint64_t row = w->base;
    int j, ok = 1;

    do {
        for (j = 0; j < CHECK_EVERY && ok; j++, row++) {
            switch (w->pat) {
            case P_RAW:
                ok = raw_op(row);
                break;
            case P_REUSED:
                ok = reused_op(w, row);
                break;
            case P_FRESH:
                ok = fresh_op(row);
                break;
            default:
                ok = floor_op();
            }
        }
    } while (ok && bench_now() - t0 < w->secs);
    w->ops = row - w->base;
    w->ok = ok;
    if (!ok)
        bench_err(NAME, pat_name[w->pat]);
    return NULL;
}

/* ops/s of pattern pat over n threads for secs; -1 on failure. */
static double measure(int pat, int n, double secs)
{
    static uint64_t next_base = 1;
    WORKER w[MAX_THREADS];
    pthread_t t[MAX_THREADS];
    double t0, el, total = 0;
    int i, ok = 1;

    memset(w, 0, sizeof(w));
    for (i = 0; i < n; i++) {
        w[i].pat = pat;
        w[i].secs = secs;
        w[i].base = next_base;
        next_base += UINT64_C(1) << 40; /* rows never repeat */
        if (pat == P_REUSED) {
            w[i].ectx = EVP_PKEY_CTX_new_from_pkey(libctx, keyset, NULL);
            w[i].dctx = EVP_PKEY_CTX_new_from_pkey(libctx, keyset, NULL);
            if (w[i].ectx == NULL || w[i].dctx == NULL ||
                EVP_PKEY_encrypt_init(w[i].ectx) <= 0 ||
                EVP_PKEY_decrypt_init(w[i].dctx) <= 0)
                ok = 0;
        }
    }
    t0 = bench_now();
    for (i = 0; ok && i < n; i++)
        ok = pthread_create(&t[i], NULL, work, &w[i]) == 0;
    for (i = 0; i < n && ok; i++)
        pthread_join(t[i], NULL);
    el = bench_now() - t0;
    for (i = 0; i < n; i++) {
        ok = ok && w[i].ok;
        total += (double)w[i].ops;
        EVP_PKEY_CTX_free(w[i].ectx);
        EVP_PKEY_CTX_free(w[i].dctx);
    }
    return ok ? total / el : -1;
}

static int setup(const char *build_dir)
{
    char spec[BENCH_PATH_MAX + 8];
    OSSL_PARAM p[2];
    EVP_PKEY_CTX *g;
    int ok;

    snprintf(spec, sizeof(spec), "file:%s", bench_kek_path);
    if ((libctx = OSSL_LIB_CTX_new()) == NULL ||
        !OSSL_PROVIDER_set_default_search_path(libctx, build_dir) ||
        OSSL_PROVIDER_load(libctx, "default") == NULL ||
        OSSL_PROVIDER_load(libctx, "kmsenv") == NULL) {
        bench_err(NAME, "loading the default and kmsenv providers");
        return 0;
    }
    g = EVP_PKEY_CTX_new_from_name(libctx, "KMSENV-KEYSET", NULL);
    p[0] = OSSL_PARAM_construct_utf8_string("keyring", spec, 0);
    p[1] = OSSL_PARAM_construct_end();
    ok = g != NULL && EVP_PKEY_keygen_init(g) > 0 &&
         EVP_PKEY_CTX_set_params(g, p) > 0 && EVP_PKEY_generate(g, &keyset) > 0;
    EVP_PKEY_CTX_free(g);
    rsa = EVP_PKEY_Q_keygen(libctx, "provider=default", "RSA", (size_t)2048);
    gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", "provider=default");
    if (!ok || rsa == NULL || gcm == NULL ||
        RAND_bytes_ex(libctx, raw_key, sizeof(raw_key), 0) <= 0) {
        bench_err(NAME, "keyset, RSA key or AES-256-GCM setup");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *build_dir = argc > 1 ? argv[1] : getenv("KMSENV_BUILD_DIR");
    static const int threads[2] = {1, MAX_THREADS};
    double secs, best[2][NPAT] = {{0}}, r;
    double raw1, reu1, fr1, fl1, scale_raw, scale_reu, scale_fr;
    int rounds, round, ti, pat, ok = 0;

    if (build_dir == NULL || *build_dir == '\0')
        build_dir = "build";
    if ((secs = bench_seconds(NAME, argc, argv)) < 0 ||
        (rounds = bench_rounds(NAME)) < 0)
        return 2;
    if (!bench_make_kek(NAME) || !setup(build_dir))
        goto end;
    printf("%s: %s; 64-byte rows, a new context per row; %d round(s) of "
           "%.2f s, best kept\n",
           NAME, OpenSSL_version(OPENSSL_VERSION), rounds, secs);
    for (round = 0; round < rounds; round++)
        for (ti = 0; ti < 2; ti++)
            for (pat = 0; pat < NPAT; pat++) {
                /* rotate the order so no pattern always runs first */
                int p = (pat + round) % NPAT;
                if ((r = measure(p, threads[ti], secs)) < 0)
                    goto end;
                if (r > best[ti][p])
                    best[ti][p] = r;
            }
    printf("\n%-24s %14s %14s %10s\n", "ops/s (enc+dec of a row)", "1 thread",
           "8 threads", "scaling");
    for (pat = 0; pat < NPAT; pat++)
        printf("%-24s %14.0f %14.0f %9.2fx   (%.0f ns/op at 1 thread)\n",
               pat_name[pat], best[0][pat], best[1][pat],
               best[1][pat] / best[0][pat], 1e9 / best[0][pat]);
    raw1 = best[0][P_RAW], reu1 = best[0][P_REUSED], fr1 = best[0][P_FRESH];
    fl1 = best[0][P_FLOOR];
    scale_raw = best[1][P_RAW] / raw1;
    scale_reu = best[1][P_REUSED] / reu1;
    scale_fr = best[1][P_FRESH] / fr1;
    printf("\nratio reused/raw, 1 thread           : %6.3f  (goal >= 0.80: "
           "%s)\n",
           reu1 / raw1, reu1 / raw1 >= 0.80 ? "met" : "NOT met");
    printf("fresh time / (floor + raw), 1 thread : %6.3f  (goal <= 1.15: "
           "%s)\n",
           (1 / fr1) / (1 / fl1 + 1 / raw1),
           (1 / fr1) / (1 / fl1 + 1 / raw1) <= 1.15 ? "met" : "NOT met");
    printf("scaling reused / scaling raw          : %6.3f  (goal >= 0.90: "
           "%s)\n",
           scale_reu / scale_raw,
           scale_reu / scale_raw >= 0.9 ? "met" : "NOT met");
    printf("scaling fresh / scaling raw           : %6.3f  (goal >= 0.90: "
           "%s)\n",
           scale_fr / scale_raw,
           scale_fr / scale_raw >= 0.9 ? "met" : "NOT met");
    ok = 1;
end:
    EVP_PKEY_free(keyset);
    EVP_PKEY_free(rsa);
    EVP_CIPHER_free(gcm);
    OSSL_LIB_CTX_free(libctx);
    OPENSSL_cleanse(raw_key, sizeof(raw_key));
    return ok ? 0 : 1;
}
