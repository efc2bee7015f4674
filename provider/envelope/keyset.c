#include "envelope/keyset.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16

const char *kmsenv_state_name(int state)
{
    switch (state) {
    case KMSENV_STATE_PRIMARY:
        return "primary";
    case KMSENV_STATE_DECRYPT_ONLY:
        return "decrypt-only";
    case KMSENV_STATE_DISABLED:
        return "disabled";
    }
    return "invalid";
}

int kmsenv_state_from_name(const char *name)
{
    int s;

    for (s = KMSENV_STATE_PRIMARY; s <= KMSENV_STATE_DISABLED; s++)
        if (strcmp(name, kmsenv_state_name(s)) == 0)
            return s;
    return 0;
}

void kmsenv_wrap_free(KMSENV_WRAP *w)
{
    OPENSSL_free(w->spec);
    OPENSSL_free(w->blob);
    memset(w, 0, sizeof(*w));
}

void kmsenv_wraps_free(KMSENV_WRAP *w, size_t n)
{
    size_t i;

    for (i = 0; w != NULL && i < n; i++)
        kmsenv_wrap_free(&w[i]);
    OPENSSL_free(w);
}

int kmsenv_wrap_copy(KMSENV_WRAP *dst, const KMSENV_WRAP *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->spec = OPENSSL_strdup(src->spec);
    dst->blob = OPENSSL_memdup(src->blob, src->bloblen);
    if (dst->spec == NULL || dst->blob == NULL) {
        kmsenv_wrap_free(dst);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "copying wrapped key");
        return 0;
    }
    memcpy(dst->fp, src->fp, src->fplen);
    dst->fplen = src->fplen;
    dst->bloblen = src->bloblen;
    return 1;
}

void kmsenv_keyset_init(KMSENV_KEYSET *ks)
{
    memset(ks, 0, sizeof(*ks));
}

static void clear_pending(KMSENV_KEYSET *ks)
{
    OPENSSL_free(ks->aad);
    OPENSSL_free(ks->sealed);
    ks->aad = ks->sealed = NULL;
    ks->aadlen = ks->sealedlen = 0;
}

void kmsenv_keyset_free(KMSENV_KEYSET *ks)
{
    OPENSSL_free(ks->ver);
    kmsenv_secret_free(&ks->keys);
    kmsenv_wraps_free(ks->wrap, ks->nwrap);
    kmsenv_secret_free(&ks->ksk);
    clear_pending(ks);
    kmsenv_keyset_init(ks);
}

/* DER OCTET STRING wrapper so that generic DER readers accept the body. */
static int der_unwrap(const unsigned char *der, size_t len,
                      const unsigned char **body, size_t *bodylen)
{
    size_t n, hl, i, l = 0;

    if (len < 2 || der[0] != 0x04)
        return 0;
    if (der[1] < 0x80) {
        l = der[1];
        hl = 2;
    } else {
        n = der[1] & 0x7f;
        if (n == 0 || n > 4 || len < 2 + n || der[2] == 0)
            return 0;
        for (i = 0; i < n; i++)
            l = (l << 8) | der[2 + i];
        if (l < 0x80 || (n > 1 && l < ((size_t)1 << (8 * (n - 1)))))
            return 0; /* not minimal: not DER */
        hl = 2 + n;
    }
    if (len - hl != l)
        return 0;
    *body = der + hl;
    *bodylen = l;
    return 1;
}

static void der_wrap_header(KMSENV_WR *w, size_t l)
{
    kmsenv_wr_u8(w, 0x04);
    if (l < 0x80) {
        kmsenv_wr_u8(w, (uint8_t)l);
    } else if (l <= 0xff) {
        kmsenv_wr_u8(w, 0x81);
        kmsenv_wr_u8(w, (uint8_t)l);
    } else if (l <= 0xffff) {
        kmsenv_wr_u8(w, 0x82);
        kmsenv_wr_u16(w, (uint16_t)l);
    } else if (l <= 0xffffff) {
        kmsenv_wr_u8(w, 0x83);
        kmsenv_wr_u8(w, (uint8_t)(l >> 16));
        kmsenv_wr_u16(w, (uint16_t)l);
    } else {
        kmsenv_wr_u8(w, 0x84);
        kmsenv_wr_u32(w, (uint32_t)l);
    }
}

