# SPDX-License-Identifier: Apache-2.0
# The loopback KMS emulator (test/kmsemu) behaves like AWS KMS for the two
# official AWS clients: Debian's awscli v2 and the AWS SDK for JavaScript v3
# (@aws-sdk/client-kms, test/clients). Both talk HTTPS to it, verifying its
# certificate against the suite's test CA, and sign with SigV4.
# Install the clients with scripts/clients.sh (CI does); without them this
# test fails.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Cwd qw(abs_path);
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Kmsenv;
use KmsEmu;

my $root    = abs_path("$FindBin::Bin/..");
my $clients = "$root/test/clients";
my $aws     = $ENV{KMSENV_AWS} // '/usr/bin/aws';
my $script  = "$clients/kms-sdk-js.mjs";
my $json    = JSON::PP->new->canonical;
my $t0      = time;

# --- the clients must be installed: fail (not skip) otherwise ---------------
my @missing;
my $aws_version = -x $aws ? `'$aws' --version 2>&1` // '' : '';
chomp $aws_version;
push @missing, "awscli v2 at $aws (got: " . ($aws_version || 'nothing') . ')'
  unless $aws_version =~ m{^aws-cli/2\.};
chomp(my $node_version = `node --version 2>/dev/null` // '');
push @missing, 'node >= 20 (got: ' . ($node_version || 'nothing') . ')'
  unless $node_version =~ /^v(\d+)\./ && $1 >= 20;
push @missing, "$clients/node_modules/\@aws-sdk/client-kms"
  unless -f "$clients/node_modules/\@aws-sdk/client-kms/package.json";
if (@missing) {
    fail('official AWS clients installed');
    diag("missing: $_") for @missing;
    diag('run scripts/clients.sh (as root it installs them; CI does)');
    done_testing();
    exit;
}
my $sdk_version = decode_json(slurp("$clients/node_modules/\@aws-sdk/client-kms/package.json"))->{version};
note("clients: $aws_version; node $node_version; \@aws-sdk/client-kms $sdk_version");

# --- emulator ---------------------------------------------------------------
my $dir = tmpdir();
my $region  = 'us-east-1';
my $account = '111122223333';
sub rand_str {
    my ($n, @chars) = @_;
    open(my $r, '<:raw', '/dev/urandom') or die;
    read($r, my $b, $n) == $n or die;
    return join '', map { $chars[ord($_) % @chars] } split //, $b;
}
my $akid   = 'AKIA' . rand_str(16, 'A' .. 'Z', '2' .. '7');
my $secret = rand_str(40, 'A' .. 'Z', 'a' .. 'z', '0' .. '9', '/', '+');
my $tmp_akid   = 'ASIA' . rand_str(16, 'A' .. 'Z', '2' .. '7');
my $tmp_secret = rand_str(40, 'A' .. 'Z', 'a' .. 'z', '0' .. '9');
my $tmp_token  = 'IQoJb3JpZ2luX2VjE' . rand_str(200, 'A' .. 'Z', 'a' .. 'z', '0' .. '9', '/', '+') . '==';

my $pki = KmsEmu::make_pki($dir);
my $emu = KmsEmu->start(
    dir     => $dir,
    region  => $region,
    account => $account,
    pki     => $pki,
    creds   => [
        { akid => $akid,     secret => $secret,     token => undef },
        { akid => $tmp_akid, secret => $tmp_secret, token => $tmp_token },
    ],
);
my $url = $emu->url;
like($url, qr{^https://127\.0\.0\.1:\d+$}, "emulator listens on loopback HTTPS: $url");

my $k1 = $emu->create_key(description => 'kmsenv fidelity: primary');
my $k2 = $emu->create_key(description => 'kmsenv fidelity: re-encrypt destination');
my $alias = 'alias/kmsenv-fidelity-' . lc rand_str(6, 'a' .. 'z');
$emu->create_alias($alias, $k1->{KeyId});
my $arn_re = qr{^arn:aws:kms:\Q$region\E:\Q$account\E:key/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$};
like($k1->{Arn}, $arn_re, 'key 1 ARN has the AWS shape');
like($k2->{Arn}, $arn_re, 'key 2 ARN has the AWS shape');
my ($arn1, $arn2) = ($k1->{Arn}, $k2->{Arn});

# Deltas of the emulator's counters: proof that a refusal came from the
# emulator (it saw and counted the request), not from the client.
sub cnt {
    my ($c, $kind, $name) = @_;
    return $c->{$kind}{$name} // 0;
}
sub total {
    my ($c, $kind) = @_;
    my $n = 0;
    $n += $_ for values %{ $c->{$kind} // {} };
    return $n;
}

# --- client environment: nothing from the host leaks in ---------------------
my $home = "$dir/home";
mkdir $home or die "$home: $!";
# Unset for the clients: host AWS settings, CA bundles, proxies, OpenSSL
# config (a test may point it at the provider) and the sanitizer runtime
# (Kmsenv::run adds it under KMSENV_SANITIZE, even when not in %ENV).
my %clean = map { $_ => undef }
  qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS),
  grep {
    /^(AWS_|NODE_|SSL_CERT_|OPENSSL_|PYTHON)/
      || /^(REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|(?i:https?_proxy|all_proxy|no_proxy))$/
  } keys %ENV;
sub client_env {
    my (%o) = @_;
    return {
        %clean,
        HOME                        => $home,
        AWS_CONFIG_FILE             => '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE => '/dev/null',
        AWS_EC2_METADATA_DISABLED   => 'true',
        AWS_PAGER                   => '',
        AWS_ACCESS_KEY_ID           => $o{akid} // $akid,
        AWS_SECRET_ACCESS_KEY       => $o{secret} // $secret,
        ($o{token} ? (AWS_SESSION_TOKEN => $o{token}) : ()),
        ($o{ca} ? (AWS_CA_BUNDLE => $o{ca}) : ()),
    };
}

# --- awscli -------------------------------------------------------------------
# aws(\%env_opts, subcommand, args...) -> ($rc, $json_or_undef, $stderr)
sub aws {
    my ($o, @args) = @_;
    my ($rc, $out, $err) = run({ env => client_env(ca => $pki->{ca}, %$o) },
        $aws, 'kms', @args,
        '--endpoint-url', $url, '--region', $region, '--output', 'json');
    my $j = $rc == 0 && $out =~ /\S/ ? eval { decode_json($out) } : undef;
    diag("aws kms $args[0]: rc=$rc\n$err") if $rc != 0 && !$o->{expect_fail};
    return ($rc, $j, $err);
}
sub ctx_arg { return ('--encryption-context', $json->encode($_[0])) }
my $blobn = 0;
sub blob_file {    # raw bytes in a file, for fileb://
    my $p = "$dir/blob" . ++$blobn . '.bin';
    spurt($p, $_[0]);
    return "fileb://$p";
}
# A service error as awscli v2 reports it: exit 254 and the error code.
sub aws_service_error {
    my ($rc, $err, $code, $op, $name) = @_;
    is($rc, 254, "aws: $name: exit 254 (the service returned an error)");
    like($err, qr/An error occurred \(\Q$code\E\) when calling the \Q$op\E operation/,
        "aws: $name: $code");
}

my %ctx  = (purpose => 'kmsenv-fidelity', row => '42', client => 'awscli');
my %ctx2 = (purpose => 'kmsenv-fidelity', stage => 're-encrypted');
my @aws_exports;    # blobs made by awscli, for the JS SDK to decrypt

{
    # generate-data-key, then decrypt of its blob (raw file via fileb://).
    my ($rc, $g) = aws({}, 'generate-data-key', '--key-id', $k1->{KeyId}, '--key-spec', 'AES_256');
    is($rc, 0, 'aws: generate-data-key');
    my $pt = decode_base64($g->{Plaintext} // '');
    is(length $pt, 32, 'aws: generate-data-key: 32-byte plaintext');
    is($g->{KeyId}, $arn1, 'aws: generate-data-key: KeyId is the key ARN');
    ok(length($g->{CiphertextBlob} // ''), 'aws: generate-data-key: a CiphertextBlob');
    my $blob = decode_base64($g->{CiphertextBlob} // '');
    my ($rc2, $d) = aws({}, 'decrypt', '--ciphertext-blob', blob_file($blob));
    is($rc2, 0, 'aws: decrypt of the data key blob');
    ok(defined $d->{Plaintext} && decode_base64($d->{Plaintext}) eq $pt,
        'aws: decrypt gives back the data key');
    is($d->{KeyId}, $arn1, 'aws: decrypt: KeyId is the key ARN');
    is($d->{EncryptionAlgorithm}, 'SYMMETRIC_DEFAULT', 'aws: decrypt: EncryptionAlgorithm');
    push @aws_exports, { name => 'awscli-data-key', blob => $g->{CiphertextBlob},
        context => {}, plaintext => $g->{Plaintext}, keyArn => $arn1 };
}

my $ct_ctx;    # awscli ciphertext under %ctx
{
    # encrypt + decrypt with an encryption context; --plaintext is base64
    # (awscli v2's default --cli-binary-format), the blob goes back as base64.
    my $pt = rand_str(64, map { chr } 0 .. 255);
    my ($rc, $e) = aws({}, 'encrypt', '--key-id', $k1->{KeyId},
        '--plaintext', encode_base64($pt, ''), ctx_arg(\%ctx));
    is($rc, 0, 'aws: encrypt with an encryption context');
    is($e->{KeyId}, $arn1, 'aws: encrypt: KeyId is the key ARN');
    is($e->{EncryptionAlgorithm}, 'SYMMETRIC_DEFAULT', 'aws: encrypt: EncryptionAlgorithm');
    $ct_ctx = $e->{CiphertextBlob} // '';
    my ($rc2, $d) = aws({}, 'decrypt', '--ciphertext-blob', $ct_ctx, 
        '--encryption-context', '{"row":"42","client":"awscli","purpose":"kmsenv-fidelity"}');
    is($rc2, 0, 'aws: decrypt with the same context');
    ok(defined $d->{Plaintext} && decode_base64($d->{Plaintext}) eq $pt, 'aws: round trip');
    is($d->{KeyId}, $arn1, 'aws: decrypt: KeyId is the key ARN');

    my ($rc3, undef, $err) = aws({ expect_fail => 1 }, 'decrypt', '--ciphertext-blob', $ct_ctx,
        ctx_arg({ %ctx, row => '43' }));
    aws_service_error($rc3, $err, 'InvalidCiphertextException', 'Decrypt', 'decrypt with another context');
    push @aws_exports, { name => 'awscli-encrypt-context', blob => $ct_ctx, context => \%ctx,
        plaintext => encode_base64($pt, ''), keyArn => $arn1 };

    # re-encrypt to key 2 (new context), then decrypt under key 2.
    my ($rc4, $r) = aws({}, 're-encrypt', '--ciphertext-blob', blob_file(decode_base64($ct_ctx)),
        '--source-encryption-context', $json->encode(\%ctx),
        '--destination-key-id', $k2->{KeyId},
        '--destination-encryption-context', $json->encode(\%ctx2));
    is($rc4, 0, 'aws: re-encrypt to key 2');
    is($r->{KeyId}, $arn2, 'aws: re-encrypt: KeyId is key 2 ARN');
    is($r->{SourceKeyId}, $arn1, 'aws: re-encrypt: SourceKeyId is key 1 ARN');
    my ($rc5, $d2) = aws({}, 'decrypt', '--ciphertext-blob', $r->{CiphertextBlob} // '', ctx_arg(\%ctx2));
    is($rc5, 0, 'aws: decrypt of the re-encrypted blob');
    ok(defined $d2->{Plaintext} && decode_base64($d2->{Plaintext}) eq $pt,
        'aws: re-encrypted blob decrypts to the original');
    is($d2->{KeyId}, $arn2, 'aws: decrypt of the re-encrypted blob: KeyId is key 2 ARN');
}

{
    # alias/NAME as the key id.
    my $pt = rand_str(20, 'a' .. 'z');
    my ($rc, $e) = aws({}, 'encrypt', '--key-id', $alias, '--plaintext', encode_base64($pt, ''));
    is($rc, 0, "aws: encrypt with $alias");
    is($e->{KeyId}, $arn1, 'aws: encrypt with the alias: KeyId is the key ARN');
    push @aws_exports, { name => 'awscli-alias', blob => $e->{CiphertextBlob} // '',
        context => {}, plaintext => encode_base64($pt, ''), keyArn => $arn1 };
}

{
    # An alias that does not exist.
    my ($rc, undef, $err) = aws({ expect_fail => 1 }, 'encrypt', '--key-id', "$alias-missing",
        '--plaintext', encode_base64('x', ''));
    aws_service_error($rc, $err, 'NotFoundException', 'Encrypt', 'unknown alias');
}

{
    # Temporary credentials (session token) are accepted.
    my $before = $emu->counters;
    my ($rc, $e) = aws({ akid => $tmp_akid, secret => $tmp_secret, token => $tmp_token },
        'encrypt', '--key-id', $k1->{KeyId}, '--plaintext', encode_base64('tmp', ''));
    is($rc, 0, 'aws: temporary credentials with a session token');
    my $after = $emu->counters;
    is(cnt($after, 'akid', $tmp_akid) - cnt($before, 'akid', $tmp_akid), 1,
        'aws: the emulator counted the temporary access key');
}

{
    # Signed with a wrong secret: the emulator refuses it.
    my $before = $emu->counters;
    my ($rc, undef, $err) = aws({ secret => "${secret}x", expect_fail => 1 },
        'encrypt', '--key-id', $k1->{KeyId}, '--plaintext', encode_base64('x', ''));
    aws_service_error($rc, $err, 'InvalidSignatureException', 'Encrypt', 'wrong secret');
    my $after = $emu->counters;
    is(cnt($after, 'requests', 'Encrypt') - cnt($before, 'requests', 'Encrypt'), 1,
        'aws: wrong secret: the emulator received the Encrypt request');
    is(cnt($after, 'ok', 'Encrypt') - cnt($before, 'ok', 'Encrypt'), 0,
        'aws: wrong secret: ... and did not serve it');
}

{
    # TLS is verified: a CA that did not issue the emulator's certificate fails
    # before any request reaches it.
    my $before = $emu->counters;
    my ($rc, undef, $err) = aws({ ca => $pki->{other_ca}, expect_fail => 1 },
        'encrypt', '--key-id', $k1->{KeyId}, '--plaintext', encode_base64('x', ''));
    is($rc, 255, 'aws: a foreign CA bundle: client-side failure (exit 255)');
    like($err, qr/SSL validation failed|CERTIFICATE_VERIFY_FAILED/i, 'aws: ... certificate verification failed');
    is(total($emu->counters, 'requests'), total($before, 'requests'),
        'aws: ... and no request reached the emulator');
}

# --- AWS SDK for JavaScript v3 ----------------------------------------------------
# node(\%env_opts, args...) -> ($rc, [step lines], $stderr)
sub node_js {
    my ($o, @args) = @_;
    my $env = client_env(%$o);
    # The SDK's notice that releases after January 2027 need node 22.
    $env->{AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED} = 'true';
    my ($rc, $out, $err) = run({ env => $env },
        'node', $script, '--endpoint', $url, '--region', $region, '--ca', $pki->{ca},
        '--key', $k1->{KeyId}, '--key-arn', $arn1, @args);
    my @lines;
    for my $l (split /\n/, $out) {
        my $j = eval { decode_json($l) };
        if ($j) { push @lines, $j } else { diag("sdk-js: not JSON: $l") }
    }
    diag("sdk-js: rc=$rc\n$err") if $rc != 0 || $err =~ /\S/;
    return ($rc, \@lines, $err);
}
sub js_steps_ok {
    my ($lines, @need) = @_;
    my %seen;
    for my $s (grep { $_->{step} ne 'export' } @$lines) {
        $seen{ $s->{step} } = 1;
        ok($s->{ok}, "sdk-js: $s->{step}")
          or diag($json->encode($s));
    }
    ok($seen{$_}, "sdk-js: step $_ ran") for @need;
}

my $import = "$dir/awscli-blobs.json";
spurt($import, $json->encode(\@aws_exports));
my @js_exports;
{
    my ($rc, $lines) = node_js({}, '--key2', $k2->{KeyId}, '--key2-arn', $arn2,
        '--alias', $alias, '--import', $import);
    is($rc, 0, 'sdk-js: scenario exit status');
    js_steps_ok($lines, qw(describe-key generate-data-key decrypt-data-key
      generate-data-key-without-plaintext decrypt-data-key-without-plaintext
      encrypt decrypt-context decrypt-context-mismatch re-encrypt decrypt-re-encrypted
      alias-encrypt alias-decrypt alias-generate-data-key
      not-found-key not-found-alias unknown-access-key),
      map { "import:$_->{name}" } @aws_exports);
    my ($gdk) = grep { $_->{step} eq 'generate-data-key' } @$lines;
    is($gdk->{plaintextLength}, 32, 'sdk-js: generate-data-key: 32-byte plaintext') if $gdk;
    my ($mm) = grep { $_->{step} eq 'decrypt-context-mismatch' } @$lines;
    if ($mm) {
        is($mm->{error}{name}, 'InvalidCiphertextException', 'sdk-js: context mismatch: error name');
        is($mm->{error}{httpStatusCode}, 400, 'sdk-js: context mismatch: HTTP 400');
        ok($mm->{error}{requestId}, "sdk-js: context mismatch: request id $mm->{error}{requestId}");
    }
    @js_exports = grep { $_->{step} eq 'export' } @$lines;
    ok(@js_exports >= 2, 'sdk-js: exported blobs for awscli');
}

{
    my $before = $emu->counters;
    my ($rc, $lines) = node_js({ akid => $tmp_akid, secret => $tmp_secret, token => $tmp_token },
        '--steps', 'describe-key,generate-data-key');
    is($rc, 0, 'sdk-js: temporary credentials with a session token');
    js_steps_ok($lines, qw(describe-key generate-data-key));
    ok(cnt($emu->counters, 'akid', $tmp_akid) > cnt($before, 'akid', $tmp_akid),
        'sdk-js: the emulator counted the temporary access key');
}

{
    my $before = $emu->counters;
    my ($rc, $lines) = node_js({}, '--steps', 'wrong-secret');
    is($rc, 0, 'sdk-js: wrong secret run');
    js_steps_ok($lines, 'wrong-secret');
    my ($s) = grep { $_->{step} eq 'wrong-secret' } @$lines;
    is($s->{error}{name}, 'InvalidSignatureException', 'sdk-js: wrong secret: InvalidSignatureException')
      if $s;
    my $after = $emu->counters;
    is(cnt($after, 'requests', 'Encrypt') - cnt($before, 'requests', 'Encrypt'), 1,
        'sdk-js: wrong secret: the emulator received the Encrypt request (once: no retry)');
    is(cnt($after, 'ok', 'Encrypt') - cnt($before, 'ok', 'Encrypt'), 0,
        'sdk-js: wrong secret: ... and did not serve it');
}

{
    my $before = $emu->counters;
    my ($rc, $lines) = node_js({}, '--steps', 'wrong-ca', '--other-ca', $pki->{other_ca});
    is($rc, 0, 'sdk-js: foreign CA run');
    js_steps_ok($lines, 'wrong-ca');
    is(total($emu->counters, 'requests'), total($before, 'requests'),
        'sdk-js: foreign CA: no request reached the emulator');
}

# --- newer service behaviour: KeyMaterialId, DryRun, AccessDenied wording -----
# The JS SDK's model has KeyMaterialId (2025) and DryRun (2023): a small
# script, with the SDK from test/clients, checks the emulator's answers the
# way the SDK parses them.
my $extra = "$dir/sdk-extra.cjs";
spurt($extra, <<'JS');
const { createRequire } = require('node:module');
const { readFileSync } = require('node:fs');
const https = require('node:https');
const req = createRequire(process.env.CLIENTS_DIR + '/package.json');
const K = req('@aws-sdk/client-kms');
const { NodeHttpHandler } = req('@smithy/node-http-handler');
const [endpoint, region, ca, keyId, key2, step] = process.argv.slice(2);
const kms = new K.KMSClient({ region, endpoint, maxAttempts: 1,
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: readFileSync(ca) }) }) });
const err = (e) => ({ name: e?.name, status: e?.$metadata?.httpStatusCode, message: e?.message });
(async () => {
  const out = {};
  if (step === 'material') {
    const g = await kms.send(new K.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    const w = await kms.send(new K.GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    const d = await kms.send(new K.DecryptCommand({ CiphertextBlob: g.CiphertextBlob }));
    const r = await kms.send(new K.ReEncryptCommand({ CiphertextBlob: g.CiphertextBlob, DestinationKeyId: key2 }));
    const g2 = await kms.send(new K.GenerateDataKeyCommand({ KeyId: key2, KeySpec: 'AES_256' }));
    Object.assign(out, { gdk: g.KeyMaterialId, gdkwp: w.KeyMaterialId, decrypt: d.KeyMaterialId,
      source: r.SourceKeyMaterialId, destination: r.DestinationKeyMaterialId, key2: g2.KeyMaterialId });
  } else if (step === 'dry-run') {
    const g = await kms.send(new K.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    for (const [name, cmd] of [
      ['encrypt', new K.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('x'), DryRun: true })],
      ['decrypt', new K.DecryptCommand({ CiphertextBlob: g.CiphertextBlob, DryRun: true })],
      ['generate', new K.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', DryRun: true })],
      ['re-encrypt', new K.ReEncryptCommand({ CiphertextBlob: g.CiphertextBlob, DestinationKeyId: key2, DryRun: true })],
    ]) {
      try { await kms.send(cmd); out[name] = { name: 'no error' }; } catch (e) { out[name] = err(e); }
    }
  } else if (step === 'denied') {
    try { await kms.send(new K.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('x') })); out.denied = { name: 'no error' }; }
    catch (e) { out.denied = err(e); }
  }
  console.log(JSON.stringify(out));
  kms.destroy();
})().catch((e) => { console.log(JSON.stringify({ fatal: err(e) })); process.exit(1); });
JS
sub sdk_extra {
    my ($step) = @_;
    my $env = client_env();
    $env->{CLIENTS_DIR} = $clients;
    $env->{AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED} = 'true';
    my ($rc, $out, $err) = run({ env => $env }, 'node', $extra, $url, $region,
        $pki->{ca}, $k1->{KeyId}, $k2->{KeyId}, $step);
    diag("sdk-extra $step: rc=$rc\n$out\n$err") if $rc != 0;
    return eval { decode_json($out) } // {};
}
{
    my $m = sdk_extra('material');
    like($m->{gdk} // '', qr/^[0-9a-f]{64}$/, 'sdk-js: GenerateDataKey KeyMaterialId');
    is($m->{gdkwp}, $m->{gdk}, 'sdk-js: GenerateDataKeyWithoutPlaintext KeyMaterialId (same material)');
    is($m->{decrypt}, $m->{gdk}, 'sdk-js: Decrypt KeyMaterialId');
    is($m->{source}, $m->{gdk}, 'sdk-js: ReEncrypt SourceKeyMaterialId');
    is($m->{destination}, $m->{key2}, 'sdk-js: ReEncrypt DestinationKeyMaterialId');
    isnt($m->{key2}, $m->{gdk}, 'sdk-js: another key, another material id');

    my $before = $emu->counters;
    my $dr = sdk_extra('dry-run');
    for my $op ('encrypt', 'decrypt', 'generate', 're-encrypt') {
        is($dr->{$op}{name}, 'DryRunOperationException', "sdk-js: $op with DryRun: DryRunOperationException");
        is($dr->{$op}{status}, 412, "sdk-js: $op with DryRun: HTTP 412");
        is($dr->{$op}{message}, 'The request would have succeeded, but the DryRun option is set.',
            "sdk-js: $op with DryRun: the service's message");
    }
    my $after = $emu->counters;
    is(cnt($after, 'ok', 'Encrypt') - cnt($before, 'ok', 'Encrypt'), 0,
        'sdk-js: dry runs are not served');

    $emu->fault(kind => 'denied', op => 'Encrypt', count => 1);
    my $dn = sdk_extra('denied');
    is($dn->{denied}{name}, 'AccessDeniedException', 'sdk-js: AccessDeniedException');
    is($dn->{denied}{message}, "User: arn:aws:iam::$account:user/kmsemu is not authorized to perform: "
          . "kms:Encrypt on resource: $arn1 because no identity-based policy allows the kms:Encrypt action",
        'sdk-js: AccessDenied message names the action and the key ARN resource');

    $emu->fault(kind => 'denied', op => 'Decrypt', count => 1);
    my ($rc, undef, $err) = aws({ expect_fail => 1 }, 'decrypt', '--ciphertext-blob', $ct_ctx, ctx_arg(\%ctx));
    aws_service_error($rc, $err, 'AccessDeniedException', 'Decrypt', 'denied');
    like($err, qr/is not authorized to perform: kms:Decrypt on resource: \Q$arn1\E because/,
        'aws: AccessDenied message names the key ARN resource');
    # awscli 2.9's KMS model predates DryRun (2023) and KeyMaterialId (2025):
    # it has no --dry-run option and drops KeyMaterialId from answers.
    my ($hrc, $hout) = run({ env => client_env() }, $aws, 'kms', 'encrypt', 'help');
    note('awscli ' . ($hout =~ /--dry-run/ ? 'has' : 'has no') . ' --dry-run for kms encrypt');
}

# --- cross-client: what the JS SDK made, awscli decrypts ----------------------
for my $x (@js_exports) {
    my ($rc, $d) = aws({}, 'decrypt', '--ciphertext-blob', blob_file(decode_base64($x->{blob})),
        (%{ $x->{context} } ? ctx_arg($x->{context}) : ()));
    is($rc, 0, "aws: decrypt of $x->{name} (made by the JS SDK)");
    ok(defined $d->{Plaintext} && $d->{Plaintext} eq $x->{plaintext},
        "aws: $x->{name}: same plaintext as the JS SDK had");
    is($d->{KeyId}, $x->{keyArn}, "aws: $x->{name}: KeyId is the key ARN");
}

# --- the emulator saw all of it ---------------------------------------------------
my $c = $emu->counters;
ok(cnt($c, 'akid', $akid) > 20, "emulator counted our access key: " . cnt($c, 'akid', $akid));
for my $op (qw(GenerateDataKey GenerateDataKeyWithoutPlaintext Encrypt Decrypt ReEncrypt DescribeKey)) {
    ok(cnt($c, 'ok', $op) > 0, "emulator served $op: " . cnt($c, 'ok', $op));
}
note(sprintf 'elapsed %.1f s', time - $t0);
$emu->stop;
done_testing();
