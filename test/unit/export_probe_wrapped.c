/* SPDX-License-Identifier: Apache-2.0 */
/* export_probe --wrapped: the C paths of a wrapped private key
 * (docs/FORMATS.md §8).
 *
 *   export_probe MODULEDIR --wrapped def|kms WRAPPED.pem PLAIN.pem CERT OTHER
 *
 * Loads the wrapped key with the providers in the given order (default
 * first, or kmsenv first) and the same key in plain PEM (default provider),
 * then checks, as "ok N - ..." lines: no C path gives the private numbers
 * (the plain key's private scalars are searched for, raw and as hex, in
 * every output), public-only import with selection KEYPAIR, key matching
 * and X509_check_private_key, and duplicated digest-sign contexts. */
/* EVP_PKEY_get1_RSA / _EC_KEY: the legacy conversions are export paths */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "export_probe.h"
#include "harness.h"

#define NEEDLE_LEN 16
static unsigned char needle[8][NEEDLE_LEN];
static size_t n_needles;
static int verbose_out;

/* Keeps 16 bytes from the middle of a private number. */
static void add_needle(const unsigned char *p, size_t n)
{
    if (n < 2 * NEEDLE_LEN || n_needles == 8)
        return;
    memcpy(needle[n_needles++], p + n / 4, NEEDLE_LEN);
}

static int is_private_param(const char *key)
{
    return strcmp(key, OSSL_PKEY_PARAM_PRIV_KEY) == 0 ||
           strcmp(key, OSSL_PKEY_PARAM_RSA_D) == 0 ||
           strncmp(key, "rsa-factor", 10) == 0 ||
           strncmp(key, "rsa-exponent", 12) == 0 ||
           strncmp(key, "rsa-coefficient", 15) == 0;
}

static int mem_has(const unsigned char *h, size_t hn, const unsigned char *n,
                   size_t nn)
{
    size_t i;

    for (i = 0; hn >= nn && i <= hn - nn; i++)
        if (memcmp(h + i, n, nn) == 0)
            return 1;
    return 0;
}

/* 1 if p holds none of the private numbers: raw, as hex (colons and
 * white space dropped, any case), or inside any PEM block of it. */
static int clean(const unsigned char *p, size_t n)
{
    char *hex = OPENSSL_malloc(n + 1), nh[2 * NEEDLE_LEN + 1];
    size_t i, j, hl = 0;
    int ok = 1;
    BIO *b;
    char *name = NULL, *hdr = NULL;
    unsigned char *der = NULL;
    long dl;

    if (hex == NULL)
        return 0;
    for (i = 0; i < n; i++)
        if (p[i] != ':' && p[i] != ' ' && p[i] != '\n' && p[i] != '\t' &&
            p[i] != '\r')
            hex[hl++] = (char)tolower(p[i]);
    for (i = 0; i < n_needles && ok; i++) {
        for (j = 0; j < NEEDLE_LEN; j++)
            sprintf(nh + 2 * j, "%02x", needle[i][j]);
        if (mem_has(p, n, needle[i], NEEDLE_LEN) ||
            mem_has((unsigned char *)hex, hl, (unsigned char *)nh,
                    2 * NEEDLE_LEN))
            ok = 0;
    }
    OPENSSL_free(hex);
    b = BIO_new_mem_buf(p, (int)n);
    while (ok && b != NULL && PEM_read_bio(b, &name, &hdr, &der, &dl)) {
        for (i = 0; i < n_needles; i++)
            if (mem_has(der, (size_t)dl, needle[i], NEEDLE_LEN))
                ok = 0;
        OPENSSL_free(name);
        OPENSSL_free(hdr);
        OPENSSL_free(der);
        name = hdr = NULL;
        der = NULL;
    }
    BIO_free(b);
    ERR_clear_error();
    return ok;
}

static int bio_clean(BIO *b, int *wrapped_label)
{
    BUF_MEM *bm;

    BIO_get_mem_ptr(b, &bm);
    if (verbose_out)
        fwrite(bm->data, 1, bm->length, stdout);
    if (wrapped_label != NULL)
        *wrapped_label =
            bm->length > 0 && mem_has((unsigned char *)bm->data, bm->length,
                                      (const unsigned char *)"KMSENV WRAPPED "
                                                             "PRIVATE KEY",
                                      26);
    return clean((unsigned char *)bm->data, bm->length);
}

