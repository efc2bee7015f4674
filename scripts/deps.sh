#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages kmsenv needs to build and test. As root it
# installs what is missing; otherwise it prints the apt-get line to run.
set -euo pipefail
pkgs=(gcc make cmake pkg-config openssl libssl-dev perl libcryptx-perl
      libcurl4-openssl-dev curl libio-socket-ssl-perl clang-format clang
      nginx-light apache2-bin python3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "kmsenv needs: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
