/* SPDX-License-Identifier: Apache-2.0 */
/* DECODERs: our PEM labels to DER (OpenSSL 3.0's pem2der drops labels it
 * does not know), and DER to a KMSENV-KEYSET key. The DER decoder is where
 * the keyring unwrap happens: once per load. */
#include "keys/loader.h"
#include "keys/keyobj.h"
#include "keys/privkey.h"
#include "envelope/wrapkey.h"
#include "ossl/provider.h"
#include "util/err.h"

#include <string.h>
#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>

static OSSL_FUNC_decoder_newctx_fn dec_newctx;
static OSSL_FUNC_decoder_freectx_fn dec_freectx;
static OSSL_FUNC_decoder_decode_fn pem2der_decode;
static OSSL_FUNC_decoder_decode_fn der2der_decode;
static OSSL_FUNC_decoder_decode_fn der2keyset_decode;
static OSSL_FUNC_decoder_does_selection_fn der2keyset_does_selection;

static void *dec_newctx(void *provctx)
{
    return provctx;
}

static void dec_freectx(void *ctx)
{
}

static int der2keyset_does_selection(void *provctx, int selection)
{
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

/* Hands a loaded keyset on by reference (keymgmt load takes it). */
static int emit_ref(KMSENV_KEYOBJ **k, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    const char *dtype = (*k)->kind == KMSENV_KIND_PRIVKEY
                            ? kmsenv_wk_type_name((*k)->pk.type)
                            : KMSENV_KEYSET_NAME;
    OSSL_PARAM params[4];
    int type = OSSL_OBJECT_PKEY;

    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                                 (char *)dtype, 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE,
                                                  k, sizeof(*k));
    params[3] = OSSL_PARAM_construct_end();
    return data_cb(params, data_cbarg);
}

/*
 * One unwrap per load, only when a private key is wanted, and errors that
 * reach the user (keys/loader.c explains the handoff).
 *
 * The file: store runs these pre-decoders with selection 0 whatever it was
 * asked for (storeutl -certs, pkey -pubin); only the second decode knows
 * (OSSL_STORE_expect gives it its selection). So the pre-decoder first
 * passes the DER on as a probe: der2keyset, if it runs for a selection that
 * wants a private key, records that and comes back empty-handed. Only then
 * is the keyset loaded, parked in this thread's handoff slot and passed on
 * again. The slot is emptied when the callback returns, whoever consumed
 * it.
 */
/* Passes a keyset's DER to the next decoder (structure may be NULL). */
static int pass_on(const unsigned char *der, size_t len, const char *structure,
                   OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    OSSL_PARAM params[4], *p = params;
    int wt = kmsenv_wrapkey_peek_type(der, len);
    const char *dtype = wt != 0 ? kmsenv_wk_type_name(wt) : KMSENV_KEYSET_NAME;

    if (structure != NULL && wt != 0)
        structure = KMSENV_WRAPPED_STRUCTURE;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                            (char *)dtype, 0);
    if (structure != NULL)
        *p++ = OSSL_PARAM_construct_utf8_string(
            OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)structure, 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA,
                                             (void *)der, len);
    *p = OSSL_PARAM_construct_end();
    return data_cb(params, data_cbarg);
}

/* Probes whether a private key is wanted; if so loads the keyset early,
 * parks it in the handoff and passes its DER on again. *wanted tells which.
 * Returns 0 with our errors kept if the keyset cannot be loaded; if no
 * private key is wanted, what the probe returned (its errors kept). */
static int load_and_pass_on(KMSENV_PROV *prov, const unsigned char *der,
                            size_t len, const char *structure,
                            OSSL_CALLBACK *data_cb, void *data_cbarg,
                            int *wanted)
{
    KMSENV_HANDOFF *handoff = kmsenv_handoff();
    KMSENV_KEYOBJ *k;
    int ok;

    *wanted = 0;
    /* nested in another handoff, or no slot: no early load */
    if (handoff == NULL || handoff->der != NULL)
        return pass_on(der, len, structure, data_cb, data_cbarg);
    handoff->der = der;
    handoff->len = len;
    handoff->probing = 1;
    ERR_set_mark();
    ok = pass_on(der, len, structure, data_cb, data_cbarg);
    if (!handoff->wanted) {
        ERR_clear_last_mark();
        kmsenv_handoff_clear();
        return ok;
    }
    ERR_pop_to_mark(); /* the probe's "nothing decoded" is moot */
    *wanted = 1;
    handoff->probing = 0;
    if ((k = kmsenv_loader_load(&prov->keys, der, len, NULL, NULL)) == NULL) {
        kmsenv_handoff_clear();
        return 0;
    }
    handoff->k = k;
    ok = pass_on(der, len, structure, data_cb, data_cbarg);
    kmsenv_handoff_clear();
    return ok;
}

