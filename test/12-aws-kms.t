# SPDX-License-Identifier: Apache-2.0
# The aws-kms: keyring against the loopback KMS emulator (two instances act
# as two regions sharing multi-Region key material): keyset lifecycle, KMS
# call counts, failover, retries, deadlines, TLS and credential errors.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use Kmsenv;
use KmsEmu;

my $d   = tmpdir();
# ECDSA server certificate: the TLS client must offer ECDSA signature
# algorithms even when threads race on first fetches (see http.c).
my $pki = KmsEmu::make_pki("$d/pki", key_type => 'ec');
my %creds = (akid => 'AKIAEMUTESTENV000001', secret => 'envSecretKey/0123456789abcdefghijklmnopq');
my $seed = 'a1' x 32;
my $east = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ], mrk_seed => $seed);
my $west = KmsEmu->start(dir => "$d/west", region => 'us-west-2', pki => $pki,
    creds => [ {%creds} ], mrk_seed => $seed);

my $mrk = $east->create_key(multi_region => 1, description => 'mrk');
$west->replicate($mrk->{KeyId});
my $arn_e = $mrk->{Arn};
(my $arn_w = $arn_e) =~ s/us-east-1/us-west-2/;
my $other = $east->create_key(description => 'rewrap target');
$east->create_alias('alias/kmsenv-test', $other->{KeyId});

# Everything the provider needs comes from the environment: no profile, no
# IMDS, both regions' endpoints, the suite's CA.
my %env = KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki,
    endpoint => 'us-east-1=' . $east->url . ';us-west-2=' . $west->url,
    KMSENV_DEBUG => "file:$d/debug.log,level:2");

sub env_with { my %x = @_; return { %env, %x } }

sub reset_all { $_->reset_counters, $_->clear_faults for $east, $west }

sub count { my ($emu, @a) = @_; return $emu->count(@a) }

sub pkeyutl {
    my ($envx, $ks, $mode, $in, $out) = @_;
    return ossl({ env => $envx }, 'pkeyutl', "-$mode", '-inkey', $ks,
        '-pkeyopt', 'context:table=cards,row=42', '-in', $in,
        ($out ? ('-out', $out) : ()));
}

spurt("$d/pan", '4111111111111111');

# ---- lifecycle: gen, load, records, rotate, rewrap through ReEncrypt ----
reset_all();
my ($rc, $out, $err) = ossl({ env => \%env }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$arn_e;aws-kms:$arn_w",
    '-out', "$d/ks.pem");
is($rc, 0, 'genpkey under a two-region aws-kms keyring') or diag $err;
is(count($east, 'GenerateDataKey'), 1, 'one GenerateDataKey in the first region');
is(count($west, 'Encrypt'), 1, 'wrapped under the second region with one Encrypt');
is(count($east, 'Decrypt') + count($west, 'Decrypt'), 0, 'no Decrypt at generation');

($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'inspect', "$d/ks.pem");
is($rc, 0, 'inspect') or diag $err;
like($out, qr/\Q$arn_e\E/, 'inspect shows the key ARN KMS reported (east)');
like($out, qr/\Q$arn_w\E/, 'inspect shows the key ARN KMS reported (west)');

reset_all();
($rc, $out, $err) = pkeyutl(\%env, "$d/ks.pem", 'encrypt', "$d/pan", "$d/pan.bin");
is($rc, 0, 'encrypt a record') or diag $err;
($rc, $out, $err) = pkeyutl(\%env, "$d/ks.pem", 'decrypt', "$d/pan.bin");
is($out, '4111111111111111', 'decrypt it') or diag $err;
is(count($east, 'Decrypt'), 2, 'one Decrypt per load (two loads)');
is(count($west, 'Decrypt'), 0, 'the second region is not asked while the first works');

reset_all();
($rc, $out, $err) = run({ env => \%env }, build_dir() . '/kms_probe',
    build_dir(), 'records', "$d/ks.pem", 200);
is($rc, 0, '200 record round trips on one load') or diag $err;
is(count($east, 'Decrypt'), 1, 'exactly 1 KMS Decrypt for 1 load and 200 records');
is(count($east, 'Decrypt', 'ok'), 1, '... and it succeeded');
my $c = $east->counters->{requests};
is(join(',', sort keys %$c), 'Decrypt', 'no other KMS operation at all');

