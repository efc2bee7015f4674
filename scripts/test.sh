#!/usr/bin/env bash
# The whole suite: a normal build, then the same suite under ASan+UBSan,
# then the thread tests (ctest -L threads) under ThreadSanitizer.
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
