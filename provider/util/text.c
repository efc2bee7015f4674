/* SPDX-License-Identifier: Apache-2.0 */
#include "util/text.h"

#include <stdio.h>
#include <string.h>

char *kmsenv_escape(char *out, size_t outlen, const char *in, size_t inlen)
{
    size_t i, o = 0;

    if (outlen == 0)
        return out;
    for (i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        size_t need = (c < 0x20 || c >= 0x7f) ? 4 : 1;

        if (o + need + 4 > outlen && i + 1 < inlen) { /* room for "..." */
            if (o + 3 < outlen)
                memcpy(out + o, "...", 3), o += 3;
            break;
        }
        if (o + need >= outlen)
            break;
        if (need == 4)
            snprintf(out + o, 5, "\\x%02x", c);
        else
            out[o] = (char)c;
        o += need;
    }
    out[o] = '\0';
    return out;
}
