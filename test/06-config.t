# SPDX-License-Identifier: Apache-2.0
# openssl.cnf configuration, environment precedence, the debug log, and the
# one-keyring-call-per-load guarantee.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
my $b = build_dir();
make_kek("$d/kek");
make_kek("$d/kek2");
my $cnf = slurp("$FindBin::Bin/../conf/kmsenv-local.cnf");
$cnf =~ s{^# module = \S+.*$}{module = $b/kmsenv.so}m;
$cnf =~ s{^keyring = .*$}{keyring = file:$d/kek}m;
$cnf =~ s{^# debug = .*$}{debug = file:$d/debug.log,level:2}m;
spurt("$d/openssl.cnf", $cnf);
my %conf = (OPENSSL_CONF => "$d/openssl.cnf");

# genpkey with no provider flags and no -pkeyopt: all from openssl.cnf.
my ($rc, $out, $err) = run({ env => \%conf }, 'openssl', 'genpkey',
    '-algorithm', 'KMSENV-KEYSET', '-out', "$d/k.pem");
is($rc, 0, 'genpkey through openssl.cnf alone') or diag $err;
($rc, $out) = run({ env => \%conf }, 'openssl', 'pkey', '-in', "$d/k.pem",
    '-text', '-noout');
like($out, qr/kek 1: file:\Q$d\E\/kek,/, 'config keyring was used');

# The environment wins over openssl.cnf.
($rc, $out, $err) = run({ env => { %conf, KMSENV_KEYRING => "file:$d/kek2" } },
    'openssl', 'genpkey', '-algorithm', 'KMSENV-KEYSET', '-out', "$d/k2.pem");
is($rc, 0, 'genpkey with KMSENV_KEYRING') or diag $err;
($rc, $out) = run({ env => \%conf }, 'openssl', 'pkey', '-in', "$d/k2.pem",
    '-text', '-noout');
like($out, qr/kek 1: file:\Q$d\E\/kek2,/, 'KMSENV_KEYRING overrides the config');
# -pkeyopt wins over both.
($rc, $out, $err) = run({ env => { %conf, KMSENV_KEYRING => "file:$d/kek2" } },
    'openssl', 'genpkey', '-algorithm', 'KMSENV-KEYSET', '-pkeyopt',
    "keyring:file:$d/kek", '-out', "$d/k3.pem");
($rc, $out) = run({ env => \%conf }, 'openssl', 'pkey', '-in', "$d/k3.pem",
    '-text', '-noout');
like($out, qr/kek 1: file:\Q$d\E\/kek,/, '-pkeyopt keyring overrides both');

# Records through openssl.cnf only (no -provider flags).
spurt("$d/pt", 'abc');
($rc, $out, $err) = run({ env => \%conf }, 'openssl', 'pkeyutl', '-encrypt',
    '-inkey', "$d/k.pem", '-pkeyopt', 'context:a=1', '-in', "$d/pt", '-out', "$d/ct");
is($rc, 0, 'pkeyutl -encrypt through openssl.cnf') or diag $err;

# One keyring call per load, however many versions.
for (1 .. 5) { kmsenv_cli('rotate', "$d/k.pem") }
unlink("$d/debug.log");
($rc, $out, $err) = run({ env => \%conf }, 'openssl', 'pkeyutl', '-decrypt',
    '-inkey', "$d/k.pem", '-pkeyopt', 'context:a=1', '-in', "$d/ct");
is($out, 'abc', 'v1 record decrypts with 6 versions') or diag $err;
my $log = slurp("$d/debug.log");
my $calls = () = $log =~ /keyring call: /g;
is($calls, 1, 'exactly one keyring call for a load of a 6-version keyset');
like($log, qr/keyring call: unwrap kek=file:\Q$d\E\/kek fp=[0-9a-f]{32} key=keyset [0-9a-f]{16}/,
    'debug log names the KEK, its fingerprint and the keyset');

# Also through the kmsenv: store and a DER file.
for my $uri ("kmsenv:$d/k.pem", "$d/k.der") {
    spurt("$d/k.der", pem_body(slurp("$d/k.pem")));
    unlink("$d/debug.log");
    ($rc, $out, $err) = run({ env => \%conf }, 'openssl', 'pkeyutl', '-decrypt',
        '-inkey', $uri, '-pkeyopt', 'context:a=1', '-in', "$d/ct");
    is($out, 'abc', "decrypts with key $uri") or diag $err;
    $calls = () = slurp("$d/debug.log") =~ /keyring call: /g;
    is($calls, 1, "one keyring call loading $uri");
}

# Order "kmsenv first, then default" also works.
(my $rev = $cnf) =~ s/default = default_sect\nkmsenv = kmsenv_sect/kmsenv = kmsenv_sect\ndefault = default_sect/;
spurt("$d/rev.cnf", $rev);
($rc, $out, $err) = run({ env => { OPENSSL_CONF => "$d/rev.cnf" } }, 'openssl',
    'pkeyutl', '-decrypt', '-inkey', "$d/k.pem", '-pkeyopt', 'context:a=1',
    '-in', "$d/ct");
is($out, 'abc', 'kmsenv listed before default also works') or diag $err;

done_testing();
