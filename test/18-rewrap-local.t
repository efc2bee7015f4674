# SPDX-License-Identifier: Apache-2.0
# kmsenv rewrap to an aws-kms: key moves the keyset key with ReEncrypt, so
# that it never leaves KMS. When ReEncrypt fails, the rewrap fails with the
# KMS error and the keyset file is left as it was; only with
# --allow-local-wrap does it wrap the key locally (Encrypt), and says so.
# A source KMS cannot ReEncrypt from (a file: KEK) is wrapped locally as
# before, without the flag.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;
use KmsEmu;

my $d   = tmpdir();
my $pki = KmsEmu::make_pki("$d/pki");
my %creds = (akid => 'AKIAEMUTESTENV000018', secret => 'envSecretKey/18abcdefghijklmnopqrstuvwxyz012');
my $emu = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ]);
my $k1 = $emu->create_key(description => 'source');
my $k2 = $emu->create_key(description => 'target');

my %env = KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki,
    endpoint => $emu->url);

sub count { return $emu->count(@_) }

sub reset_all { $emu->reset_counters; $emu->clear_faults }

spurt("$d/pan", '4111111111111111');
my ($rc, $out, $err) = ossl({ env => \%env }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$k1->{Arn}",
    '-out', "$d/ks.pem");
is($rc, 0, 'genpkey under an aws-kms key') or diag $err;
($rc, $out, $err) = ossl({ env => \%env }, 'pkeyutl', '-encrypt', '-inkey',
    "$d/ks.pem", '-pkeyopt', 'context:t=1', '-in', "$d/pan", '-out',
    "$d/pan.bin");
is($rc, 0, 'a record') or diag $err;

# ---- ReEncrypt fails: an error, the file unchanged, no Encrypt ----
my $before = slurp("$d/ks.pem");
reset_all();
$emu->fault(kind => 'denied', count => 5, op => 'ReEncrypt');
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/ks.pem",
    '--keyring', "aws-kms:$k2->{Arn}");
isnt($rc, 0, 'rewrap fails when ReEncrypt fails');
like($err, qr/AccessDeniedException/, '... with the KMS error') or diag $err;
like($err, qr/ReEncrypt/, '... naming ReEncrypt') or diag $err;
like($err, qr/not wrapped locally.*--allow-local-wrap/s,
    '... saying the key was not wrapped locally, and how to allow it')
  or diag $err;
is(count('ReEncrypt'), 1, 'ReEncrypt was tried (not retried: access denied)');
is(count('Encrypt'), 0, 'no Encrypt: the key was not sent to KMS in plaintext');
ok(slurp("$d/ks.pem") eq $before, 'the keyset file is unchanged');
($rc, $out) = kmsenv_cli({ env => \%env }, 'inspect', "$d/ks.pem");
like($out, qr/\Q$k1->{Arn}\E/, 'still wrapped under the source key');

# ---- with --allow-local-wrap: a local wrap, reported ----
reset_all();
$emu->fault(kind => 'denied', count => 5, op => 'ReEncrypt');
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/ks.pem",
    '--keyring', "aws-kms:$k2->{Arn}", '--allow-local-wrap');
is($rc, 0, 'rewrap --allow-local-wrap succeeds') or diag $err;
is(count('ReEncrypt'), 1, 'ReEncrypt was tried first');
is(count('Encrypt', 'ok'), 1, 'then the key was wrapped with Encrypt');
like($err, qr/warning/, 'the fallback is reported') or diag $err;
like($err, qr/AccessDeniedException/, '... with the ReEncrypt error') or diag $err;
like($err, qr/wrapped the key locally/, '... and the local wrap') or diag $err;
like($out, qr/rewrap done/, 'rewrap done');
($rc, $out) = kmsenv_cli({ env => \%env }, 'inspect', "$d/ks.pem");
like($out, qr/\Q$k2->{Arn}\E/, 'now wrapped under the target key');
unlike($out, qr/\Q$k1->{Arn}\E/, 'and no longer under the source key');
($rc, $out, $err) = ossl({ env => \%env }, 'pkeyutl', '-decrypt', '-inkey',
    "$d/ks.pem", '-pkeyopt', 'context:t=1', '-in', "$d/pan.bin");
is($out, '4111111111111111', 'the record decrypts after the local wrap') or diag $err;

# ---- the flag is for rewrap only ----
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rotate', "$d/ks.pem",
    '--allow-local-wrap');
is($rc, 2, '--allow-local-wrap with rotate is a usage error');

# ---- a working ReEncrypt needs no flag and reports nothing ----
reset_all();
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/ks.pem",
    '--keyring', "aws-kms:$k1->{Arn}");
is($rc, 0, 'rewrap back through ReEncrypt') or diag $err;
is(count('ReEncrypt', 'ok'), 1, '... one ReEncrypt');
is(count('Encrypt'), 0, '... no Encrypt');
unlike($err, qr/warning/, '... no warning') or diag $err;

# ---- from a file: KEK, ReEncrypt cannot apply: local wrap, no flag ----
make_kek("$d/kek");
($rc, $out, $err) = ossl({ env => \%env }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/fks.pem");
is($rc, 0, 'genpkey under a file: KEK') or diag $err;
reset_all();
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/fks.pem",
    '--keyring', "aws-kms:$k2->{Arn}");
is($rc, 0, 'rewrap file: -> aws-kms needs no flag') or diag $err;
is(count('ReEncrypt'), 0, '... no ReEncrypt attempted');
is(count('Encrypt', 'ok'), 1, '... one Encrypt');
unlike($err, qr/warning/, '... no warning') or diag $err;

done_testing();
