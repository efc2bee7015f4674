# SPDX-License-Identifier: Apache-2.0
# The credential chain where it used to differ from botocore, end to end
# (real openssl, the KMS emulator, loopback ECS/IMDS servers):
#  - an explicit profile (aws_profile / KMSENV_AWS_PROFILE, like botocore's
#    Session(profile=...)) wins over AWS_ACCESS_KEY_ID; AWS_PROFILE alone
#    does not (botocore keeps EnvProvider first then);
#  - already-expired ECS/IMDS credentials are refused before any KMS call;
#  - aws_security_token is the legacy name of aws_session_token;
#  - malformed shared files and key pairs split across the credentials and
#    config files are errors naming the file and the profile.
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
my %legacy = (akid => 'ASIAEMULEGACYTOKEN01', secret => 'legacy/secret/0123456789abcdefghijklmno',
    token => 'legacy-security-token-' . ('l' x 40));
my %ecs  = (akid => 'ASIAEMUECS0000000001', secret => 'ecs/secret/0123456789abcdefghijklmnopqrs',
    token => 'ecs-session-token-' . ('e' x 40));
my %imds = (akid => 'ASIAEMUIMDS000000001', secret => 'imds/secret/0123456789abcdefghijklmnopq',
    token => 'imds-session-token-' . ('i' x 40));
my $emu = KmsEmu->start(dir => "$d/kms", pki => $pki,
    creds => [ {%env_c}, {%prof}, {%cfgp}, {%legacy}, {%ecs}, {%imds} ]);
my $key = $emu->create_key();

