# SPDX-License-Identifier: Apache-2.0
# The AWS credentials chain, end to end: each source (environment, shared
# profile files, web identity through STS, ECS, EC2 IMDSv2) signs a real
# keyset load against the emulator, and the emulator's per-access-key
# counter proves which one signed. Loopback ECS and IMDSv2 servers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;
use KmsEmu;

my $d   = tmpdir();
my $pki = KmsEmu::make_pki("$d/pki");
my %env_c = (akid => 'AKIAEMUENVIRONMENT01', secret => 'env/secret/0123456789abcdefghijklmnopqrst');
my %prof  = (akid => 'AKIAEMUPROFILE000001', secret => 'profile/secret/0123456789abcdefghijklmn');
my %cfgp  = (akid => 'AKIAEMUCONFIGFILE001', secret => 'config/secret/0123456789abcdefghijklmno');
my %ecs   = (akid => 'ASIAEMUECS0000000001', secret => 'ecs/secret/0123456789abcdefghijklmnopqrs',
    token => 'ecs-session-token-' . ('e' x 40));
my %imds  = (akid => 'ASIAEMUIMDS000000001', secret => 'imds/secret/0123456789abcdefghijklmnopq',
    token => 'imds-session-token-' . ('i' x 40));
my $emu = KmsEmu->start(dir => "$d/kms", pki => $pki,
    creds => [ {%env_c}, {%prof}, {%cfgp}, {%ecs}, {%imds} ]);
my $key = $emu->create_key();
my $role = 'arn:aws:iam::111122223333:role/kmsenv-test';
$emu->web_identity(token => 'eyJ-web-identity-token.for.kmsenv', role_arn => $role);
spurt("$d/jwt", 'eyJ-web-identity-token.for.kmsenv');

# Nothing from the machine: every source is off unless a test turns it on.
my %base = (
    (map { $_ => undef } qw(AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
        AWS_SESSION_TOKEN AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI
        AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
        AWS_EC2_METADATA_SERVICE_ENDPOINT AWS_ENDPOINT_URL AWS_ENDPOINT_URL_STS)),
    HOME                        => $d,
    AWS_SHARED_CREDENTIALS_FILE => "$d/none",
    AWS_CONFIG_FILE             => "$d/none",
    AWS_EC2_METADATA_DISABLED   => 'true',
    AWS_REGION                  => 'us-east-1',
    AWS_CA_BUNDLE               => $pki->{ca},
    KMSENV_AWS_ENDPOINT         => $emu->url,
    KMSENV_DEBUG                => "file:$d/debug.log,level:1",
);
sub envx { my %x = @_; return { %base, %x } }

