/* SPDX-License-Identifier: Apache-2.0 */
/* bench_tls: full TLS handshakes per second with a KMS-wrapped private key
 * (a KMSENV WRAPPED PRIVATE KEY file loaded through the kmsenv provider)
 * and with the same key as a plain PEM file, in the same process and run,
 * for RSA-2048 and ECDSA P-256 over TLS 1.3 and TLS 1.2.
 *
 *   bench_tls [BUILD_DIR [SECONDS]]
 *
 * BUILD_DIR: directory holding kmsenv.so (default: $KMSENV_BUILD_DIR, else
 *            "build").
 * SECONDS:   length of each timed measurement (default: $BENCH_SECONDS, else
 *            1.0). $BENCH_ROUNDS sets the number of rounds (default 3).
 *
 * Client and server run in this thread over a BIO pair (memory). The
 * client has its own OSSL_LIB_CTX with only the default provider; the
 * server's OSSL_LIB_CTX loads an openssl.cnf that activates default, then
 * kmsenv (the recommended order), and both server SSL_CTXs load their key
 * with SSL_CTX_use_PrivateKey_file, as servers do. No session resumption:
 * no session cache, no tickets, a new SSL pair per handshake. Rounds
 * interleave plain and wrapped (the order alternates); medians are
 * reported. The provider's keyring calls are counted from its trace
 * (KMSENV_DEBUG level 1): one unwrap per wrapped key at load, none during
 * the run. Exit status: 0 when every handshake and check passed (whether
 * or not the goal is met), 1 otherwise, 2 for bad arguments. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "bench_common.h"

#define NAME "bench_tls"
#define GOAL 0.97
#define MAX_ROUNDS 64
#define NCASES 4

static OSSL_LIB_CTX *srv, *cli;
static char dir[BENCH_PATH_MAX], trace_path[BENCH_PATH_MAX + 16],
    cnf_path[BENCH_PATH_MAX + 16];

typedef struct {
    const char *label, *alg, *param; /* "RSA-2048", "RSA", bits or group */
    size_t bits;
    EVP_PKEY *pk;             /* the plain key (default provider) */
    X509 *cert;               /* self-signed, in the server's ctx */
    SSL_CTX *plain, *wrapped; /* server contexts */
    SSL_CTX *client[2];       /* TLS 1.3, TLS 1.2 */
} KEYCASE;

typedef struct {
    /* per round: handshakes per CPU second and per wall-clock second,
     * server CPU microseconds per handshake */
    double cpu[MAX_ROUNDS], wall[MAX_ROUNDS], srv_us[MAX_ROUNDS];
} SERIES;

static void cleanup_files(void)
{
    static const char *const names[] = {"plain-RSA.pem",   "plain-EC.pem",
                                        "wrapped-RSA.pem", "wrapped-EC.pem",
                                        "openssl.cnf",     "trace"};
    char p[BENCH_PATH_MAX + 32];
    size_t i;

    if (dir[0] == '\0')
        return;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f;
    int ok;

    unlink(path);
    if ((f = fopen(path, "wx")) == NULL)
        return 0;
    ok = fchmod(fileno(f), 0600) == 0 && fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static int write_bio(const char *path, BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);

    return n > 0 && write_file(path, data, (size_t)n);
}

/* The keyring calls in the provider's trace so far. */
static int count_calls(const char *what)
{
    FILE *f = fopen(trace_path, "r");
    char line[4096];
    int n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "keyring call:") != NULL &&
            (what == NULL || strstr(line, what) != NULL))
            n++;
    fclose(f);
    return n;
}