int kmsenv_keyset_sniff(const unsigned char *der, size_t len)
{
    const unsigned char *body;
    size_t bl;

    return der_unwrap(der, len, &body, &bl) && bl >= 8 &&
           memcmp(body, KMSENV_KS_MAGIC, 8) == 0;
}

#define BAD(...)                                                               \
    do {                                                                       \
        KMSENV_RAISE(KMSENV_R_BAD_KEYSET, __VA_ARGS__);                        \
        goto err;                                                              \
    } while (0)

int kmsenv_keyset_decode(KMSENV_KEYSET *ks, const unsigned char *der,
                         size_t len, const char *name)
{
    const unsigned char *body, *q;
    size_t bodylen, i, nprimary = 0;
    KMSENV_RD r;
    uint8_t fmt;

    kmsenv_keyset_init(ks);
    if (!der_unwrap(der, len, &body, &bodylen) || bodylen < 8 ||
        memcmp(body, KMSENV_KS_MAGIC, 8) != 0)
        BAD("%s: not a kmsenv keyset (bad DER wrapper or magic)", name);
    kmsenv_rd_init(&r, body + 8, bodylen - 8);
    fmt = kmsenv_rd_u8(&r);
    if (r.ok && fmt != KMSENV_KS_FORMAT)
        BAD("%s: unsupported keyset format %u (this build reads %d)", name, fmt,
            KMSENV_KS_FORMAT);
    q = kmsenv_rd_bytes(&r, 16);
    if (q != NULL)
        memcpy(ks->id, q, 16);
    ks->created = kmsenv_rd_u64(&r);
    ks->alg = kmsenv_rd_u8(&r);
    ks->primary = kmsenv_rd_u32(&r);
    ks->nver = kmsenv_rd_u16(&r);
    if (!r.ok)
        BAD("%s: keyset truncated in header", name);
    if (ks->alg != KMSENV_KS_ALG_XAES256GCM)
        BAD("%s: unknown keyset algorithm %u", name, ks->alg);
    if (ks->nver == 0 || ks->nver > KMSENV_KS_MAX_VERSIONS)
        BAD("%s: keyset has %zu versions", name, ks->nver);
    ks->ver = OPENSSL_zalloc(ks->nver * sizeof(*ks->ver));
    if (ks->ver == NULL)
        goto oom;
    for (i = 0; i < ks->nver; i++) {
        ks->ver[i].id = kmsenv_rd_u32(&r);
        ks->ver[i].state = kmsenv_rd_u8(&r);
        ks->ver[i].created = kmsenv_rd_u64(&r);
        if (!r.ok)
            BAD("%s: keyset truncated in version table", name);
        if (ks->ver[i].id == 0 || (i > 0 && ks->ver[i].id <= ks->ver[i - 1].id))
            BAD("%s: version ids must be positive and ascending", name);
        if (ks->ver[i].state < KMSENV_STATE_PRIMARY ||
            ks->ver[i].state > KMSENV_STATE_DISABLED)
            BAD("%s: version %u has invalid state %u", name, ks->ver[i].id,
                ks->ver[i].state);
        if (ks->ver[i].state == KMSENV_STATE_PRIMARY) {
            nprimary++;
            if (ks->ver[i].id != ks->primary)
                BAD("%s: primary version mismatch", name);
        }
    }
    if (nprimary != 1)
        BAD("%s: keyset must have exactly one primary version", name);
    ks->nwrap = kmsenv_rd_u8(&r);
    if (!r.ok || ks->nwrap == 0 || ks->nwrap > KMSENV_KS_MAX_WRAPS)
        BAD("%s: keyset has no valid wrapped key list", name);
    ks->wrap = OPENSSL_zalloc(ks->nwrap * sizeof(*ks->wrap));
    if (ks->wrap == NULL)
        goto oom;
    for (i = 0; i < ks->nwrap; i++) {
        KMSENV_WRAP *w = &ks->wrap[i];
        size_t sl = kmsenv_rd_u16(&r);

        q = kmsenv_rd_bytes(&r, sl);
        if (q == NULL || sl == 0 || memchr(q, 0, sl) != NULL)
            BAD("%s: bad KEK spec in wrapped key %zu", name, i + 1);
        w->spec = OPENSSL_strndup((const char *)q, sl);
        w->fplen = kmsenv_rd_u8(&r);
        if (w->fplen > sizeof(w->fp))
            BAD("%s: bad KEK fingerprint in wrapped key %zu", name, i + 1);
        q = kmsenv_rd_bytes(&r, w->fplen);
        if (q != NULL)
            memcpy(w->fp, q, w->fplen);
        w->bloblen = kmsenv_rd_u16(&r);
        q = kmsenv_rd_bytes(&r, w->bloblen);
        if (q == NULL || w->bloblen == 0)
            BAD("%s: keyset truncated in wrapped key %zu", name, i + 1);
        w->blob = OPENSSL_memdup(q, w->bloblen);
        if (w->spec == NULL || w->blob == NULL)
            goto oom;
    }
    ks->aadlen = (size_t)(r.p - body);
    ks->sealedlen = r.left;
    if (ks->sealedlen !=
        SEAL_NONCE_LEN + ks->nver * KMSENV_KEY_LEN + SEAL_TAG_LEN)
        BAD("%s: sealed key section has %zu bytes, expected %zu", name,
            ks->sealedlen,
            (size_t)(SEAL_NONCE_LEN + ks->nver * KMSENV_KEY_LEN +
                     SEAL_TAG_LEN));
    ks->aad = OPENSSL_memdup(body, ks->aadlen);
    ks->sealed = OPENSSL_memdup(r.p, ks->sealedlen);
    if (ks->aad == NULL || ks->sealed == NULL)
        goto oom;
    return 1;
oom:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "decoding keyset %s", name);
err:
    kmsenv_keyset_free(ks);
    return 0;
}

