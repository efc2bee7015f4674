/* SPDX-License-Identifier: Apache-2.0 */
/* kmsenv rewrap and inspect on wrapped private keys (docs/FORMATS.md §8).
 *
 * inspect reads the public header with the envelope parser: no keyring
 * call, no secret. rewrap is a thin client of the provider: the wrapped
 * DER goes to the key type's kmsenv keymgmt as the gen param
 * "kmsenv-rewrap-key", which unwraps once, rewraps the container key
 * under the new keyring and reseals; the private key stays inside the
 * provider (secure memory). The provider's encoder writes the result, and
 * the tool checks that its public header equals the original's before
 * kmsenv.c rewrites the file. */
#include "tools/wrapped.h"
#include "envelope/wrapkey.h"
#include "util/text.h"

#include <ctype.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define LABEL "KMSENV WRAPPED PRIVATE KEY"

/* The DER of the wrapped key in buf (DER as is, or the first PEM block
 * with our label: kmsenv.c passes the file's one block, pemblock.h), in
 * OPENSSL_malloc'd memory. */
static int to_der(const unsigned char *buf, size_t len, unsigned char **der,
                  size_t *derlen)
{
    BIO *in;
    int found = 0;

    *der = NULL;
    *derlen = 0;
    if (len > 0 && buf[0] == 0x04) {
        if ((*der = OPENSSL_memdup(buf, len)) == NULL)
            return 0;
        *derlen = len;
        return 1;
    }
    if ((in = BIO_new_mem_buf(buf, (int)len)) == NULL)
        return 0;
    ERR_set_mark(); /* errors of blocks skipped are not about this key */
    while (!found) {
        char *name = NULL, *hdr = NULL;
        unsigned char *data = NULL;
        long n = 0;

        if (!PEM_read_bio(in, &name, &hdr, &data, &n))
            break;
        if (strcmp(name, LABEL) == 0 && n > 0) {
            *der = data;
            *derlen = (size_t)n;
            data = NULL;
            found = 1;
        }
        OPENSSL_free(name);
        OPENSSL_free(hdr);
        OPENSSL_free(data);
    }
    BIO_free(in);
    if (found)
        ERR_pop_to_mark();
    else
        ERR_clear_last_mark();
    return found;
}

/* A KEK fingerprint as kmsenv prints it elsewhere: as text when printable
 * (an AWS key ARN), else hex. */
static void fp_text(const unsigned char *fp, size_t n, char *out, size_t ol)
{
    size_t i, printable = n > 0;

    for (i = 0; i < n; i++)
        if (!isprint(fp[i]))
            printable = 0;
    if (n == 0) {
        snprintf(out, ol, "(none)");
    } else if (printable) {
        snprintf(out, ol, "%.*s", (int)n, (const char *)fp);
    } else {
        for (i = 0; i < n && 2 * i + 2 < ol; i++)
            snprintf(out + 2 * i, 3, "%02x", fp[i]);
    }
}

static void fail_msg(const char *prog, const char *what, const char *path)
{
    fprintf(stderr, "%s: %s %s\n", prog, what, path);
    ERR_print_errors_fp(stderr);
}

/* Decodes the public header of the wrapped key in buf. */
static int decode_header(const char *prog, const char *path,
                         const unsigned char *buf, size_t len,
                         KMSENV_WRAPKEY *wk)
{
    unsigned char *der = NULL;
    size_t derlen = 0;
    int ok;

    kmsenv_wrapkey_init(wk);
    if (!to_der(buf, len, &der, &derlen)) {
        fail_msg(prog, "no \"" LABEL "\" PEM block or DER in", path);
        return 0;
    }
    ok = kmsenv_wrapkey_decode(wk, der, derlen, path);
    OPENSSL_free(der);
    if (!ok)
        fail_msg(prog, "cannot read the wrapped private key", path);
    return ok;
}

/* "EC P-256, 256 bits" and the like, from the header's public key. */
static void describe_pub(const KMSENV_WRAPKEY *wk, char *out, size_t ol)
{
    const unsigned char *p = wk->spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)wk->spkilen);
    char group[64] = "";

    if (pk == NULL) {
        snprintf(out, ol, "%s (public key unreadable)",
                 kmsenv_wk_type_name(wk->type));
        return;
    }
    if (wk->type == KMSENV_WK_EC)
        (void)EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME,
                                             group, sizeof(group), NULL);
    snprintf(out, ol, "%s%s%s, %d bits", kmsenv_wk_type_name(wk->type),
             *group ? " " : "", group, EVP_PKEY_get_bits(pk));
    EVP_PKEY_free(pk);
}