static int setup_libctxs(const char *build_dir)
{
    char cnf[3 * BENCH_PATH_MAX], build[PATH_MAX];
    int n;

    /* OpenSSL takes a relative module path as relative to its modules
     * directory. */
    if (realpath(build_dir, build) == NULL) {
        fprintf(stderr, "%s: no directory %s\n", NAME, build_dir);
        return 0;
    }

    snprintf(trace_path, sizeof(trace_path), "%s/trace", dir);
    snprintf(cnf_path, sizeof(cnf_path), "%s/openssl.cnf", dir);
    n = snprintf(cnf, sizeof(cnf),
                 "openssl_conf = openssl_init\n"
                 "[openssl_init]\nproviders = provider_sect\n"
                 "[provider_sect]\ndefault = default_sect\n"
                 "kmsenv = kmsenv_sect\n"
                 "[default_sect]\nactivate = 1\n"
                 "[kmsenv_sect]\nmodule = %s/kmsenv.so\nactivate = 1\n"
                 "keyring = file:%s\ndebug = file:%s,level:1\n",
                 build, bench_kek_path, trace_path);
    if (n <= 0 || (size_t)n >= sizeof(cnf) ||
        !write_file(cnf_path, cnf, (size_t)n)) {
        fprintf(stderr, "%s: cannot write %s\n", NAME, cnf_path);
        return 0;
    }
    /* The trace goes where the config says, whatever the environment. */
    unsetenv("KMSENV_DEBUG");
    if ((srv = OSSL_LIB_CTX_new()) == NULL ||
        !OSSL_LIB_CTX_load_config(srv, cnf_path) ||
        !OSSL_PROVIDER_available(srv, "kmsenv")) {
        bench_err(NAME, "loading the server's openssl.cnf (default, kmsenv)");
        return 0;
    }
    if ((cli = OSSL_LIB_CTX_new()) == NULL ||
        OSSL_PROVIDER_load(cli, "default") == NULL) {
        bench_err(NAME, "the client's library context");
        return 0;
    }
    return 1;
}

static X509 *self_signed(EVP_PKEY *pk)
{
    X509 *x = X509_new_ex(srv, "provider=default");
    X509_NAME *nm = X509_NAME_new();
    EVP_MD *md = EVP_MD_fetch(srv, "SHA256", "provider=default");
    int ok = x != NULL && nm != NULL && md != NULL &&
             X509_set_version(x, X509_VERSION_3) &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
             X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"localhost", -1,
                                        -1, 0) &&
             X509_set_subject_name(x, nm) && X509_set_issuer_name(x, nm) &&
             X509_set_pubkey(x, pk) && X509_sign(x, pk, md) > 0;

    X509_NAME_free(nm);
    EVP_MD_free(md);
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

/* The wrapped form of kc->pk, made by the kmsenv keymgmt (one keyring
 * generate), as PEM in b. */
static int wrap_key(KEYCASE *kc, BIO *b)
{
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(kc->pk, &der), ok = 0;
    char spec[BENCH_PATH_MAX + 8];
    EVP_PKEY_CTX *g = NULL;
    EVP_PKEY *w = NULL;
    OSSL_PARAM ps[3];

    snprintf(spec, sizeof(spec), "file:%s", bench_kek_path);
    ps[0] = OSSL_PARAM_construct_octet_string("kmsenv-private-key", der,
                                              n > 0 ? (size_t)n : 0);
    ps[1] = OSSL_PARAM_construct_utf8_string("keyring", spec, 0);
    ps[2] = OSSL_PARAM_construct_end();
    if (n > 0 &&
        (g = EVP_PKEY_CTX_new_from_name(srv, kc->alg, "provider=kmsenv")) !=
            NULL &&
        EVP_PKEY_keygen_init(g) > 0 && EVP_PKEY_CTX_set_params(g, ps) > 0 &&
        EVP_PKEY_generate(g, &w) > 0)
        ok = PEM_write_bio_PrivateKey_ex(b, w, NULL, NULL, 0, NULL, NULL, srv,
                                         NULL) > 0;
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)n);
    EVP_PKEY_free(w);
    EVP_PKEY_CTX_free(g);
    return ok;
}