reset_all();
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rotate', "$d/ks.pem");
is($rc, 0, 'kmsenv rotate') or diag $err;
is(count($east, 'Decrypt'), 1, 'rotation: one Decrypt (load), no new data key from KMS');
($rc, $out, $err) = pkeyutl(\%env, "$d/ks.pem", 'decrypt', "$d/pan.bin");
is($out, '4111111111111111', 'old record decrypts after rotation') or diag $err;

reset_all();
($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/ks.pem",
    '--keyring', 'aws-kms:alias/kmsenv-test');
is($rc, 0, 'kmsenv rewrap to another key (alias)') or diag $err;
is(count($east, 'ReEncrypt', 'ok'), 1, 'rewrap used ReEncrypt');
is(count($east, 'Encrypt'), 0, 'rewrap did not send the key to Encrypt');
($rc, $out) = kmsenv_cli({ env => \%env }, 'inspect', "$d/ks.pem");
like($out, qr/\Q$other->{Arn}\E/, 'keyset now wrapped under the target key ARN');
unlike($out, qr/mrk-/, 'and no longer under the old key');
reset_all();
($rc, $out, $err) = pkeyutl(\%env, "$d/ks.pem", 'decrypt', "$d/pan.bin");
is($out, '4111111111111111', 'record decrypts through the rewrapped keyset') or diag $err;
is(count($east, 'Decrypt', 'ok'), 1, 'one Decrypt under the new key');

# A fresh two-region keyset for the rest.
($rc, $out, $err) = ossl({ env => \%env }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$arn_e;aws-kms:$arn_w",
    '-out', "$d/mr.pem");
is($rc, 0, 'second keyset') or diag $err;
($rc) = pkeyutl(\%env, "$d/mr.pem", 'encrypt', "$d/pan", "$d/mr.bin");
is($rc, 0, 'record under it');

# ---- key identifier forms: key id (region from AWS_REGION), alias ARN ----
for my $spec ($other->{KeyId}, "arn:aws:kms:us-east-1:111122223333:alias/kmsenv-test") {
    reset_all();
    ($rc, $out, $err) = ossl({ env => \%env }, 'genpkey', '-algorithm',
        'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$spec", '-out', "$d/id.pem");
    is($rc, 0, "genpkey with aws-kms:$spec") or diag $err;
    ($rc, $out, $err) = pkeyutl(\%env, "$d/id.pem", 'encrypt', "$d/pan", "$d/id.bin");
    is($rc, 0, '... and it loads (Decrypt names the same key)') or diag $err;
    is(count($east, 'Decrypt', 'ok'), 1, '... with one Decrypt');
}
($rc, $out, $err) = ossl({ env => env_with(AWS_REGION => undef, AWS_DEFAULT_REGION => undef) },
    'genpkey', '-algorithm', 'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$other->{KeyId}",
    '-out', "$d/noregion.pem");
isnt($rc, 0, 'a bare key id without any region is refused');
like($err, qr/no AWS region/, 'error says to set a region');
($rc, $out, $err) = ossl({ env => env_with(KMSENV_AWS_REGION => 'us-west-2') },
    'genpkey', '-algorithm', 'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$other->{KeyId}",
    '-out', "$d/wrongregion.pem");
isnt($rc, 0, 'aws_region setting wins over AWS_REGION (key is not in us-west-2)');
like($err, qr/NotFoundException/, '... and KMS there says NotFoundException');

# ---- failover and preferred region ----
reset_all();
$east->fault(kind => 'reset', count => 100);
($rc, $out, $err) = pkeyutl(\%env, "$d/mr.pem", 'decrypt', "$d/mr.bin");
is($out, '4111111111111111', 'us-east-1 resets every connection: loads through us-west-2')
  or diag $err;
is(count($west, 'Decrypt', 'ok'), 1, 'one successful Decrypt in us-west-2');
reset_all();

my $down = KmsEmu->start(dir => "$d/down", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ], mrk_seed => $seed);
my $dead_url = $down->url;
$down->stop;
($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT =>
      "us-east-1=$dead_url;us-west-2=" . $west->url), "$d/mr.pem", 'decrypt', "$d/mr.bin");
