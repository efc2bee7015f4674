/* SPDX-License-Identifier: Apache-2.0 */
/* KMSENV-AES-256-GCM through EVP, as a C caller uses it: enc_probe
 * MODULEDIR KEYSET CONTEXT. Several streams in one process (the keyset is
 * loaded once), sizes 0, 1, 4095, 4096, 4097 and 10 MiB, random update
 * sizes 1 B..1 MiB in both directions, each update given a buffer of
 * exactly inl + block size and final exactly block size, each followed by
 * an inaccessible page (any write past it faults), the keyset and context as
 * ctx params. Prints TAP. */
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
#include <sys/mman.h>
#include <unistd.h>

static int n_ok, n_bad;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t xr(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void check(int ok, const char *what, size_t n)
{
    printf("%s %d - %s (%zu bytes)\n", ok ? "ok" : "not ok", n_ok + n_bad + 1,
           what, n);
    if (!ok)
        ERR_print_errors_fp(stdout), n_bad++;
    else
        n_ok++;
    ERR_clear_error();
}

/* n bytes that end right before an inaccessible page: a write past them
 * faults even from libcrypto's uninstrumented AES-GCM (ASan sees only
 * instrumented code). */
typedef struct {
    unsigned char *p;
    void *map;
    size_t maplen;
} GUARDED;

static unsigned char *guarded(GUARDED *g, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);

    g->maplen = (n + pg - 1) / pg * pg + pg;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED)
        abort();
    if (mprotect((unsigned char *)g->map + g->maplen - pg, pg, PROT_NONE) != 0)
        abort();
    return g->p = (unsigned char *)g->map + g->maplen - pg - n;
}

static void unguard(GUARDED *g)
{
    munmap(g->map, g->maplen);
}

/* enc (1/0) in -> *out; random update sizes. */
static int run(EVP_CIPHER *c, int enc, const char *keyset, const char *ctx,
               const unsigned char *in, size_t len, unsigned char **out,
               size_t *outlen)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    OSSL_PARAM p[3];
    int bs = EVP_CIPHER_get_block_size(c), ol, ok = 0;
    size_t off = 0, w = 0, cap = len + len / 4 + 4096;
    unsigned char *o = malloc(cap), *b;
    GUARDED g;

    p[0] = OSSL_PARAM_construct_utf8_string("keyset", (char *)keyset, 0);
    p[1] = OSSL_PARAM_construct_utf8_string("context", (char *)ctx, 0);
    p[2] = OSSL_PARAM_construct_end();
    if (x == NULL || !EVP_CipherInit_ex2(x, c, NULL, NULL, enc, p))
        goto done;
    while (off < len) {
        size_t n = 1 + (size_t)(xr() % ((size_t)1 << (xr() % 21)));

        if (n > len - off)
            n = len - off;
        b = guarded(&g, n + (size_t)bs);
        if (!EVP_CipherUpdate(x, b, &ol, in + off, (int)n) ||
            (size_t)ol > n + (size_t)bs) {
            unguard(&g);
            goto done;
        }
        if (w + (size_t)ol > cap)
            o = realloc(o, cap = (w + (size_t)ol) * 2);
        memcpy(o + w, b, (size_t)ol);
        w += (size_t)ol, off += n;
        unguard(&g);
    }
    b = guarded(&g, (size_t)bs);
    if (!EVP_CipherFinal_ex(x, b, &ol) || ol > bs) {
        unguard(&g);
        goto done;
    }
    if (w + (size_t)ol > cap)
        o = realloc(o, cap = w + (size_t)ol);
    memcpy(o + w, b, (size_t)ol);
    w += (size_t)ol;
    unguard(&g);
    ok = 1;
done:
    EVP_CIPHER_CTX_free(x);
    *out = o, *outlen = w;
    return ok;
}

