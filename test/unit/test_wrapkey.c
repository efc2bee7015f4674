/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for envelope/wrapkey.c (docs/FORMATS.md §8 "Wrapped private
 * key"): the test vector, round trip, every byte authenticated or checked,
 * truncation and hostile headers; the KEK context binding (§8.2) through
 * the real loader (keys/privkey.c) and a file: KEK. */
#include "envelope/wrapkey.h"
#include "keys/privkey.h"
#include "kms/keyring.h"
#include "util/buf.h"
#include "util/err.h"
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

/* RFC 8032 test 1 (Ed25519) */
#define ED_PKCS8                                                               \
    "302e020100300506032b657004220420"                                         \
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define ED_SPKI                                                                \
    "302a300506032b6570032100"                                                 \
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define CK_HEX                                                                 \
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
#define KEK_HEX                                                                \
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
#define FP_HEX "f970f15f2534a15411780bc2e4dc8bc9"
#define SPEC "file:/etc/kmsenv/kek"

/* filled in from the first run, checked against docs/FORMATS.md §8.3 */
#define CTX_HEX                                                                \
    "0002000d6b6d73656e763a7075626b6579004030366533666438666461323962"         \
    "6236306162353935353764653631656462306165636462323331313334626533"         \
    "30653735623435356638653162373932666139000e6b6d73656e763a70757270"         \
    "6f7365000b707269766174652d6b6579"

#define WK_HEX                                                                 \
    "0481ff4b4d53454e56504b0104000000006553f1000b707269766174652d6b65"         \
    "79002c302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0e"         \
    "e172f3daa62325af021a68f707511a01001466696c653a2f6574632f6b6d7365"         \
    "6e762f6b656b10f970f15f2534a15411780bc2e4dc8bc9003d01b0b1b2b3b4b5"         \
    "b6b7b8b9babba674a3d64dd4743b991362fc9659c790349651f744c9e8d59620"         \
    "faf98b3e5e76008ef173fc9e8c667bef65cb88ef6bb7a0a1a2a3a4a5a6a7a8a9"         \
    "aaabe7a1043ee2db992b7a44248e8d9e34d67276445a0392df4d5858a46e7b2e"         \
    "523c1edeb72abb624db89861049d424258a938cfde49bb27947a898b9f152f2a"         \
    "1a02"

static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2, i;
    unsigned char *b = malloc(n ? n : 1);

    for (i = 0; i < n; i++)
        b[i] = (unsigned char)(kmsenv_hexval(hex[2 * i]) * 16 +
                               kmsenv_hexval(hex[2 * i + 1]));
    *len = n;
    return b;
}

static void tohex(char *out, const unsigned char *in, size_t n)
{
    kmsenv_hex(out, in, n);
}

/* 01 | nonce | GCM(KEK, nonce, "kmsenv-file-wrap-v1\0" || ctx, CK) | tag */
static int ref_blob(const unsigned char *kek, const unsigned char *ck,
                    const KMSENV_BUF *ctxenc, unsigned char blob[61])
{
    static const char label[] = "kmsenv-file-wrap-v1";
    unsigned char aad[512];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl, ok;
    size_t i;

    memcpy(aad, label, sizeof(label));
    memcpy(aad + sizeof(label), ctxenc->p, ctxenc->len);
    blob[0] = 1;
    for (i = 0; i < 12; i++)
        blob[1 + i] = (unsigned char)(0xb0 + i);
    ok = c != NULL &&
         EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), kek, blob + 1, NULL) &&
         EVP_EncryptUpdate(c, NULL, &outl, aad,
                           (int)(sizeof(label) + ctxenc->len)) &&
         EVP_EncryptUpdate(c, blob + 13, &outl, ck, 32) &&
         EVP_EncryptFinal_ex(c, blob + 45, &outl) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, blob + 45);
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* The vector's wrapped key, open: fields set, ck and pkcs8 in secure
 * memory. */