is($out, '4111111111111111', 'us-east-1 endpoint refuses connections: loads through us-west-2')
  or diag $err;

reset_all();
$east->fault(kind => 'denied', count => 10);
$west->fault(kind => 'throttle', count => 10);
($rc, $out, $err) = pkeyutl(env_with(KMSENV_MAX_ATTEMPTS => 1), "$d/mr.pem", 'decrypt', "$d/mr.bin");
isnt($rc, 0, 'both regions failing: the load fails');
like($err, qr/us-east-1: AccessDeniedException/, 'the first region\'s error is kept');
like($err, qr/us-west-2: ThrottlingException/, 'and the second region\'s');
like($err, qr/none of its 2 wrapped key copies/, 'and the summary');

reset_all();
($rc, $out, $err) = pkeyutl(env_with(KMSENV_PREFERRED_REGION => 'us-west-2'),
    "$d/mr.pem", 'decrypt', "$d/mr.bin");
is($out, '4111111111111111', 'preferred_region us-west-2') or diag $err;
is(count($west, 'Decrypt'), 1, 'the preferred region is asked first');
is(count($east, 'Decrypt'), 0, 'the recorded first region is not asked');

# ---- retries ----
my $one = "$d/one.pem";    # single-region keyset for retry tests
($rc, $out, $err) = ossl({ env => \%env }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$arn_e", '-out', $one);
is($rc, 0, 'single-KEK keyset') or diag $err;
($rc) = pkeyutl(\%env, $one, 'encrypt', "$d/pan", "$d/one.bin");

for my $kind (qw(throttle internal unavailable truncate garbage)) {
    reset_all();
    $east->fault(kind => $kind, count => 2, op => 'Decrypt');
    ($rc, $out, $err) = pkeyutl(\%env, $one, 'decrypt', "$d/one.bin");
    is($out, '4111111111111111', "$kind x2 is retried, then succeeds") or diag $err;
    is(count($east, 'Decrypt'), 3, "$kind: 3 attempts");
}

reset_all();
$east->fault(kind => 'throttle', count => 100, op => 'Decrypt');
my $t0 = time;
($rc, $out, $err) = pkeyutl(env_with(KMSENV_DEADLINE_MS => 1500, KMSENV_MAX_ATTEMPTS => 10),
    $one, 'decrypt', "$d/one.bin");
my $dt = time - $t0;
isnt($rc, 0, 'persistent throttling fails');
like($err, qr/ThrottlingException/, 'error names the KMS error type');
like($err, qr/Rate exceeded/, 'and its message');
like($err, qr/request id [0-9a-f-]{20,}/, 'and the request id');
like($err, qr/Decrypt/, 'and the operation');
like($err, qr/\Q$arn_e\E/, 'and the key');
like($err, qr/KMS unreachable or unavailable/, 'reason: unavailable after retries');
cmp_ok($dt, '<', 1.5 + 2.5, "gave up within the 1.5 s deadline (took ${\ sprintf '%.2f', $dt} s)");

reset_all();
$east->fault(kind => 'delay', delay_ms => 5000, count => 100, op => 'Decrypt');
$t0 = time;
($rc, $out, $err) = pkeyutl(env_with(KMSENV_REQUEST_TIMEOUT_MS => 400, KMSENV_MAX_ATTEMPTS => 2),
    $one, 'decrypt', "$d/one.bin");
$dt = time - $t0;
isnt($rc, 0, 'a KMS that does not answer fails');
like($err, qr/timed out|Timeout/i, 'error says the request timed out');
like($err, qr/2 attempts/, 'after 2 attempts');
cmp_ok($dt, '<', 4, "per-attempt timeout honoured (took ${\ sprintf '%.2f', $dt} s)");
is(count($east, 'Decrypt'), 2, 'two attempts reached the server');

reset_all();
($rc, $out, $err) = pkeyutl(env_with(AWS_MAX_ATTEMPTS => '4294967296'), $one, 'decrypt', "$d/one.bin");
is($out, '4111111111111111', 'an out-of-range AWS_MAX_ATTEMPTS is clamped, not wrapped to 0') or diag $err;

# ---- KMS errors are named ----
reset_all();
$east->disable_key($mrk->{KeyId});
($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT => 'us-east-1=' . $east->url),
    $one, 'decrypt', "$d/one.bin");
