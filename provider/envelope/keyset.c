/* SPDX-License-Identifier: Apache-2.0 */
#include "envelope/keyset.h"
#include "util/err.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

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

int kmsenv_keyset_copy(KMSENV_KEYSET *dst, const KMSENV_KEYSET *src)
{
    size_t i;

    kmsenv_keyset_init(dst);
    memcpy(dst->id, src->id, sizeof(dst->id));
    dst->created = src->created;
    dst->alg = src->alg;
    dst->primary = src->primary;
    dst->nver = src->nver;
    dst->ver = OPENSSL_memdup(src->ver, src->nver * sizeof(*src->ver));
    dst->wrap = OPENSSL_zalloc(src->nwrap * sizeof(*dst->wrap));
    if (dst->ver == NULL || dst->wrap == NULL)
        goto err;
    for (i = 0; i < src->nwrap; i++, dst->nwrap++)
        if (!kmsenv_wrap_copy(&dst->wrap[i], &src->wrap[i]))
            goto err;
    if ((src->keys.data != NULL &&
         !kmsenv_secret_dup(&dst->keys, &src->keys)) ||
        (src->ksk.data != NULL && !kmsenv_secret_dup(&dst->ksk, &src->ksk)))
        goto err;
    return 1;
err:
    KMSENV_RAISE(KMSENV_R_OUT_OF_MEMORY, "copying a keyset");
    kmsenv_keyset_free(dst);
    return 0;
}

int kmsenv_keyset_sniff(const unsigned char *der, size_t len)
{
    const unsigned char *body;
    size_t bl;

    return kmsenv_der_unwrap(der, len, &body, &bl) && bl >= 8 &&
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
    if (!kmsenv_der_unwrap(der, len, &body, &bodylen) || bodylen < 8 ||
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
    if (!kmsenv_wraps_read(&r, &ks->wrap, &ks->nwrap, name))
        goto err;
    ks->aadlen = (size_t)(r.p - body);
    ks->sealedlen = r.left;
    if (ks->sealedlen != KMSENV_SEAL_OVERHEAD + ks->nver * KMSENV_KEY_LEN)
        BAD("%s: sealed key section has %zu bytes, expected %zu", name,
            ks->sealedlen,
            (size_t)(KMSENV_SEAL_OVERHEAD + ks->nver * KMSENV_KEY_LEN));
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

int kmsenv_keyset_unseal(KMSENV_KEYSET *ks, OSSL_LIB_CTX *libctx,
                         const char *name)
{
    if (ks->sealed == NULL || ks->ksk.data == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "keyset %s not decoded", name);
        return 0;
    }
    if (!kmsenv_unseal(libctx, &ks->ksk, ks->aad, ks->aadlen, ks->sealed,
                       ks->sealedlen, &ks->keys)) {
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
                         const unsigned char *nonce, KMSENV_BUF *der)
{
    KMSENV_BUF b;
    size_t i, aadlen;
    int ok;

    if (ks->keys.data == NULL || ks->ksk.data == NULL) {
        KMSENV_RAISE(KMSENV_R_INTERNAL, "keyset not open; cannot encode");
        return 0;
    }
    /* Never write what kmsenv_keyset_decode would refuse. */
    if (ks->alg != KMSENV_KS_ALG_XAES256GCM || ks->nver == 0 ||
        ks->nver > KMSENV_KS_MAX_VERSIONS) {
        KMSENV_RAISE(KMSENV_R_BAD_PARAMETER,
                     "keyset cannot be encoded (%zu versions)", ks->nver);
        return 0;
    }
    if (!kmsenv_wraps_check(ks->wrap, ks->nwrap))
        return 0;
    kmsenv_buf_init(&b, 0);
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
    kmsenv_wraps_write(&b, ks->wrap, ks->nwrap);
    aadlen = b.len;
    /* b.p may move while the seal is appended: seal a copy of the AAD */
    ok = !b.failed;
    if (ok) {
        unsigned char *aad = OPENSSL_memdup(b.p, aadlen);
        ok = aad != NULL &&
             kmsenv_seal(libctx, &ks->ksk, nonce, aad, aadlen, ks->keys.data,
                         ks->nver * KMSENV_KEY_LEN, &b);
        OPENSSL_free(aad);
    }
    if (ok) {
        kmsenv_der_wrap_header(der, b.len);
        kmsenv_wr_bytes(der, b.p, b.len);
        ok = !der->failed;
    }
    kmsenv_buf_free(&b);
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
