/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: wrapped private keys (docs/FORMATS.md §8) on the path the
 * DECODERs take: the input as PEM (kmsenv_input_read_pem, the pem2der
 * step: our labels, base64, headers, the strict DER check) and as DER
 * (kmsenv_input_read_der, the der2key step's bounded read), then on the
 * DER each gives, and on the raw input: kmsenv_wrapkey_sniff,
 * kmsenv_wrapkey_peek_type, kmsenv_wrapkey_decode, the KEK context
 * (kmsenv_wrapkey_context) and kmsenv_wrapkey_unseal with the fixed
 * container key of the §8.3 vector (40 41 ... 5f).
 *
 * Invariants checked:
 *  - the readers: 1 gives checked DER (kmsenv_input_check_der), 0 gives
 *    nothing and raises nothing, -1 raises an error;
 *  - decode never crashes; a failure raises an error and leaves the key
 *    empty; a success sniffs and peeks as the same type and obeys §8.1
 *    (purpose 1..255 bytes without NUL, SPKI, 1..16 wrapped copies, a seal
 *    of 1..16384 bytes of PKCS#8 plus nonce and tag, AAD + seal within the
 *    input), and its KEK context builds;
 *  - unseal succeeds only on what encode produced: a key that unseals is
 *    encoded again with its own seal nonce and must come out byte for byte
 *    identical; with a fresh nonce it decodes and unseals to the same
 *    PKCS#8. The seeds (fuzz/make_corpus.pl) are RSA, EC and Ed25519 keys
 *    sealed under that container key, so this path is reached. */
#include "envelope/wrapkey.h"
#include "fuzz_common.h"
#include "keys/loader.h"
#include "util/bytes.h"
#include "util/secmem.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>

#define CK_HEX                                                                 \
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"

static int is_empty(const KMSENV_WRAPKEY *wk)
{
    static const KMSENV_WRAPKEY zero;

    return memcmp(wk, &zero, sizeof(zero)) == 0;
}

static void set_ck(KMSENV_WRAPKEY *wk)
{
    FUZZ_CHECK(kmsenv_secret_alloc(&wk->ck, KMSENV_WK_CK_LEN));
    fuzz_unhex(CK_HEX, wk->ck.data, KMSENV_WK_CK_LEN);
}

static void check_rules(const KMSENV_WRAPKEY *wk, const uint8_t *der,
                        size_t size)
{
    size_t i, pl = strlen(wk->purpose);

    FUZZ_CHECK(kmsenv_wrapkey_sniff(der, size));
    FUZZ_CHECK(kmsenv_wrapkey_peek_type(der, size) == wk->type);
    FUZZ_CHECK(kmsenv_wk_type_name(wk->type) != NULL);
    FUZZ_CHECK(kmsenv_wk_type_from_name(kmsenv_wk_type_name(wk->type)) ==
               wk->type);
    FUZZ_CHECK(pl >= 1 && pl <= 255);
    FUZZ_CHECK(wk->spki != NULL && wk->spkilen >= 1 && wk->spkilen < size);
    FUZZ_CHECK(wk->nwrap >= 1 && wk->nwrap <= KMSENV_MAX_WRAPS);
    for (i = 0; i < wk->nwrap; i++) {
        const KMSENV_WRAP *w = &wk->wrap[i];

        FUZZ_CHECK(w->spec != NULL && strlen(w->spec) >= 1);
        FUZZ_CHECK(w->fplen <= sizeof(w->fp));
        FUZZ_CHECK(w->blob != NULL && w->bloblen >= 1 && w->bloblen < size);
    }
    FUZZ_CHECK(wk->sealedlen > KMSENV_SEAL_OVERHEAD &&
               wk->sealedlen <= KMSENV_SEAL_OVERHEAD + KMSENV_WK_MAX_PKCS8);
    FUZZ_CHECK(wk->aad != NULL && wk->sealed != NULL);
    FUZZ_CHECK(wk->aadlen > 8 && memcmp(wk->aad, KMSENV_WK_MAGIC, 8) == 0);
    FUZZ_CHECK(wk->aadlen + wk->sealedlen < size);
    FUZZ_CHECK(wk->ck.data == NULL && wk->pkcs8.data == NULL);
}

/* wk is unsealed: encode must reproduce der exactly. */
static void check_reencode(const KMSENV_WRAPKEY *wk, const unsigned char *nonce,
                           const uint8_t *der, size_t size)
{
    KMSENV_WRAPKEY back;
    KMSENV_BUF w;

    kmsenv_buf_init(&w, 0);
    FUZZ_CHECK(kmsenv_wrapkey_encode(wk, NULL, nonce, &w));
    FUZZ_CHECK(w.len == size && memcmp(w.p, der, size) == 0);
    kmsenv_buf_free(&w);
    kmsenv_buf_init(&w, 0);
    FUZZ_CHECK(kmsenv_wrapkey_encode(wk, NULL, NULL, &w));
    FUZZ_CHECK(kmsenv_wrapkey_decode(&back, w.p, w.len, "re-encoded"));
    FUZZ_CHECK(back.type == wk->type && back.created == wk->created &&
               strcmp(back.purpose, wk->purpose) == 0 &&
               back.spkilen == wk->spkilen &&
               memcmp(back.spki, wk->spki, wk->spkilen) == 0 &&
               back.nwrap == wk->nwrap);
    set_ck(&back);
    FUZZ_CHECK(kmsenv_wrapkey_unseal(&back, NULL, "re-encoded"));
    FUZZ_CHECK(back.pkcs8.len == wk->pkcs8.len &&
               CRYPTO_memcmp(back.pkcs8.data, wk->pkcs8.data, wk->pkcs8.len) ==
                   0);
    kmsenv_wrapkey_free(&back);
    kmsenv_buf_free(&w);
}

static void check_wrapkey(const uint8_t *der, size_t size)
{
    KMSENV_WRAPKEY wk;
    KMSENV_CONTEXT ectx;
    unsigned char nonce[KMSENV_SEAL_NONCE_LEN];

    ERR_clear_error();
    if (!kmsenv_wrapkey_decode(&wk, der, size, "fuzz")) {
        FUZZ_CHECK(ERR_peek_error() != 0);
        FUZZ_CHECK(is_empty(&wk));
        ERR_clear_error();
        return;
    }
    check_rules(&wk, der, size);
    FUZZ_CHECK(
        kmsenv_wrapkey_context(&ectx, NULL, wk.spki, wk.spkilen, wk.purpose));
    kmsenv_ctx_free(&ectx);
    memcpy(nonce, wk.sealed, sizeof(nonce));
    set_ck(&wk);
    if (kmsenv_wrapkey_unseal(&wk, NULL, "fuzz")) {
        FUZZ_CHECK(wk.pkcs8.data != NULL && wk.pkcs8.len >= 1 &&
                   wk.pkcs8.len <= KMSENV_WK_MAX_PKCS8 && wk.sealed == NULL);
        check_reencode(&wk, nonce, der, size);
    } else {
        FUZZ_CHECK(ERR_peek_error() != 0);
        FUZZ_CHECK(wk.pkcs8.data == NULL);
    }
    kmsenv_wrapkey_free(&wk);
    FUZZ_CHECK(is_empty(&wk));
    ERR_clear_error();
}

/* One of the decoder's readers on the input; the DER it gives is checked
 * as a wrapped key too. */
static void check_reader(int pem, const uint8_t *data, size_t size)
{
    BIO *in = BIO_new_mem_buf(data, (int)size);
    unsigned char *der = NULL;
    size_t len = 0;
    int r;

    FUZZ_CHECK(in != NULL);
    ERR_clear_error();
    r = pem ? kmsenv_input_read_pem(in, &der, &len, "fuzz")
            : kmsenv_input_read_der(in, &der, &len, "fuzz");
    BIO_free(in);
    FUZZ_CHECK(r >= -1 && r <= 1);
    if (r == 1) {
        FUZZ_CHECK(der != NULL && len > 0);
        FUZZ_CHECK(kmsenv_input_check_der(der, len, "fuzz") == 1);
        if (!pem)
            FUZZ_CHECK(len == size && memcmp(der, data, size) == 0);
        check_wrapkey(der, len);
    } else {
        FUZZ_CHECK(der == NULL && len == 0);
        FUZZ_CHECK(r == 0 || ERR_peek_error() != 0);
    }
    OPENSSL_free(der);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > KMSENV_MAX_INPUT + 16)
        return 0;
    check_wrapkey(data, size);
    check_reader(1, data, size);
    check_reader(0, data, size);
    return 0;
}
