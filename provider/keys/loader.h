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

/* Reads one PEM block from in. If it is a "KMSENV KEYSET" block, decodes it
 * into *der (OPENSSL_free it) and checks it; a malformed block of ours (bad
 * base64, no END line, headers) is an error. Other labels, or no PEM at all:
 * 0. */
int kmsenv_input_read_pem(BIO *in, unsigned char **der, size_t *derlen,
                          const char *what);

#endif
