# SPDX-License-Identifier: Apache-2.0
# KEK problems, corrupt keysets, tampering: clear errors, no crash.
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
is($rc, 0, 'keyset') or BAIL_OUT($err);
my $pem = slurp("$d/k.pem");
my $der = pem_body($pem);

sub load {
    my ($file, %env) = @_;
    return ossl({ env => \%env }, 'pkey', '-in', $file, '-noout');
}

($rc, $out, $err) = load("$d/k.pem");
is($rc, 0, 'loads');

# Loose permissions on the KEK.
chmod 0644, "$d/kek";
($rc, $out, $err) = load("$d/k.pem");
isnt($rc, 0, 'group-readable KEK is refused');
like($err, qr/mode 0644: group or others can access it; run chmod 600/, '... saying how to fix it');
chmod 0640, "$d/kek";
($rc, $out, $err) = load("$d/k.pem");
isnt($rc, 0, 'mode 0640 is refused too');
chmod 0600, "$d/kek";

# Wrong KEK: a different key at the same path.
rename("$d/kek", "$d/kek.real");
make_kek("$d/kek");
($rc, $out, $err) = load("$d/k.pem");
isnt($rc, 0, 'wrong KEK fails');
like($err, qr/wrapped under KEK [0-9a-f]{32} \(file:\Q$d\E\/kek\), configured file:\Q$d\E\/kek is KEK [0-9a-f]{32}/,
    'error names both fingerprints');

# The same through a DER file and the kmsenv: store.
spurt("$d/k.der", $der);
($rc, $out, $err) = load("$d/k.der");
like($err, qr/wrapped under KEK [0-9a-f]{32}/, 'DER file: wrong KEK error names the fingerprints');
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.der", '-noout');
like($err, qr/wrapped under KEK [0-9a-f]{32}/, 'kmsenv: URI: wrong KEK error names the fingerprints');

# Missing KEK.
unlink("$d/kek");
($rc, $out, $err) = load("$d/k.pem");
isnt($rc, 0, 'missing KEK fails');
like($err, qr/KEK file \Q$d\E\/kek: No such file/, '... naming the KEK file');
like($err, qr/keyset [0-9a-f]{16}.*none of its 1 wrapped key copy could be unwrapped/, '... and the keyset');
($rc, $out, $err) = load("$d/k.der");
like($err, qr/KEK file \Q$d\E\/kek: No such file/, 'DER file: missing KEK is named');

# Redirect: the KEK moved; config points the recorded path at the new one.
($rc, $out, $err) = load("$d/k.pem", KMSENV_REDIRECT => "file:$d/kek=file:$d/kek.real");
is($rc, 0, 'KMSENV_REDIRECT finds a moved KEK') or diag $err;
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem?keyring=file:$d/kek.real", '-noout');
is($rc, 0, 'kmsenv:PATH?keyring=SPEC finds a moved KEK') or diag $err;
rename("$d/kek.real", "$d/kek");

# KEK file of the wrong size.
spurt("$d/short", 'x' x 16);
chmod 0600, "$d/short";
($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/short", '-out', "$d/x.pem");
like($err, qr/has 16 bytes; it must hold exactly 32/, 'short KEK file is refused clearly');
($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', 'keyring:vault:x', '-out', "$d/x.pem");
like($err, qr/unknown keyring 'vault:x'/, 'unknown keyring scheme is refused clearly');

# Truncated and garbage keysets.
for my $cut (1, 10, 40, length($der) - 1) {
    spurt("$d/t.pem", pem_wrap('KMSENV KEYSET', substr($der, 0, $cut)));
    ($rc, $out, $err) = load("$d/t.pem");
    isnt($rc, 0, "keyset truncated to $cut bytes fails");
    ok($rc < 128, '... without a crash');
}
spurt("$d/g.pem", pem_wrap('KMSENV KEYSET', 'garbage' x 20));
($rc, $out, $err) = load("$d/g.pem");
isnt($rc, 0, 'garbage keyset fails');
spurt("$d/g.pem", "-----BEGIN KMSENV KEYSET-----\n!!!!\n-----END KMSENV KEYSET-----\n");
($rc, $out, $err) = load("$d/g.pem");
isnt($rc, 0, 'bad base64 fails');
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/g.pem", '-noout');
isnt($rc, 0, 'bad keyset through kmsenv: fails');

# Every single-byte flip of the keyset file is rejected.
my ($accepted, $crashed) = (0, 0);
for my $i (0 .. length($der) - 1) {
    my $t = $der;
    substr($t, $i, 1) = chr(ord(substr($t, $i, 1)) ^ 0x01);
    spurt("$d/f.pem", pem_wrap('KMSENV KEYSET', $t));
    my ($r) = load("$d/f.pem");
    $accepted++ if $r == 0;
    $crashed++ if $r >= 97;
}
is($accepted, 0, 'all ' . length($der) . ' single-byte flips of the keyset are rejected');
is($crashed, 0, '... none of them crashes');

# A tampered version state (disabled -> primary) is caught by authentication.
my $t = $der;
my $pos = index($t, "KMSENVKS") + 8 + 1 + 16 + 8 + 1;   # primary field
substr($t, $pos + 3, 1) = chr(ord(substr($t, $pos + 3, 1)) ^ 0x03);
spurt("$d/s.pem", pem_wrap('KMSENV KEYSET', $t));
($rc, $out, $err) = load("$d/s.pem");
isnt($rc, 0, 'a tampered primary field is rejected');

done_testing();