/* The private numbers of the plain key. */
static void collect_needles(const EVP_PKEY *plain)
{
    static const char *bns[] = {"d",
                                "priv",
                                "rsa-factor1",
                                "rsa-factor2",
                                "rsa-exponent1",
                                "rsa-exponent2",
                                "rsa-coefficient1",
                                NULL};
    unsigned char buf[1024];
    size_t i, len;

    for (i = 0; bns[i] != NULL; i++) {
        BIGNUM *bn = NULL;

        if (EVP_PKEY_get_bn_param(plain, bns[i], &bn)) {
            int n = BN_bn2bin(bn, buf);

            if (n > 0)
                add_needle(buf, (size_t)n);
        }
        BN_clear_free(bn);
    }
    if (EVP_PKEY_get_octet_string_param(plain, "priv", buf, sizeof(buf), &len))
        add_needle(buf, len);
    ERR_clear_error();
}

static const char *prov_name(const EVP_PKEY *pk)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(pk);

    return p != NULL ? OSSL_PROVIDER_get0_name(p) : "(legacy)";
}

/* todata: refused, or no private param and no private number. */
static int todata_clean(const EVP_PKEY *pk, int selection, int *refused)
{
    OSSL_PARAM *ps = NULL, *p;
    unsigned char buf[1024];
    int ok = 1;

    *refused = !EVP_PKEY_todata(pk, selection, &ps);
    for (p = ps; p != NULL && p->key != NULL; p++) {
        if (is_private_param(p->key))
            ok = 0;
        if (p->data_type == OSSL_PARAM_UNSIGNED_INTEGER &&
            p->data_size <= sizeof(buf)) {
            BIGNUM *bn = NULL;
            int n;

            if (OSSL_PARAM_get_BN(p, &bn) && (n = BN_bn2bin(bn, buf)) > 0)
                ok &= clean(buf, (size_t)n);
            BN_free(bn);
        } else if (p->data_type == OSSL_PARAM_OCTET_STRING ||
                   p->data_type == OSSL_PARAM_UTF8_STRING) {
            ok &= clean(p->data, p->data_size);
        }
    }
    OSSL_PARAM_free(ps);
    ERR_clear_error();
    return ok;
}

static int has_private_number(const EVP_PKEY *pk)
{
    BIGNUM *bn = NULL;
    unsigned char buf[256];
    size_t len;
    int r = EVP_PKEY_get_bn_param(pk, "d", &bn) ||
            EVP_PKEY_get_bn_param(pk, "priv", &bn) ||
            EVP_PKEY_get_bn_param(pk, "rsa-factor1", &bn) ||
            EVP_PKEY_get_octet_string_param(pk, "priv", buf, sizeof(buf), &len);

    BN_clear_free(bn);
    ERR_clear_error();
    return r;
}

struct import_arg {
    const char *type;
    EVP_PKEY *out;
};

/* EVP_PKEY_export callback: import into the default provider's keymgmt. */
static int import_default(const OSSL_PARAM params[], void *arg)
{
    struct import_arg *a = arg;
    EVP_PKEY_CTX *c =
        EVP_PKEY_CTX_new_from_name(NULL, a->type, "provider=default");
    int ok = c != NULL && EVP_PKEY_fromdata_init(c) > 0 &&
             EVP_PKEY_fromdata(c, &a->out, EVP_PKEY_KEYPAIR,
                               (OSSL_PARAM *)params) > 0;

    EVP_PKEY_CTX_free(c);
    return ok;
}

/* The outputs of one writer: refused, or the wrapped form; never a private
 * number. */
static void check_writer(const char *what, int wrote, BIO *mem)
{
    int label = 0, cl = bio_clean(mem, &label);

    CHECK(cl && (!wrote || label), "%s: %s, no private number", what,
          !wrote  ? "refused"
          : label ? "writes the wrapped form"
                  : "LEAK?");
}

