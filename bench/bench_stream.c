/* SPDX-License-Identifier: Apache-2.0 */
/* bench_stream [BUILD_DIR [SECONDS]]: KMSENV-AES-256-GCM (the enc stream)
 * versus raw EVP AES-256-GCM with a fixed key, in-process, with EVP updates
 * of 4 KiB and 64 KiB, encryption and decryption, measured in one run;
 * prints MB/s and ratios (goal >= 0.9). End to end through `openssl enc`:
 * bench/bench_enc.sh. */
#include "bench_common.h"
#include "envelope/gcm_direct.h"

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

/* One pass: TOTAL bytes through c in updates of chunk; returns seconds of
 * this thread's CPU time (other load on the machine then costs little). */
static double pass(EVP_CIPHER *c, int enc, int stream, const unsigned char *in,
                   size_t len, unsigned char *out, size_t *outlen, size_t chunk,
                   const unsigned char *tag)
{
    static const unsigned char key[32], iv[12];
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    OSSL_PARAM p[3];
    double t0 = bench_cpu_now();
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
    return bench_cpu_now() - t0;
err:
    bench_err(NAME, stream ? "stream pass" : "raw GCM pass");
    EVP_CIPHER_CTX_free(x);
    return -1;
}

/* The floor of this format: raw AES-256-GCM with a fixed key, but per
 * frame of chunk bytes what the stream must do, in the stream's memory
 * layout (ct: header, then per frame its length, data and tag; pt
 * contiguous): a new IV, 4 bytes of AAD, the data, final and the tag,
 * through the stream's own GCM calls (envelope/gcm_direct.h): the
 * provider's functions called directly, or with evp through
 * EVP_CIPHER_CTX (EVP_CipherInit_ex2 with the IV only, the tag through
 * params). split = 0: the data in one update; split = 1: in two, as the
 * stream must: encrypting, the 16-byte lag first (FORMATS.md §7.3);
 * decrypting, cut where an update boundary of the chunk-sized reads
 * falls. */
static double floor_pass(int evp, int enc, int split, unsigned char *pt,
                         unsigned char *ct, size_t chunk)
{
    static const unsigned char key[32];
    KMSENV_GCM g;
    unsigned char iv[12] = {0}, *len4, *d, *p;
    double t0 = bench_cpu_now();
    size_t i, cut, at;

    memset(&g, 0, sizeof(g));
    if (!kmsenv_gcm_setup(&g, lib, evp) || kmsenv_gcm_is_direct(&g) == evp ||
        !kmsenv_gcm_key(&g, key, enc))
        goto err;
    for (i = 0; i < TOTAL / chunk; i++) {
        at = 16 + i * (chunk + 20); /* the frame in ct */
        len4 = ct + at, d = ct + at + 4, p = pt + i * chunk;
        iv[4] = (unsigned char)(i >> 24), iv[5] = (unsigned char)(i >> 16);
        iv[6] = (unsigned char)(i >> 8), iv[7] = (unsigned char)i;
        if (enc) {
            len4[0] = (unsigned char)(chunk >> 24);
            len4[1] = (unsigned char)(chunk >> 16);
            len4[2] = (unsigned char)(chunk >> 8),
            len4[3] = (unsigned char)chunk;
        }
        cut = !split ? 0 : enc ? 16 : (chunk - (at + 4) % chunk) % chunk;
        if (!kmsenv_gcm_iv(&g, iv) || !kmsenv_gcm_aad(&g, len4, 4) ||
            !kmsenv_gcm_update(&g, enc ? d : p, enc ? p : d, cut) ||
            !kmsenv_gcm_update(&g, (enc ? d : p) + cut, (enc ? p : d) + cut,
                               chunk - cut) ||
            !(enc ? kmsenv_gcm_seal(&g, d + chunk)
                  : kmsenv_gcm_open(&g, d + chunk)))
            goto err;
    }
    kmsenv_gcm_free(&g);
    return bench_cpu_now() - t0;
err:
    bench_err(NAME, "floor pass");
    kmsenv_gcm_free(&g);
    return -1;
}

static double best(const double *v, int n)
{
    double b = v[0];
    int i;

    for (i = 1; i < n; i++)
        b = v[i] < b ? v[i] : b;
    return b;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmpd);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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

