/* SPDX-License-Identifier: Apache-2.0 */
/* kmsenv wrap: turns a private key into a "KMSENV WRAPPED PRIVATE KEY"
 * (docs/FORMATS.md §8), or makes a new one already wrapped;
 * rewrap and inspect of wrapped keys are in tools/wrapped.c.
 *
 *   kmsenv wrap --in KEY --out KEY.kmsenv.pem [--keyring SPEC]
 *   kmsenv wrap --generate TYPE [--bits N] [--curve NAME] --out FILE ...
 *
 * A thin client: the key (PEM or DER, PKCS#8 or traditional) is read into
 * secure memory, re-encoded as PKCS#8 in memory and handed to the
 * provider's keymgmt as the gen param "kmsenv-private-key"; with
 * --generate the provider makes the key itself, so the plaintext never
 * exists outside it. The provider's encoder writes the wrapped form. */
#include "tools/wrap.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#define KEY_MAX (64 * 1024)

static int wfail(const char *prog, const char *what, const char *path)
{
    fprintf(stderr, "%s: wrap: %s%s%s\n", prog, what, path ? " " : "",
            path ? path : "");
    ERR_print_errors_fp(stderr);
    return 1;
}

/* The key file into secure memory (a regular file of at most KEY_MAX). */
static unsigned char *read_key(const char *prog, const char *path, size_t *len)
{
    struct stat st;
    char why[160];
    unsigned char *b;
    size_t got = 0;
    ssize_t n;
    int fd = kmsenv_open_regular(path, &st, why, sizeof(why));

    if (fd < 0) {
        fprintf(stderr, "%s: wrap: key file %s %s\n", prog, path, why);
        return NULL;
    }
    if (st.st_size <= 0 || st.st_size > KEY_MAX ||
        (b = OPENSSL_secure_malloc((size_t)st.st_size + 1)) == NULL) {
        fprintf(stderr, "%s: wrap: key file %s is empty or over %d bytes\n",
                prog, path, KEY_MAX);
        close(fd);
        return NULL;
    }
    while ((n = kmsenv_read_some(fd, b + got, (size_t)st.st_size + 1 - got, why,
                                 sizeof(why))) > 0)
        got += (size_t)n;
    close(fd);
    if (n < 0 || got != (size_t)st.st_size) {
        fprintf(stderr, "%s: wrap: key file %s changed while read (%s)\n", prog,
                path, n < 0 ? why : "size");
        OPENSSL_secure_clear_free(b, (size_t)st.st_size + 1);
        return NULL;
    }
    *len = got;
    return b;
}

/* PEM or DER, PKCS#8 or traditional, into a default-provider key. */
static EVP_PKEY *decode_key(const unsigned char *buf, size_t len)
{
    EVP_PKEY *pk = NULL;
    const char *forms[] = {"PEM", "DER"};
    size_t i;

    for (i = 0; i < 2 && pk == NULL; i++) {
        BIO *in = BIO_new_mem_buf(buf, (int)len);
        OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(
            &pk, forms[i], NULL, NULL, OSSL_KEYMGMT_SELECT_KEYPAIR, NULL,
            "provider=default");

        if (in != NULL && d != NULL)
            (void)OSSL_DECODER_from_bio(d, in);
        OSSL_DECODER_CTX_free(d);
        BIO_free(in);
    }
    return pk;
}

/* The key as PKCS#8 DER in secure memory. */
static unsigned char *to_pkcs8(EVP_PKEY *pk, size_t *len)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, NULL) : 0;
    unsigned char *b = n > 0 ? OPENSSL_secure_malloc((size_t)n) : NULL, *q = b;

    if (b != NULL && i2d_PKCS8_PRIV_KEY_INFO(p8, &q) != n) {
        OPENSSL_secure_clear_free(b, (size_t)n);
        b = NULL;
    }
    PKCS8_PRIV_KEY_INFO_free(p8);
    *len = b != NULL ? (size_t)n : 0;
    return b;
}

/* TYPE of --generate: the keymgmt name, and the default size/curve. */
static const char *gen_type(const char *t, const char **curve)
{
    if (strcasecmp(t, "rsa") == 0)
        return "RSA";
    if (strcasecmp(t, "rsa-pss") == 0)
        return "RSA-PSS";
    if (strcasecmp(t, "ed25519") == 0)
        return "ED25519";
    if (strcasecmp(t, "ec") == 0)
        return "EC";
    if (strcasecmp(t, "p-256") == 0 || strcasecmp(t, "p-384") == 0 ||
        strcasecmp(t, "p-521") == 0) {
        if (*curve == NULL)
            *curve = strcasecmp(t, "p-256") == 0   ? "P-256"
                     : strcasecmp(t, "p-384") == 0 ? "P-384"
                                                   : "P-521";
        return "EC";
    }
    return NULL;
}