static int vector_key(KMSENV_WRAPKEY *wk, KMSENV_BUF *ctxenc)
{
    size_t l;
    unsigned char *p8 = unhex(ED_PKCS8, &l), *ck, *kek, blob[61], *fp;
    KMSENV_CONTEXT ectx;
    int ok;

    kmsenv_wrapkey_init(wk);
    wk->type = KMSENV_WK_ED25519;
    wk->created = 1700000000;
    strcpy(wk->purpose, KMSENV_WK_DEFAULT_PURPOSE);
    wk->spki = unhex(ED_SPKI, &wk->spkilen);
    kmsenv_secret_alloc(&wk->pkcs8, l);
    memcpy(wk->pkcs8.data, p8, l);
    free(p8);
    ck = unhex(CK_HEX, &l);
    kmsenv_secret_alloc(&wk->ck, l);
    memcpy(wk->ck.data, ck, l);
    kek = unhex(KEK_HEX, &l);
    ok = kmsenv_wrapkey_context(&ectx, NULL, wk->spki, wk->spkilen,
                                wk->purpose) &&
         kmsenv_ctx_encode(&ectx, ctxenc) && ref_blob(kek, ck, ctxenc, blob);
    kmsenv_ctx_free(&ectx);
    wk->nwrap = 1;
    wk->wrap = OPENSSL_zalloc(sizeof(*wk->wrap));
    wk->wrap->spec = OPENSSL_strdup(SPEC);
    fp = unhex(FP_HEX, &wk->wrap->fplen);
    memcpy(wk->wrap->fp, fp, wk->wrap->fplen);
    wk->wrap->blob = OPENSSL_memdup(blob, sizeof(blob));
    wk->wrap->bloblen = sizeof(blob);
    free(fp);
    free(ck);
    free(kek);
    return ok;
}

static void print_hex(const char *what, const unsigned char *p, size_t n)
{
    char *h = malloc(2 * n + 1);

    tohex(h, p, n);
    printf("# %s (%zu bytes) = %s\n", what, n, h);
    free(h);
}

/* ---- KEK context binding (§8.2) through keys/privkey.c ------------------
 * A wrapped key whose container key was wrapped under one KEK context but
 * whose header (authenticated by a correct seal) says another: the tools
 * never make one, so it is built here from the parts. */
static KMSENV_KMS_ENV kms;
static char kekdir[64], kekspec[128];