static SSL_CTX *server_ctx(KEYCASE *kc, const char *path, const char *prov)
{
    SSL_CTX *c = SSL_CTX_new_ex(srv, NULL, TLS_server_method());
    EVP_PKEY *pk;
    const char *got = "none";

    if (c == NULL || !SSL_CTX_use_certificate(c, kc->cert) ||
        SSL_CTX_use_PrivateKey_file(c, path, SSL_FILETYPE_PEM) != 1 ||
        !SSL_CTX_check_private_key(c)) {
        bench_err(NAME, path);
        SSL_CTX_free(c);
        return NULL;
    }
    pk = SSL_CTX_get0_privatekey(c);
    if (pk != NULL && EVP_PKEY_get0_provider(pk) != NULL)
        got = OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(pk));
    if (strcmp(got, prov) != 0) {
        fprintf(stderr, "%s: %s: the server key is held by %s, not %s\n", NAME,
                path, got, prov);
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c, 0);
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    return c;
}

static SSL_CTX *client_ctx(KEYCASE *kc, int version)
{
    SSL_CTX *c = SSL_CTX_new_ex(cli, NULL, TLS_client_method());
    unsigned char *der = NULL;
    const unsigned char *p;
    int n = i2d_X509(kc->cert, &der);
    X509 *x = X509_new_ex(cli, NULL);

    p = der;
    if (c == NULL || n <= 0 || x == NULL || d2i_X509(&x, &p, n) == NULL ||
        !X509_STORE_add_cert(SSL_CTX_get_cert_store(c), x) ||
        !SSL_CTX_set_min_proto_version(c, version) ||
        !SSL_CTX_set_max_proto_version(c, version)) {
        SSL_CTX_free(c);
        c = NULL;
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    }
    X509_free(x);
    OPENSSL_free(der);
    return c;
}

