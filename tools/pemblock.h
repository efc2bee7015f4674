/* SPDX-License-Identifier: Apache-2.0 */
/* The one kmsenv key in a file the CLI rewrites (tools/pemblock.c).
 *
 * A PEM file may hold other blocks and text around the kmsenv block (a
 * certificate before or after the key, as nginx and HAProxy combined files
 * do); the loader skips them. kmsenv rewrites only the kmsenv block: every
 * byte before and after it stays as it was. */
#ifndef KMSENV_TOOLS_PEMBLOCK_H
#define KMSENV_TOOLS_PEMBLOCK_H

#include <stddef.h>

typedef struct {
    int der;           /* the whole file is the DER container */
    const char *label; /* KMSENV KEYSET or KMSENV WRAPPED PRIVATE KEY */
    size_t start, end; /* the block in the file: from the "-" of its BEGIN
                        * line to the last "-" of its END line (the END
                        * line's terminator is not part of it); for DER the
                        * whole file */
} KMSENV_FILE_BLOCK;

/* Finds the kmsenv block in the file content buf: DER as a whole, or the
 * one PEM block labelled KMSENV KEYSET or KMSENV WRAPPED PRIVATE KEY. A
 * file without one, with more than one, or with a BEGIN line and no END
 * line is refused: 0 with the reason printed as "prog: path: ...". */
int kmsenv_block_find(const char *prog, const char *path,
                      const unsigned char *buf, size_t len,
                      KMSENV_FILE_BLOCK *b);

/* Whether the block is a wrapped private key (else a keyset). */
int kmsenv_block_is_wrapped(const KMSENV_FILE_BLOCK *b);

/* The block on its own, as the decoders read it: the DER, or the PEM block
 * with a "\n" after its END line. malloc'd; 0 on out of memory. */
int kmsenv_block_text(const KMSENV_FILE_BLOCK *b, const unsigned char *buf,
                      unsigned char **text, size_t *textlen);

/* The new file content: buf with the block replaced by enc (the encoder's
 * output for the same form; a PEM's trailing line end is dropped, the
 * file's own is kept). malloc'd; 0 on out of memory. */
int kmsenv_block_splice(const KMSENV_FILE_BLOCK *b, const unsigned char *buf,
                        size_t len, const unsigned char *enc, size_t enclen,
                        unsigned char **out, size_t *outlen);

#endif
