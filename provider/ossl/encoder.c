/* SPDX-License-Identifier: Apache-2.0 */
/* ENCODERs for KMSENV-KEYSET: PEM and DER write the wrapped keyset (the same
 * bytes a load reads), TEXT writes metadata. No path writes key bytes.
 *
 * A keyset is already wrapped under its KEKs: a request to password-encrypt
 * it (PEM_write_bio_PrivateKey with a cipher, "openssl pkey -aes256") is
 * refused rather than silently ignored. A keyset has no public part: public
 * key requests (SubjectPublicKeyInfo, "openssl pkey -pubout") reach an
 * encoder that says so instead of failing without a word. */
#include "keys/keyobj.h"
#include "keys/privkey.h"
#include <openssl/x509.h>
#include "ossl/provider.h"
#include "util/err.h"

#include <string.h>
#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>

static OSSL_FUNC_encoder_newctx_fn enc_newctx;
static OSSL_FUNC_encoder_freectx_fn enc_freectx;
static OSSL_FUNC_encoder_does_selection_fn enc_wrapped_does_selection;
static OSSL_FUNC_encoder_does_selection_fn enc_text_does_selection;
static OSSL_FUNC_encoder_encode_fn enc_pem;
static OSSL_FUNC_encoder_encode_fn enc_der;
static OSSL_FUNC_encoder_encode_fn enc_text;
static OSSL_FUNC_encoder_set_ctx_params_fn enc_set_ctx_params;
static OSSL_FUNC_encoder_settable_ctx_params_fn enc_settable_ctx_params;
static OSSL_FUNC_encoder_does_selection_fn enc_pub_does_selection;
static OSSL_FUNC_encoder_encode_fn enc_pub;

typedef struct {
    KMSENV_PROV *prov;
    int cipher; /* a cipher was requested (refused) */
} ENC_CTX;

static void *enc_newctx(void *provctx)
{
    ENC_CTX *c = OPENSSL_zalloc(sizeof(*c));

    KMSENV_ENTER((KMSENV_PROV *)provctx);
    if (c != NULL)
        c->prov = provctx;
    return c;
}

static void enc_freectx(void *ctx)
{
    OPENSSL_free(ctx);
}

static const OSSL_PARAM *enc_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(OSSL_ENCODER_PARAM_CIPHER, NULL, 0),
        OSSL_PARAM_END};
    return p;
}

#define NO_PASSWORD                                                            \
    "a keyset is already wrapped under its key-encryption keys and cannot "    \
    "be password-encrypted; write it without a cipher (no -aes256 etc.)"

/* OSSL_ENCODER_CTX_set_cipher(): any cipher is refused here (an empty or
 * NULL name means none). */
static int enc_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    ENC_CTX *c = ctx;
    const OSSL_PARAM *p =
        OSSL_PARAM_locate_const(params, OSSL_ENCODER_PARAM_CIPHER);
    const char *data = NULL;

    if (p == NULL || p->data == NULL)
        return 1;
    if (p->data_type != OSSL_PARAM_UTF8_STRING) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "cipher must be a string");
        return 0;
    }
    if (strnlen(p->data, p->data_size) == 0)
        return 1;
    c->cipher = 1;
    /* Every encoder instance of the request gets the cipher: say it once. */
    if (ERR_peek_last_error_data(&data, NULL) != 0 && data != NULL &&
        strstr(data, NO_PASSWORD) != NULL)
        return 0;
    KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "cipher %.*s refused: " NO_PASSWORD,
                 (int)strnlen(p->data, p->data_size > 64 ? 64 : p->data_size),
                 (const char *)p->data);
    return 0;
}

/* The wrapped form is a private-key encoding: refuse public-only requests
 * (PEM_write_bio_PUBKEY, i2d_PUBKEY) so they fail instead of writing it. */
static int enc_wrapped_does_selection(void *ctx, int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

static int enc_text_does_selection(void *ctx, int selection)
{
    return 1;
}

static int write_wrapped(void *ctx, OSSL_CORE_BIO *cout, const void *obj,
                         int selection, int pem)
{
    ENC_CTX *c = ctx;
    KMSENV_KEYOBJ *k = (KMSENV_KEYOBJ *)obj;
    BIO *out;
    unsigned char *der = NULL;
    size_t len = 0;
    int ok;

    KMSENV_ENTER(c->prov);
    if (c->cipher) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "%s: " NO_PASSWORD,
                     k != NULL ? k->name : "keyset");
        return 0;
    }
    if (k == NULL || !enc_wrapped_does_selection(ctx, selection) ||
        !kmsenv_keyobj_get_der(k, &der, &len))
        return 0;
    out = BIO_new_from_core_bio(c->prov->libctx, cout);
    ok = out != NULL && (pem ? PEM_write_bio(out,
                                             k->kind == KMSENV_KIND_PRIVKEY
                                                 ? KMSENV_WRAPPED_PEM_LABEL
                                                 : KMSENV_KEYSET_PEM_LABEL,
                                             "", der, (long)len) > 0
                             : BIO_write(out, der, (int)len) == (int)len);
    BIO_free(out);
    OPENSSL_free(der);
    if (!ok)
        KMSENV_RAISE(KMSENV_R_IO_ERROR, "writing %s", k->name);
    return ok;
}