static int setup_case(KEYCASE *kc)
{
    char plain[BENCH_PATH_MAX + 32], wrapped[BENCH_PATH_MAX + 32];
    BIO *pb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    int ok;

    snprintf(plain, sizeof(plain), "%s/plain-%s.pem", dir, kc->alg);
    snprintf(wrapped, sizeof(wrapped), "%s/wrapped-%s.pem", dir, kc->alg);
    kc->pk =
        kc->bits != 0
            ? EVP_PKEY_Q_keygen(srv, "provider=default", kc->alg, kc->bits)
            : EVP_PKEY_Q_keygen(srv, "provider=default", kc->alg, kc->param);
    ok = kc->pk != NULL && (kc->cert = self_signed(kc->pk)) != NULL &&
         pb != NULL && wb != NULL &&
         PEM_write_bio_PrivateKey_ex(pb, kc->pk, NULL, NULL, 0, NULL, NULL, srv,
                                     "provider=default") > 0 &&
         write_bio(plain, pb) && wrap_key(kc, wb) && write_bio(wrapped, wb);
    BIO_free(pb);
    BIO_free(wb);
    if (!ok) {
        bench_err(NAME, kc->label);
        return 0;
    }
    kc->plain = server_ctx(kc, plain, "default");
    kc->wrapped = server_ctx(kc, wrapped, "kmsenv");
    kc->client[0] = client_ctx(kc, TLS1_3_VERSION);
    kc->client[1] = client_ctx(kc, TLS1_2_VERSION);
    /* The key files are not needed once loaded. */
    unlink(plain);
    unlink(wrapped);
    if (kc->client[0] == NULL || kc->client[1] == NULL)
        bench_err(NAME, "the client contexts");
    return kc->plain != NULL && kc->wrapped != NULL && kc->client[0] != NULL &&
           kc->client[1] != NULL;
}

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int step(SSL *s, int *done, double *t)
{
    double t0 = t != NULL ? cpu_now() : 0;
    int r = SSL_do_handshake(s), e;

    if (t != NULL)
        *t += cpu_now() - t0;
    if (r == 1) {
        *done = 1;
        return 1;
    }
    e = SSL_get_error(s, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* One full handshake; the server's share of the time is added to *srv_t. */
static int handshake(SSL_CTX *cctx, SSL_CTX *sctx, int version, double *srv_t)
{
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    BIO *cb = NULL, *sb = NULL;
    int cdone = 0, sdone = 0, i, ok = 0;

    if (c == NULL || s == NULL || !BIO_new_bio_pair(&cb, 0, &sb, 0))
        goto done;
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (i = 0; i < 32 && !(cdone && sdone); i++)
        if ((!cdone && !step(c, &cdone, NULL)) ||
            (!sdone && !step(s, &sdone, srv_t)))
            goto done;
    ok = cdone && sdone && SSL_version(c) == version &&
         SSL_get_verify_result(c) == X509_V_OK && !SSL_session_reused(c);
done:
    SSL_free(c);
    SSL_free(s);
    return ok;
}

/* Handshakes for secs seconds of this thread's CPU time: handshakes per
 * CPU second (returned; negative on failure), per wall-clock second, and
 * the server's CPU microseconds per handshake. CPU time, because the
 * machine may be shared: other processes' share of the cores then does
 * not count against either key. */
static double measure(SSL_CTX *cctx, SSL_CTX *sctx, int version, double secs,
                      double *wall, double *srv_us)
{
    double c0 = cpu_now(), w0 = bench_now(), c, st = 0;
    long n = 0;

    do {
        if (!handshake(cctx, sctx, version, &st))
            return -1;
        n++;
    } while ((c = cpu_now() - c0) < secs);
    *wall = (double)n / (bench_now() - w0);
    *srv_us = st * 1e6 / (double)n;
    return (double)n / c;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];

    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    const char *build = argc > 1 ? argv[1] : getenv("KMSENV_BUILD_DIR");
    KEYCASE kc[2] = {{.label = "RSA-2048", .alg = "RSA", .bits = 2048},
                     {.label = "ECDSA P-256", .alg = "EC", .param = "P-256"}};
    static const int versions[2] = {TLS1_3_VERSION, TLS1_2_VERSION};
    static const char *const vname[2] = {"TLS 1.3", "TLS 1.2"};
    SERIES res[NCASES][2]; /* [key*2+version][plain, wrapped] */
    double secs = bench_seconds(NAME, argc, argv), us, wall, ratio;
    double ratios[MAX_ROUNDS], wratios[MAX_ROUNDS];
    int rounds = bench_rounds(NAME), r, i, w, loads, before, after, rc = 0;
    int all_ok = 1;
    char *slash;

    if (build == NULL || *build == '\0')
        build = "build";
    if (secs < 0 || rounds < 0)
        return 2;
    if (!bench_make_kek(NAME))
        return 1;
    snprintf(dir, sizeof(dir), "%s", bench_kek_path);
    if ((slash = strrchr(dir, '/')) != NULL)
        *slash = '\0';
    if (getenv("BENCH_KEEP") == NULL)
        atexit(cleanup_files); /* runs before the KEK and directory go */
    if (!setup_libctxs(build) || !setup_case(&kc[0]) || !setup_case(&kc[1]))
        return 1;
    loads = count_calls("unwrap");
    printf("%s: %s, %d round(s) of %.2f s per measurement, client and "
           "server in one thread over a BIO pair, full handshakes (no "
           "resumption, no tickets), client verifies the certificate\n",
           NAME, OpenSSL_version(OPENSSL_VERSION), rounds, secs);
    printf("keyring calls at setup: %d generate (wrapping the two keys), %d "
           "unwrap (loading them)\n",
           count_calls("generate"), loads);

    /* BENCH_PROFILE=CASE,WRAPPED,N (CASE 0..3 as in the table, WRAPPED 0
     * or 1): only N handshakes of that one, for a profiler. */
    if (getenv("BENCH_PROFILE") != NULL) {
        int n = 0;

        if (sscanf(getenv("BENCH_PROFILE"), "%d,%d,%d", &i, &w, &n) != 3 ||
            i < 0 || i >= NCASES || w < 0 || w > 1 || n < 1)
            return 2;
        for (r = 0; r < n; r++)
            if (!handshake(kc[i / 2].client[i % 2],
                           w ? kc[i / 2].wrapped : kc[i / 2].plain,
                           versions[i % 2], &us))
                return 1;
        return 0;
    }
    /* Warm-up: first handshakes, the wrapped keys' inner templates. */
    for (i = 0; i < NCASES; i++)
        for (w = 0; w < 2; w++)
            if (measure(kc[i / 2].client[i % 2],
                        w ? kc[i / 2].wrapped : kc[i / 2].plain,
                        versions[i % 2], secs / 5, &wall, &us) < 0) {
                bench_err(NAME, "a warm-up handshake");
                return 1;
            }
    before = count_calls(NULL);
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < NCASES; i++) {
            for (w = 0; w < 2; w++) {
                int wrapped = (w + r) % 2; /* alternate who goes first */
                KEYCASE *k = &kc[i / 2];
                SERIES *sr = &res[i][wrapped];

                sr->cpu[r] = measure(
                    k->client[i % 2], wrapped ? k->wrapped : k->plain,
                    versions[i % 2], secs, &sr->wall[r], &sr->srv_us[r]);
                if (sr->cpu[r] < 0) {
                    bench_err(NAME, "a handshake");
                    return 1;
                }
            }
        }
        printf("round %d:", r + 1);
        for (i = 0; i < NCASES; i++)
            printf("  %s/%s %.0f vs %.0f", kc[i / 2].alg, i % 2 ? "1.2" : "1.3",
                   res[i][0].cpu[r], res[i][1].cpu[r]);
        printf("  (plain vs wrapped, handshakes per CPU second)\n");
    }
    after = count_calls(NULL);

    printf("\n%-12s %-8s %9s %9s %7s | %9s %9s %7s | %8s %8s\n", "", "",
           "plain", "wrapped", "ratio", "plain", "wrapped", "ratio", "plain",
           "wrapped");
    printf("%-12s %-8s %27s | %27s | %17s\n", "key", "version",
           "handshakes per CPU second", "handshakes per second (wall)",
           "server CPU us/hs");
    for (i = 0; i < NCASES; i++) {
        SERIES *p = &res[i][0], *q = &res[i][1];

        for (r = 0; r < rounds; r++) {
            ratios[r] = q->cpu[r] / p->cpu[r];
            wratios[r] = q->wall[r] / p->wall[r];
        }
        ratio = median(ratios, rounds);
        printf("%-12s %-8s %9.0f %9.0f %7.3f | %9.0f %9.0f %7.3f | %8.1f "
               "%8.1f%s\n",
               kc[i / 2].label, vname[i % 2], median(p->cpu, rounds),
               median(q->cpu, rounds), ratio, median(p->wall, rounds),
               median(q->wall, rounds), median(wratios, rounds),
               median(p->srv_us, rounds), median(q->srv_us, rounds),
               ratio >= GOAL ? "" : "  (below goal)");
        if (ratio < GOAL)
            all_ok = 0;
    }
    printf("\nrates: medians over the rounds; ratio: wrapped/plain, the median "
           "of the per-round ratios (goal >= %.2f on CPU time)\n",
           GOAL);
    printf("keyring calls: %d unwrap at load (one per wrapped key), %d "
           "during the run\n",
           loads, after - before);
    printf("goal %s\n", all_ok ? "met" : "not met");
    if (loads != 2 || after != before) {
        fprintf(stderr,
                "%s: expected one unwrap per wrapped key and no keyring "
                "call during the run\n",
                NAME);
        rc = 1;
    }
    for (i = 0; i < 2; i++) {
        SSL_CTX_free(kc[i].plain);
        SSL_CTX_free(kc[i].wrapped);
        SSL_CTX_free(kc[i].client[0]);
        SSL_CTX_free(kc[i].client[1]);
        X509_free(kc[i].cert);
        EVP_PKEY_free(kc[i].pk);
    }
    OSSL_LIB_CTX_free(cli);
    OSSL_LIB_CTX_free(srv);
    return rc;
}
