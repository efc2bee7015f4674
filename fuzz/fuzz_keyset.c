/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: keysets (docs/FORMATS.md §3): kmsenv_keyset_decode on
 * arbitrary bytes and, when it succeeds, kmsenv_keyset_unseal with the
 * fixed KSK of the §3.5 vector.
 *
 * Invariants checked:
 *  - decode never crashes; a failure raises an error and leaves the keyset
 *    empty; a success satisfies every rule of §3.4 and sniffs as a keyset;
 *  - unseal succeeds only on what encode produced: a keyset that unseals
 *    is encoded again with its own seal nonce and must come out byte for
 *    byte identical to the input;
 *  - what encode writes decodes and unseals to the same versions and keys. */
#include "envelope/keyset.h"
#include "fuzz_common.h"
#include "util/bytes.h"
#include "util/secmem.h"

#include <openssl/crypto.h>

#define KSK_HEX                                                                \
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"

static int is_empty(const KMSENV_KEYSET *ks)
{
    static const KMSENV_KEYSET zero;

    return memcmp(ks, &zero, sizeof(zero)) == 0;
}

static void check_rules(const KMSENV_KEYSET *ks, size_t size)
{
    size_t i, nprimary = 0;

    FUZZ_CHECK(ks->alg == KMSENV_KS_ALG_XAES256GCM);
    FUZZ_CHECK(ks->nver >= 1 && ks->nver <= KMSENV_KS_MAX_VERSIONS);
    for (i = 0; i < ks->nver; i++) {
        FUZZ_CHECK(ks->ver[i].id >= 1);
        FUZZ_CHECK(i == 0 || ks->ver[i].id > ks->ver[i - 1].id);
        FUZZ_CHECK(ks->ver[i].state >= KMSENV_STATE_PRIMARY &&
                   ks->ver[i].state <= KMSENV_STATE_DISABLED);
        if (ks->ver[i].state == KMSENV_STATE_PRIMARY) {
            nprimary++;
            FUZZ_CHECK(ks->ver[i].id == ks->primary);
        }
        FUZZ_CHECK(kmsenv_keyset_find(ks, ks->ver[i].id) == (int)i);
    }
    FUZZ_CHECK(nprimary == 1);
    FUZZ_CHECK(ks->nwrap >= 1 && ks->nwrap <= KMSENV_KS_MAX_WRAPS);
    for (i = 0; i < ks->nwrap; i++) {
        const KMSENV_WRAP *w = &ks->wrap[i];

        FUZZ_CHECK(w->spec != NULL && strlen(w->spec) >= 1);
        FUZZ_CHECK(w->fplen <= sizeof(w->fp));
        FUZZ_CHECK(w->blob != NULL && w->bloblen >= 1 && w->bloblen < size);
    }
    FUZZ_CHECK(ks->sealedlen == 12 + 32 * ks->nver + 16);
    FUZZ_CHECK(ks->aad != NULL && ks->sealed != NULL);
    FUZZ_CHECK(ks->aadlen + ks->sealedlen < size);
    FUZZ_CHECK(ks->keys.data == NULL && ks->ksk.data == NULL);
}

static void set_ksk(KMSENV_KEYSET *ks)
{
    FUZZ_CHECK(kmsenv_secret_alloc(&ks->ksk, 32));
    fuzz_unhex(KSK_HEX, ks->ksk.data, 32);
}

/* ks is unsealed: encode must reproduce der exactly. */
static void check_reencode(const KMSENV_KEYSET *ks, const unsigned char *nonce,
                           const uint8_t *der, size_t size)
{
    KMSENV_KEYSET back;
    KMSENV_BUF w;

    kmsenv_buf_init(&w, 0);
    FUZZ_CHECK(kmsenv_keyset_encode(ks, NULL, nonce, &w));
    FUZZ_CHECK(w.len == size && memcmp(w.p, der, size) == 0);
    /* and with a fresh nonce it decodes and unseals to the same keys */
    kmsenv_buf_free(&w);
    kmsenv_buf_init(&w, 0);
    FUZZ_CHECK(kmsenv_keyset_encode(ks, NULL, NULL, &w));
    FUZZ_CHECK(kmsenv_keyset_decode(&back, w.p, w.len, "re-encoded"));
    set_ksk(&back);
    FUZZ_CHECK(kmsenv_keyset_unseal(&back, NULL, "re-encoded"));
    FUZZ_CHECK(back.nver == ks->nver && back.primary == ks->primary &&
               memcmp(back.ver, ks->ver, ks->nver * sizeof(*ks->ver)) == 0);
    FUZZ_CHECK(back.keys.len == ks->keys.len &&
               CRYPTO_memcmp(back.keys.data, ks->keys.data, ks->keys.len) == 0);
    kmsenv_keyset_free(&back);
    kmsenv_buf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    KMSENV_KEYSET ks;
    unsigned char nonce[12];
    int ok;

    ERR_clear_error();
    ok = kmsenv_keyset_decode(&ks, data, size, "fuzz");
    if (!ok) {
        FUZZ_CHECK(ERR_peek_error() != 0);
        FUZZ_CHECK(is_empty(&ks));
        ERR_clear_error();
        return 0;
    }
    FUZZ_CHECK(kmsenv_keyset_sniff(data, size));
    check_rules(&ks, size);
    memcpy(nonce, ks.sealed, sizeof(nonce));
    set_ksk(&ks);
    if (kmsenv_keyset_unseal(&ks, NULL, "fuzz")) {
        FUZZ_CHECK(ks.keys.len == 32 * ks.nver && ks.sealed == NULL);
        check_reencode(&ks, nonce, data, size);
    } else {
        FUZZ_CHECK(ERR_peek_error() != 0);
        FUZZ_CHECK(ks.keys.data == NULL);
    }
    kmsenv_keyset_free(&ks);
    FUZZ_CHECK(is_empty(&ks));
    ERR_clear_error();
    return 0;
}