int kmsenv_wrapped_inspect(const char *prog, const char *path,
                           const unsigned char *buf, size_t len, FILE *out)
{
    KMSENV_WRAPKEY wk;
    unsigned char md[32];
    char hex[65], when[32] = "?", type[128], txt[1024], fp[520];
    time_t t;
    struct tm tm;
    size_t i;

    if (!decode_header(prog, path, buf, len, &wk))
        return 1;
    if (!EVP_Digest(wk.spki, wk.spkilen, md, NULL, EVP_sha256(), NULL)) {
        kmsenv_wrapkey_free(&wk);
        fail_msg(prog, "cannot hash the public key of", path);
        return 1;
    }
    for (i = 0; i < sizeof(md); i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    t = (time_t)wk.created;
    if ((uint64_t)t == wk.created && gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    describe_pub(&wk, type, sizeof(type));
    fprintf(out, "KMSENV WRAPPED PRIVATE KEY (the private key is never "
                 "shown)\n");
    fprintf(out, "type: %s\n", type);
    fprintf(out, "purpose: %s\n",
            kmsenv_escape(txt, sizeof(txt), wk.purpose, strlen(wk.purpose)));
    fprintf(out, "created: %s\n", when);
    fprintf(out, "public key SHA-256: %s\n", hex);
    fprintf(out, "key-encryption keys: %zu\n", wk.nwrap);
    for (i = 0; i < wk.nwrap; i++) {
        fp_text(wk.wrap[i].fp, wk.wrap[i].fplen, fp, sizeof(fp));
        fprintf(out, "  kek %zu: %s, fingerprint %s\n", i + 1,
                kmsenv_escape(txt, sizeof(txt), wk.wrap[i].spec,
                              strlen(wk.wrap[i].spec)),
                fp);
    }
    kmsenv_wrapkey_free(&wk);
    return 0;
}

/* Both headers say the same: type, created, purpose, public key. */
static int same_header(const KMSENV_WRAPKEY *a, const KMSENV_WRAPKEY *b)
{
    return a->type == b->type && a->created == b->created &&
           strcmp(a->purpose, b->purpose) == 0 && a->spkilen == b->spkilen &&
           memcmp(a->spki, b->spki, a->spkilen) == 0;
}

int kmsenv_wrapped_rewrap(const char *prog, const char *path,
                          const unsigned char *buf, size_t len,
                          const char *form, const char *keyring,
                          int allow_local, unsigned char **out, size_t *outlen,
                          size_t *nkeks)
{
    KMSENV_WRAPKEY before, after;
    unsigned char *der = NULL;
    size_t derlen = 0;
    EVP_PKEY_CTX *g = NULL;
    EVP_PKEY *k = NULL;
    OSSL_ENCODER_CTX *ectx = NULL;
    OSSL_PARAM ps[4];
    int ok = 0;

    *out = NULL;
    *outlen = 0;
    kmsenv_wrapkey_init(&after);
    if (!decode_header(prog, path, buf, len, &before))
        return 0;
    if (!to_der(buf, len, &der, &derlen))
        goto end;
    ps[0] = OSSL_PARAM_construct_octet_string("kmsenv-rewrap-key", der, derlen);
    ps[1] = OSSL_PARAM_construct_utf8_string("keyring", (char *)keyring, 0);
    ps[2] = OSSL_PARAM_construct_int("kmsenv-rewrap-allow-local-wrap",
                                     &allow_local);
    ps[3] = OSSL_PARAM_construct_end();
    g = EVP_PKEY_CTX_new_from_name(NULL, kmsenv_wk_type_name(before.type),
                                   "provider=kmsenv");
    if (g == NULL || EVP_PKEY_keygen_init(g) <= 0 ||
        !EVP_PKEY_CTX_set_params(g, ps) || EVP_PKEY_generate(g, &k) <= 0) {
        fail_msg(prog, "rewrap failed; the file is unchanged:", path);
        goto end;
    }
    ectx = OSSL_ENCODER_CTX_new_for_pkey(k, OSSL_KEYMGMT_SELECT_ALL, form,
                                         "PrivateKeyInfo", "provider=kmsenv");
    if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 ||
        !OSSL_ENCODER_to_data(ectx, out, outlen)) {
        fail_msg(prog,
                 "cannot encode the rewrapped key; the file is "
                 "unchanged:",
                 path);
        goto end;
    }
    if (!decode_header(prog, path, *out, *outlen, &after) ||
        !same_header(&before, &after)) {
        fprintf(stderr,
                "%s: %s: the rewrapped key's public header differs from the "
                "original's; the file is unchanged\n",
                prog, path);
        goto end;
    }
    *nkeks = after.nwrap;
    ok = 1;
end:
    if (!ok) {
        OPENSSL_free(*out);
        *out = NULL;
        *outlen = 0;
    }
    OSSL_ENCODER_CTX_free(ectx);
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(g);
    OPENSSL_free(der);
    kmsenv_wrapkey_free(&before);
    kmsenv_wrapkey_free(&after);
    return ok;
}