static EVP_CIPHER_CTX *seal_ctx(OSSL_LIB_CTX *libctx, int enc,
                                const KMSENV_SECRET *ksk,
                                const unsigned char *nonce,
                                const unsigned char *aad, size_t aadlen)
{
    EVP_CIPHER *gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl;

    if (gcm == NULL || c == NULL || ksk->len != KMSENV_KEY_LEN ||
        !EVP_CipherInit_ex2(c, gcm, ksk->data, nonce, enc, NULL) ||
        !EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen)) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    EVP_CIPHER_free(gcm);
    return c;
}

int kmsenv_keyset_unseal(KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                         const char *name)
{
    EVP_CIPHER_CTX *c;
    size_t klen = ks->nver * KMSENV_KEY_LEN;
    unsigned char tag[SEAL_TAG_LEN];
    int outl = 0, ok;

    if (ks->sealed == NULL || ks->ksk.data == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "keyset %s not decoded", name);
        return 0;
    }
    if (!kmsenv_secret_alloc(&ks->keys, klen))
        return 0;
    memcpy(tag, ks->sealed + SEAL_NONCE_LEN + klen, SEAL_TAG_LEN);
    c = seal_ctx(libctx, 0, &ks->ksk, ks->sealed, ks->aad, ks->aadlen);
    ok = c != NULL &&
         EVP_CipherUpdate(c, ks->keys.data, &outl, ks->sealed + SEAL_NONCE_LEN,
                          (int)klen) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) &&
         EVP_DecryptFinal_ex(c, ks->keys.data + klen, &outl) > 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        kmsenv_secret_free(&ks->keys);
        KMSENV_RAISE(KMSENV_R_KEYSET_TAMPERED,
                     "%s: keyset content failed authentication under its "
                     "keyset key (tampered or corrupt file)",
                     name);
        return 0;
    }
    clear_pending(ks);
    return 1;
}