static int wants_private(int selection)
{
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

/* For private-key requests (and the file: store's selection 0) the keyset
 * is loaded here (see above); other requests just get the DER. */
static int pem2der_decode(void *ctx, OSSL_CORE_BIO *cin, int selection,
                          OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    KMSENV_PROV *prov = ctx;
    BIO *in = BIO_new_from_core_bio(prov->libctx, cin);
    unsigned char *der = NULL;
    size_t len = 0;
    int ok, r, wanted;

    KMSENV_ENTER(prov);
    kmsenv_log(2, "  selection 0x%x", (unsigned)selection);

    if (in == NULL)
        return 0;
    r = kmsenv_input_read_pem(in, &der, &len, "PEM input");
    BIO_free(in);
    if (r <= 0) /* other labels: not ours, come back empty-handed */
        return r == 0;
    if (wants_private(selection))
        ok = load_and_pass_on(prov, der, len, KMSENV_KEYSET_STRUCTURE, data_cb,
                              data_cbarg, &wanted);
    else
        ok = pass_on(der, len, KMSENV_KEYSET_STRUCTURE, data_cb, data_cbarg);
    OPENSSL_free(der);
    return ok;
}

/* The DER -> key step for keysets (type 0) and wrapped private keys of
 * one type: input of another kind or type is left alone. */
static int der2obj(KMSENV_PROV *prov, int type, OSSL_CORE_BIO *cin,
                   int selection, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    KMSENV_KEYOBJ *k = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    BIO *in;
    int ok, r;

    KMSENV_ENTER(prov);
    kmsenv_log(2, "  selection 0x%x", (unsigned)selection);

    /* Asked only for parameters (or, for a keyset, a public key): nothing
     * to give, and unwrapping (a KMS call) would be wasted. */
    if (type == 0 && !der2keyset_does_selection(prov, selection))
        return 1;
    if (type != 0 && !wants_private(selection) &&
        (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0)
        return 1;
    if ((in = BIO_new_from_core_bio(prov->libctx, cin)) == NULL)
        return 0;
    r = kmsenv_input_read_der(in, &buf, &len, "DER input");
    BIO_free(in);
    if (r <= 0) /* not ours: come back empty-handed */
        return r == 0;
    if (type != kmsenv_wrapkey_peek_type(buf, len)) {
        OPENSSL_free(buf);
        return 1;
    }
    if (type != 0 && !wants_private(selection)) {
        /* a public key is wanted: the header has it, no unwrap */
        k = kmsenv_privkey_load_public(&prov->keys, buf, len);
        ok = k != NULL && emit_ref(&k, data_cb, data_cbarg);
        kmsenv_keyobj_free(k);
        OPENSSL_free(buf);
        return ok;
    }
    if (kmsenv_handoff_holds(buf, len)) {
        KMSENV_HANDOFF *h = kmsenv_handoff(); /* holds: not NULL */

        if (h->probing) {
            h->wanted = 1; /* the pre-decoder loads it, then comes back */
            OPENSSL_free(buf);
            return 1;
        }
        k = kmsenv_handoff_take(&prov->keys);
    }
    if (k == NULL)
        k = kmsenv_loader_load(&prov->keys, buf, len, NULL, NULL);
    ok = k != NULL && emit_ref(&k, data_cb, data_cbarg);
    kmsenv_keyobj_free(k); /* NULL if keymgmt load took it */
    OPENSSL_free(buf);
    return ok;
}

static int der2keyset_decode(void *ctx, OSSL_CORE_BIO *cin, int selection,
                             OSSL_CALLBACK *data_cb, void *data_cbarg,
                             OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    return der2obj(ctx, 0, cin, selection, data_cb, data_cbarg);
}

const OSSL_DISPATCH kmsenv_pem2der_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem2der_decode},
    {0, NULL}};

/* DER keyset files through OpenSSL's file: store get the same probe and
 * early load as PEM, so that a failure keeps its errors. The DER is passed
 * on with no structure (the store's next step takes none); when the same
 * bytes come back to this decoder while the handoff holds them, they are
 * left alone. A keyset followed by other bytes is refused here: the store's
 * own DER reader would take the first object and ignore the rest. */
static int der2der_decode(void *ctx, OSSL_CORE_BIO *cin, int selection,
                          OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    KMSENV_PROV *prov = ctx;
    unsigned char *buf = NULL;
    size_t len = 0;
    BIO *in;
    int ok = 1, r, wanted;

    KMSENV_ENTER(prov);
    kmsenv_log(2, "  selection 0x%x", (unsigned)selection);

    if ((in = BIO_new_from_core_bio(prov->libctx, cin)) == NULL)
        return 0;
    r = kmsenv_input_read_der(in, &buf, &len, "DER input");
    BIO_free(in);
    if (r <= 0)
        return r == 0;
    if (wants_private(selection) && !kmsenv_handoff_holds(buf, len)) {
        ok = load_and_pass_on(prov, buf, len, NULL, data_cb, data_cbarg,
                              &wanted);
        if (!wanted)
            ok = 1; /* nobody asked for it: empty-handed, as before */
    }
    OPENSSL_free(buf);
    return ok;
}

const OSSL_DISPATCH kmsenv_der2der_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))der2der_decode},
    {0, NULL}};

const OSSL_DISPATCH kmsenv_der2keyset_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx},
    {OSSL_FUNC_DECODER_DOES_SELECTION,
     (void (*)(void))der2keyset_does_selection},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))der2keyset_decode},
    {0, NULL}};

/* DER -> wrapped private key, one decoder per key type. */
static int der2priv_does_selection(void *provctx, int selection)
{
    return wants_private(selection) ||
           (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0;
}

#define DER2PRIV(tag, TYPE)                                                    \
    static int der2priv_##tag(void *ctx, OSSL_CORE_BIO *cin, int selection,    \
                              OSSL_CALLBACK *data_cb, void *data_cbarg,        \
                              OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg) \
    {                                                                          \
        return der2obj(ctx, TYPE, cin, selection, data_cb, data_cbarg);        \
    }                                                                          \
    const OSSL_DISPATCH kmsenv_der2##tag##_decoder_functions[] = {             \
        {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx},                \
        {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx},              \
        {OSSL_FUNC_DECODER_DOES_SELECTION,                                     \
         (void (*)(void))der2priv_does_selection},                             \
        {OSSL_FUNC_DECODER_DECODE, (void (*)(void))der2priv_##tag},            \
        {0, NULL}}

DER2PRIV(rsa, KMSENV_WK_RSA);
DER2PRIV(rsapss, KMSENV_WK_RSA_PSS);
DER2PRIV(ec, KMSENV_WK_EC);
DER2PRIV(ed25519, KMSENV_WK_ED25519);
