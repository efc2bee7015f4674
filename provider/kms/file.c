/* SPDX-License-Identifier: Apache-2.0 */
/* The file: keyring: a local 32-byte KEK file (mode 0600). Wrapping is
 * AES-256-GCM under the KEK with the encryption context as AAD. */
#include "kms/keyring.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define FILE_BLOB_VERSION 0x01
#define FILE_NONCE_LEN 12
#define FILE_TAG_LEN 16
#define FILE_FP_LEN 16
#define FILE_AAD_LABEL "kmsenv-file-wrap-v1"
#define FILE_FP_LABEL "kmsenv-kek-fingerprint-v1"

typedef struct {
    KMSENV_KEK base;
    OSSL_LIB_CTX *libctx;
    const char *path; /* into base.spec */
    KMSENV_SECRET key;
} FILE_KEK;

static void file_free(KMSENV_KEK *k)
{
    FILE_KEK *f = (FILE_KEK *)k;

    kmsenv_secret_free(&f->key);
    OPENSSL_free(f->base.spec);
    OPENSSL_free(f);
}

static int read_kek(FILE_KEK *f)
{
    struct stat st;
    char why[128];
    ssize_t n;
    size_t got = 0;
    int fd = kmsenv_open_regular(f->path, &st, why, sizeof(why));

    if (fd < 0) {
        KMSENV_RAISE(KMSENV_R_KEK_UNAVAILABLE, "KEK file %s: %s", f->path, why);
        return 0;
    }
    /* Whoever owns the file can replace the key: only we or root may. */
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        KMSENV_RAISE(KMSENV_R_KEK_PERMISSIONS,
                     "KEK file %s is owned by uid %ld; it must be owned by "
                     "this process's user (uid %ld) or root",
                     f->path, (long)st.st_uid, (long)geteuid());
        goto err;
    }
    if ((st.st_mode & 077) != 0) {
        KMSENV_RAISE(KMSENV_R_KEK_PERMISSIONS,
                     "KEK file %s has mode %04o: group or others can access "
                     "it; run chmod 600 %s",
                     f->path, (unsigned)(st.st_mode & 07777), f->path);
        goto err;
    }
    if (st.st_size != KMSENV_KEY_LEN) {
        KMSENV_RAISE(KMSENV_R_KEK_UNAVAILABLE,
                     "KEK file %s has %lld bytes; it must hold exactly %d raw "
                     "random bytes (openssl rand -out FILE %d)",
                     f->path, (long long)st.st_size, KMSENV_KEY_LEN,
                     KMSENV_KEY_LEN);
        goto err;
    }
    if (!kmsenv_secret_alloc(&f->key, KMSENV_KEY_LEN))
        goto err;
    while (got < KMSENV_KEY_LEN) {
        n = read(fd, f->key.data + got, KMSENV_KEY_LEN - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            KMSENV_RAISE(KMSENV_R_KEK_UNAVAILABLE, "KEK file %s: short read",
                         f->path);
            goto err;
        }
        got += (size_t)n;
    }
    close(fd);
    return 1;
err:
    close(fd);
    return 0;
}

static int fingerprint(FILE_KEK *f)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD *sha = EVP_MD_fetch(f->libctx, "SHA2-256", NULL);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = sha != NULL && c != NULL && EVP_DigestInit_ex2(c, sha, NULL) &&
             EVP_DigestUpdate(c, FILE_FP_LABEL, sizeof(FILE_FP_LABEL)) &&
             EVP_DigestUpdate(c, f->key.data, f->key.len) &&
             EVP_DigestFinal_ex(c, md, &mdlen);

    EVP_MD_CTX_free(c);
    EVP_MD_free(sha);
    if (!ok) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "SHA-256 unavailable");
        return 0;
    }
    memcpy(f->base.fp, md, FILE_FP_LEN);
    f->base.fplen = FILE_FP_LEN;
    return 1;
}

static KMSENV_KEK *file_open(const KMSENV_KMS_ENV *env, const char *spec)
{
    FILE_KEK *f = OPENSSL_zalloc(sizeof(*f));

    if (f == NULL)
        return NULL;
    f->base.meth = &kmsenv_file_kek_method;
    f->libctx = env->libctx;
    f->base.spec = OPENSSL_strdup(spec);
    if (f->base.spec == NULL)
        goto err;
    f->path = f->base.spec + 5;
    if (*f->path == '\0') {
        KMSENV_RAISE(KMSENV_R_BAD_KEYRING_SPEC,
                     "keyring '%s' names no file (file:/path/to/kek)", spec);
        goto err;
    }
    if (!read_kek(f) || !fingerprint(f))
        goto err;
    return &f->base;
err:
    file_free(&f->base);
    return NULL;
}

