# SPDX-License-Identifier: Apache-2.0
# The aws-kms: keyring against odd, hostile and failing KMS answers (the
# emulator's answer/error faults): an alias moved to another key, a Decrypt
# answer for another key or with a key of the wrong length, a small secure
# heap, botocore's __type cleanup, server text with terminal escapes, and
# certificate failures.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(encode_base64);
use Kmsenv;
use KmsEmu;

my $d   = tmpdir();
my $pki = KmsEmu::make_pki("$d/pki");
my %creds = (akid => 'AKIAEMUTESTANSWERS01', secret => 'answersSecret/0123456789abcdefghijklmn');
my $east = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ]);

my $ka = $east->create_key(description => 'first target of alias/app');
my $kb = $east->create_key(description => 'second target of alias/app');
my ($arn_a, $arn_b) = ($ka->{Arn}, $kb->{Arn});
$east->create_alias('alias/app', $ka->{KeyId});

my %env = KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki,
    endpoint => $east->url,
    KMSENV_DEBUG => "file:$d/debug.log,level:2");
sub env_with { my %x = @_; return { %env, %x } }
sub reset_all { $east->reset_counters; $east->clear_faults }
sub count { return $east->count(@_) }
sub pkeyutl {
    my ($envx, $ks, $mode, $in, $out) = @_;
    return ossl({ env => $envx }, 'pkeyutl', "-$mode", '-inkey', $ks,
        '-pkeyopt', 'context:table=cards,row=42', '-in', $in,
        ($out ? ('-out', $out) : ()));
}
sub genpkey {
    my ($envx, $keyring, $out) = @_;
    return ossl({ env => $envx }, 'genpkey', '-algorithm', 'KMSENV-KEYSET',
        '-pkeyopt', "keyring:$keyring", '-out', $out);
}
sub probe {
    my ($envx, @args) = @_;
    return run({ env => $envx }, build_dir() . '/kms_probe', build_dir(), @args);
}
spurt("$d/pan", '4111111111111111');
my $PAN = '4111111111111111';
my ($rc, $out, $err);

# ---- 1. a keyset made under an alias survives the alias moving ----
subtest 'alias moved to another key (UpdateAlias)' => sub {
    reset_all();
    ($rc, $out, $err) = genpkey(\%env, 'aws-kms:alias/app', "$d/alias.pem");
    is($rc, 0, 'keyset under aws-kms:alias/app') or diag $err;
    ($rc, $out) = kmsenv_cli({ env => \%env }, 'inspect', "$d/alias.pem");
    like($out, qr/\Q$arn_a\E/, 'it records the key ARN KMS reported (key A)');
    ($rc, $out, $err) = pkeyutl(\%env, "$d/alias.pem", 'encrypt', "$d/pan", "$d/alias.bin");
    is($rc, 0, 'a record under it') or diag $err;

    $east->update_alias('alias/app', $kb->{KeyId});
    unlink "$d/debug.log";
    reset_all();
    ($rc, $out, $err) = pkeyutl(\%env, "$d/alias.pem", 'decrypt', "$d/alias.bin");
    is($out, $PAN, 'after UpdateAlias to key B the keyset still loads') or diag $err;
    is(count('Decrypt', 'ok'), 1, 'with one successful Decrypt');
    is(count('Decrypt'), 1, 'and no failed one');
    like(slurp("$d/debug.log"), qr/Decrypt for aws-kms:alias\/app names the recorded key \Q$arn_a\E/,
        'Decrypt named the recorded key ARN, not the alias');

    reset_all();
    ($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'rewrap', "$d/alias.pem",
        '--keyring', 'aws-kms:alias/app');
    is($rc, 0, 'rewrap under the same alias spec') or diag $err;
    is(count('ReEncrypt', 'ok'), 1, 'through one ReEncrypt (source named by its recorded ARN)');
    is(count('ReEncrypt'), 1, '... which did not fail first');
    is(count('Encrypt'), 0, 'no local re-wrap through Encrypt');
    ($rc, $out) = kmsenv_cli({ env => \%env }, 'inspect', "$d/alias.pem");
    like($out, qr/\Q$arn_b\E/, 'the copy is now under key B, where the alias points');
    unlike($out, qr/\Q$arn_a\E/, 'and no longer under key A');
    reset_all();
    ($rc, $out, $err) = pkeyutl(\%env, "$d/alias.pem", 'decrypt', "$d/alias.bin");
    is($out, $PAN, 'the record decrypts through the rewrapped keyset') or diag $err;

    ($rc, $out, $err) = genpkey(\%env, 'aws-kms:alias/app', "$d/alias2.pem");
    is($rc, 0, 'a new keyset under the alias') or diag $err;
    ($rc, $out) = kmsenv_cli({ env => \%env }, 'inspect', "$d/alias2.pem");
    like($out, qr/\Q$arn_b\E/, 'new keysets go to key B');
    $east->update_alias('alias/app', $ka->{KeyId});
};

