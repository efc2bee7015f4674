/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KMSENV_TOOLS_WRAP_H
#define KMSENV_TOOLS_WRAP_H

/* kmsenv wrap ARGS (after the command word); the providers are loaded. */
int kmsenv_wrap_main(const char *prog, int argc, char **argv);

#endif