static EVP_CIPHER_CTX *gcm_start(FILE_KEK *f, int enc,
                                 const unsigned char *nonce,
                                 const KMSENV_CONTEXT *ectx)
{
    EVP_CIPHER *gcm = EVP_CIPHER_fetch(f->libctx, "AES-256-GCM", NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    KMSENV_BUF aad;
    int outl, ok;

    kmsenv_buf_init(&aad, 0);
    kmsenv_wr_bytes(&aad, FILE_AAD_LABEL, sizeof(FILE_AAD_LABEL));
    ok = kmsenv_ctx_encode(ectx, &aad) && gcm != NULL && c != NULL &&
         EVP_CipherInit_ex2(c, gcm, f->key.data, nonce, enc, NULL) &&
         EVP_CipherUpdate(c, NULL, &outl, aad.p, (int)aad.len);
    kmsenv_buf_free(&aad);
    EVP_CIPHER_free(gcm);
    if (!ok) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

static int file_wrap(KMSENV_KEK *k, const KMSENV_CONTEXT *ectx,
                     const KMSENV_SECRET *pt, KMSENV_WRAP *w)
{
    FILE_KEK *f = (FILE_KEK *)k;
    size_t len = 1 + FILE_NONCE_LEN + pt->len + FILE_TAG_LEN;
    unsigned char *b = OPENSSL_malloc(len);
    EVP_CIPHER_CTX *c = NULL;
    int outl, ok;

    memset(w, 0, sizeof(*w));
    ok = b != NULL && (w->spec = OPENSSL_strdup(k->spec)) != NULL &&
         RAND_bytes_ex(f->libctx, b + 1, FILE_NONCE_LEN, 0) > 0 &&
         (c = gcm_start(f, 1, b + 1, ectx)) != NULL &&
         EVP_CipherUpdate(c, b + 1 + FILE_NONCE_LEN, &outl, pt->data,
                          (int)pt->len) &&
         EVP_EncryptFinal_ex(c, b + 1 + FILE_NONCE_LEN + pt->len, &outl) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, FILE_TAG_LEN,
                             b + 1 + FILE_NONCE_LEN + pt->len);
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_free(b);
        kmsenv_wrap_free(w);
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "wrapping under KEK file %s",
                     f->path);
        return 0;
    }
    b[0] = FILE_BLOB_VERSION;
    w->blob = b;
    w->bloblen = len;
    memcpy(w->fp, k->fp, k->fplen);
    w->fplen = k->fplen;
    return 1;
}

static int file_generate(KMSENV_KEK *k, const KMSENV_CONTEXT *ectx,
                         KMSENV_SECRET *out, KMSENV_WRAP *w)
{
    FILE_KEK *f = (FILE_KEK *)k;

    if (RAND_priv_bytes_ex(f->libctx, out->data, out->len, 256) <= 0) {
        KMSENV_RAISE(KMSENV_R_CRYPTO_FAILURE, "generating a data key");
        return 0;
    }
    return file_wrap(k, ectx, out, w);
}

static int file_unwrap(KMSENV_KEK *k, const KMSENV_CONTEXT *ectx,
                       const KMSENV_WRAP *w, KMSENV_SECRET *out)
{
    FILE_KEK *f = (FILE_KEK *)k;
    EVP_CIPHER_CTX *c = NULL;
    size_t ctlen;
    unsigned char tag[FILE_TAG_LEN];
    int outl, ok;

    if (w->bloblen < 1 + FILE_NONCE_LEN + FILE_TAG_LEN ||
        w->blob[0] != FILE_BLOB_VERSION ||
        w->bloblen - (1 + FILE_NONCE_LEN + FILE_TAG_LEN) != out->len) {
        KMSENV_RAISE(KMSENV_R_UNWRAP_FAILED,
                     "wrapped key for KEK file %s is malformed (%zu bytes)",
                     f->path, w->bloblen);
        return 0;
    }
    ctlen = out->len;
    memcpy(tag, w->blob + 1 + FILE_NONCE_LEN + ctlen, FILE_TAG_LEN);
    ok = (c = gcm_start(f, 0, w->blob + 1, ectx)) != NULL &&
         EVP_CipherUpdate(c, out->data, &outl, w->blob + 1 + FILE_NONCE_LEN,
                          (int)ctlen) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, FILE_TAG_LEN, tag) &&
         EVP_DecryptFinal_ex(c, out->data + ctlen, &outl) > 0;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(out->data, out->len);
        KMSENV_RAISE(KMSENV_R_UNWRAP_FAILED,
                     "wrapped key did not authenticate under KEK file %s "
                     "(corrupt blob or different encryption context)",
                     f->path);
    }
    return ok;
}

const KMSENV_KEK_METHOD kmsenv_file_kek_method = {
    .scheme = "file",
    .open = file_open,
    .generate = file_generate,
    .wrap = file_wrap,
    .unwrap = file_unwrap,
    .free = file_free,
};
