#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds kmsenv and walks through the local-keyring quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
B=$PWD/build
P=(-provider-path "$B" -provider default -provider kmsenv)
export OPENSSL_CONF=/dev/null
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cd "$d"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "openssl rand -out kek 32 && chmod 600 kek"
openssl rand -out kek 32 && chmod 600 kek
step "openssl genpkey -algorithm KMSENV-KEYSET -pkeyopt keyring:file:$d/kek -out app.keyset"
openssl genpkey "${P[@]}" -algorithm KMSENV-KEYSET -pkeyopt "keyring:file:$d/kek" -out app.keyset
step "openssl pkey -in app.keyset -text -noout     # metadata only"
openssl pkey "${P[@]}" -in app.keyset -text -noout
printf '4111111111111111' > pan.txt
step "openssl pkeyutl -encrypt -inkey app.keyset -pkeyopt context:table=cards,row=42 -in pan.txt -out pan.bin"
openssl pkeyutl "${P[@]}" -encrypt -inkey app.keyset -pkeyopt context:table=cards,row=42 -in pan.txt -out pan.bin
echo "pan.bin: $(stat -c %s pan.bin) bytes"
step "openssl pkeyutl -decrypt -inkey app.keyset -pkeyopt context:table=cards,row=42 -in pan.bin"
openssl pkeyutl "${P[@]}" -decrypt -inkey app.keyset -pkeyopt context:table=cards,row=42 -in pan.bin; echo
step "openssl pkeyutl -decrypt ... -pkeyopt context:table=cards,row=43    # wrong row: must fail"
if openssl pkeyutl "${P[@]}" -decrypt -inkey app.keyset -pkeyopt context:table=cards,row=43 -in pan.bin; then
    echo "UNEXPECTED: decrypted under the wrong context"; exit 1
fi
echo "(refused, as it must be)"
step "flip one byte of pan.bin and decrypt: must fail"
cp pan.bin bad.bin
printf '\x00' | dd of=bad.bin bs=1 seek=40 conv=notrunc 2>/dev/null
if openssl pkeyutl "${P[@]}" -decrypt -inkey app.keyset -pkeyopt context:table=cards,row=42 -in bad.bin; then
    echo "UNEXPECTED: tampered record decrypted"; exit 1
fi
echo "(refused, as it must be)"
step "kmsenv rotate app.keyset"
"$B/kmsenv" --provider-path "$B" rotate app.keyset
step "kmsenv inspect app.keyset"
"$B/kmsenv" --provider-path "$B" inspect app.keyset
step "openssl pkeyutl -decrypt ... -in pan.bin    # the version-1 record still decrypts"
openssl pkeyutl "${P[@]}" -decrypt -inkey app.keyset -pkeyopt context:table=cards,row=42 -in pan.bin; echo
step "tar c . | openssl enc -kmsenv-aes-256-gcm -K '' > dir.tar.kenc    # a stream under the keyset"
export KMSENV_KEYSET="$d/app.keyset" KMSENV_CONTEXT=backup=demo
tar c --exclude='*.kenc' --exclude=kek . | openssl enc "${P[@]}" -kmsenv-aes-256-gcm -K '' > dir.tar.kenc
echo "dir.tar.kenc: $(stat -c %s dir.tar.kenc) bytes"
step "openssl enc -d -kmsenv-aes-256-gcm -K '' < dir.tar.kenc | tar t"
openssl enc "${P[@]}" -d -kmsenv-aes-256-gcm -K '' < dir.tar.kenc | tar t
step "... with another context: must fail"
if KMSENV_CONTEXT=backup=other openssl enc "${P[@]}" -d -kmsenv-aes-256-gcm -K '' \
    < dir.tar.kenc > /dev/null; then
    echo "UNEXPECTED: decrypted under the wrong context"; exit 1
fi
echo "(refused, as it must be)"
unset KMSENV_KEYSET KMSENV_CONTEXT
step "kmsenv wrap --generate p-256 --keyring file:$d/kek --out server.kmsenv.pem    # a TLS key, never in plaintext on disk"
"$B/kmsenv" --provider-path "$B" wrap --generate p-256 --keyring "file:$d/kek" --out server.kmsenv.pem
step "openssl req -new -x509 -key server.kmsenv.pem -subj /CN=localhost -out server.crt"
openssl req "${P[@]}" -new -x509 -key server.kmsenv.pem -subj /CN=localhost -days 1 -out server.crt
openssl x509 -in server.crt -noout -subject
step "openssl pkey -in server.kmsenv.pem -pubout    # the public part; the private key never leaves the provider"
openssl pkey "${P[@]}" -in server.kmsenv.pem -pubout
printf '\ndemo OK\n'
