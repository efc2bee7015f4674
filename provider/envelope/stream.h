/* SPDX-License-Identifier: Apache-2.0 */
/* The enc stream (docs/FORMATS.md §7): a pure state machine, no I/O and no
 * OSSL_DISPATCH. Output sizes are checked before every write, and the
 * framing is built so that an update of inl bytes never writes more than
 * inl + KMSENV_STREAM_BLOCK bytes and final never more than
 * KMSENV_STREAM_BLOCK (the EVP cipher output budget), whatever the update
 * pattern:
 *   stream = header(16) || frame* || tail
 *   header = format 01 | key version u32 | salt[11]
 *   frame  = n u32 (1..2^31-1) | ciphertext[n] | tag[16]
 *   tail   = ciphertext[m] | tag[16], 0 <= m <= 16 (its length is implicit)
 * Per-stream key = HKDF-SHA256(DEK, header, "kmsenv-stream-v1" || keyset id
 * || context encoding); AES-256-GCM per frame, nonce = counter u64 ||
 * last u32. */
#ifndef KMSENV_ENVELOPE_STREAM_H
#define KMSENV_ENVELOPE_STREAM_H

#include <limits.h>

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "envelope/gcm_direct.h"

#define KMSENV_STREAM_FORMAT 0x01
#define KMSENV_STREAM_HDR_LEN 16
#define KMSENV_STREAM_SALT_LEN 11
#define KMSENV_STREAM_TAG_LEN 16
#define KMSENV_STREAM_LEN_LEN 4
#define KMSENV_STREAM_FRAME_OVERHEAD                                           \
    (KMSENV_STREAM_LEN_LEN + KMSENV_STREAM_TAG_LEN)
/* The EVP block size the cipher declares: the slack of every call. */
#define KMSENV_STREAM_BLOCK 32
/* Plaintext the encryptor keeps back for the tail (final writes it). */
#define KMSENV_STREAM_LAG 16
/* The last bytes of each frame the decryptor releases only after the
 * frame's tag has been checked. */
#define KMSENV_STREAM_HOLD 32
/* The largest frame (format limit) and so the largest encrypt update: a
 * reader refuses a longer length before releasing any byte of the frame,
 * which bounds the plaintext released unchecked even when a length field
 * has been tampered with. */
#define KMSENV_STREAM_MAX_FRAME 0x100000u
#define KMSENV_STREAM_MAX_UPDATE KMSENV_STREAM_MAX_FRAME
/* A decrypt update writes up to inl + 31 bytes, which EVP counts in an int. */
#define KMSENV_STREAM_MAX_DEC_UPDATE ((size_t)INT_MAX - 64)
/* Frames use counters 0 .. 2^64-2; the tail at most 2^64-1. */
#define KMSENV_STREAM_MAX_COUNTER UINT64_MAX
#define KMSENV_STREAM_KDF_LABEL "kmsenv-stream-v1"

/* Gives the per-stream key for header hdr (format, version, salt): the
 * caller looks up the version's DEK and calls kmsenv_stream_derive. */
typedef int (*KMSENV_STREAM_KEYFN)(void *arg, const unsigned char *hdr,
                                   uint32_t version, unsigned char key[32]);

typedef struct {
    int enc, state;
    OSSL_LIB_CTX *libctx;
    KMSENV_GCM g; /* kept across restarts */
    int evp_only; /* tests: no direct provider calls (kept too) */
    KMSENV_STREAM_KEYFN keyfn;
    void *keyarg;
    uint64_t counter; /* of the frame being written or read */
    unsigned char hdr[KMSENV_STREAM_HDR_LEN];
    size_t hlen;
    int hdr_sent;
    uint32_t version;
    /* encrypt: the plaintext kept back (the lag); decrypt: frame bytes */
    unsigned char lag[KMSENV_STREAM_LAG];
    size_t laglen;
    unsigned char bnd[KMSENV_STREAM_BLOCK + 1]; /* at a frame boundary */
    size_t bndlen;
    /* decrypt: a frame's last bytes, decrypted but not yet released (its
     * tag is not checked yet); wiped on failure and cleanup */
    unsigned char hold[KMSENV_STREAM_HOLD];
    size_t holdlen;
    unsigned char tag[KMSENV_STREAM_TAG_LEN];
    size_t taglen;
    uint32_t n;   /* current frame's length */
    uint32_t pos; /* data bytes of it seen */
    /* Decryption: plaintext returned before its frame's tag was checked,
     * in all and of the current frame (at most n - 32 of it, §7.4). */
    uint64_t released_unverified;
    uint64_t frame_unverified;
} KMSENV_STREAM;

/* HKDF-SHA256(ikm = dek, salt = hdr, info = label || keyset id || ctxenc),
 * 32 bytes into key. */
int kmsenv_stream_derive(OSSL_LIB_CTX *libctx, const unsigned char dek[32],
                         const unsigned char *hdr,
                         const unsigned char keyset_id[16],
                         const unsigned char *ctxenc, size_t ctxenclen,
                         unsigned char key[32]);

void kmsenv_stream_init(KMSENV_STREAM *s);
/* Encryption under version: salt NULL = random (fixed only for vectors).
 * Calls keyfn once. */
int kmsenv_stream_start_enc(KMSENV_STREAM *s, OSSL_LIB_CTX *libctx,
                            uint32_t version, const unsigned char *salt,
                            KMSENV_STREAM_KEYFN keyfn, void *arg);
/* Decryption: keyfn is called once the header is in. */
int kmsenv_stream_start_dec(KMSENV_STREAM *s, OSSL_LIB_CTX *libctx,
                            KMSENV_STREAM_KEYFN keyfn, void *arg);
/* Writes at most outsize bytes (checked before every write). An encrypt
 * update writes at most inl + 20 bytes (FORMATS.md §7.3), a decrypt update
 * at most inl + 31 (§7.4); a failing decrypt update wipes what it wrote. */
int kmsenv_stream_update(KMSENV_STREAM *s, const unsigned char *in, size_t inl,
                         unsigned char *out, size_t outsize, size_t *outl);
/* At most 32 bytes. Decryption: fails on truncation or a bad tail. */
int kmsenv_stream_final(KMSENV_STREAM *s, unsigned char *out, size_t outsize,
                        size_t *outl);
/* Tests: set the next frame counter (> 4 GiB arithmetic). */
void kmsenv_stream_set_counter(KMSENV_STREAM *s, uint64_t c);
/* Tests: GCM through EVP only (before start), not the provider's functions
 * directly (gcm_direct.h); 1 if the stream's GCM calls the provider
 * directly (after the key is set). */
void kmsenv_stream_set_evp_only(KMSENV_STREAM *s, int on);
int kmsenv_stream_gcm_direct(const KMSENV_STREAM *s);
void kmsenv_stream_cleanup(KMSENV_STREAM *s);

#endif
