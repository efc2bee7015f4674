/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the provider's DECODERs, loaded in-process: kmsenv.so from
 * the build (KMSENV_MODULE_DIR, or $KMSENV_FUZZ_MODULE_DIR) in its own
 * library context with the default provider. Each input goes through
 * OSSL_DECODER_CTX_new_for_pkey as DER and as PEM for "KMSENV-KEYSET", and
 * with no input type and no key type (every decoder OpenSSL has).
 *
 * At init a file: KEK (the FORMATS.md §4.4 KEK, mode 0600) is written to a
 * temporary directory; KMSENV_REDIRECT maps the spec the §3.5 vector keyset
 * records (file:/etc/kmsenv/kek) to it, and KMSENV_ALLOWED_KEKS allows only
 * it, so that a mutated keyset naming another file or an aws-kms: key is
 * refused before any keyring call (no stray file reads, no network). The
 * seed corpus holds that keyset as DER and PEM: loading it unwraps the KSK
 * through the file: keyring, and the loaded key must then open the §2.6
 * record. Must never crash or leak. */
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#ifndef KMSENV_MODULE_DIR
#define KMSENV_MODULE_DIR "."
#endif

#define KEK_HEX                                                                \
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
/* docs/FORMATS.md §3.5 */
#define KEYSET_HEX                                                             \
    "048201054b4d53454e564b5301f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000000"         \
    "006553f100010000000200020000000102000000006553f10000000002010000"         \
    "00006555428001001466696c653a2f6574632f6b6d73656e762f6b656b10f970"         \
    "f15f2534a15411780bc2e4dc8bc9003d01b0b1b2b3b4b5b6b7b8b9babba674a3"         \
    "d64dd4743b991362fc9659c790349651f744c9e8d59620faf98b3e5e76c64c8c"         \
    "96499c3870072901a9581c2ffda0a1a2a3a4a5a6a7a8a9aaabd78e043ce6ee9a"         \
    "2a71664bf585b13ef9ff06e7d4f87a933afac5f481f5df60e77ab65060e47502"         \
    "86c07382b572c109e6d27d3555dfcc2427e249a7de4de3ebaf626bf35bf6925f"         \
    "40ef0db5705e887f85"
#define RECORD_HEX                                                             \
    "4b450100000001808182838485868788898a8b8c8d8e8f9091929394959697a2"         \
    "18185f6b16500ca221981c195a90113b10894cc418c0cb50b97cc99b77ba5a"

static OSSL_LIB_CTX *libctx;
static OSSL_PROVIDER *prov_default, *prov_kmsenv;
static char tmpdir[256], kekpath[300];

static void self_test(void);

/* The decoder contexts, one per way in. */
#define NDC 3
static struct {
    const char *input_type, *keytype;
    OSSL_DECODER_CTX *dc;
    EVP_PKEY *pkey;
} dcs[NDC] = {{"DER", "KMSENV-KEYSET", NULL, NULL},
              {"PEM", "KMSENV-KEYSET", NULL, NULL},
              {NULL, NULL, NULL, NULL}};

static void cleanup(void)
{
    size_t i;

    for (i = 0; i < NDC; i++)
        OSSL_DECODER_CTX_free(dcs[i].dc);
    OSSL_PROVIDER_unload(prov_kmsenv);
    OSSL_PROVIDER_unload(prov_default);
    OSSL_LIB_CTX_free(libctx);
    if (kekpath[0] != '\0')
        unlink(kekpath);
    if (tmpdir[0] != '\0')
        rmdir(tmpdir);
}

