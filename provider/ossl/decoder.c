/* DECODERs: our PEM labels to DER (OpenSSL 3.0's pem2der drops labels it
 * does not know), and DER to a KMSENV-KEYSET key. The DER decoder is where
 * the keyring unwrap happens: once per load. */
#include "ossl/keyobj.h"
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

#define KMSENV_MAX_INPUT (1024 * 1024)

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

/* Reads at most KMSENV_MAX_INPUT bytes; returns -1 on error. */
static long read_all(KMSENV_PROV *prov, OSSL_CORE_BIO *cin, unsigned char **buf)
{
    BIO *in = BIO_new_from_core_bio(prov->libctx, cin);
    unsigned char *b = OPENSSL_malloc(KMSENV_MAX_INPUT);
    long len = 0;
    int n;

    *buf = NULL;
    if (in == NULL || b == NULL) {
        BIO_free(in);
        OPENSSL_free(b);
        return -1;
    }
    while (len < KMSENV_MAX_INPUT &&
           (n = BIO_read(in, b + len, (int)(KMSENV_MAX_INPUT - len))) > 0)
        len += n;
    BIO_free(in);
    *buf = b;
    return len;
}

static int der2keyset_does_selection(void *provctx, int selection)
{
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

/* Hands a loaded keyset on by reference (keymgmt load takes it). */
static int emit_ref(KMSENV_KEYOBJ **k, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    OSSL_PARAM params[4];
    int type = OSSL_OBJECT_PKEY;

    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                                 (char *)KMSENV_KEYSET_NAME, 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE,
                                                  k, sizeof(*k));
    params[3] = OSSL_PARAM_construct_end();
    return data_cb(params, data_cbarg);
}

/*
 * One unwrap per load, and errors that reach the user.
 *
 * OpenSSL 3.0's file: store runs PEM->DER decoders, then decodes the DER
 * again in ossl_store_handle_load_result(), where errors of a decoder that
 * produces nothing are discarded, and where a key reference is resolved
 * against the store's provider (so a reference from here cannot be used).
 * So the PEM decoder loads the keyset itself: a failure returns 0 and keeps
 * its errors. On success it passes the DER on and parks the loaded object
 * in this thread's handoff slot; the DER decoder, which runs synchronously
 * inside the same data callback, takes it instead of unwrapping again. The
 * slot is emptied when the callback returns, whoever consumed it.
 */
static _Thread_local struct {
    KMSENV_KEYOBJ *k;
    const unsigned char *der;
    size_t len;
} handoff;

static int handoff_holds(const unsigned char *der, size_t len)
{
    return handoff.k != NULL && handoff.len == len &&
           memcmp(handoff.der, der, len) == 0;
}

static KMSENV_KEYOBJ *take_handoff(KMSENV_PROV *prov, const unsigned char *der,
                                   size_t len)
{
    KMSENV_KEYOBJ *k = handoff.k;

    if (!handoff_holds(der, len) || k->prov != prov)
        return NULL;
    handoff.k = NULL;
    return k;
}

/* Passes a keyset's DER to the next decoder (structure may be NULL). */
static int pass_on(const unsigned char *der, size_t len, const char *structure,
                   OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    OSSL_PARAM params[4], *p = params;

    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                            (char *)KMSENV_KEYSET_NAME, 0);
    if (structure != NULL)
        *p++ = OSSL_PARAM_construct_utf8_string(
            OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)structure, 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA,
                                             (void *)der, len);
    *p = OSSL_PARAM_construct_end();
    return data_cb(params, data_cbarg);
}

/* Loads a keyset early, parks it in the handoff and passes its DER on.
 * Returns 0 with our errors kept if the keyset cannot be loaded. */
