# SPDX-License-Identifier: Apache-2.0
# Wrapped private keys under an aws-kms: KEK, against the KMS emulator:
# kmsenv wrap --generate makes one GenerateDataKey call, each load one
# Decrypt, and a TLS server makes none per handshake; a disabled KMS key
# fails the load with the KMS error named.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Kmsenv;
use KmsenvTLS;
use KmsEmu;

my $d   = tmpdir();
my $pki = KmsEmu::make_pki("$d/pki");
my %creds = (akid => 'AKIAEMUTESTENV000021', secret => 'envSecretKey/21abcdefghijklmnopqrstuvwxyz012');
my $emu = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ]);
my $k = $emu->create_key(description => 'tls');
my %env = (KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki,
    endpoint => $emu->url), OPENSSL_CONF => '/dev/null');
my @DEF = ('-provider-path', build_dir(), '-provider', 'default', '-provider', 'kmsenv');
sub count { return $emu->count(@_) }

my ($rc, $out, $err) = kmsenv_cli({ env => \%env }, 'wrap', '--generate', 'p-256',
    '--out', "$d/w.pem", '--keyring', "aws-kms:$k->{Arn}");
is($rc, 0, 'kmsenv wrap --generate under an aws-kms key') or diag($err);
is(count('GenerateDataKey'), 1, 'one GenerateDataKey');
is(count('Decrypt'), 0, 'no Decrypt');

($rc, $out, $err) = run({ env => \%env }, 'openssl', 'req', @DEF, '-new', '-x509',
    '-key', "$d/w.pem", '-subj', '/CN=localhost', '-days', '1', '-out', "$d/w.crt");
is($rc, 0, 'req -x509 with the wrapped key') or diag($err);
is(count('Decrypt'), 1, 'one Decrypt for the load');

($rc, $out, $err) = run({ env => \%env }, 'openssl', 'pkey', @DEF, '-pubin', '-in',
    "$d/w.pem", '-pubout');
like($out, qr/BEGIN PUBLIC KEY/, 'pkey -pubin');
is(count('Decrypt'), 1, '  no KMS call for the public key');

# s_server: one Decrypt at startup, none for 6 handshakes
my ($pid, $port, $sd) = start_s_server(order => \@DEF, cert => "$d/w.crt",
    key => "$d/w.pem", n => 6, env => \%env);
is(count('Decrypt'), 2, 's_server: one Decrypt at startup');
my $good = 0;
for my $i (1 .. 6) {
    my ($crc, $o, $e) = run({ env => { OPENSSL_CONF => '/dev/null' }, stdin => "GET / HTTP/1.0\r\n\r\n" },
        'openssl', 's_client', '-connect', "127.0.0.1:$port", '-CAfile', "$d/w.crt",
        '-verify_return_error', ($i % 2 ? '-tls1_2' : '-tls1_3'));
    $good++ if $crc == 0 && $o =~ /Verify return code: 0 \(ok\)/;
}
my ($src, $serr) = finish_s_server($pid, $sd);
is($good, 6, '6 handshakes over TLS 1.2 and 1.3') or diag($serr);
is($src, 0, 's_server exits cleanly') or diag($serr);
is(count('Decrypt'), 2, 'no KMS call per handshake');

# the KMS key disabled: the load fails and says why
$emu->disable_key($k->{KeyId});
($rc, $out, $err) = run({ env => \%env }, 'openssl', 'pkey', @DEF, '-in', "$d/w.pem",
    '-text', '-noout');
isnt($rc, 0, 'KMS key disabled: the load fails');
like($err, qr/DisabledException/, 'the error names the KMS error');
like($err, qr/wrapped EC key/, 'and the wrapped key');

done_testing();
