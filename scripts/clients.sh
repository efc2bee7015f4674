#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the official AWS KMS clients that test/11-official-clients.t drives
# against the loopback KMS emulator: Debian's awscli (v2) and, from
# test/clients/package-lock.json, @aws-sdk/client-kms (needs node >= 20 and
# npm). As root it installs what is missing; otherwise it prints the apt-get
# line to run. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
dpkg-query -W -f='${Status}' awscli 2>/dev/null | grep -q "install ok installed" || missing+=(awscli)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "kmsenv client tests need: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "kmsenv client tests need node >= 20 for @aws-sdk/client-kms (found $(node --version))" >&2
    exit 1
fi

# npm ci only when node_modules is not the install of this exact lockfile.
cd test/clients
stamp=node_modules/.kmsenv-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
    [ -f node_modules/@aws-sdk/client-kms/package.json ]; then
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
