# SPDX-License-Identifier: Apache-2.0
# deadline_ms bounds a whole keyset load: every wrapped copy (region) and
# every attempt. Each remote copy gets an equal share of the time left, so a
# hanging or blackholed first region leaves time to fail over. Two emulator
# instances act as two regions of one multi-Region key; bounds are generous.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use Kmsenv;
use KmsEmu;

my $d    = tmpdir();
my $pki  = KmsEmu::make_pki("$d/pki");
my %creds = (akid => 'AKIAEMUTESTDEADLINE1', secret => 'deadlineSecret/0123456789abcdefghijklm');
my $seed = 'b2' x 32;
my $east = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
    creds => [ {%creds} ], mrk_seed => $seed);
my $west = KmsEmu->start(dir => "$d/west", region => 'us-west-2', pki => $pki,
    creds => [ {%creds} ], mrk_seed => $seed);
my $mrk = $east->create_key(multi_region => 1);
$west->replicate($mrk->{KeyId});
my $arn_e = $mrk->{Arn};
(my $arn_w = $arn_e) =~ s/us-east-1/us-west-2/;

my %env = KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki,
    endpoint => 'us-east-1=' . $east->url . ';us-west-2=' . $west->url);
sub env_with { my %x = @_; return { %env, %x } }
sub reset_all { $_->reset_counters, $_->clear_faults for $east, $west }
sub count { my ($emu, @a) = @_; return $emu->count(@a) }
sub decrypt {
    my ($envx) = @_;
    my $t0 = time;
    my @r = ossl({ env => $envx }, 'pkeyutl', '-decrypt', '-inkey', "$d/ks.pem",
        '-pkeyopt', 'context:t=1', '-in', "$d/rec.bin");
    return (@r, time - $t0);
}
my $PAN = '4111111111111111';
spurt("$d/pan", $PAN);

my ($rc, $out, $err, $dt) = ossl({ env => \%env }, 'genpkey', '-algorithm',
    'KMSENV-KEYSET', '-pkeyopt', "keyring:aws-kms:$arn_e;aws-kms:$arn_w",
    '-out', "$d/ks.pem");
is($rc, 0, 'two-region keyset') or diag $err;
($rc, $out, $err) = ossl({ env => \%env }, 'pkeyutl', '-encrypt', '-inkey',
    "$d/ks.pem", '-pkeyopt', 'context:t=1', '-in', "$d/pan", '-out', "$d/rec.bin");
is($rc, 0, 'a record') or diag $err;

# Both regions accept the request and never answer in time.
reset_all();
$_->fault(kind => 'delay', delay_ms => 20000, count => 10, op => 'Decrypt') for $east, $west;
($rc, $out, $err, $dt) = decrypt(env_with(KMSENV_DEADLINE_MS => 3000));
isnt($rc, 0, 'two hanging regions: the load fails');
cmp_ok($dt, '<', 3 + 2.5, sprintf('within deadline_ms 3 s for the whole load, not 3 s per region (took %.2f s)', $dt));
like($err, qr/us-east-1.*timed out/s, 'the first region timed out');
like($err, qr/us-west-2.*timed out/s, 'then the second');
like($err, qr/deadline_ms for the whole load reached/, 'the summary says the deadline was reached');
ok(count($east, 'Decrypt') >= 1 && count($west, 'Decrypt') >= 1, 'both regions were asked');

# The first region answers too late: the second still has its share.
reset_all();
$east->fault(kind => 'delay', delay_ms => 20000, count => 10, op => 'Decrypt');
($rc, $out, $err, $dt) = decrypt(env_with(KMSENV_DEADLINE_MS => 8000));
is($out, $PAN, 'first region hangs: loads through the second') or diag $err;
cmp_ok($dt, '<', 6.5, sprintf('after about half of deadline_ms 8 s (took %.2f s)', $dt));
is(count($west, 'Decrypt', 'ok'), 1, 'one successful Decrypt in us-west-2');

# The first region's endpoint is blackholed: connections are accepted by
# the kernel (listen backlog) but no TLS handshake ever completes.
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 16, Proto => 'tcp') or die "listen: $!";
my $hole_url = 'https://127.0.0.1:' . $hole->sockport;
reset_all();
($rc, $out, $err, $dt) = decrypt(env_with(KMSENV_DEADLINE_MS => 8000,
    KMSENV_AWS_ENDPOINT => "us-east-1=$hole_url;us-west-2=" . $west->url));
is($out, $PAN, 'first region blackholed: loads through the second') or diag $err;
cmp_ok($dt, '<', 6.5, sprintf('well within deadline_ms 8 s (took %.2f s)', $dt));
is(count($west, 'Decrypt', 'ok'), 1, 'one successful Decrypt in us-west-2');

# preferred_region puts the healthy region first: no waiting at all.
reset_all();
($rc, $out, $err, $dt) = decrypt(env_with(KMSENV_DEADLINE_MS => 8000,
    KMSENV_PREFERRED_REGION => 'us-west-2',
    KMSENV_AWS_ENDPOINT => "us-east-1=$hole_url;us-west-2=" . $west->url));
is($out, $PAN, 'preferred_region us-west-2 with us-east-1 blackholed') or diag $err;
cmp_ok($dt, '<', 3, sprintf('no time spent on the blackholed region (took %.2f s)', $dt));
close $hole;

done_testing();
