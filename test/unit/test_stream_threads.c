/* SPDX-License-Identifier: Apache-2.0 */
/* Concurrent enc streams (envelope/stream.c) over one registry of loaded
 * keysets (keys/registry.c), as cipher_stream.c uses them: 4 threads each
 * take the keyset from the registry and encrypt and decrypt streams
 * (random sizes and update sizes) with the DEK through
 * kmsenv_keyobj_with_dek, while a 5th thread rotates the shared keyset
 * object in place, writes it back and has the registry reload it. Every
 * stream must round-trip, also when it was written under a version that
 * the reloaded object holds as an older one. Run under ThreadSanitizer by
 * the `threads` ctest label. */
#include "envelope/context.h"
#include "envelope/stream.h"
#include "keys/keyobj.h"
#include "keys/registry.h"
#include "util/buf.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "harness.h"

#define WORKERS 4
#define STREAMS 12
#define ROTATIONS 4

static char dir[256], kek[300], ks[300], tmp[300];
static KMSENV_KMS_ENV kms;
static KMSENV_KEYS_ENV env = {NULL, NULL, &kms, NULL, NULL};
static KMSENV_REGISTRY *reg;
static atomic_int rotations, rotating = 1;

static int write_file(const char *path, const void *p, size_t n, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    int ok = fd >= 0 && write(fd, p, n) == (ssize_t)n;

    if (fd >= 0)
        close(fd);
    return ok && chmod(path, mode) == 0;
}

/* Writes k's DER to ks atomically (readers see the old or the new file). */
static int save(KMSENV_KEYOBJ *k)
{
    unsigned char *der = NULL;
    size_t len = 0;
    int ok = kmsenv_keyobj_get_der(k, &der, &len) &&
             write_file(tmp, der, len, 0644) && rename(tmp, ks) == 0;

    OPENSSL_free(der);
    return ok;
}