# A keyset and a record, made with environment credentials.
my %with_env = (AWS_ACCESS_KEY_ID => $env_c{akid}, AWS_SECRET_ACCESS_KEY => $env_c{secret});
my ($rc, $out, $err) = ossl({ env => envx(%with_env) }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$key->{Arn}", '-out', "$d/ks.pem");
is($rc, 0, 'keyset generated with environment credentials') or BAIL_OUT($err);
spurt("$d/pt", 'row 42');
($rc, $out, $err) = ossl({ env => envx(%with_env) }, 'pkeyutl', '-encrypt',
    '-inkey', "$d/ks.pem", '-in', "$d/pt", '-out', "$d/rec");
is($rc, 0, 'record') or diag $err;

# Loads the keyset and decrypts; returns (ok, stderr, akid counters delta).
sub load_with {
    my (%x) = @_;
    $emu->reset_counters;
    my ($r, $o, $e) = ossl({ env => envx(%x) }, 'pkeyutl', '-decrypt',
        '-inkey', "$d/ks.pem", '-in', "$d/rec");
    return ($o eq 'row 42', $e, $emu->counters->{akid});
}

my ($ok, $e, $akid) = load_with(%with_env);
ok($ok, 'environment: load works') or diag $e;
is_deeply($akid, { $env_c{akid} => 1 }, 'environment: the env access key signed');

# ---- shared files ----
spurt("$d/credentials", "# test\n[default]\naws_access_key_id = AKIAWRONGDEFAULT0000\n"
      . "aws_secret_access_key = wrong\n\n[team]\naws_access_key_id = $prof{akid}\n"
      . "aws_secret_access_key = $prof{secret}\n");
spurt("$d/config", "[default]\nregion = us-east-1\n\n[profile cfgonly]\n"
      . "aws_access_key_id = $cfgp{akid}\naws_secret_access_key = $cfgp{secret}\n");
my %files = (AWS_SHARED_CREDENTIALS_FILE => "$d/credentials", AWS_CONFIG_FILE => "$d/config");
($ok, $e, $akid) = load_with(%files, AWS_PROFILE => 'team');
ok($ok, 'profile from the credentials file (AWS_PROFILE=team)') or diag $e;
is_deeply($akid, { $prof{akid} => 1 }, 'profile: its access key signed');
($ok, $e, $akid) = load_with(%files, KMSENV_AWS_PROFILE => 'cfgonly', AWS_PROFILE => 'team');
ok($ok, '[profile cfgonly] in the config file (aws_profile setting wins over AWS_PROFILE)')
  or diag $e;
is_deeply($akid, { $cfgp{akid} => 1 }, 'config-file profile: its access key signed');
($ok, $e) = load_with(%files, AWS_PROFILE => 'nosuch');
ok(!$ok, 'a named profile that does not exist fails');
like($e, qr/nosuch/, 'error names the profile');
($ok, $e, $akid) = load_with(%files, AWS_PROFILE => 'team', %with_env);
is_deeply($akid, { $env_c{akid} => 1 }, 'chain order: environment before profile');

# ---- web identity (STS on the emulator) ----
$emu->reset_counters;
($ok, $e, $akid) = load_with(AWS_WEB_IDENTITY_TOKEN_FILE => "$d/jwt",
    AWS_ROLE_ARN => $role, AWS_ENDPOINT_URL_STS => $emu->url);
ok($ok, 'web identity: AssumeRoleWithWebIdentity, then the load') or diag $e;
my @sts = grep { /^ASIA/ } keys %{ $akid // {} };
is(scalar @sts, 1, 'web identity: temporary STS credentials signed the Decrypt');
spurt("$d/badjwt", 'not-the-token');
($ok, $e) = load_with(AWS_WEB_IDENTITY_TOKEN_FILE => "$d/badjwt",
    AWS_ROLE_ARN => $role, AWS_ENDPOINT_URL_STS => $emu->url);
ok(!$ok, 'web identity: a rejected token fails');
like($e, qr/InvalidIdentityToken/, 'error carries the STS error code');
unlike($e, qr/not-the-token/, 'the token itself is not in the error');

# ---- ECS ----
my $ecs_srv = KmsEmu::CredServer->start(mode => 'ecs', dir => "$d/ecs",
    creds => {%ecs}, auth_token => 'ecs-auth-token-123');
my %ecs_env = (AWS_CONTAINER_CREDENTIALS_FULL_URI => $ecs_srv->url . '/v2/credentials/abc',
    AWS_CONTAINER_AUTHORIZATION_TOKEN => 'ecs-auth-token-123');
($ok, $e, $akid) = load_with(%ecs_env);
ok($ok, 'ECS container credentials (full URI + authorization token)') or diag $e;
is_deeply($akid, { $ecs{akid} => 1 }, 'ECS: its temporary key (with session token) signed');
is_deeply($ecs_srv->counters, { '/v2/credentials/abc' => 1 }, 'ECS endpoint asked once');
spurt("$d/ecs-token", "ecs-auth-token-123\n");
($ok, $e, $akid) = load_with(AWS_CONTAINER_CREDENTIALS_FULL_URI => $ecs_srv->url . '/v2/credentials/abc',
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE => "$d/ecs-token");
ok($ok, 'ECS: authorization token from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE') or diag $e;
($ok, $e) = load_with(%ecs_env, AWS_CONTAINER_AUTHORIZATION_TOKEN => 'wrong');
ok(!$ok, 'ECS: a wrong authorization token fails');
like($e, qr/ECS/, 'error names the ECS source');
($ok, $e) = load_with(AWS_CONTAINER_CREDENTIALS_FULL_URI => 'http://10.9.8.7/creds');
like($e, qr/10\.9\.8\.7/, 'ECS: plain http to a non-loopback, non-ECS host is refused');

# Refresh: credentials that expire within 5 minutes are fetched again for
# the next load; long-lived ones are cached for the life of the process.
$ecs_srv->reset_counters;
$emu->reset_counters;
($rc, $out, $e) = run({ env => envx(%ecs_env) }, build_dir() . '/kms_probe',
    build_dir(), 'fork', "$d/ks.pem");
is($rc, 0, 'ECS credentials in a forked child') or diag $e;
is($ecs_srv->counters->{'/v2/credentials/abc'}, 2,
    'the child does not reuse the parent credential cache (fetched again)');
my $short = KmsEmu::CredServer->start(mode => 'ecs', dir => "$d/ecs2",
    creds => {%ecs}, expires_in => 120);
my $long = KmsEmu::CredServer->start(mode => 'ecs', dir => "$d/ecs3",
    creds => {%ecs}, expires_in => 3600);
for ([ $short, 'expiring in 2 min' ], [ $long, 'valid for 1 h' ]) {
    my ($srv, $name) = @$_;
    # three sequential loads in one process
    ($rc, $out, $e) = run({ env => envx(AWS_CONTAINER_CREDENTIALS_FULL_URI => $srv->url . '/c') },
        build_dir() . '/kms_probe', build_dir(), 'loads', "$d/ks.pem", 3);
    is($rc, 0, "ECS $name: loads work") or diag $e;
}
is($short->counters->{'/c'}, 3, 'short-lived ECS credentials: fetched at every load');
is($long->counters->{'/c'}, 1, 'long-lived ECS credentials: cached within a process');

# ExpiredTokenException: refreshed once and retried.
$ecs_srv->reset_counters;
$emu->fault(kind => 'expired', count => 1, op => 'Decrypt');
($ok, $e, $akid) = load_with(%ecs_env);
ok($ok, 'ExpiredTokenException: credentials refreshed, request retried') or diag $e;
is($ecs_srv->counters->{'/v2/credentials/abc'}, 2, 'ECS asked again after the expired answer');

# ---- IMDSv2 ----
my $imds_srv = KmsEmu::CredServer->start(mode => 'imds', dir => "$d/imds", creds => {%imds});
my %imds_env = (AWS_EC2_METADATA_DISABLED => undef,
    AWS_EC2_METADATA_SERVICE_ENDPOINT => $imds_srv->url);
($ok, $e, $akid) = load_with(%imds_env);
ok($ok, 'EC2 IMDSv2 credentials') or diag $e;
is_deeply($akid, { $imds{akid} => 1 }, 'IMDS: the instance role key signed');
my $ic = $imds_srv->counters;
ok($ic->{'/latest/api/token'}, 'IMDSv2: a session token was requested (PUT)');
ok((grep { m{^/latest/meta-data/iam/security-credentials/.+} } keys %$ic),
    'IMDS: the role credentials were read');
($ok, $e) = load_with(%imds_env, AWS_EC2_METADATA_DISABLED => 'true');
ok(!$ok, 'AWS_EC2_METADATA_DISABLED=true: IMDS not used');
like($e, qr/no usable AWS credentials/, 'reason: no usable AWS credentials');
like($e, qr/environment \(not set\)/, 'the error lists what each source did');

# ---- secrets stay out of logs and errors ----
my $log = slurp("$d/debug.log");
for my $s ($env_c{secret}, $prof{secret}, $cfgp{secret}, $ecs{secret}, $ecs{token},
           $imds{secret}, $imds{token}, 'eyJ-web-identity-token.for.kmsenv') {
    unlike($log, qr/\Q$s\E/, 'debug log does not contain ' . substr($s, 0, 8) . '...');
}
like($log, qr/credentials from ecs|source=ecs|ecs/i, 'debug log says which source was used');

done_testing();
