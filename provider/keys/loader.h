/* SPDX-License-Identifier: Apache-2.0 */
/* Reading keyset input for the decoders and the kmsenv: store: bounded
 * (KMSENV_MAX_INPUT, refused beyond, never truncated), and every way a
 * keyset can be malformed named in the error (truncated, trailing bytes,
 * bad PEM base64 ...). Functions returning int: 1 a keyset (checked), 0 not
 * a keyset (nothing raised: not ours, come back empty-handed), -1 a keyset
 * that cannot be used (error raised). */
#ifndef KMSENV_KEYS_LOADER_H
#define KMSENV_KEYS_LOADER_H

#include <stddef.h>
#include <openssl/bio.h>
#include "keys/keyobj.h"

#define KMSENV_MAX_INPUT (1024 * 1024)

/* Whether buf starts the way a keyset's DER does: an OCTET STRING header and,
 * if enough bytes are there, the keyset magic. */
int kmsenv_input_is_keyset_prefix(const unsigned char *buf, size_t len);

/* Checks a keyset's DER container: exact length, no trailing bytes, size
 * limit. what names the input in errors. */
int kmsenv_input_check_der(const unsigned char *buf, size_t len,
                           const char *what);

/* Reads DER from in. If it starts like a keyset, reads it all (bounded) into
 * *buf (OPENSSL_free it) and checks it. */
int kmsenv_input_read_der(BIO *in, unsigned char **buf, size_t *len,
                          const char *what);

/* Whether a PEM label is one of ours ("KMSENV KEYSET", "KMSENV WRAPPED
 * PRIVATE KEY"); kmsenv_input_read_pem takes both, and the DER functions
 * take both magics. */
int kmsenv_our_label(const char *label);

/* Reads one PEM block from in. If it is a "KMSENV KEYSET" block, decodes it
 * into *der (OPENSSL_free it) and checks it; a malformed block of ours (bad
 * base64, no END line, headers) is an error. Other labels, or no PEM at all:
 * 0. */
int kmsenv_input_read_pem(BIO *in, unsigned char **der, size_t *derlen,
                          const char *what);

/* The keyset at path (a regular file of at most KMSENV_MAX_INPUT bytes,
 * PEM or DER) as checked DER in *der (OPENSSL_free it). 1, or 0 with an
 * error naming the file. */
int kmsenv_loader_read_file(const char *path, unsigned char **der, size_t *len);

/* Loads a keyset from its DER: one unwrap with the KEKs it records (and the
 * provider's redirect), or, with keyring (a spec, KEKs separated by ';'),
 * with each of those KEKs in turn until one unwraps. origin names it. */
KMSENV_KEYOBJ *kmsenv_loader_load(const KMSENV_KEYS_ENV *env,
                                  const unsigned char *der, size_t len,
                                  const char *origin, const char *keyring);

/* Both: the keyset at path, with keyring as above (may be NULL). */
KMSENV_KEYOBJ *kmsenv_loader_load_file(const KMSENV_KEYS_ENV *env,
                                       const char *path, const char *keyring);

/* Percent-decodes s[0..n) of a kmsenv: URI (its path or a query value)
 * into a new string (OPENSSL_free it). NULL with *why set (no error
 * raised) on a '%' not followed by two hex digits, on %00, or out of
 * memory. */
char *kmsenv_uri_pct_decode(const char *s, size_t n, const char **why);

/* Parses kmsenv:PATH[?keyring=SPEC] (the scheme case-insensitive, items
 * separated by '&'): *path and *keyring (NULL when absent) newly allocated
 * and percent-decoded; *path may be "" (the caller decides what an empty
 * path means). Raises KMSENV_R_BAD_URI naming uri on any error. */
int kmsenv_uri_parse(const char *uri, char **path, char **keyring);

/* The OpenSSL 3.0 file: store handoff (see loader.c): a keyset loaded early
 * by a pre-decoder is parked for the key decoder that runs synchronously
 * inside the same callback, so it is unwrapped once and its load errors
 * are not lost. One slot per thread. */
typedef struct {
    const unsigned char *der; /* NULL: no handoff in progress */
    size_t len;
    int probing; /* first pass: is a private key wanted? */
    int wanted;  /* set by the key decoder during the probe */
    KMSENV_KEYOBJ *k;
} KMSENV_HANDOFF;

/* This thread's slot, or NULL if none can be made (then no early load). */
KMSENV_HANDOFF *kmsenv_handoff(void);
/* Whether the slot holds exactly these bytes. */
int kmsenv_handoff_holds(const unsigned char *der, size_t len);
/* Empties the slot, freeing a parked object nobody took. */
void kmsenv_handoff_clear(void);
/* The parked object if it belongs to env (the caller owns it), else NULL. */
KMSENV_KEYOBJ *kmsenv_handoff_take(const KMSENV_KEYS_ENV *env);

#endif