# A keyset under key A's ARN for the rest.
($rc, $out, $err) = genpkey(\%env, "aws-kms:$arn_a", "$d/one.pem");
is($rc, 0, 'keyset under key A') or diag $err;
($rc) = pkeyutl(\%env, "$d/one.pem", 'encrypt', "$d/pan", "$d/one.bin");
is($rc, 0, 'record under it');

# ---- 2. Decrypt answers are checked ----
subtest 'Decrypt answer naming another key is refused' => sub {
    reset_all();
    $east->fault(kind => 'answer', op => 'Decrypt', count => 1, patch => { KeyId => $arn_b });
    ($rc, $out, $err) = pkeyutl(\%env, "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'the load fails');
    isnt($out, $PAN, 'nothing decrypted');
    like($err, qr/UnexpectedKeyId: the answer is for key \Q$arn_b\E, not the requested \Q$arn_a\E: refused/,
        'error names both keys');
    like($err, qr/1 attempt\b/, 'not retried');
    is(count('Decrypt'), 1, 'one Decrypt');

    reset_all();
    $east->fault(kind => 'answer', op => 'Decrypt', count => 1, patch => { KeyId => undef });
    ($rc, $out, $err) = pkeyutl(\%env, "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'an answer without KeyId is refused too');
    like($err, qr/UnexpectedKeyId: the answer is for key \(none\)/, '... saying so');

    reset_all();
    $east->fault(kind => 'answer', op => 'GenerateDataKey', count => 1, patch => { KeyId => $arn_b });
    ($rc, $out, $err) = genpkey(\%env, "aws-kms:$arn_a", "$d/gen-wrong.pem");
    isnt($rc, 0, 'a GenerateDataKey answer for another key is refused');
    like($err, qr/GenerateDataKey.*UnexpectedKeyId/, '... as UnexpectedKeyId');
};

subtest 'Decrypt answer with a key of the wrong length is refused' => sub {
    reset_all();
    $east->fault(kind => 'answer', op => 'Decrypt', count => 1,
        patch => { Plaintext => encode_base64('k' x 16, '') });
    ($rc, $out, $err) = pkeyutl(\%env, "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'the load fails');
    like($err, qr/UnexpectedKeyLength: Plaintext is not a 32-byte key/, 'error says why');
    is(count('Decrypt'), 1, 'not retried');
};

# ---- 3. a small secure heap: clean errors, no crash ----
subtest 'small secure heap (CRYPTO_secure_malloc_init(32768, 16))' => sub {
    my %small = (%env, KMS_PROBE_SECURE_HEAP => 32768);
    reset_all();
    ($rc, $out, $err) = probe(\%small, 'loads', "$d/one.pem", 1);
    is($rc, 0, 'a load works with a 32 KiB secure heap') or diag $err;

    # Encrypt answer whose KeyId cannot fit in the secure heap.
    reset_all();
    $east->fault(kind => 'answer', op => 'Encrypt', count => 1, patch => { KeyId => 'k' x 17000 });
    ($rc, $out, $err) = probe(\%small, 'generate', "aws-kms:$arn_a;aws-kms:$arn_b");
    is($rc, 1, 'generate (GenerateDataKey + Encrypt) fails cleanly, no crash') or diag $err;
    like($err, qr/aws-kms Encrypt \(wrap\) with key \Q$arn_b\E in us-east-1: out of secure memory/,
        'error: out of secure memory in Encrypt');
    unlike($err, qr/UnexpectedKeyLength/, 'not misreported as a key length');
    is(count('Encrypt'), 1, 'not retried');

    # ReEncrypt answer likewise: with the fallback allowed (see
    # 18-rewrap-local.t), the rewrap falls back to Encrypt.
    reset_all();
    $east->fault(kind => 'answer', op => 'ReEncrypt', count => 1, patch => { KeyId => 'k' x 17000 });
    ($rc, $out, $err) = probe({ %small, KMS_PROBE_ALLOW_LOCAL_WRAP => 1 }, 'rewrap', "$d/one.pem", "aws-kms:$arn_b");
    is($rc, 0, 'rewrap: ReEncrypt answer out of secure memory, no crash') or diag $err;
    is(count('ReEncrypt'), 1, 'ReEncrypt tried once');
    is(count('Encrypt', 'ok'), 1, 'then wrapped through Encrypt');

    # Decrypt and GenerateDataKey: reported as what it is.
    for my $op (qw(Decrypt GenerateDataKey)) {
        reset_all();
        $east->fault(kind => 'answer', op => $op, count => 1, patch => { KeyId => 'k' x 9000 });
        ($rc, $out, $err) = $op eq 'Decrypt'
          ? probe(\%small, 'loads', "$d/one.pem", 1)
          : probe(\%small, 'generate', "aws-kms:$arn_a");
        is($rc, 1, "$op: fails cleanly") or diag $err;
        like($err, qr/aws-kms \Q$op\E \(\w+\) with key \Q$arn_a\E in us-east-1: out of secure memory/,
            "$op: error says out of secure memory");
        unlike($err, qr/UnexpectedKeyLength/, "$op: not misreported as UnexpectedKeyLength");
        unlike($err, qr/unreachable/, "$op: nor as KMS unreachable");
        is(count($op), 1, "$op: not retried");
    }
};

# ---- 5. __type: cut at ':' first, then after the last '#' ----
subtest '__type cleanup in botocore order' => sub {
    my $type = 'com.amazon.coral.service#ThrottlingException:http://internal.amazon.com/coral/x#y';
    reset_all();
    $east->fault(kind => 'error', op => 'Decrypt', count => 2, status => 400,
        type => $type, message => 'Rate exceeded');
    ($rc, $out, $err) = pkeyutl(\%env, "$d/one.pem", 'decrypt', "$d/one.bin");
    is($out, $PAN, 'a ThrottlingException with namespace and URI is retried') or diag $err;
    is(count('Decrypt'), 3, '3 attempts');
    reset_all();
    $east->fault(kind => 'error', op => 'Decrypt', count => 10, status => 400,
        type => $type, message => 'Rate exceeded');
    ($rc, $out, $err) = pkeyutl(env_with(KMSENV_MAX_ATTEMPTS => 2), "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'persistent: fails');
    like($err, qr/: ThrottlingException: Rate exceeded \(HTTP 400/, 'error names ThrottlingException');
    like($err, qr/2 attempts/, 'after 2 attempts');
};

# ---- 7. server text is escaped in errors and the log ----
subtest 'KMS error text with terminal escapes, NUL and newline' => sub {
    reset_all();
    unlink "$d/debug.log";
    $east->fault(kind => 'error', op => 'Decrypt', count => 5, status => 500,
        type => "Evil\e[2JException", message => "bad \e[31mred\e[0m\0nul\nline\\end");
    ($rc, $out, $err) = pkeyutl(env_with(KMSENV_MAX_ATTEMPTS => 2), "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'the load fails');
    like($err, qr/Evil\\x1b\[2JException: bad \\x1b\[31mred\\x1b\[0m\\x00nul\\x0aline\\x5cend \(HTTP 500/,
        'type and message shown with \\xNN escapes');
    unlike($err, qr/\e/, 'no raw ESC in the error');
    unlike($err, qr/\0/, 'no raw NUL in the error');
    my $log = slurp("$d/debug.log");
    like($log, qr/attempt 1 failed \(Evil\\x1b\[2JException\)/, 'debug log shows the type escaped');
    unlike($log, qr/\e/, 'no raw ESC in the debug log');
};

# ---- 6. certificate failures: not retried, not "unreachable" ----
sub handshakes {
    my ($emu) = @_;
    my @l = slurp($emu->log_file) =~ /TLS handshake failed/g;
    return scalar @l;
}

subtest 'certificate from an unknown CA' => sub {
    my $before = handshakes($east);
    ($rc, $out, $err) = pkeyutl(env_with(AWS_CA_BUNDLE => $pki->{other_ca}),
        "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'refused');
    like($err, qr/TLS certificate verification of endpoint \S+ failed: .*certificate/i,
        'error names the certificate problem');
    like($err, qr/1 attempt in/, 'one attempt');
    unlike($err, qr/unreachable/i, 'not reported as unreachable');
    # the emulator logs each handshake it saw fail
    sleep 1;
    is(handshakes($east) - $before, 1, 'exactly one TLS handshake reached the server');
};

subtest 'certificate for another host name' => sub {
    my $p = "$d/pki";
    my $cnf = "$d/wrong.ext";
    spurt($cnf, "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
          . "subjectAltName=DNS:kms.wrong.example\n");
    for my $cmd (
        "req -new -newkey rsa:2048 -nodes -keyout $d/wrong.key -out $d/wrong.csr -subj /CN=kms.wrong.example",
        "x509 -req -in $d/wrong.csr -CA $p/ca.pem -CAkey $p/ca.key -CAcreateserial -days 30 -out $d/wrong.pem -extfile $cnf")
    {
        my ($r, undef, $e) = run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', split ' ', $cmd);
        is($r, 0, "openssl $cmd") or diag $e;
    }
    my $wrong = KmsEmu->start(dir => "$d/wrong", region => 'us-east-1',
        pki => { ca => $pki->{ca}, cert => "$d/wrong.pem", key => "$d/wrong.key" },
        creds => [ {%creds} ]);
    ($rc, $out, $err) = pkeyutl(env_with(KMSENV_AWS_ENDPOINT => $wrong->url),
        "$d/one.pem", 'decrypt', "$d/one.bin");
    isnt($rc, 0, 'refused');
    like($err, qr/TLS certificate verification of endpoint \S+ failed: .*(?:certificate|match|name)/i,
        'error names the certificate problem');
    like($err, qr/1 attempt in/, 'one attempt');
    unlike($err, qr/unreachable/i, 'not reported as unreachable');
    $wrong->stop;
};

done_testing();
