#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds OpenSSL 3.5 from Debian trixie's source package into a cached private
# prefix and prints that prefix on stdout (everything else goes to stderr).
#
#   prefix=$(scripts/openssl35.sh)
#
# The prefix ($KMSENV_OSSL35_CACHE, default /var/cache/kmsenv, /openssl-3.5.X)
# is reused when its stamp file says a previous build completed; then nothing
# is fetched (remove the prefix to pick up a newer 3.5 release). Otherwise, as
# root, it installs the build tools, adds a deb-src entry for trixie (source
# only: nothing on the system is upgraded), runs apt-get source
# openssl=<3.5 version> (Debian patches applied as usual; the newest version
# the mirror actually serves) in a scratch dir and builds libcrypto, libssl,
# the openssl app and the default and legacy providers: no tests, no docs.
# The libraries and the app carry a RUNPATH to the prefix, so
# PREFIX/bin/openssl runs its own libcrypto even without LD_LIBRARY_PATH.
set -euo pipefail
cache=${KMSENV_OSSL35_CACHE:-/var/cache/kmsenv}
suite=${KMSENV_OSSL35_SUITE:-trixie}
list=/etc/apt/sources.list.d/kmsenv-$suite-src.sources
stamp=.kmsenv-build-complete
jobs=${KMSENV_OSSL35_JOBS:-2}
log() { echo "openssl35: $*" >&2; }

# A complete cached build: the newest stamped openssl-3.5.* prefix.
cached() {
    local d best=
    while read -r d; do
        [ -f "$d/$stamp" ] && [ -x "$d/bin/openssl" ] && best=$d
    done < <(printf '%s\n' "$cache"/openssl-3.5.* | sort -V)
    [ -n "$best" ] && echo "$best"
}
if prefix=$(cached); then
    echo "$prefix"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "no cached OpenSSL 3.5 under $cache; build it once as root:"
    log "  sudo $0"
    exit 1
fi

# One build at a time; a concurrent run may have just finished one.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if prefix=$(cached); then
    echo "$prefix"
    exit 0
fi

pkgs=(gcc make perl dpkg-dev xz-utils)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -f "$list" ]; then
    log "adding deb-src for $suite in $list"
    cat >"$list" <<EOF
# kmsenv scripts/openssl35.sh: OpenSSL 3.5 source only (deb-src). No binary
# packages come from $suite.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
apt-get update -qq >&2

# The 3.5 source versions, newest first ("3.5.7-1~deb13u2"). A mirror can list
# a version whose files it no longer (or not yet) serves: try the next one.
vers=$(apt-cache showsrc openssl | awk '/^Package: /{p=$2} /^Version: /{if (p=="openssl") print $2}' |
       grep -E '^([0-9]+:)?3\.5\.' | sort -Vru || true)
if [ -z "$vers" ]; then
    log "no openssl 3.5 source in the apt sources (suite $suite)"
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kmsenv-openssl35.XXXXXX")
trap 'rm -rf "$work"' EXIT
chown _apt "$work" 2>/dev/null || true # apt downloads sandboxed, as _apt
src=
for ver in $vers; do
    log "fetching openssl $ver source into $work"
    if (cd "$work" && apt-get source -qq "openssl=$ver" >&2); then
        src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'openssl-*' | head -n1)
        [ -n "$src" ] && break
    fi
    log "openssl $ver: source not fetchable, trying an older one"
    find "$work" -mindepth 1 -delete
done
[ -n "$src" ] || { log "no openssl 3.5 source could be fetched (tried: $(echo $vers))"; exit 1; }
upstream=${ver#*:}
upstream=${upstream%-*}
prefix=$cache/openssl-$upstream

log "building into $prefix (make -j$jobs)"
rm -rf "$prefix"
start=$(date +%s)
(
    cd "$src"
    ./Configure --prefix="$prefix" --libdir=lib shared no-tests \
        "-Wl,-rpath,$prefix/lib" >&2
    make -j"$jobs" build_sw >"$work/build.log" 2>&1 ||
        { tail -n 50 "$work/build.log" >&2; exit 1; }
    make install_sw install_ssldirs >"$work/install.log" 2>&1 ||
        { tail -n 50 "$work/install.log" >&2; exit 1; }
)
"$prefix/bin/openssl" version -a >&2
"$prefix/bin/openssl" list -providers -provider default -provider legacy >/dev/null
echo "openssl $ver built in $(($(date +%s) - start))s" >"$prefix/$stamp"
log "done: $(cat "$prefix/$stamp")"
echo "$prefix"