isnt($rc, 0, 'disabled key: load fails');
like($err, qr/DisabledException/, 'error names DisabledException');
is(count($east, 'Decrypt'), 1, 'not retried (not retryable)');
$east->enable_key($mrk->{KeyId});

($rc, $out, $err) = pkeyutl(env_with(KMSENV_REDIRECT => "aws-kms:$arn_e=aws-kms:$other->{Arn}"),
    $one, 'decrypt', "$d/one.bin");
isnt($rc, 0, 'a blob sent to another key is refused');
like($err, qr/IncorrectKeyException/, 'error names IncorrectKeyException (Decrypt names the key)');

# ---- security ----
($rc, $out, $err) = pkeyutl(env_with(AWS_CA_BUNDLE => $pki->{other_ca}), $one,
    'decrypt', "$d/one.bin");
isnt($rc, 0, 'a server certificate from another CA is refused');
like($err, qr/certificate/i, 'error says why (certificate)');

reset_all();
($rc, $out, $err) = pkeyutl(env_with(AWS_SECRET_ACCESS_KEY => 'wrong' . $creds{secret}),
    $one, 'decrypt', "$d/one.bin");
isnt($rc, 0, 'wrong secret key: refused');
like($err, qr/InvalidSignatureException/, 'error names InvalidSignatureException');
like($err, qr/rejected the request's credentials/, 'reason: credentials rejected');
unlike($err, qr/\Q$creds{secret}\E/, 'the secret is not in the error');
is(count($east, 'Decrypt'), 1, 'auth failure is not retried');

($rc, $out, $err) = pkeyutl(env_with(AWS_ACCESS_KEY_ID => 'AKIAUNKNOWN000000000'),
    $one, 'decrypt', "$d/one.bin");
like($err, qr/UnrecognizedClientException/, 'unknown access key: UnrecognizedClientException');

($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT => 'http://127.0.0.1:1'),
    $one, 'decrypt', "$d/one.bin");
like($err, qr/plain http is refused/, 'plain http endpoint refused by default');
($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT => 'http://10.1.2.3', KMSENV_ALLOW_HTTP => 'yes'),
    $one, 'decrypt', "$d/one.bin");
like($err, qr/only to a loopback address/, 'allow_http permits loopback only');

my $plain = KmsEmu->start(dir => "$d/plain", region => 'us-east-1',
    creds => [ {%creds} ], mrk_seed => $seed);
$plain->replicate($mrk->{KeyId});
($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT => $plain->url, KMSENV_ALLOW_HTTP => 'yes'),
    $one, 'decrypt', "$d/one.bin");
is($out, '4111111111111111', 'allow_http = yes: http to a loopback emulator works') or diag $err;
($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT => $plain->url, KMSENV_ALLOW_HTTP => 'yes',
    http_proxy => 'http://127.0.0.1:9', HTTP_PROXY => 'http://127.0.0.1:9',
    all_proxy => 'http://127.0.0.1:9', ALL_PROXY => 'http://127.0.0.1:9'),
    $one, 'decrypt', "$d/one.bin");
is($out, '4111111111111111', 'plain http never goes through a proxy (dead proxy set)') or diag $err;
$plain->stop;

unlike(slurp("$d/debug.log"), qr/\Q$creds{secret}\E/, 'debug log never holds the secret key');

# ---- fork and threads ----
reset_all();
($rc, $out, $err) = run({ env => \%env }, build_dir() . '/kms_probe', build_dir(), 'fork', $one);
is($rc, 0, 'fork: child uses the parent key, then loads with its own HTTP/credentials')
  or diag $err;
is(count($east, 'Decrypt', 'ok'), 2, 'parent load + child load');

reset_all();
($rc, $out, $err) = run({ env => \%env }, build_dir() . '/kms_probe', build_dir(), 'threads', $one, 8);
is($rc, 0, '8 threads load at once') or diag $err;
is(count($east, 'Decrypt', 'ok'), 8, 'one Decrypt per load');

done_testing();
