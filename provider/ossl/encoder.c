/* ENCODERs for KMSENV-KEYSET: PEM and DER write the wrapped keyset (the same
 * bytes a load reads), TEXT writes metadata. No path writes key bytes. */
#include "ossl/keyobj.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/pem.h>

static OSSL_FUNC_encoder_newctx_fn enc_newctx;
static OSSL_FUNC_encoder_freectx_fn enc_freectx;
static OSSL_FUNC_encoder_does_selection_fn enc_wrapped_does_selection;
static OSSL_FUNC_encoder_does_selection_fn enc_text_does_selection;
static OSSL_FUNC_encoder_encode_fn enc_pem;
static OSSL_FUNC_encoder_encode_fn enc_der;
static OSSL_FUNC_encoder_encode_fn enc_text;

static void *enc_newctx(void *provctx)
{
    return provctx;
}

static void enc_freectx(void *ctx)
{
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
    KMSENV_PROV *prov = ctx;
    KMSENV_KEYOBJ *k = (KMSENV_KEYOBJ *)obj;
    BIO *out;
    unsigned char *der = NULL;
    size_t len = 0;
    int ok;

    if (k == NULL || !enc_wrapped_does_selection(ctx, selection) ||
        !kmsenv_keyobj_get_der(k, &der, &len))
        return 0;
    out = BIO_new_from_core_bio(prov->libctx, cout);
    ok = out != NULL && (pem ? PEM_write_bio(out, KMSENV_KEYSET_PEM_LABEL, "",
                                             der, (long)len) > 0
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
    KMSENV_PROV *prov = ctx;
    BIO *out = BIO_new_from_core_bio(prov->libctx, cout);
    int ok = out != NULL && obj_raw != NULL &&
             kmsenv_keyobj_describe((KMSENV_KEYOBJ *)obj_raw, out);

    BIO_free(out);
    return ok;
}

#define ENCODER_FUNCTIONS(name, does, fn)                                      \
    const OSSL_DISPATCH name[] = {                                             \
        {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))enc_newctx},                \
        {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))enc_freectx},              \
        {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))does},              \
        {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))fn},                        \
        {0, NULL}}

ENCODER_FUNCTIONS(kmsenv_keyset2pem_encoder_functions,
                  enc_wrapped_does_selection, enc_pem);
ENCODER_FUNCTIONS(kmsenv_keyset2der_encoder_functions,
                  enc_wrapped_does_selection, enc_der);
ENCODER_FUNCTIONS(kmsenv_keyset2text_encoder_functions, enc_text_does_selection,
                  enc_text);