/* One stream on x (already initialised), all at once: 1 on success. */
static int one(EVP_CIPHER_CTX *x, const unsigned char *in, size_t len,
               unsigned char *out, size_t *outlen)
{
    int a = 0, b = 0;

    if (!EVP_CipherUpdate(x, out, &a, in, (int)len) ||
        !EVP_CipherFinal_ex(x, out + a, &b))
        return 0;
    *outlen = (size_t)a + (size_t)b;
    return 1;
}

/* A reused ctx takes the new init's context, not a mix with the old one;
 * an update above the frame limit fails stating it and writes nothing. */
static void reuse_and_limit(EVP_CIPHER *c, const char *keyset, const char *ctx)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new(), *y = EVP_CIPHER_CTX_new();
    static const unsigned char msg[] = "reused context, second stream";
    unsigned char ct[256], back[256], *big, *bo;
    size_t cl = 0, bl = 0;
    size_t bign = ((size_t)1 << 20) + 1;
    OSSL_PARAM p[3];
    int ol = -1, ok;

    p[0] = OSSL_PARAM_construct_utf8_string("keyset", (char *)keyset, 0);
    p[1] = OSSL_PARAM_construct_utf8_string("context", (char *)ctx, 0);
    p[2] = OSSL_PARAM_construct_end();
    ok = EVP_CipherInit_ex2(x, c, NULL, NULL, 1, p) &&
         one(x, msg, sizeof(msg), ct, &cl);
    p[0] = OSSL_PARAM_construct_utf8_string("context", "db=7", 0);
    p[1] = OSSL_PARAM_construct_end();
    ok = ok && EVP_CipherInit_ex2(x, NULL, NULL, NULL, 1, p) &&
         one(x, msg, sizeof(msg), ct, &cl);
    p[0] = OSSL_PARAM_construct_utf8_string("keyset", (char *)keyset, 0);
    p[1] = OSSL_PARAM_construct_utf8_string("context", "db=7", 0);
    p[2] = OSSL_PARAM_construct_end();
    ok = ok && EVP_CipherInit_ex2(y, c, NULL, NULL, 0, p) &&
         one(y, ct, cl, back, &bl) && bl == sizeof(msg) &&
         memcmp(back, msg, bl) == 0;
    check(ok, "re-init with a new context: the stream uses only that context",
          sizeof(msg));

    /* init, set_params(context), init again (the usual EVP two-step): the
     * context holds; a fresh ctx without it cannot decrypt. */
    EVP_CIPHER_CTX_free(x), EVP_CIPHER_CTX_free(y);
    x = EVP_CIPHER_CTX_new(), y = EVP_CIPHER_CTX_new();
    p[0] = OSSL_PARAM_construct_utf8_string("keyset", (char *)keyset, 0);
    p[1] = OSSL_PARAM_construct_end();
    ok = EVP_CipherInit_ex2(x, c, NULL, NULL, 1, p);
    p[0] = OSSL_PARAM_construct_utf8_string("context", "db=7", 0);
    ok = ok && EVP_CIPHER_CTX_set_params(x, p) &&
         EVP_CipherInit_ex2(x, NULL, NULL, NULL, 1, NULL) &&
         one(x, msg, sizeof(msg), ct, &cl);
    p[0] = OSSL_PARAM_construct_utf8_string("keyset", (char *)keyset, 0);
    p[1] = OSSL_PARAM_construct_utf8_string("context", "db=7", 0);
    p[2] = OSSL_PARAM_construct_end();
    ok = ok && EVP_CipherInit_ex2(y, c, NULL, NULL, 0, p) &&
         one(y, ct, cl, back, &bl) && bl == sizeof(msg);
    p[1] = OSSL_PARAM_construct_utf8_string("context", (char *)ctx, 0);
    ok = ok && EVP_CipherInit_ex2(y, c, NULL, NULL, 0, p) &&
         !one(y, ct, cl, back, &bl);
    check(ok, "init, set_params(context), init: the context holds",
          sizeof(msg));
    ERR_clear_error();

    /* A refused context param leaves the stream unable to start: never a
     * fallback to the configured or an earlier context. */
    p[0] = OSSL_PARAM_construct_utf8_string("context", "no-equals-sign", 0);
    p[1] = OSSL_PARAM_construct_end();
    ok = EVP_CipherInit_ex2(x, NULL, NULL, NULL, 1, NULL) &&
         !EVP_CIPHER_CTX_set_params(x, p) && !one(x, msg, sizeof(msg), ct, &cl);
    {
        const char *data = NULL;
        int flags = 0;

        ERR_peek_last_error_data(&data, &flags);
        ok = ok && data != NULL && strstr(data, "was refused") != NULL;
    }
    check(ok, "a refused context: the stream does not start", sizeof(msg));
    ERR_clear_error();

    big = calloc(1, bign), bo = malloc(bign + 32);
    p[0] = OSSL_PARAM_construct_utf8_string("keyset", (char *)keyset, 0);
    p[1] = OSSL_PARAM_construct_utf8_string("context", (char *)ctx, 0);
    p[2] = OSSL_PARAM_construct_end();
    ok = EVP_CipherInit_ex2(x, c, NULL, NULL, 1, p) &&
         !EVP_CipherUpdate(x, bo, &ol, big, (int)bign) && ol <= 0;
    {
        const char *data = NULL;
        int flags = 0;

        ERR_peek_last_error_data(&data, &flags);
        ok = ok && data != NULL && strstr(data, "at most 1048576") != NULL;
    }
    check(ok, "an update of 1 MiB + 1 fails stating the limit", bign);
    free(big), free(bo);
    EVP_CIPHER_CTX_free(x), EVP_CIPHER_CTX_free(y);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 10u << 20};
    OSSL_PROVIDER *dflt, *kms;
    EVP_CIPHER *c;
    unsigned char *pt, *ct, *back;
    size_t i, cl, bl;
    int rep;

    if (argc != 4) {
        fprintf(stderr, "usage: enc_probe MODULEDIR KEYSET CONTEXT\n");
        return 2;
    }
    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    dflt = OSSL_PROVIDER_load(NULL, "default");
    kms = OSSL_PROVIDER_load(NULL, "kmsenv");
    c = EVP_CIPHER_fetch(NULL, "KMSENV-AES-256-GCM", NULL);
    check(c != NULL && EVP_CIPHER_get_block_size(c) == 32 &&
              EVP_CIPHER_get_key_length(c) == 0 &&
              EVP_CIPHER_get_iv_length(c) == 0 &&
              !(EVP_CIPHER_get_flags(c) & EVP_CIPH_FLAG_AEAD_CIPHER),
          "fetch: block 32, key 0, iv 0, not AEAD", 0);
    pt = malloc(10u << 20);
    RAND_bytes(pt, 10 << 20);
    for (rep = 0; rep < 2; rep++)
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            int ok;

            ct = back = NULL, cl = bl = 0;
            ok = run(c, 1, argv[2], argv[3], pt, sizes[i], &ct, &cl) &&
                 run(c, 0, argv[2], argv[3], ct, cl, &back, &bl);

            check(ok && bl == sizes[i] &&
                      (bl == 0 || memcmp(back, pt, bl) == 0),
                  "EVP round trip, random updates, exact buffers", sizes[i]);
            if (i == 2) {
                /* wrong context: decrypt fails */
                free(back);
                check(!run(c, 0, argv[2], "app=other", ct, cl, &back, &bl),
                      "wrong context fails", sizes[i]);
                ct[cl / 2] ^= 1;
                free(back);
                check(!run(c, 0, argv[2], argv[3], ct, cl, &back, &bl),
                      "tampered stream fails", sizes[i]);
            }
            free(ct), free(back);
        }
    reuse_and_limit(c, argv[2], argv[3]);
    free(pt);
    EVP_CIPHER_free(c);
    OSSL_PROVIDER_unload(kms);
    OSSL_PROVIDER_unload(dflt);
    printf("%d passed, %d failed\n", n_ok, n_bad);
    return n_bad == 0 ? 0 : 1;
}
