/* SPDX-License-Identifier: Apache-2.0 */
/* Reader of the AWS shared credentials and config files, as botocore's
 * configparser reads them: [section] / [profile NAME] headers, key = value
 * properties, indented continuation lines, # and ; comments. Lines go
 * through secure memory (values may be secrets) to a callback. */
#ifndef KMSENV_KMS_INI_H
#define KMSENV_KMS_INI_H

#include <stddef.h>

/* Returns 1, 0 on a raised error, -1 when the key was already set. */
typedef int (*ini_cb)(void *arg, const char *key, size_t keylen,
                      const char *val, size_t vallen);

typedef struct {
    const char *want; /* profile name */
    const char *path; /* for messages */
    int config;       /* config file: [profile NAME], [default] */
    int in_want;      /* the current section is the wanted profile */
    int in_section;   /* a [section] header has been seen */
    long prop_indent; /* indentation of the last property line; -1: none */
    long lineno;      /* 1-based number of the current line */
    int found;        /* the wanted section was seen */
    ini_cb cb;
    void *arg;
} INI;

int ini_read_file(const char *path, INI *st, char *why, size_t whylen);

#endif