static int make_kek_file(void)
{
    unsigned char k[32];
    char path[96];
    int fd, ok;

    snprintf(kekdir, sizeof(kekdir), "/tmp/kmsenv-wrapkey-XXXXXX");
    if (mkdtemp(kekdir) == NULL || RAND_bytes(k, sizeof(k)) <= 0)
        return 0;
    snprintf(path, sizeof(path), "%s/kek", kekdir);
    snprintf(kekspec, sizeof(kekspec), "file:%s", path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ok = fd >= 0 && write(fd, k, sizeof(k)) == (ssize_t)sizeof(k);
    if (fd >= 0)
        close(fd);
    return ok;
}

static void remove_kek_file(void)
{
    char path[96];

    snprintf(path, sizeof(path), "%s/kek", kekdir);
    unlink(path);
    rmdir(kekdir);
}

static EVP_PKEY *gen_p256(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int spki_of(EVP_PKEY *pk, unsigned char **spki, size_t *len)
{
    int n = i2d_PUBKEY(pk, spki);

    *len = n > 0 ? (size_t)n : 0;
    return n > 0;
}

/* The wrapped key DER of sealed (its PKCS#8), with header public key
 * hdr_key and purpose hdr_purpose, whose container key is wrapped under
 * the KEK context of (ctx_key, ctx_purpose). */
static int build_wrapped(EVP_PKEY *sealed, EVP_PKEY *hdr_key,
                         const char *hdr_purpose, EVP_PKEY *ctx_key,
                         const char *ctx_purpose, KMSENV_BUF *der)
{
    KMSENV_WRAPKEY wk;
    KMSENV_CONTEXT ectx;
    KMSENV_KEYRING *kr = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(sealed);
    unsigned char *cspki = NULL, *q;
    size_t clen;
    int n, ok;

    kmsenv_wrapkey_init(&wk);
    kmsenv_ctx_init(&ectx);
    wk.type = KMSENV_WK_EC;
    wk.created = (uint64_t)time(NULL);
    snprintf(wk.purpose, sizeof(wk.purpose), "%s", hdr_purpose);
    n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, NULL) : 0;
    ok = n > 0 && kmsenv_secret_alloc(&wk.pkcs8, (size_t)n);
    q = ok ? wk.pkcs8.data : NULL;
    ok = ok && i2d_PKCS8_PRIV_KEY_INFO(p8, &q) == n &&
         spki_of(hdr_key, &wk.spki, &wk.spkilen) &&
         spki_of(ctx_key, &cspki, &clen) &&
         kmsenv_wrapkey_context(&ectx, NULL, cspki, clen, ctx_purpose) &&
         kmsenv_keyring_open(&kms, kekspec, &kr) &&
         kmsenv_keyring_generate(kr, &ectx, KMSENV_WK_CK_LEN, &wk.ck, &wk.wrap,
                                 &wk.nwrap) &&
         kmsenv_wrapkey_encode(&wk, NULL, NULL, der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    OPENSSL_free(cspki);
    kmsenv_keyring_free(kr);
    kmsenv_ctx_free(&ectx);
    kmsenv_wrapkey_free(&wk);
    return ok;
}

/* Loads der through the loader: 1 if it loaded; else *reason and the
 * error text (take_errors). */
static int try_load(const KMSENV_KEYS_ENV *env, const KMSENV_BUF *der,
                    int *reason, const char **errs)
{
    KMSENV_KEYOBJ *k =
        kmsenv_privkey_load(env, der->p, der->len, "binding", NULL);

    *reason = k == NULL ? last_reason() : 0;
    *errs = take_errors();
    kmsenv_keyobj_free(k);
    return k != NULL;
}

static void binding_tests(void)
{
    KMSENV_KEYS_ENV env = {NULL, NULL, &kms, NULL, NULL};
    EVP_PKEY *a = gen_p256(), *b = gen_p256();
    KMSENV_BUF der;
    const char *errs;
    int reason, built;

    env.inner = kmsenv_inner_new();
    kmsenv_buf_init(&der, 0);
    if (!CHECK(a != NULL && b != NULL && env.inner != NULL && make_kek_file(),
               "binding: keys and a file: KEK"))
        goto end;

    /* controls: header and KEK context agree */
    built = build_wrapped(a, a, "private-key", a, "private-key", &der);
    CHECK(built && try_load(&env, &der, &reason, &errs),
          "binding: header and KEK context agree: loads");
    der.len = 0;
    built = build_wrapped(a, a, "tls-server", a, "tls-server", &der);
    CHECK(built && try_load(&env, &der, &reason, &errs),
          "binding: another purpose, the same in both: loads");

    /* purpose rewritten in the header, sealed correctly under it */
    der.len = 0;
    built = build_wrapped(a, a, "tls-server", a, "private-key", &der);
    CHECK(built && !try_load(&env, &der, &reason, &errs) &&
              reason == KMSENV_R_UNWRAP_FAILED &&
              strstr(errs, "encryption context") != NULL,
          "binding: header purpose tls-server, wrapped for private-key: "
          "refused by the KEK unwrap (%s)",
          errs);
    der.len = 0;
    built = build_wrapped(a, a, "private-key", a, "tls-server", &der);
    CHECK(built && !try_load(&env, &der, &reason, &errs) &&
              reason == KMSENV_R_UNWRAP_FAILED &&
              strstr(errs, "encryption context") != NULL,
          "binding: header purpose private-key, wrapped for tls-server: "
          "refused by the KEK unwrap");

    /* public key swapped: header, seal and sealed key all say b, so only
     * the KEK context (bound to a) refuses it */
    der.len = 0;
    built = build_wrapped(b, b, "private-key", a, "private-key", &der);
    CHECK(built && !try_load(&env, &der, &reason, &errs) &&
              reason == KMSENV_R_UNWRAP_FAILED &&
              strstr(errs, "encryption context") != NULL,
          "binding: swapped public key, consistent seal: refused by the KEK "
          "context binding");
    der.len = 0;
    built = build_wrapped(b, b, "private-key", b, "private-key", &der);
    CHECK(built && try_load(&env, &der, &reason, &errs),
          "binding: the same with the KEK context of b: loads");
    /* and the check after the unseal: a's key under b's header */
    der.len = 0;
    built = build_wrapped(a, b, "private-key", b, "private-key", &der);
    CHECK(built && !try_load(&env, &der, &reason, &errs) &&
              reason == KMSENV_R_BAD_KEYSET &&
              strstr(errs, "does not belong") != NULL,
          "binding: a sealed key that is not the header's: refused after "
          "the unseal");
end:
    remove_kek_file();
    kmsenv_buf_free(&der);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    kmsenv_inner_free(env.inner);
}

int main(void)
{
    KMSENV_WRAPKEY wk, d;
    KMSENV_BUF der, ctxenc;
    unsigned char nonce[12], *exp;
    size_t i, el, bad = 0;
    int ok;

    harness_clear_errors = 1;
    (void)opt_verbose;
    for (i = 0; i < 12; i++)
        nonce[i] = (unsigned char)(0xa0 + i);
    kmsenv_buf_init(&der, 0);
    kmsenv_buf_init(&ctxenc, 0);
    CHECK(vector_key(&wk, &ctxenc), "vector key built");
    print_hex("KEK context encoding", ctxenc.p, ctxenc.len);
    exp = unhex(CTX_HEX, &el);
    CHECK(el == ctxenc.len && memcmp(exp, ctxenc.p, el) == 0,
          "KEK context encoding matches FORMATS.md");
    free(exp);
    CHECK(kmsenv_wrapkey_encode(&wk, NULL, nonce, &der), "encode vector");
    print_hex("wrapped key DER", der.p, der.len);
    exp = unhex(WK_HEX, &el);
    CHECK(el == der.len && memcmp(exp, der.p, el) == 0,
          "wrapped key DER matches FORMATS.md");
    free(exp);
    CHECK(kmsenv_wrapkey_sniff(der.p, der.len), "sniff");
    CHECK(kmsenv_wrapkey_peek_type(der.p, der.len) == KMSENV_WK_ED25519,
          "peek type");

    /* round trip */
    ok = kmsenv_wrapkey_decode(&d, der.p, der.len, "vector");
    CHECK(ok, "decode");
    CHECK(ok && d.type == KMSENV_WK_ED25519 && d.created == 1700000000 &&
              strcmp(d.purpose, "private-key") == 0 &&
              d.spkilen == wk.spkilen &&
              memcmp(d.spki, wk.spki, d.spkilen) == 0 && d.nwrap == 1 &&
              strcmp(d.wrap[0].spec, SPEC) == 0,
          "decoded header fields");
    if (ok) {
        kmsenv_secret_dup(&d.ck, &wk.ck);
        CHECK(kmsenv_wrapkey_unseal(&d, NULL, "vector") &&
                  d.pkcs8.len == wk.pkcs8.len &&
                  memcmp(d.pkcs8.data, wk.pkcs8.data, d.pkcs8.len) == 0,
              "unseal gives the PKCS#8 back");
        kmsenv_wrapkey_free(&d);
    }

    /* every byte flipped is caught by the decoder or the tag */
    for (i = 0; i < der.len; i++) {
        unsigned char *c = OPENSSL_memdup(der.p, der.len);

        c[i] ^= 0x01;
        if (kmsenv_wrapkey_decode(&d, c, der.len, "flipped")) {
            kmsenv_secret_dup(&d.ck, &wk.ck);
            if (kmsenv_wrapkey_unseal(&d, NULL, "flipped"))
                bad++;
            kmsenv_wrapkey_free(&d);
        }
        ERR_clear_error();
        OPENSSL_free(c);
    }
    CHECK(bad == 0, "each of %zu flipped bytes refused (%zu accepted)", der.len,
          bad);

    /* every truncation refused by the decoder */
    for (bad = 0, i = 0; i < der.len; i++) {
        if (kmsenv_wrapkey_decode(&d, der.p, i, "truncated")) {
            bad++;
            kmsenv_wrapkey_free(&d);
        }
        ERR_clear_error();
    }
    CHECK(bad == 0, "every truncation refused (%zu accepted)", bad);

    /* a keyset is not a wrapped key */
    {
        unsigned char ks[] = {0x04, 0x0a, 'K', 'M', 'S', 'E',
                              'N',  'V',  'K', 'S', 1,   1};
        CHECK(!kmsenv_wrapkey_sniff(ks, sizeof(ks)) &&
                  !kmsenv_wrapkey_decode(&d, ks, sizeof(ks), "keyset") &&
                  last_reason() == KMSENV_R_BAD_KEYSET,
              "keyset magic refused");
    }
    /* encode refuses what decode would refuse */
    wk.type = 9;
    CHECK(!kmsenv_wrapkey_encode(&wk, NULL, NULL, &der), "unknown type");
    wk.type = KMSENV_WK_ED25519;
    wk.purpose[0] = '\0';
    CHECK(!kmsenv_wrapkey_encode(&wk, NULL, NULL, &der), "empty purpose");
    CHECK(kmsenv_wk_type_from_name("rsa-pss") == KMSENV_WK_RSA_PSS &&
              kmsenv_wk_type_from_name("DSA") == 0 &&
              strcmp(kmsenv_wk_type_name(KMSENV_WK_EC), "EC") == 0,
          "type names");

    kmsenv_wrapkey_free(&wk);
    kmsenv_buf_free(&der);
    kmsenv_buf_free(&ctxenc);
    binding_tests();
    return harness_done();
}
