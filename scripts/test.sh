#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole suite: a normal build, then the same suite under ASan+UBSan,
# then the thread tests (ctest -L threads) under ThreadSanitizer, then every
# libFuzzer target for a short fixed time (scripts/fuzz.sh; run it longer by
# hand), then the suite again against OpenSSL 3.5 (scripts/openssl35.sh:
# Debian trixie's source, built once into a cached prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/clients.sh   # awscli and the pinned @aws-sdk/client-kms for 11-official-clients.t
jobs=$(nproc)
# Formatting is part of the suite: every C file as .clang-format says.
clang-format --dry-run --Werror $(git ls-files '*.c' '*.h' 2>/dev/null ||
    find provider tools test bench fuzz -name '*.[ch]' 2>/dev/null)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)
cmake -S . -B build-asan -DKMSENV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest --output-on-failure)
cmake -S . -B build-tsan -DKMSENV_TSAN=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$jobs"
(cd build-tsan && ctest -L threads --output-on-failure)
scripts/fuzz.sh "${KMSENV_FUZZ_SECONDS:-20}"

ossl35=$(scripts/openssl35.sh)
# A build dir configured for another prefix (an older cached 3.5) starts over.
if [ -f build-ossl35/CMakeCache.txt ] &&
   [ "$(sed -n 's/^OPENSSL_ROOT_DIR:[A-Z]*=//p' build-ossl35/CMakeCache.txt)" != "$ossl35" ]; then
    rm -f build-ossl35/CMakeCache.txt
fi
cmake -S . -B build-ossl35 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DOPENSSL_ROOT_DIR="$ossl35" -DKMSENV_OPENSSL="$ossl35/bin/openssl" >/dev/null
cmake --build build-ossl35 -j"$jobs"
# Every openssl the tests run is the 3.5 one, and every libssl/libcrypto.so.3
# loaded (libcurl's, Net::SSLeay's) the 3.5 build too: same soname, so the
# module and libcurl share the one libcrypto of the process.
(
    export PATH="$ossl35/bin:$PATH" LD_LIBRARY_PATH="$ossl35/lib"
    openssl version | grep -q '^OpenSSL 3\.5\.' ||
        { echo "3.5 leg: openssl on PATH is $(openssl version)" >&2; exit 1; }
    cd build-ossl35 && ctest --output-on-failure
)