static int write_out(const char *prog, const char *path, const unsigned char *b,
                     size_t len)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t done = 0;
    ssize_t n;

    if (fd < 0) {
        fprintf(stderr, "%s: wrap: cannot write %s: %s\n", prog, path,
                strerror(errno));
        return 0;
    }
    while (done < len) {
        n = write(fd, b + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (done != len || fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "%s: wrap: cannot write %s: %s\n", prog, path,
                strerror(errno));
        unlink(path);
        return 0;
    }
    return 1;
}

int kmsenv_wrap_main(const char *prog, int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *keyring = NULL, *gen = NULL;
    const char *curve = NULL, *type = NULL, *form = "PEM";
    unsigned char *buf = NULL, *p8 = NULL, *enc = NULL;
    size_t len = 0, p8len = 0, enclen = 0;
    EVP_PKEY *plain = NULL, *wrapped = NULL;
    EVP_PKEY_CTX *g = NULL;
    OSSL_ENCODER_CTX *ectx = NULL;
    OSSL_PARAM ps[4], *p = ps;
    int i, bits = 0, rc = 1;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--in") == 0 && i + 1 < argc)
            in = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--keyring") == 0 && i + 1 < argc)
            keyring = argv[++i];
        else if (strcmp(argv[i], "--generate") == 0 && i + 1 < argc)
            gen = argv[++i];
        else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc)
            bits = atoi(argv[++i]);
        else if (strcmp(argv[i], "--curve") == 0 && i + 1 < argc)
            curve = argv[++i];
        else if (strcmp(argv[i], "--der") == 0)
            form = "DER";
        else {
            fprintf(stderr, "%s: wrap: unexpected argument '%s'\n", prog,
                    argv[i]);
            return 2;
        }
    }
    if (out == NULL || (in == NULL) == (gen == NULL)) {
        fprintf(stderr,
                "usage: %s wrap (--in KEY | --generate TYPE [--bits "
                "N] [--curve P-256|P-384|P-521]) --out FILE "
                "[--keyring SPEC] [--der]\n"
                "TYPE: rsa, rsa-pss, ec, p-256, p-384, p-521, "
                "ed25519\n",
                prog);
        return 2;
    }
    if (in != NULL && strcmp(in, out) == 0) {
        fprintf(stderr, "%s: wrap: --out must not be the input key\n", prog);
        return 2;
    }
    if (gen != NULL) {
        if ((type = gen_type(gen, &curve)) == NULL) {
            fprintf(stderr, "%s: wrap: unknown key type '%s'\n", prog, gen);
            return 2;
        }
        if (bits != 0)
            *p++ = OSSL_PARAM_construct_int(OSSL_PKEY_PARAM_RSA_BITS, &bits);
        if (curve != NULL)
            *p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                    (char *)curve, 0);
    } else {
        if ((buf = read_key(prog, in, &len)) == NULL)
            return 1;
        if ((plain = decode_key(buf, len)) == NULL) {
            rc =
                wfail(prog, "not an unencrypted private key (PEM or DER):", in);
            goto end;
        }
        type = EVP_PKEY_get0_type_name(plain);
        if ((p8 = to_pkcs8(plain, &p8len)) == NULL) {
            rc = wfail(prog, "cannot encode the key", in);
            goto end;
        }
        *p++ =
            OSSL_PARAM_construct_octet_string("kmsenv-private-key", p8, p8len);
    }
    if (keyring != NULL)
        *p++ = OSSL_PARAM_construct_utf8_string("keyring", (char *)keyring, 0);
    *p = OSSL_PARAM_construct_end();
    g = EVP_PKEY_CTX_new_from_name(NULL, type, "provider=kmsenv");
    if (g == NULL || EVP_PKEY_keygen_init(g) <= 0 ||
        !EVP_PKEY_CTX_set_params(g, ps) ||
        EVP_PKEY_generate(g, &wrapped) <= 0) {
        rc = wfail(prog, "cannot wrap the key", in != NULL ? in : gen);
        goto end;
    }
    ectx = OSSL_ENCODER_CTX_new_for_pkey(wrapped, OSSL_KEYMGMT_SELECT_ALL, form,
                                         "PrivateKeyInfo", "provider=kmsenv");
    if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 ||
        !OSSL_ENCODER_to_data(ectx, &enc, &enclen)) {
        rc = wfail(prog, "cannot encode the wrapped key", NULL);
        goto end;
    }
    if (!write_out(prog, out, enc, enclen))
        goto end;
    printf("%s: wrapped %s key written\n", out, type);
    rc = 0;
end:
    OSSL_ENCODER_CTX_free(ectx);
    EVP_PKEY_CTX_free(g);
    EVP_PKEY_free(wrapped);
    EVP_PKEY_free(plain);
    OPENSSL_free(enc);
    if (buf != NULL)
        OPENSSL_secure_clear_free(buf, len + 1);
    if (p8 != NULL)
        OPENSSL_secure_clear_free(p8, p8len);
    return rc;
}