int kmsenv_keyset_encode(const KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                         const unsigned char *nonce, KMSENV_WR *der)
{
    KMSENV_WR b;
    size_t i, aadlen, klen = ks->nver * KMSENV_KEY_LEN;
    unsigned char n[SEAL_NONCE_LEN], *ct;
    EVP_CIPHER_CTX *c = NULL;
    int outl = 0, ok = 0;

    if (ks->keys.data == NULL || ks->ksk.data == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "keyset not open; cannot encode");
        return 0;
    }
    /* Never write what kmsenv_keyset_decode would refuse. */
    if (ks->alg != KMSENV_KS_ALG_XAES256GCM || ks->nver == 0 ||
        ks->nver > KMSENV_KS_MAX_VERSIONS || ks->nwrap == 0 ||
        ks->nwrap > KMSENV_KS_MAX_WRAPS) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "keyset cannot be encoded (%zu versions, %zu KEKs)",
                     ks->nver, ks->nwrap);
        return 0;
    }
    for (i = 0; i < ks->nwrap; i++) {
        const KMSENV_WRAP *w = &ks->wrap[i];
        size_t sl = w->spec != NULL ? strlen(w->spec) : 0;

        if (sl == 0 || sl > 0xffff || w->fplen > sizeof(w->fp) ||
            w->bloblen == 0 || w->bloblen > 0xffff) {
            KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                         "KEK entry %zu cannot be encoded (spec %zu bytes, "
                         "blob %zu bytes)",
                         i + 1, sl, w->bloblen);
            return 0;
        }
    }
    kmsenv_wr_init(&b);
    kmsenv_wr_bytes(&b, KMSENV_KS_MAGIC, 8);
    kmsenv_wr_u8(&b, KMSENV_KS_FORMAT);
    kmsenv_wr_bytes(&b, ks->id, 16);
    kmsenv_wr_u64(&b, ks->created);
    kmsenv_wr_u8(&b, ks->alg);
    kmsenv_wr_u32(&b, ks->primary);
    kmsenv_wr_u16(&b, (uint16_t)ks->nver);
    for (i = 0; i < ks->nver; i++) {
        kmsenv_wr_u32(&b, ks->ver[i].id);
        kmsenv_wr_u8(&b, ks->ver[i].state);
        kmsenv_wr_u64(&b, ks->ver[i].created);
    }
    kmsenv_wr_u8(&b, (uint8_t)ks->nwrap);
    for (i = 0; i < ks->nwrap; i++) {
        size_t sl = strlen(ks->wrap[i].spec);
        kmsenv_wr_u16(&b, (uint16_t)sl);
        kmsenv_wr_bytes(&b, ks->wrap[i].spec, sl);
        kmsenv_wr_u8(&b, (uint8_t)ks->wrap[i].fplen);
        kmsenv_wr_bytes(&b, ks->wrap[i].fp, ks->wrap[i].fplen);
        kmsenv_wr_u16(&b, (uint16_t)ks->wrap[i].bloblen);
        kmsenv_wr_bytes(&b, ks->wrap[i].blob, ks->wrap[i].bloblen);
    }
    aadlen = b.len;
    if (nonce != NULL)
        memcpy(n, nonce, sizeof(n));
    else if (RAND_bytes_ex(libctx, n, sizeof(n), 0) <= 0)
        goto end;
    kmsenv_wr_bytes(&b, n, sizeof(n));
    ct = kmsenv_wr_reserve(&b, klen + SEAL_TAG_LEN);
    if (!b.ok || ct == NULL)
        goto end;
    c = seal_ctx(libctx, 1, &ks->ksk, n, b.p, aadlen);
    if (c == NULL ||
        !EVP_CipherUpdate(c, ct, &outl, ks->keys.data, (int)klen) ||
        !EVP_EncryptFinal_ex(c, ct + klen, &outl) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, ct + klen))
        goto end;
    der_wrap_header(der, b.len);
    kmsenv_wr_bytes(der, b.p, b.len);
    ok = der->ok;