static void export_checks(EVP_PKEY *w, const unsigned char *wder, long wlen,
                          const char *type)
{
    BIO *mem;
    unsigned char *der = NULL;
    int len, refused = 1, cl;
    BIGNUM *bn = NULL;
    unsigned char buf[256];
    size_t blen;

    cl = todata_clean(w, EVP_PKEY_KEYPAIR, &refused);
    CHECK(cl, "EVP_PKEY_todata(KEYPAIR): %s, no private param",
          refused ? "refused" : "public params only");
    CHECK(todata_clean(w, EVP_PKEY_PUBLIC_KEY, &refused) && !refused,
          "EVP_PKEY_todata(PUBLIC_KEY) gives the public params");
    CHECK(!EVP_PKEY_get_bn_param(w, "d", &bn) &&
              !EVP_PKEY_get_bn_param(w, "priv", &bn) &&
              !EVP_PKEY_get_bn_param(w, "rsa-factor1", &bn) &&
              !EVP_PKEY_get_bn_param(w, "rsa-coefficient1", &bn) &&
              !EVP_PKEY_get_octet_string_param(w, "priv", buf, sizeof(buf),
                                               &blen),
          "EVP_PKEY_get_bn_param d / priv / rsa-factor1 fail");
    BN_clear_free(bn);
    ERR_clear_error();

    /* a duplicate, and its way to the default provider */
    {
        EVP_PKEY *d = EVP_PKEY_dup(w);
        struct import_arg a = {type, NULL};
        int exported;

        CHECK(d != NULL && strcmp(prov_name(d), "kmsenv") == 0 &&
                  EVP_PKEY_eq(d, w) == 1,
              "EVP_PKEY_dup: a kmsenv key equal to the original");
        cl = d != NULL && todata_clean(d, EVP_PKEY_KEYPAIR, &refused);
        CHECK(cl, "EVP_PKEY_todata(KEYPAIR) of the dup: %s, no private param",
              refused ? "refused" : "public params only");
        exported = d != NULL &&
                   EVP_PKEY_export(d, EVP_PKEY_KEYPAIR, import_default, &a);
        ERR_clear_error();
        if (a.out != NULL) {
            der = NULL;
            len = i2d_PrivateKey(a.out, &der);
            CHECK(!has_private_number(a.out) &&
                      (len <= 0 || clean(der, (size_t)len)),
                  "EVP_PKEY_export of the dup to the default keymgmt: a "
                  "public key only");
            OPENSSL_free(der);
        } else {
            CHECK(!exported, "EVP_PKEY_export of the dup to the default "
                             "keymgmt: refused");
        }
        EVP_PKEY_free(a.out);
        ERR_clear_error();
        /* legacy conversions export to the legacy key */
        if (d != NULL &&
            (EVP_PKEY_is_a(d, "RSA") || EVP_PKEY_is_a(d, "RSA-PSS"))) {
            RSA *r = EVP_PKEY_get1_RSA(d);
            const BIGNUM *rd = NULL;

            if (r != NULL)
                RSA_get0_key(r, NULL, NULL, &rd);
            CHECK(rd == NULL, "EVP_PKEY_get1_RSA: %s",
                  r == NULL ? "refused" : "no d");
            RSA_free(r);
        } else if (d != NULL && EVP_PKEY_is_a(d, "EC")) {
            EC_KEY *e = EVP_PKEY_get1_EC_KEY(d);

            CHECK(e == NULL || EC_KEY_get0_private_key(e) == NULL,
                  "EVP_PKEY_get1_EC_KEY: %s",
                  e == NULL ? "refused" : "no private key");
            EC_KEY_free(e);
        } else if (d != NULL) {
            unsigned char raw[64];
            size_t rl = sizeof(raw);

            CHECK(!EVP_PKEY_get_raw_private_key(d, raw, &rl),
                  "EVP_PKEY_get_raw_private_key: refused");
        }
        ERR_clear_error();
        EVP_PKEY_free(d);
    }

    /* an operation of the default provider would need the private key
     * exported there: it must fail */
    {
        EVP_PKEY_CTX *c =
            EVP_PKEY_CTX_new_from_pkey(NULL, w, "provider=default");

        CHECK(c == NULL || EVP_PKEY_sign_init(c) <= 0,
              "a default-provider sign context cannot take the key");
        EVP_PKEY_CTX_free(c);
        ERR_clear_error();
    }

    len = i2d_PrivateKey(w, &der);
    CHECK((len <= 0 ||
           ((long)len == wlen && memcmp(der, wder, (size_t)len) == 0)) &&
              (len <= 0 || clean(der, (size_t)len)),
          "i2d_PrivateKey: %s",
          len <= 0 ? "refused" : "writes the wrapped DER");
    OPENSSL_free(der);
    ERR_clear_error();

    mem = BIO_new(BIO_s_mem());
    check_writer("PEM_write_bio_PrivateKey",
                 PEM_write_bio_PrivateKey(mem, w, NULL, NULL, 0, NULL, NULL),
                 mem);
    BIO_free(mem);
    mem = BIO_new(BIO_s_mem());
    check_writer(
        "PEM_write_bio_PKCS8PrivateKey",
        PEM_write_bio_PKCS8PrivateKey(mem, w, NULL, NULL, 0, NULL, NULL), mem);
    BIO_free(mem);
    mem = BIO_new(BIO_s_mem());
    check_writer(
        "PEM_write_bio_PrivateKey_traditional",
        PEM_write_bio_PrivateKey_traditional(mem, w, NULL, NULL, 0, NULL, NULL),
        mem);
    BIO_free(mem);
    mem = BIO_new(BIO_s_mem());
    {
        int ok = i2d_PKCS8PrivateKey_bio(mem, w, NULL, NULL, 0, NULL, NULL);
        BUF_MEM *bm;

        BIO_get_mem_ptr(mem, &bm);
        CHECK(clean((unsigned char *)bm->data, bm->length) &&
                  (!ok || ((long)bm->length == wlen &&
                           memcmp(bm->data, wder, bm->length) == 0)),
              "i2d_PKCS8PrivateKey_bio: %s, no private number",
              ok ? "writes the wrapped DER" : "refused");
    }
    BIO_free(mem);
    ERR_clear_error();

    /* the default provider's PrivateKeyInfo encoder */
    {
        OSSL_ENCODER_CTX *e = OSSL_ENCODER_CTX_new_for_pkey(
            w, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", "provider=default");
        unsigned char *out = NULL;
        size_t olen = 0;
        int ok = e != NULL && OSSL_ENCODER_CTX_get_num_encoders(e) > 0 &&
                 OSSL_ENCODER_to_data(e, &out, &olen);

        CHECK(!ok || (clean(out, olen) && (long)olen == wlen &&
                      memcmp(out, wder, olen) == 0),
              "OSSL_ENCODER PrivateKeyInfo (provider=default): %s",
              ok ? "writes the wrapped DER" : "refused");
        OPENSSL_free(out);
        OSSL_ENCODER_CTX_free(e);
        ERR_clear_error();
    }

    mem = BIO_new(BIO_s_mem());
    {
        int ok = EVP_PKEY_print_private(mem, w, 0, NULL) > 0;
        BUF_MEM *bm;
        char *txt;

        BIO_get_mem_ptr(mem, &bm);
        txt = OPENSSL_strndup(bm->data, bm->length);
        if (verbose_out)
            printf("%s", txt);
        CHECK(txt != NULL && clean((unsigned char *)txt, strlen(txt)) &&
                  strstr(txt, "priv:") == NULL &&
                  strstr(txt, "privateExponent") == NULL &&
                  strstr(txt, "prime1") == NULL &&
                  strstr(txt, "coefficient") == NULL,
              "EVP_PKEY_print_private: %s, no private numbers",
              ok ? "printed" : "refused");
        OPENSSL_free(txt);
    }
    BIO_free(mem);
    ERR_clear_error();
}

/* Public-only import with selection KEYPAIR (OpenSSL 3.0's certificate
 * matching), private import refused; matching and X509_check_private_key. */
static void import_checks(EVP_PKEY *w, EVP_PKEY *plain, const char *type,
                          X509 *cert, X509 *other)
{
    OSSL_PARAM *pub = NULL, *all = NULL;
    EVP_PKEY_CTX *c;
    EVP_PKEY *imp = NULL, *imp2 = NULL;
    int r;

    CHECK(EVP_PKEY_todata(plain, EVP_PKEY_PUBLIC_KEY, &pub) &&
              EVP_PKEY_todata(plain, EVP_PKEY_KEYPAIR, &all),
          "the plain key's params");
    c = EVP_PKEY_CTX_new_from_name(NULL, type, "provider=kmsenv");
    CHECK(c != NULL && EVP_PKEY_fromdata_init(c) > 0 &&
              EVP_PKEY_fromdata(c, &imp, EVP_PKEY_KEYPAIR, pub) > 0 &&
              imp != NULL && strcmp(prov_name(imp), "kmsenv") == 0,
          "fromdata(KEYPAIR) with public params only into the kmsenv "
          "keymgmt: a kmsenv public key");
    CHECK(imp != NULL && !has_private_number(imp) && EVP_PKEY_eq(imp, w) == 1,
          "  equal to the wrapped key (EVP_PKEY_eq)");
    CHECK(imp != NULL && EVP_PKEY_eq(imp, plain) == 1,
          "  equal to the plain key");
    ERR_clear_error();
    r = c != NULL && EVP_PKEY_fromdata_init(c) > 0 &&
        EVP_PKEY_fromdata(c, &imp2, EVP_PKEY_KEYPAIR, all) > 0;
    {
        unsigned long e = ERR_peek_last_error();
        char msg[256] = "";

        if (e != 0)
            ERR_error_string_n(e, msg, sizeof(msg));
        CHECK(!r && imp2 == NULL,
              "fromdata(KEYPAIR) with the private params into the kmsenv "
              "keymgmt: refused");
        /* Refused without an error on the queue, by design: EVP makes
         * the same call when it exports a default-provider key to kmsenv
         * (kmsenv listed first), and a stray error there fails TLS
         * handshakes (SSL_get_error reads the queue). The reason goes to
         * the debug log (level 1). */
        (void)msg;
    }
    ERR_clear_error();
    EVP_PKEY_free(imp2);
    EVP_PKEY_free(imp);
    EVP_PKEY_CTX_free(c);
    for (OSSL_PARAM *q = all; q != NULL && q->key != NULL; q++)
        OPENSSL_cleanse(q->data, q->data_size);
    OSSL_PARAM_free(all);
    OSSL_PARAM_free(pub);

    CHECK(EVP_PKEY_eq(w, plain) == 1, "EVP_PKEY_eq(wrapped, plain) == 1");
    CHECK(cert != NULL && X509_check_private_key(cert, w) == 1,
          "X509_check_private_key: the matching certificate passes");
    ERR_clear_error();
    CHECK(other != NULL && X509_check_private_key(other, w) != 1,
          "X509_check_private_key: another certificate fails");
    CHECK(other != NULL && EVP_PKEY_eq(X509_get0_pubkey(other), w) != 1,
          "EVP_PKEY_eq(another key, wrapped) != 1");
    ERR_clear_error();

    /* An init parameter the default implementation refuses: the error
     * names the key and the parameter (Ed25519 has no plain sign). */
    if (!EVP_PKEY_is_a(w, "ED25519")) {
        EVP_PKEY_CTX *sc = EVP_PKEY_CTX_new_from_pkey(NULL, w, NULL);
        OSSL_PARAM bad[2];
        const char *data = NULL;
        int flags = 0, ok_init;

        bad[0] = OSSL_PARAM_construct_utf8_string("digest", "no-such-md", 0);
        bad[1] = OSSL_PARAM_construct_end();
        ok_init = sc != NULL && EVP_PKEY_sign_init_ex(sc, bad) > 0;
        ERR_peek_last_error_data(&data, &flags);
        CHECK(!ok_init && data != NULL && strstr(data, "digest") != NULL &&
                  strstr(data, "refused") != NULL,
              "sign init with a bad parameter: the error names it (%s)",
              data != NULL ? data : "none");
        ERR_clear_error();
        EVP_PKEY_CTX_free(sc);
    }
}

static int md_setup(EVP_MD_CTX *m, const char *type, EVP_PKEY *k, int sign,
                    const char *propq)
{
    EVP_PKEY_CTX *pc = NULL;
    const char *md = strcmp(type, "ED25519") == 0 ? NULL : "SHA256";
    int ok = sign ? EVP_DigestSignInit_ex(m, &pc, md, NULL, propq, k, NULL)
                  : EVP_DigestVerifyInit_ex(m, &pc, md, NULL, propq, k, NULL);

    /* RSA: PSS with a 32-byte salt, set on the context before the copy */
    if (ok > 0 && strcmp(type, "RSA") == 0)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) > 0;
    return ok > 0;
}

