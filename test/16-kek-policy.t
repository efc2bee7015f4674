# SPDX-License-Identifier: Apache-2.0
# The KEK policy (allowed_keks / KMSENV_ALLOWED_KEKS) and KEK file
# ownership: a keyset file names its own KEK, so whoever can replace the
# file could make the application seal new records under a key they hold.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
my $b = build_dir();
mkdir "$d/keks";
mkdir "$d/evil";
make_kek("$d/keks/kek");
make_kek("$d/keks/kek2");
make_kek("$d/evil/kek");

sub gen {
    my ($out, $spec, %env) = @_;
    return ossl({ env => \%env }, 'genpkey', '-algorithm', 'KMSENV-KEYSET',
        '-pkeyopt', "keyring:$spec", '-out', $out);
}

sub load {
    my ($file, %env) = @_;
    return ossl({ env => { KMSENV_DEBUG => "file:$d/debug.log,level:1", %env } },
        'pkeyutl', '-encrypt', '-inkey', $file, '-pkeyopt', 'context:row=1',
        '-in', "$d/pt", '-out', "$d/rec");
}

sub unwraps {
    my $n = () = slurp("$d/debug.log") =~ /keyring call: unwrap/g;
    unlink "$d/debug.log";
    return $n;
}

spurt("$d/pt", 'pan');
my ($rc, $out, $err) = gen("$d/app.pem", "file:$d/keks/kek");
is($rc, 0, 'application keyset') or diag $err;
($rc, $out, $err) = gen("$d/evil.pem", "file:$d/evil/kek");
is($rc, 0, "attacker's keyset under the attacker's KEK") or diag $err;

# The threat: without a policy, a replaced keyset file is used as is.
($rc, $out, $err) = load("$d/evil.pem");
is($rc, 0, 'without a policy a substituted keyset is used (the threat)');
unwraps();

my %dir = (KMSENV_ALLOWED_KEKS => "file:$d/keks/");
($rc, $out, $err) = load("$d/app.pem", %dir);
is($rc, 0, 'directory policy: the application keyset loads') or diag $err;
is(unwraps(), 1, '... with one unwrap');
($rc, $out, $err) = load("$d/evil.pem", %dir);
isnt($rc, 0, 'directory policy: the substituted keyset is refused');
like($err, qr/KEK file:\Q$d\E\/evil\/kek is refused: it is not in allowed_keks/,
    '... naming the KEK and the policy');
like($err, qr/not allowed by the KEK policy/, '... with its reason');
is(unwraps(), 0, '... before any keyring call');

# Path tricks resolve before matching.
($rc, $out, $err) = gen("$d/dots.pem", "file:$d/keks/../evil/kek");
is($rc, 0, 'keyset naming keks/../evil/kek') or diag $err;
($rc, $out, $err) = load("$d/dots.pem", %dir);
like($err, qr/is refused/, '"keks/../evil" does not pass as "keks/"');
symlink("$d/evil/kek", "$d/keks/link");
($rc, $out, $err) = gen("$d/link.pem", "file:$d/keks/link");
($rc, $out, $err) = load("$d/link.pem", %dir);
like($err, qr/is refused/, 'a symlink in the allowed directory to a KEK outside it is refused');
($rc, $out, $err) = gen("$d/dot.pem", "file:$d/keks/./kek");
($rc, $out, $err) = load("$d/dot.pem", %dir);
is($rc, 0, '"keks/./kek" resolves into the allowed directory') or diag $err;

# Exact entries and fingerprints.
($rc, $out, $err) = load("$d/app.pem", KMSENV_ALLOWED_KEKS => "file:$d/keks/kek2; file:$d/keks/kek");
is($rc, 0, 'exact file entry (second in the list)') or diag $err;
($rc, $out, $err) = load("$d/app.pem", KMSENV_ALLOWED_KEKS => "file:$d/keks/kek2");
like($err, qr/is refused/, 'another exact entry refuses it');
($rc, $out) = ossl('pkey', '-in', "$d/app.pem", '-text', '-noout');
my ($fp) = $out =~ /kek 1: \S+, fingerprint ([0-9a-f]{32})/;
ok($fp, 'fingerprint shown by -text');
($rc, $out, $err) = load("$d/app.pem", KMSENV_ALLOWED_KEKS => uc $fp);
is($rc, 0, 'fingerprint entry allows its KEK') or diag $err;
($rc, $out, $err) = load("$d/evil.pem", KMSENV_ALLOWED_KEKS => $fp);
like($err, qr/is refused/, "fingerprint entry refuses another KEK");

# A keyset naming one allowed and one foreign KEK is refused whole.
($rc, $out, $err) = gen("$d/two.pem", "file:$d/keks/kek;file:$d/evil/kek");
is($rc, 0, 'keyset under two KEKs') or diag $err;
unwraps();
($rc, $out, $err) = load("$d/two.pem", %dir);
like($err, qr/evil\/kek is refused/, 'one foreign KEK refuses the keyset');
is(unwraps(), 0, '... before any keyring call');

# Generate and rewrap follow the policy too.
($rc, $out, $err) = gen("$d/new.pem", "file:$d/evil/kek", %dir);
like($err, qr/evil\/kek is refused/, 'genpkey under a foreign KEK is refused');
($rc, $out, $err) = kmsenv_cli({ env => \%dir }, 'rewrap', "$d/app.pem",
    '--keyring', "file:$d/evil/kek");
isnt($rc, 0, 'rewrap to a foreign KEK is refused');
like($err, qr/is refused/, '... by the policy');
($rc, $out, $err) = kmsenv_cli({ env => \%dir }, 'rewrap', "$d/app.pem",
    '--keyring', "file:$d/keks/kek2");
is($rc, 0, 'rewrap within the policy works') or diag $err;

# The same policy from openssl.cnf.
my $cnf = slurp("$FindBin::Bin/../conf/kmsenv-local.cnf");
$cnf =~ s{^# module = \S+.*$}{module = $b/kmsenv.so}m;
$cnf =~ s{^keyring = .*$}{keyring = file:$d/keks/kek\nallowed_keks = file:$d/keks/}m;
spurt("$d/openssl.cnf", $cnf);
($rc, $out, $err) = run({ env => { OPENSSL_CONF => "$d/openssl.cnf" } },
    'openssl', 'pkeyutl', '-encrypt', '-inkey', "$d/evil.pem", '-pkeyopt',
    'context:row=1', '-in', "$d/pt", '-out', "$d/rec");
like($err, qr/is refused/, 'allowed_keks in openssl.cnf refuses the substituted keyset');
($rc, $out, $err) = run({ env => { OPENSSL_CONF => "$d/openssl.cnf" } },
    'openssl', 'pkeyutl', '-encrypt', '-inkey', "$d/app.pem", '-pkeyopt',
    'context:row=1', '-in', "$d/pt", '-out', "$d/rec");
is($rc, 0, '... and loads the application keyset') or diag $err;

# KEK files must be owned by the process's user or root.
SKIP: {
    skip 'needs root to chown', 3 if $> != 0;
    ($rc, $out, $err) = gen("$d/own.pem", "file:$d/keks/kek");
    chown 12345, 0, "$d/keks/kek";
    ($rc, $out, $err) = load("$d/own.pem");
    isnt($rc, 0, 'a KEK file owned by another user is refused');
    like($err, qr/owned by uid 12345; it must be owned by this process's user \(uid 0\) or root/,
        '... naming the owner');
    chown 0, 0, "$d/keks/kek";
    ($rc, $out, $err) = load("$d/own.pem");
    is($rc, 0, 'owned by root again: loads') or diag $err;
}

done_testing();