static void write_kek(void)
{
    unsigned char kek[32];
    const char *t = getenv("TMPDIR");
    int fd;

    snprintf(tmpdir, sizeof(tmpdir), "%s/kmsenv-fuzz-XXXXXX",
             t != NULL && *t != '\0' ? t : "/tmp");
    FUZZ_CHECK(mkdtemp(tmpdir) != NULL);
    snprintf(kekpath, sizeof(kekpath), "%s/kek", tmpdir);
    fuzz_unhex(KEK_HEX, kek, sizeof(kek));
    fd = open(kekpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, kek, sizeof(kek)) == (ssize_t)sizeof(kek));
    FUZZ_CHECK(close(fd) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char redirect[400], allowed[320];
    const char *dir = getenv("KMSENV_FUZZ_MODULE_DIR");
    static const char *const unset[] = {"KMSENV_KEYRING", "KMSENV_KEYSET",
                                        "KMSENV_CONTEXT", "KMSENV_DEBUG",
                                        "OPENSSL_CONF",   NULL};
    size_t i;

    for (i = 0; unset[i] != NULL; i++)
        unsetenv(unset[i]);
    write_kek();
    snprintf(redirect, sizeof(redirect), "file:/etc/kmsenv/kek=file:%s",
             kekpath);
    snprintf(allowed, sizeof(allowed), "file:%s", kekpath);
    FUZZ_CHECK(setenv("KMSENV_REDIRECT", redirect, 1) == 0);
    FUZZ_CHECK(setenv("KMSENV_ALLOWED_KEKS", allowed, 1) == 0);

    /* OpenSSL's atexit handler first, so that cleanup runs before it. */
    FUZZ_CHECK(OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL));
    atexit(cleanup);
    libctx = OSSL_LIB_CTX_new();
    FUZZ_CHECK(libctx != NULL);
    FUZZ_CHECK(OSSL_PROVIDER_set_default_search_path(
        libctx, dir != NULL && *dir != '\0' ? dir : KMSENV_MODULE_DIR));
    prov_default = OSSL_PROVIDER_load(libctx, "default");
    prov_kmsenv = OSSL_PROVIDER_load(libctx, "kmsenv");
    if (prov_default == NULL || prov_kmsenv == NULL) {
        fprintf(stderr, "fuzz_decoder: cannot load the providers from %s\n",
                dir != NULL && *dir != '\0' ? dir : KMSENV_MODULE_DIR);
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    self_test();
    return 0;
}

/* A keyset that loaded must be the §3.5 vector: it opens the §2.6 record. */
static void check_loaded(EVP_PKEY *pkey)
{
    unsigned char rec[63], out[63];
    size_t outlen = sizeof(out);
    EVP_PKEY_CTX *pc;
    OSSL_PARAM params[2];

    FUZZ_CHECK(EVP_PKEY_is_a(pkey, "KMSENV-KEYSET"));
    fuzz_unhex(RECORD_HEX, rec, sizeof(rec));
    pc = EVP_PKEY_CTX_new_from_pkey(libctx, pkey, NULL);
    FUZZ_CHECK(pc != NULL);
    params[0] = OSSL_PARAM_construct_utf8_string(
        "context", (char *)"table=cards,row=42", 0);
    params[1] = OSSL_PARAM_construct_end();
    FUZZ_CHECK(EVP_PKEY_decrypt_init_ex(pc, params) > 0);
    FUZZ_CHECK(EVP_PKEY_decrypt(pc, out, &outlen, rec, sizeof(rec)) > 0);
    FUZZ_CHECK(outlen == 16 && memcmp(out, "4111111111111111", 16) == 0);
    EVP_PKEY_CTX_free(pc);
}

/* The setup works: the §3.5 keyset loads through the KEK written here,
 * from a fresh decoder context. */
static void self_test(void)
{
    unsigned char der[265];
    const unsigned char *p = der;
    size_t left = sizeof(der);
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dc = OSSL_DECODER_CTX_new_for_pkey(
        &pkey, "DER", NULL, "KMSENV-KEYSET", 0, libctx, NULL);

    fuzz_unhex(KEYSET_HEX, der, sizeof(der));
    FUZZ_CHECK(dc != NULL && OSSL_DECODER_from_data(dc, &p, &left) &&
               pkey != NULL);
    check_loaded(pkey);
    EVP_PKEY_free(pkey);
    OSSL_DECODER_CTX_free(dc);
}

/* The decoder contexts are made once and reused: building one costs more
 * than a decode. */
static void decode(size_t i, const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    size_t left = size;

    if (dcs[i].dc == NULL) {
        dcs[i].dc =
            OSSL_DECODER_CTX_new_for_pkey(&dcs[i].pkey, dcs[i].input_type, NULL,
                                          dcs[i].keytype, 0, libctx, NULL);
        FUZZ_CHECK(dcs[i].dc != NULL);
    }
    if (OSSL_DECODER_from_data(dcs[i].dc, &p, &left)) {
        FUZZ_CHECK(dcs[i].pkey != NULL);
        if (EVP_PKEY_is_a(dcs[i].pkey, "KMSENV-KEYSET"))
            check_loaded(dcs[i].pkey);
    }
    EVP_PKEY_free(dcs[i].pkey);
    dcs[i].pkey = NULL;
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i;

    for (i = 0; i < NDC; i++)
        decode(i, data, size);
    return 0;
}
