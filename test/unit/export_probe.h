/* SPDX-License-Identifier: Apache-2.0 */
/* export_probe's two modes: keysets (export_probe.c) and wrapped private
 * keys (export_probe_wrapped.c). */
#ifndef KMSENV_TEST_EXPORT_PROBE_H
#define KMSENV_TEST_EXPORT_PROBE_H

/* export_probe MODULEDIR --wrapped def|kms WRAPPED PLAIN CERT OTHER */
int wrapped_main(int argc, char **argv);

#endif
