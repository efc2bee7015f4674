/* SPDX-License-Identifier: Apache-2.0 */
/* Minimal XML reading for AWS query-protocol answers (STS): the text of a
 * named element inside a known region, entities and CDATA decoded, secrets
 * decoded straight into secure memory. */
#ifndef KMSENV_KMS_XML_H
#define KMSENV_KMS_XML_H

#include <stddef.h>
#include "util/secmem.h"

const char *xml_find(const char *p, const char *e, const char *s);
int xml_elem(const char *p, const char *e, const char *name, const char **cs,
             const char **ce);
int xml_value(const char *p, const char *e, const char *name,
              KMSENV_SECRET *out);

#endif