my %base = (
    (map { $_ => undef } qw(AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
        AWS_SESSION_TOKEN AWS_PROFILE KMSENV_AWS_PROFILE
        AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
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
    KMSENV_DEBUG                => "file:$d/debug.log,level:2",
);
sub envx { my %x = @_; return { %base, %x } }

my %with_env = (AWS_ACCESS_KEY_ID => $env_c{akid}, AWS_SECRET_ACCESS_KEY => $env_c{secret});
my ($rc, $out, $err) = ossl({ env => envx(%with_env) }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$key->{Arn}", '-out', "$d/ks.pem");
is($rc, 0, 'keyset generated with environment credentials') or BAIL_OUT($err);
spurt("$d/pt", 'row 7');
($rc, $out, $err) = ossl({ env => envx(%with_env) }, 'pkeyutl', '-encrypt',
    '-inkey', "$d/ks.pem", '-in', "$d/pt", '-out', "$d/rec");
is($rc, 0, 'record') or diag $err;

# Loads the keyset and decrypts; returns (ok, stderr, akid counters).
sub load_with {
    my (%x) = @_;
    $emu->reset_counters;
    my ($r, $o, $e) = ossl({ env => envx(%x) }, 'pkeyutl', '-decrypt',
        '-inkey', "$d/ks.pem", '-in', "$d/rec");
    return ($o eq 'row 7', $e, $emu->counters->{akid} // {});
}

# ---- 1. explicit profile vs environment keys ----
spurt("$d/credentials", "[team]\naws_access_key_id = $prof{akid}\n"
      . "aws_secret_access_key = $prof{secret}\n");
my %files = (AWS_SHARED_CREDENTIALS_FILE => "$d/credentials", AWS_CONFIG_FILE => "$d/none");
my ($ok, $e, $akid) = load_with(%files, %with_env, KMSENV_AWS_PROFILE => 'team');
ok($ok, 'aws_profile=team with AWS_ACCESS_KEY_ID set: load works') or diag $e;
is_deeply($akid, { $prof{akid} => 1 },
    'aws_profile (explicit, like Session(profile=)) wins over the environment keys');
($ok, $e, $akid) = load_with(%files, %with_env, AWS_PROFILE => 'team');
is_deeply($akid, { $env_c{akid} => 1 },
    'AWS_PROFILE alone: the environment keys still come first (as botocore)');

# ---- 2. expired container / instance credentials ----
my $ecs_old = KmsEmu::CredServer->start(mode => 'ecs', dir => "$d/ecs",
    creds => {%ecs}, expires_in => -120);
($ok, $e, $akid) = load_with(AWS_CONTAINER_CREDENTIALS_FULL_URI => $ecs_old->url . '/creds');
ok(!$ok, 'ECS answering already-expired credentials: the load fails');
like($e, qr/AWS credentials from ECS \(AWS_CONTAINER_CREDENTIALS_FULL_URI at \S+\/creds\): the answer's credentials \(access key id \Q$ecs{akid}\E\) expired at /,
    'error names ECS, the URL and the expiry');
is_deeply($akid, {}, 'the expired ECS credentials never reached KMS');
my $imds_old = KmsEmu::CredServer->start(mode => 'imds', dir => "$d/imds",
    creds => {%imds}, expires_in => -60);
($ok, $e, $akid) = load_with(AWS_EC2_METADATA_DISABLED => undef,
    AWS_EC2_METADATA_SERVICE_ENDPOINT => $imds_old->url);
ok(!$ok, 'IMDS answering already-expired credentials: the load fails');
like($e, qr/AWS credentials from IMDS \(role kmsemu-role at \S+\): the answer's credentials \(access key id \Q$imds{akid}\E\) expired at /,
    'error names IMDS, the role and the expiry');
is_deeply($akid, {}, 'the expired IMDS credentials never reached KMS');

# ---- 3. aws_security_token ----
spurt("$d/credentials", "[legacy]\naws_access_key_id = $legacy{akid}\n"
      . "aws_secret_access_key = $legacy{secret}\naws_security_token = $legacy{token}\n");
($ok, $e, $akid) = load_with(%files, AWS_PROFILE => 'legacy');
ok($ok, 'aws_security_token is sent as the session token') or diag $e;
is_deeply($akid, { $legacy{akid} => 1 }, 'aws_security_token: its key signed');
spurt("$d/config", "[profile legacy]\naws_access_key_id = $legacy{akid}\n"
      . "aws_secret_access_key = $legacy{secret}\naws_security_token = $legacy{token}\n");
($ok, $e, $akid) = load_with(AWS_SHARED_CREDENTIALS_FILE => "$d/none",
    AWS_CONFIG_FILE => "$d/config", AWS_PROFILE => 'legacy');
ok($ok, 'aws_security_token in the config file too') or diag $e;

# ---- 4. malformed files, split key pairs ----
spurt("$d/credentials", "aws_access_key_id = AKIAWRONGTOPLEVEL001\n"
      . "[default]\naws_access_key_id = $prof{akid}\naws_secret_access_key = $prof{secret}\n");
($ok, $e, $akid) = load_with(%files);
ok(!$ok, 'a setting before any [section]: the load fails (not skipped)');
like($e, qr/AWS shared credentials file \Q$d\E\/credentials line 1: a setting before any \[section\] header \(looking for profile 'default'/,
    'error names the file, the line and the profile');
spurt("$d/credentials", "[default]\naws_access_key_id = $prof{akid}\n"
      . "aws_secret_access_key = $prof{secret}\n[other]\n$prof{secret}\n");
($ok, $e) = load_with(%files);
like($e, qr/credentials line 5: neither 'key = value'/, 'an unparsable line, even in another profile: error');
unlike($e, qr/\Q$prof{secret}\E/, 'the offending line is not shown');

spurt("$d/credentials", "[split]\naws_access_key_id = $cfgp{akid}\n");
spurt("$d/config", "[profile split]\naws_secret_access_key = $cfgp{secret}\n");
($ok, $e, $akid) = load_with(AWS_SHARED_CREDENTIALS_FILE => "$d/credentials",
    AWS_CONFIG_FILE => "$d/config", AWS_PROFILE => 'split');
ok(!$ok, 'aws_access_key_id in credentials, aws_secret_access_key in config: fails');
like($e, qr/AWS credentials from profile 'split' in \Q$d\E\/credentials: aws_access_key_id is set but aws_secret_access_key is not there \(it is in \Q$d\E\/config; both keys must be in the same file\)/,
    'error names the profile and both files (botocore: PartialCredentialsError)');
is_deeply($akid, {}, 'no KMS call with a half pair');

# ---- secrets stay out of logs and errors ----
my $log = slurp("$d/debug.log");
for my $s ($env_c{secret}, $prof{secret}, $cfgp{secret}, $legacy{secret}, $legacy{token},
           $ecs{secret}, $ecs{token}, $imds{secret}, $imds{token}) {
    unlike($log, qr/\Q$s\E/, 'debug log does not contain ' . substr($s, 0, 8) . '...');
}

done_testing();