static int verify(const char *type, EVP_PKEY *pub, const unsigned char *sig,
                  size_t slen, const char *m1, const char *m2)
{
    EVP_MD_CTX *v = EVP_MD_CTX_new();
    char msg[256];
    int ok;

    snprintf(msg, sizeof(msg), "%s%s", m1, m2);
    ok = v != NULL && md_setup(v, type, pub, 0, "provider=default") &&
         EVP_DigestVerify(v, sig, slen, (unsigned char *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(v);
    ERR_clear_error();
    return ok;
}

/* dupctx: a digest-sign context copied half way, both finished with other
 * data; both verify with the plain public key. */
static void dupctx_checks(EVP_PKEY *w, EVP_PKEY *pub, const char *type)
{
    static const char head[] = "the first half, ";
    unsigned char s1[1024], s2[1024];
    size_t l1 = sizeof(s1), l2 = sizeof(s2);
    EVP_MD_CTX *a = EVP_MD_CTX_new(), *b = EVP_MD_CTX_new();
    int ok;

    if (strcmp(type, "ED25519") == 0) {
        /* one-shot only: sign once, then copy an initialised context */
        ok = md_setup(a, type, w, 1, NULL) &&
             EVP_DigestSign(a, s1, &l1, (unsigned char *)"one-shot", 8) > 0;
        CHECK(ok && verify(type, pub, s1, l1, "one-shot", ""),
              "Ed25519: EVP_DigestSign one-shot verifies with the plain key");
        EVP_MD_CTX_free(a);
        a = EVP_MD_CTX_new();
        ok = md_setup(a, type, w, 1, NULL);
        if (ok && EVP_MD_CTX_copy_ex(b, a)) {
            l1 = sizeof(s1);
            CHECK(EVP_DigestSign(a, s1, &l1, (unsigned char *)"A", 1) > 0 &&
                      EVP_DigestSign(b, s2, &l2, (unsigned char *)"B", 1) > 0 &&
                      verify(type, pub, s1, l1, "A", "") &&
                      verify(type, pub, s2, l2, "B", "") &&
                      !verify(type, pub, s1, l1, "B", ""),
                  "Ed25519: a copied context and its original each sign");
        } else {
            CHECK(ok, "Ed25519: EVP_MD_CTX_copy_ex refused cleanly");
        }
        ERR_clear_error();
        EVP_MD_CTX_free(a);
        EVP_MD_CTX_free(b);
        return;
    }
    ok = md_setup(a, type, w, 1, NULL) &&
         EVP_DigestSignUpdate(a, head, strlen(head)) > 0;
    CHECK(ok, "%s: digest-sign with the wrapped key, first half", type);
    ok = ok && EVP_MD_CTX_copy_ex(b, a);
    CHECK(ok, "%s: EVP_MD_CTX_copy_ex half way", type);
    ok = ok && EVP_DigestSignUpdate(a, "tail A", 6) > 0 &&
         EVP_DigestSignUpdate(b, "and another tail B", 18) > 0 &&
         EVP_DigestSignFinal(a, s1, &l1) > 0 &&
         EVP_DigestSignFinal(b, s2, &l2) > 0;
    CHECK(ok, "%s: both contexts finish", type);
    CHECK(ok && verify(type, pub, s1, l1, head, "tail A"),
          "%s: the original's signature verifies with the plain key", type);
    CHECK(ok && verify(type, pub, s2, l2, head, "and another tail B"),
          "%s: the copy's signature verifies with the plain key", type);
    CHECK(ok && !verify(type, pub, s1, l1, head, "and another tail B"),
          "%s: and not for the other data", type);
    ERR_clear_error();
    EVP_MD_CTX_free(a);
    EVP_MD_CTX_free(b);
}

static X509 *read_cert(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    return x;
}

int wrapped_main(int argc, char **argv)
{
    OSSL_PROVIDER *def = NULL, *kms = NULL;
    EVP_PKEY *w = NULL, *plain = NULL, *pub = NULL;
    OSSL_DECODER_CTX *dctx = NULL;
    BIO *in = NULL;
    unsigned char *wder = NULL, *pder = NULL;
    const unsigned char *pp;
    long wlen = 0;
    char *name = NULL, *hdr = NULL, type[32] = "";
    X509 *cert = NULL, *other = NULL;
    int kms_first, plen;

    if (argc != 8)
        return 2;
    harness_clear_errors = 1;
    (void)opt_verbose;
    verbose_out = getenv("EXPORT_PROBE_VERBOSE") != NULL;
    kms_first = strcmp(argv[3], "kms") == 0;
    OSSL_PROVIDER_set_default_search_path(NULL, argv[1]);
    if (kms_first)
        kms = OSSL_PROVIDER_load(NULL, "kmsenv");
    def = OSSL_PROVIDER_load(NULL, "default");
    if (!kms_first)
        kms = OSSL_PROVIDER_load(NULL, "kmsenv");
    CHECK(def != NULL && kms != NULL, "providers loaded (%s first)",
          kms_first ? "kmsenv" : "default");

    in = BIO_new_file(argv[5], "r");
    plain = in != NULL ? PEM_read_bio_PrivateKey_ex(in, NULL, NULL, NULL, NULL,
                                                    "provider=default")
                       : NULL;
    BIO_free(in);
    CHECK(plain != NULL && strcmp(prov_name(plain), "default") == 0,
          "the plain key, in the default provider");
    if (plain != NULL) {
        collect_needles(plain);
        snprintf(type, sizeof(type), "%s", EVP_PKEY_get0_type_name(plain));
        pder = NULL;
        plen = i2d_PUBKEY(plain, &pder);
        pp = pder;
        pub = plen > 0
                  ? d2i_PUBKEY_ex(NULL, &pp, plen, NULL, "provider=default")
                  : NULL;
        OPENSSL_free(pder);
    }
    CHECK(n_needles >= 1, "%zu private numbers of the plain key to look for",
          n_needles);
    /* EC keys: "EC"; the type name of RSA-PSS keys is "RSA-PSS" */

    in = BIO_new_file(argv[4], "r");
    if (in != NULL && PEM_read_bio(in, &name, &hdr, &wder, &wlen) &&
        BIO_reset(in) == 0) {
        dctx = OSSL_DECODER_CTX_new_for_pkey(
            &w, "PEM", NULL, NULL, OSSL_KEYMGMT_SELECT_ALL, NULL, NULL);
        if (dctx != NULL)
            (void)OSSL_DECODER_from_bio(dctx, in);
    }
    CHECK(w != NULL && strcmp(prov_name(w), "kmsenv") == 0 &&
              EVP_PKEY_is_a(w, type),
          "the wrapped key loads as a kmsenv %s key", type);
    cert = read_cert(argv[6]);
    other = read_cert(argv[7]);
    if (w != NULL && plain != NULL && pub != NULL) {
        export_checks(w, wder, wlen, type);
        import_checks(w, plain, type, cert, other);
        dupctx_checks(w, pub, type);
    }
    ERR_clear_error();
    X509_free(cert);
    X509_free(other);
    EVP_PKEY_free(w);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(plain);
    OSSL_DECODER_CTX_free(dctx);
    BIO_free(in);
    OPENSSL_free(name);
    OPENSSL_free(hdr);
    OPENSSL_free(wder);
    OSSL_PROVIDER_unload(kms);
    OSSL_PROVIDER_unload(def);
    return harness_done();
}
