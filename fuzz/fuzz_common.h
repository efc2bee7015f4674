/* SPDX-License-Identifier: Apache-2.0 */
/* Shared bits of the libFuzzer targets in fuzz/ (see fuzz/README.md). */
#ifndef KMSENV_FUZZ_COMMON_H
#define KMSENV_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>

/* A broken invariant is a crash: libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            ERR_print_errors_fp(stderr);                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Decodes a hex literal into out (of n bytes); aborts on a bad literal. */
static inline void fuzz_unhex(const char *hex, unsigned char *out, size_t n)
{
    size_t i;
    unsigned v;

    FUZZ_CHECK(strlen(hex) == 2 * n);
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
        out[i] = (unsigned char)v;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
