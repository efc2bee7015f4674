# SPDX-License-Identifier: Apache-2.0
# kmsenv rewrap of a wrapped private key to and between aws-kms: KEKs, with
# the KMS emulator: from a file: KEK one Encrypt (ReEncrypt cannot apply);
# between KMS keys one Decrypt (the one unwrap) and one ReEncrypt, the KEK
# context (kmsenv:pubkey, kmsenv:purpose) kept so the new copy decrypts;
# a failing ReEncrypt fails the rewrap and leaves the file, unless
# --allow-local-wrap.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;
use KmsEmu;

my $d   = tmpdir();
my $pki = KmsEmu::make_pki("$d/pki");
my %creds = (akid => 'AKIAEMUTESTENV000023', secret => 'envSecretKey/23abcdefghijklmnopqrstuvwxyz012');
my $emu = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ]);
my $k1 = $emu->create_key(description => 'first');
my $k2 = $emu->create_key(description => 'second');
my $k3 = $emu->create_key(description => 'third');
my %env = (KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki,
    endpoint => $emu->url), OPENSSL_CONF => '/dev/null');
sub count { return $emu->count(@_) }
sub reset_all { $emu->reset_counters; $emu->clear_faults }
sub pubout {
    my ($r, $o, $e) = ossl({ env => \%env }, 'pkey', '-in', "$d/w.pem", '-pubout');
    return $r == 0 ? $o : "load failed: $e";
}
sub inspect { my ($r, $o) = kmsenv_cli({ env => \%env }, 'inspect', "$d/w.pem"); return $o }

make_kek("$d/kek");
my ($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'wrap', '--generate', 'p-384',
    '--out', "$d/w.pem", '--keyring', "file:$d/kek");
is($rc, 0, 'a P-384 key wrapped under a file: KEK') or diag $err;
my $pub = pubout();
like($pub, qr/BEGIN PUBLIC KEY/, 'its public key');
(my $hdr = inspect()) =~ s/^(?!type|purpose|created|public key).*\n//mg;

# ---- file: -> aws-kms: a local wrap (Encrypt), no flag needed ----
reset_all();
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/w.pem",
    '--keyring', "aws-kms:$k1->{Arn}");
is($rc, 0, 'rewrap file: -> aws-kms') or diag $err;
is(count('Encrypt', 'ok'), 1, '... one Encrypt');
is(count('ReEncrypt') + count('Decrypt') + count('GenerateDataKey'), 0, '... nothing else');
unlike($err, qr/warning/, '... no warning') or diag $err;
like(inspect(), qr/kek 1: aws-kms:\Q$k1->{Arn}\E,/, '... now under the KMS key');
(my $h = inspect()) =~ s/^(?!type|purpose|created|public key).*\n//mg;
is($h, $hdr, '... public header unchanged');
unlink("$d/kek");
reset_all();
is(pubout(), $pub, 'loads without the file KEK, same public key');
is(count('Decrypt', 'ok'), 1, '... one Decrypt');

# ---- aws-kms -> aws-kms: ReEncrypt ----
reset_all();
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/w.pem",
    '--keyring', "aws-kms:$k2->{Arn}");
is($rc, 0, 'rewrap to a second KMS key') or diag $err;
is(count('Decrypt', 'ok'), 1, '... one Decrypt (the one unwrap)');
is(count('ReEncrypt', 'ok'), 1, '... one ReEncrypt');
is(count('Encrypt'), 0, '... no Encrypt: the key never left KMS in the clear');
$emu->disable_key($k1->{KeyId});
reset_all();
is(pubout(), $pub, 'loads with the first key disabled');
is(count('Decrypt', 'ok'), 1, '... one Decrypt (the context was kept)');

# ---- ReEncrypt fails: an error, the file unchanged ----
my $before = do { local $/; open(my $f, '<', "$d/w.pem") or die; <$f> };
reset_all();
$emu->fault(kind => 'denied', count => 5, op => 'ReEncrypt');
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/w.pem",
    '--keyring', "aws-kms:$k3->{Arn}");
isnt($rc, 0, 'rewrap fails when ReEncrypt fails');
like($err, qr/AccessDeniedException/, '... with the KMS error') or diag $err;
like($err, qr/not wrapped locally.*--allow-local-wrap/s, '... saying how to allow a local wrap')
  or diag $err;
like($err, qr/the file is unchanged/, '... and that the file is unchanged');
is(count('Encrypt'), 0, '... no Encrypt');
is(slurp("$d/w.pem"), $before, '... the file is unchanged');

# ---- --allow-local-wrap ----
reset_all();
$emu->fault(kind => 'denied', count => 5, op => 'ReEncrypt');
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/w.pem",
    '--keyring', "aws-kms:$k3->{Arn}", '--allow-local-wrap');
is($rc, 0, 'rewrap --allow-local-wrap succeeds') or diag $err;
is(count('Encrypt', 'ok'), 1, '... with one Encrypt');
like($err, qr/warning.*AccessDeniedException/s, '... reporting the fallback') or diag $err;
$emu->disable_key($k2->{KeyId});
reset_all();
is(pubout(), $pub, 'loads under the third key only');
like(inspect(), qr/key-encryption keys: 1\n  kek 1: aws-kms:\Q$k3->{Arn}\E,/, 'inspect: the third key');

done_testing();
