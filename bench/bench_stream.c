/* SPDX-License-Identifier: Apache-2.0 */
/* bench_stream [BUILD_DIR [SECONDS]]: KMSENV-AES-256-GCM (the enc stream)
 * versus raw EVP AES-256-GCM with a fixed key, in-process, with EVP updates
 * of 4 KiB and 64 KiB, encryption and decryption, measured in one run;
 * prints MB/s and ratios (goal >= 0.9). End to end through `openssl enc`:
 * bench/bench_enc.sh. */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#define NAME "bench_stream"
#define TOTAL (64u << 20)

static OSSL_LIB_CTX *lib;
static char keyset_path[BENCH_PATH_MAX + 16];

/* One pass: TOTAL bytes through c in updates of chunk; returns seconds. */
static double pass(EVP_CIPHER *c, int enc, int stream, const unsigned char *in,
                   size_t len, unsigned char *out, size_t *outlen, size_t chunk,
                   const unsigned char *tag)
{
    static const unsigned char key[32], iv[12];
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    OSSL_PARAM p[3];
    double t0 = bench_now();
    size_t off = 0, w = 0;
    int ol;

    p[0] = OSSL_PARAM_construct_utf8_string("keyset", keyset_path, 0);
    p[1] = OSSL_PARAM_construct_utf8_string("context", "bench=1", 0);
    p[2] = OSSL_PARAM_construct_end();
    if (!EVP_CipherInit_ex2(x, c, stream ? NULL : key, stream ? NULL : iv, enc,
                            stream ? p : NULL))
        goto err;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;

        if (!EVP_CipherUpdate(x, out + w, &ol, in + off, (int)n))
            goto err;
        w += (size_t)ol, off += n;
    }
    if (!stream && !enc &&
        !EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag))
        goto err;
    if (!EVP_CipherFinal_ex(x, out + w, &ol))
        goto err;
    w += (size_t)ol;
    if (!stream && enc)
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, (void *)tag);
    EVP_CIPHER_CTX_free(x);
    *outlen = w;
    return bench_now() - t0;
err:
    bench_err(NAME, stream ? "stream pass" : "raw GCM pass");
    EVP_CIPHER_CTX_free(x);
    return -1;
}

static int make_keyset(void)
{
    char spec[BENCH_PATH_MAX + 8];
    EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(lib, "KMSENV-KEYSET", NULL);
    EVP_PKEY *k = NULL;
    OSSL_PARAM p[2];
    FILE *f;
    int ok = 0;

    snprintf(spec, sizeof(spec), "file:%s", bench_kek_path);
    snprintf(keyset_path, sizeof(keyset_path), "%s.keyset", bench_kek_path);
    p[0] = OSSL_PARAM_construct_utf8_string("keyring", spec, 0);
    p[1] = OSSL_PARAM_construct_end();
    if (g == NULL || EVP_PKEY_keygen_init(g) <= 0 ||
        !EVP_PKEY_CTX_set_params(g, p) || EVP_PKEY_generate(g, &k) <= 0 ||
        (f = fopen(keyset_path, "w")) == NULL)
        goto done;
    ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
done:
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(g);
    return ok;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build";
    static const size_t chunks[] = {4096, 65536};
    double secs = bench_seconds(NAME, argc, argv);
    int rounds = bench_rounds(NAME), ci, r, rc = 0;
    EVP_CIPHER *st, *gcm;
    unsigned char *pt = malloc(TOTAL), *ct = malloc(TOTAL + TOTAL / 8),
                  *rt = malloc(TOTAL + TOTAL / 8), *bk = malloc(TOTAL + 64);
    unsigned char tag[16];
    size_t cl, rl, bl;

    if (secs < 0 || rounds < 0)
        return 2;
    lib = OSSL_LIB_CTX_new();
    OSSL_PROVIDER_set_default_search_path(lib, dir);
    if (OSSL_PROVIDER_load(lib, "default") == NULL ||
        OSSL_PROVIDER_load(lib, "kmsenv") == NULL || !bench_make_kek(NAME) ||
        !make_keyset()) {
        bench_err(NAME, "setup (kmsenv.so in BUILD_DIR?)");
        return 1;
    }
    st = EVP_CIPHER_fetch(lib, "KMSENV-AES-256-GCM", NULL);
    gcm = EVP_CIPHER_fetch(lib, "AES-256-GCM", NULL);
    RAND_bytes(pt, TOTAL);
    printf("%s: %u MiB per pass, best of %d rounds\n", NAME, TOTAL >> 20,
           rounds);
    printf("%-8s %-4s %12s %12s %7s\n", "update", "dir", "stream MB/s",
           "rawGCM MB/s", "ratio");
    for (ci = 0; ci < 2; ci++) {
        double be[4] = {1e9, 1e9, 1e9, 1e9}, t;
        size_t ch = chunks[ci];

        for (r = 0; r < rounds; r++) {
            if ((t = pass(st, 1, 1, pt, TOTAL, ct, &cl, ch, NULL)) < 0)
                return 1;
            be[0] = t < be[0] ? t : be[0];
            if ((t = pass(gcm, 1, 0, pt, TOTAL, rt, &rl, ch, tag)) < 0)
                return 1;
            be[1] = t < be[1] ? t : be[1];
            if ((t = pass(st, 0, 1, ct, cl, bk, &bl, ch, NULL)) < 0)
                return 1;
            be[2] = t < be[2] ? t : be[2];
            if (bl != TOTAL || memcmp(bk, pt, TOTAL) != 0) {
                fprintf(stderr, "%s: round trip mismatch\n", NAME);
                return 1;
            }
            if ((t = pass(gcm, 0, 0, rt, rl, bk, &bl, ch, tag)) < 0)
                return 1;
            be[3] = t < be[3] ? t : be[3];
        }
        for (r = 0; r < 2; r++) {
            double s = TOTAL / 1e6 / be[2 * r], g = TOTAL / 1e6 / be[2 * r + 1];

            printf("%-8zu %-4s %12.0f %12.0f %7.3f%s\n", ch, r ? "dec" : "enc",
                   s, g, s / g, s / g >= 0.9 ? "" : "  (goal 0.9)");
        }
    }
    (void)secs;
    remove(keyset_path);
    EVP_CIPHER_free(st), EVP_CIPHER_free(gcm);
    free(pt), free(ct), free(rt), free(bk);
    return rc;
}