/* Per round, interleaved: stream, raw, floor, floor-split (enc), then the
 * same decrypting. MB/s and "ratio" from the best pass of each (other
 * load only adds time); "median" is the median of the per-round ratios
 * (each pass against the raw pass next to it), a check on the first. */
enum { M_ST, M_RAW, M_FL, M_FLS, M_EVP, M_N };
static const char *const mname[M_N] = {"stream", "rawGCM", "floor",
                                       "floor-split", "evp-split"};

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build";
    static const size_t chunks[] = {4096, 65536};
    double secs = bench_seconds(NAME, argc, argv);
    int rounds = getenv("BENCH_ROUNDS") != NULL ? bench_rounds(NAME) : 9;
    int ci, r, d, m;
    EVP_CIPHER *st, *gcm;
    unsigned char *pt = malloc(TOTAL), *ct = malloc(TOTAL + TOTAL / 8),
                  *rt = malloc(TOTAL + TOTAL / 8), *bk = malloc(TOTAL + 64),
                  *fc = malloc(TOTAL + TOTAL / 8), *fp = malloc(TOTAL);
    unsigned char tag[16];
    size_t cl, rl, bl;

    if (secs < 0 || rounds < 0)
        return 2;
    if (pt == NULL || ct == NULL || rt == NULL || bk == NULL || fc == NULL ||
        fp == NULL)
        return 1;
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
    printf("%s: %u MiB per pass, best of %d interleaved rounds\n", NAME,
           TOTAL >> 20, rounds);
    printf("  floor: raw GCM per frame (IV + AAD + final + tag) in the "
           "stream's layout, one update per frame,\n  the provider's "
           "functions called directly (as the stream does); floor-split: "
           "the same\n  with the frame's data in two updates, as the stream "
           "must; evp-split: floor-split\n  through EVP_CIPHER_CTX\n");
    printf("%-6s %-4s %-12s %8s %7s %7s %10s\n", "update", "dir", "what",
           "MB/s", "ratio", "median", "ns/frame+");
    for (ci = 0; ci < 2; ci++) {
        double t[2][M_N][64], q[2][M_N][64];
        size_t ch = chunks[ci], frames = TOTAL / ch;

        for (r = 0; r < rounds; r++) {
            for (d = 0; d < 2; d++) {
                int e = !d;

                t[d][M_ST][r] = e ? pass(st, 1, 1, pt, TOTAL, ct, &cl, ch, NULL)
                                  : pass(st, 0, 1, ct, cl, bk, &bl, ch, NULL);
                if (!e && (bl != TOTAL || memcmp(bk, pt, TOTAL) != 0)) {
                    fprintf(stderr, "%s: round trip mismatch\n", NAME);
                    return 1;
                }
                t[d][M_RAW][r] =
                    e ? pass(gcm, 1, 0, pt, TOTAL, rt, &rl, ch, tag)
                      : pass(gcm, 0, 0, rt, rl, bk, &bl, ch, tag);
                for (m = M_FL; m <= M_EVP; m++) {
                    int sp = m != M_FL, evp = m == M_EVP;

                    /* the floor decrypts what the same floor encrypted */
                    if (!e && floor_pass(evp, 1, sp, pt, fc, ch) < 0)
                        return 1;
                    t[d][m][r] = floor_pass(evp, e, sp, e ? pt : fp, fc, ch);
                }
                for (m = 0; m < M_N; m++) {
                    if (t[d][m][r] < 0)
                        return 1;
                    q[d][m][r] = t[d][M_RAW][r] / t[d][m][r];
                }
            }
        }
        for (d = 0; d < 2; d++) {
            double raw = best(t[d][M_RAW], rounds);

            for (m = 0; m < M_N; m++) {
                double b = best(t[d][m], rounds), ratio = raw / b;

                printf("%-6zu %-4s %-12s %8.0f %7.3f %7.3f %10.1f%s\n", ch,
                       d ? "dec" : "enc", mname[m], TOTAL / 1e6 / b, ratio,
                       median(q[d][m], rounds),
                       (b - raw) * 1e9 / (double)frames,
                       m == M_ST && ratio < 0.9 ? "  (goal 0.9)" : "");
            }
        }
    }
    (void)secs;
    remove(keyset_path);
    EVP_CIPHER_free(st), EVP_CIPHER_free(gcm);
    free(pt), free(ct), free(rt), free(bk), free(fc), free(fp);
    return 0;
}