static int enc_pem(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                   const OSSL_PARAM obj_abstract[], int selection,
                   OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    return write_wrapped(ctx, cout, obj_raw, selection, 1);
}

static int enc_der(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                   const OSSL_PARAM obj_abstract[], int selection,
                   OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    return write_wrapped(ctx, cout, obj_raw, selection, 0);
}

static int enc_text(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                    const OSSL_PARAM obj_abstract[], int selection,
                    OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    ENC_CTX *c = ctx;
    BIO *out;
    int ok;

    KMSENV_ENTER(c->prov);
    out = BIO_new_from_core_bio(c->prov->libctx, cout);
    ok = out != NULL && obj_raw != NULL &&
         (((const KMSENV_KEYOBJ *)obj_raw)->kind == KMSENV_KIND_PRIVKEY
              ? kmsenv_privkey_describe((KMSENV_KEYOBJ *)obj_raw, out)
              : kmsenv_keyobj_describe((KMSENV_KEYOBJ *)obj_raw, out));

    BIO_free(out);
    return ok;
}

/* Public-key requests only (PEM_write_bio_PUBKEY, i2d_PUBKEY). */
static int enc_pub_does_selection(void *ctx, int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 &&
           (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0;
}

static int enc_pub(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                   const OSSL_PARAM obj_abstract[], int selection,
                   OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    const KMSENV_KEYOBJ *k = obj_raw;

    KMSENV_ENTER(((ENC_CTX *)ctx)->prov);
    KMSENV_RAISE(KMSENV_R_EXPORT_REFUSED,
                 "%s: a keyset is a symmetric key and has no public part to "
                 "write (no -pubout; -text shows its metadata)",
                 k != NULL ? k->name : "keyset");
    return 0;
}

#define ENCODER_FUNCTIONS(name, does, fn)                                      \
    const OSSL_DISPATCH name[] = {                                             \
        {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx},                \
        {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx},              \
        {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))does},              \
        {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))fn},                        \
        {OSSL_FUNC_ENCODER_SETTABLE_CTX_PARAMS,                                \
         (void (*)(void))enc_settable_ctx_params},                             \
        {OSSL_FUNC_ENCODER_SET_CTX_PARAMS,                                     \
         (void (*)(void))enc_set_ctx_params},                                  \
        {0, NULL}}

ENCODER_FUNCTIONS(kmsenv_keyset2pem_encoder_functions,
                  enc_wrapped_does_selection, enc_pem);
ENCODER_FUNCTIONS(kmsenv_keyset2der_encoder_functions,
                  enc_wrapped_does_selection, enc_der);

const OSSL_DISPATCH kmsenv_keyset2text_encoder_functions[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))enc_text_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))enc_text},
    {0, NULL}};

const OSSL_DISPATCH kmsenv_keyset2pub_encoder_functions[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))enc_pub_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))enc_pub},
    {0, NULL}};

/* The public key of a wrapped private key (openssl pkey -pubout): the
 * SubjectPublicKeyInfo from its header, as DER or "PUBLIC KEY" PEM. */
static int write_spki(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                      int pem)
{
    ENC_CTX *c = ctx;
    const KMSENV_KEYOBJ *k = obj_raw;
    BIO *out;
    int ok;

    KMSENV_ENTER(c->prov);
    if (k == NULL || k->kind != KMSENV_KIND_PRIVKEY || k->pk.spki == NULL)
        return 0;
    out = BIO_new_from_core_bio(c->prov->libctx, cout);
    ok = out != NULL && (pem ? PEM_write_bio(out, "PUBLIC KEY", "", k->pk.spki,
                                             (long)k->pk.spkilen) > 0
                             : BIO_write(out, k->pk.spki, (int)k->pk.spkilen) ==
                                   (int)k->pk.spkilen);
    BIO_free(out);
    return ok;
}

static int enc_spki_pem(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                        const OSSL_PARAM obj_abstract[], int selection,
                        OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    return write_spki(ctx, cout, obj_raw, 1);
}

static int enc_spki_der(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                        const OSSL_PARAM obj_abstract[], int selection,
                        OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    return write_spki(ctx, cout, obj_raw, 0);
}

const OSSL_DISPATCH kmsenv_priv2spki_pem_encoder_functions[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))enc_pub_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))enc_spki_pem},
    {0, NULL}};

const OSSL_DISPATCH kmsenv_priv2spki_der_encoder_functions[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))enc_pub_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))enc_spki_der},
    {0, NULL}};
