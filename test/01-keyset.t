# SPDX-License-Identifier: Apache-2.0
# Keyset creation, loading, metadata, and every export path.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
make_kek("$d/kek");
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/k.pem");
is($rc, 0, 'genpkey creates a keyset') or diag $err;
my $pem = slurp("$d/k.pem");
like($pem, qr/^-----BEGIN KMSENV KEYSET-----\n/, 'written as KMSENV KEYSET PEM');

($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-text', '-noout');
is($rc, 0, 'pkey -text loads it') or diag $err;
like($out, qr/^id: [0-9a-f]{32}$/m, 'text shows the keyset id');
like($out, qr/version 1: primary, created \d{4}-/, 'text shows versions and states');
like($out, qr/kek 1: file:\Q$d\E\/kek, fingerprint [0-9a-f]{32}/, 'text shows KEK id and fingerprint');
like($out, qr/algorithm: XAES-256-GCM/, 'text shows the algorithm');

($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem");
is($rc, 0, 'pkey re-encodes');
is(pem_body($out), pem_body($pem), 'PEM output is the same wrapped keyset');

($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-outform', 'DER');
is($rc, 0, 'pkey -outform DER');
is($out, pem_body($pem), 'DER output is the wrapped keyset');

($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-pubout');
isnt($rc, 0, 'there is no public key to export');
is($out, '', '... and nothing is written');

# The same keyset through the kmsenv: store and a DER file.
spurt("$d/k.der", pem_body($pem));
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem", '-text', '-noout');
is($rc, 0, 'loads through the kmsenv: store') or diag $err;
($rc, $out, $err) = ossl('pkey', '-in', "$d/k.der", '-text', '-noout');
is($rc, 0, 'loads from DER') or diag $err;
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/no%20such", '-noout');
isnt($rc, 0, 'a missing file through kmsenv: fails');
like($err, qr/no such/i, '... naming the file');
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem?bogus=1", '-noout');
like($err, qr/unknown query parameter 'bogus=1'/, 'bad URI query is refused clearly');

# The default keyset for kmsenv: comes from the configuration.
($rc, $out, $err) = ossl({ env => { KMSENV_KEYSET => "$d/k.pem" } },
    'pkey', '-in', 'kmsenv:', '-text', '-noout');
is($rc, 0, 'kmsenv: alone loads the configured keyset') or diag $err;

# No keyring anywhere: a clear error.
($rc, $out, $err) = ossl({ env => { KMSENV_KEYRING => undef } },
    'genpkey', '-algorithm', 'KMSENV-KEYSET', '-out', "$d/x.pem");
isnt($rc, 0, 'genpkey without any keyring fails');
like($err, qr/no keyring configured/, '... and says how to configure one');

# C API export paths (EVP_PKEY_todata, i2d_PrivateKey, PEM_write_bio_PrivateKey)
my ($prc, $pout, $perr) = run(build_dir() . '/export_probe', build_dir(), "$d/k.pem");
is($prc, 0, 'export probe ran') or diag $perr;
like($pout, qr/^todata: refused$/m, 'EVP_PKEY_todata is refused');
like($pout, qr/^i2d_PrivateKey: wrapped$/m, 'i2d_PrivateKey writes the wrapped form');
like($pout, qr/^PEM_write_bio_PrivateKey: wrapped$/m, 'PEM_write_bio_PrivateKey writes the wrapped form');
like($pout, qr/^PEM_write_bio_PUBKEY: refused$/m, 'PEM_write_bio_PUBKEY is refused');

done_testing();