static int setup(void)
{
    unsigned char key[32];
    char spec[320];
    KMSENV_KEYOBJ *k;
    int ok;

    snprintf(dir, sizeof(dir), "/tmp/kmsenv-stthr-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 0;
    snprintf(kek, sizeof(kek), "%s/kek", dir);
    snprintf(ks, sizeof(ks), "%s/ks.der", dir);
    snprintf(tmp, sizeof(tmp), "%s/ks.tmp", dir);
    snprintf(spec, sizeof(spec), "file:%s", kek);
    if (RAND_bytes(key, sizeof(key)) <= 0 ||
        !write_file(kek, key, sizeof(key), 0600))
        return 0;
    k = kmsenv_keyobj_generate(&env, spec);
    ok = k != NULL && save(k);
    kmsenv_keyobj_free(k);
    return ok;
}

/* What cipher_stream.c's keyfn does: the version's DEK, under the
 * keyset's read lock, into HKDF. */
typedef struct {
    KMSENV_KEYOBJ *k;
    const KMSENV_BUF *ctxenc;
    const unsigned char *hdr;
    unsigned char *key;
} DERIVE;

static int derive_cb(void *arg, uint32_t version, const unsigned char *dek)
{
    DERIVE *d = arg;

    (void)version;
    return kmsenv_stream_derive(NULL, dek, d->hdr, kmsenv_keyobj_id(d->k),
                                d->ctxenc->p, d->ctxenc->len, d->key);
}

typedef struct {
    KMSENV_KEYOBJ *k;
    const KMSENV_BUF *ctxenc;
} KEYARG;

static int keyfn(void *arg, const unsigned char *hdr, uint32_t version,
                 unsigned char key[32])
{
    KEYARG *a = arg;
    DERIVE d = {a->k, a->ctxenc, hdr, key};

    return kmsenv_keyobj_with_dek(a->k, 0, &version, derive_cb, &d);
}

typedef struct {
    int id, ok, streams, old_version;
    uint64_t rng;
} WORKER;

static size_t draw(WORKER *w, size_t max)
{
    w->rng ^= w->rng << 13, w->rng ^= w->rng >> 7, w->rng ^= w->rng << 17;
    return (size_t)(w->rng % (max + 1));
}

/* in through s in random updates with exact EVP budgets; the output in o
 * (of cap bytes). 1 ok. */
static int pump(WORKER *w, KMSENV_STREAM *s, const unsigned char *in,
                size_t len, unsigned char *o, size_t cap, size_t *olen)
{
    size_t off = 0, wr = 0, outl;

    do {
        size_t n = draw(w, 5000);

        if (n > len - off)
            n = len - off;
        if (wr + n + KMSENV_STREAM_BLOCK > cap ||
            !kmsenv_stream_update(s, in + off, n, o + wr,
                                  n + KMSENV_STREAM_BLOCK, &outl))
            return 0;
        wr += outl, off += n;
    } while (off < len);
    if (wr + KMSENV_STREAM_BLOCK > cap ||
        !kmsenv_stream_final(s, o + wr, KMSENV_STREAM_BLOCK, &outl))
        return 0;
    *olen = wr + outl;
    return 1;
}

static void *worker(void *arg)
{
    WORKER *w = arg;
    KMSENV_CONTEXT c;
    KMSENV_BUF ctxenc;
    char text[64];
    size_t cap = 70000 + 70000 / 4 + 4096, cl, bl, len;
    unsigned char *pt = malloc(70000), *ct = malloc(cap), *bk = malloc(cap);
    int i;

    w->ok = pt != NULL && ct != NULL && bk != NULL;
    snprintf(text, sizeof(text), "app=threads,worker=%d", w->id);
    kmsenv_ctx_init(&c);
    kmsenv_buf_init(&ctxenc, 0);
    w->ok = w->ok && kmsenv_ctx_parse(&c, text, strlen(text)) &&
            kmsenv_ctx_encode(&c, &ctxenc);
    /* At least STREAMS streams, and on while the rotator works. */
    for (i = 0; w->ok && (i < STREAMS || atomic_load(&rotating)); i++) {
        KEYARG ea = {kmsenv_registry_get(reg, &env, ks, NULL), &ctxenc};
        KEYARG da = {NULL, &ctxenc};
        KMSENV_STREAM s;
        uint32_t primary = 0;
        size_t nv;

        len = draw(w, 70000);
        RAND_bytes(pt, (int)len);
        kmsenv_stream_init(&s);
        w->ok = ea.k != NULL && kmsenv_keyobj_versions(ea.k, &primary, &nv) &&
                kmsenv_stream_start_enc(&s, NULL, primary, NULL, keyfn, &ea) &&
                pump(w, &s, pt, len, ct, cap, &cl);
        kmsenv_stream_cleanup(&s);
        /* Decrypt with whatever the registry holds now (maybe reloaded,
         * with a newer primary). */
        da.k = kmsenv_registry_get(reg, &env, ks, NULL);
        if (w->ok && da.k != NULL) {
            uint32_t now = 0;

            if (kmsenv_keyobj_versions(da.k, &now, &nv) && now != primary)
                w->old_version++;
        }
        kmsenv_stream_init(&s);
        w->ok = w->ok && da.k != NULL &&
                kmsenv_stream_start_dec(&s, NULL, keyfn, &da) &&
                pump(w, &s, ct, cl, bk, cap, &bl) && bl == len &&
                (len == 0 || memcmp(bk, pt, len) == 0);
        kmsenv_stream_cleanup(&s);
        kmsenv_keyobj_free(ea.k);
        kmsenv_keyobj_free(da.k);
        w->streams += w->ok;
    }
    kmsenv_ctx_free(&c);
    kmsenv_buf_free(&ctxenc);
    free(pt), free(ct), free(bk);
    return NULL;
}

static void *rotator(void *arg)
{
    int i;

    (void)arg;
    for (i = 0; i < ROTATIONS; i++) {
        KMSENV_KEYOBJ *k = kmsenv_registry_get(reg, &env, ks, NULL);
        int ok = k != NULL && kmsenv_keyobj_rotate(k) && save(k);

        kmsenv_keyobj_free(k);
        if (!ok)
            break;
        kmsenv_registry_reload(reg, ks);
        atomic_fetch_add(&rotations, 1);
        usleep(20000);
    }
    atomic_store(&rotating, 0);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t th[WORKERS + 1];
    WORKER w[WORKERS];
    int i, all = 1, streams = 0, old = 0;
    KMSENV_KEYOBJ *k;
    uint32_t primary = 0;
    size_t nv = 0;

    if (argc > 1 && strcmp(argv[1], "-v") == 0)
        opt_verbose = 1;
    CHECK(setup(), "temporary KEK and keyset under %s", dir);
    reg = kmsenv_registry_new();
    for (i = 0; i < WORKERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].id = i;
        w[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    pthread_create(&th[WORKERS], NULL, rotator, NULL);
    for (i = 0; i <= WORKERS; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < WORKERS; i++) {
        all &= w[i].ok;
        streams += w[i].streams;
        old += w[i].old_version;
    }
    if (!all)
        ERR_print_errors_fp(stderr);
    CHECK(all && streams >= WORKERS * STREAMS,
          "%d threads: %d streams round-trip over one registry", WORKERS,
          streams);
    CHECK(atomic_load(&rotations) == ROTATIONS,
          "meanwhile %d rotations written back and reloaded",
          atomic_load(&rotations));
    k = kmsenv_registry_get(reg, &env, ks, NULL);
    if (k == NULL || !kmsenv_keyobj_versions(k, &primary, &nv))
        nv = 0;
    CHECK(nv == ROTATIONS + 1,
          "the reloaded keyset has %zu versions (primary %u); %d streams "
          "were decrypted after a newer primary appeared",
          nv, primary, old);
    kmsenv_keyobj_free(k);
    kmsenv_registry_free(reg);
    unlink(kek);
    unlink(ks);
    unlink(tmp);
    rmdir(dir);
    return harness_done();
}