end:
    EVP_CIPHER_CTX_free(c);
    kmsenv_wr_free(&b);
    if (!ok)
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "sealing keyset");
    return ok;
}

int kmsenv_keyset_find(const KMSENV_KEYSET *ks, uint32_t id)
{
    size_t i;

    for (i = 0; i < ks->nver; i++)
        if (ks->ver[i].id == id)
            return (int)i;
    return -1;
}

const unsigned char *kmsenv_keyset_key(const KMSENV_KEYSET *ks, int idx)
{
    return ks->keys.data + (size_t)idx * KMSENV_KEY_LEN;
}

int kmsenv_keyset_add_version(KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                              const unsigned char *key, uint64_t now)
{
    KMSENV_SECRET nk = {NULL, 0};
    KMSENV_VERSION *nv;
    size_t i, n = ks->nver;
    uint32_t id = n ? ks->ver[n - 1].id + 1 : 1;

    if (n >= KMSENV_KS_MAX_VERSIONS || id == 0) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "keyset has too many versions");
        return 0;
    }
    if (!kmsenv_secret_alloc(&nk, (n + 1) * KMSENV_KEY_LEN))
        return 0;
    if (n > 0)
        memcpy(nk.data, ks->keys.data, n * KMSENV_KEY_LEN);
    if (key != NULL)
        memcpy(nk.data + n * KMSENV_KEY_LEN, key, KMSENV_KEY_LEN);
    else if (RAND_priv_bytes_ex(libctx, nk.data + n * KMSENV_KEY_LEN,
                                KMSENV_KEY_LEN, 256) <= 0) {
        kmsenv_secret_free(&nk);
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "generating a data key");
        return 0;
    }
    nv = OPENSSL_realloc(ks->ver, (n + 1) * sizeof(*nv));
    if (nv == NULL) {
        kmsenv_secret_free(&nk);
        KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "adding a version");
        return 0;
    }
    ks->ver = nv;
    for (i = 0; i < n; i++)
        if (ks->ver[i].state == KMSENV_STATE_PRIMARY)
            ks->ver[i].state = KMSENV_STATE_DECRYPT_ONLY;
    ks->ver[n].id = id;
    ks->ver[n].state = KMSENV_STATE_PRIMARY;
    ks->ver[n].created = now;
    ks->nver = n + 1;
    ks->primary = id;
    kmsenv_secret_free(&ks->keys);
    ks->keys = nk;
    return 1;
}

int kmsenv_keyset_set_state(KMSENV_KEYSET *ks, uint32_t id, int state)
{
    int idx = kmsenv_keyset_find(ks, id), old;
    size_t i;

    if (state < KMSENV_STATE_PRIMARY || state > KMSENV_STATE_DISABLED) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER, "invalid version state %d", state);
        return 0;
    }
    if (idx < 0) {
        KMSENV_RAISE(KMSENV_R_UNKNOWN_VERSION, "no version %u in keyset", id);
        return 0;
    }
    old = ks->ver[idx].state;
    if (old == state)
        return 1;
    if (old == KMSENV_STATE_PRIMARY) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "version %u is primary; rotate first, or make another "
                     "version primary",
                     id);
        return 0;
    }
    if (state == KMSENV_STATE_PRIMARY) {
        for (i = 0; i < ks->nver; i++)
            if (ks->ver[i].state == KMSENV_STATE_PRIMARY)
                ks->ver[i].state = KMSENV_STATE_DECRYPT_ONLY;
        ks->primary = id;
    }
    ks->ver[idx].state = (uint8_t)state;
    return 1;
}