static int load_and_pass_on(KMSENV_PROV *prov, const unsigned char *der,
                            size_t len, const char *structure,
                            OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    KMSENV_KEYOBJ *k = kmsenv_keyobj_load(prov, der, len, NULL, NULL);
    int ok;

    if (k == NULL)
        return 0;
    kmsenv_keyobj_free(handoff.k);
    handoff.k = k;
    handoff.der = der;
    handoff.len = len;
    ok = pass_on(der, len, structure, data_cb, data_cbarg);
    kmsenv_keyobj_free(handoff.k); /* NULL if it was consumed */
    handoff.k = NULL;
    return ok;
}

/* For private-key requests the keyset is loaded here (see above); other
 * requests just get the DER and nothing is unwrapped. */
static int pem2der_decode(void *ctx, OSSL_CORE_BIO *cin, int selection,
                          OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    KMSENV_PROV *prov = ctx;
    BIO *in = BIO_new_from_core_bio(prov->libctx, cin);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long derlen = 0;
    int ok = 1, r;

    if (in == NULL)
        return 0;
    ERR_set_mark();
    r = PEM_read_bio(in, &name, &header, &der, &derlen);
    ERR_pop_to_mark();
    BIO_free(in);
    if (r > 0 && strcmp(name, KMSENV_KEYSET_PEM_LABEL) == 0) {
        if (der2keyset_does_selection(prov, selection) &&
            kmsenv_keyset_sniff(der, (size_t)derlen))
            ok = load_and_pass_on(prov, der, (size_t)derlen,
                                  KMSENV_KEYSET_STRUCTURE, data_cb, data_cbarg);
        else
            ok = pass_on(der, (size_t)derlen, KMSENV_KEYSET_STRUCTURE, data_cb,
                         data_cbarg);
    }
    /* Other labels: not ours, come back empty-handed (not an error). */
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(der, (size_t)derlen);
    return ok;
}

static int der2keyset_decode(void *ctx, OSSL_CORE_BIO *cin, int selection,
                             OSSL_CALLBACK *data_cb, void *data_cbarg,
                             OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    KMSENV_PROV *prov = ctx;
    unsigned char *buf = NULL;
    long len;
    int ok = 1;

    /* Asked only for a public key or parameters: a keyset has neither, and
     * unwrapping (a KMS call) would be wasted. */
    if (!der2keyset_does_selection(prov, selection))
        return 1;
    len = read_all(prov, cin, &buf);
    if (len < 0)
        return 0;
    /* not a keyset: come back empty-handed */
    if (kmsenv_keyset_sniff(buf, (size_t)len)) {
        KMSENV_KEYOBJ *k = take_handoff(prov, buf, (size_t)len);

        if (k == NULL)
            k = kmsenv_keyobj_load(prov, buf, (size_t)len, NULL, NULL);
        ok = k != NULL && emit_ref(&k, data_cb, data_cbarg);
        kmsenv_keyobj_free(k); /* NULL if keymgmt load took it */
    }
    OPENSSL_free(buf);
    return ok;
}

const OSSL_DISPATCH kmsenv_pem2der_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem2der_decode},
    {0, NULL}};

/* DER keyset files through OpenSSL's file: store get the same early load
 * as PEM, so that a failure keeps its errors. The DER is passed on with no
 * structure (the store's next step takes none); when the same bytes come
 * back to this decoder while the handoff holds them, they are left alone. */
static int der2der_decode(void *ctx, OSSL_CORE_BIO *cin, int selection,
                          OSSL_CALLBACK *data_cb, void *data_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    KMSENV_PROV *prov = ctx;
    unsigned char *buf = NULL;
    long len;
    int ok = 1;

    if (!der2keyset_does_selection(prov, selection))
        return 1;
    len = read_all(prov, cin, &buf);
    if (len < 0)
        return 0;
    if (kmsenv_keyset_sniff(buf, (size_t)len) &&
        !handoff_holds(buf, (size_t)len))
        ok =
            load_and_pass_on(prov, buf, (size_t)len, NULL, data_cb, data_cbarg);
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
