# SPDX-License-Identifier: Apache-2.0
# Rotation, version states, rewrap, and concurrent rotations.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
make_kek("$d/kek");
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/k.pem");
is($rc, 0, 'keyset') or BAIL_OUT($err);
spurt("$d/pt", 'secret row');

sub enc {
    my ($out) = @_;
    my @r = ossl('pkeyutl', '-encrypt', '-inkey', "$d/k.pem", '-pkeyopt',
        'context:t=1', '-in', "$d/pt", '-out', $out);
    return $r[0];
}

sub dec {
    my ($in) = @_;
    return ossl('pkeyutl', '-decrypt', '-inkey', "$d/k.pem", '-pkeyopt',
        'context:t=1', '-in', $in);
}

is(enc("$d/v1.bin"), 0, 'record under v1');
is(unpack('N', substr(slurp("$d/v1.bin"), 3, 4)), 1, 'record names version 1');
($rc, $out, $err) = kmsenv_cli('rotate', "$d/k.pem");
is($rc, 0, 'kmsenv rotate') or diag $err;
like($out, qr/primary version 2 of 2/, 'v2 is primary');
is((stat "$d/k.pem")[2] & 07777, 0600, 'rewritten keyset has mode 0600');
is(enc("$d/v2.bin"), 0, 'record under v2');
is(unpack('N', substr(slurp("$d/v2.bin"), 3, 4)), 2, 'new records use version 2');
($rc, $out) = dec("$d/v1.bin");
is($out, 'secret row', 'v1 record still decrypts after rotation');

($rc, $out) = kmsenv_cli('inspect', "$d/k.pem");
like($out, qr/version 1: decrypt-only/, 'v1 is decrypt-only');
like($out, qr/version 2: primary/, 'v2 is primary');

($rc, $out, $err) = kmsenv_cli('disable', "$d/k.pem", '--version', '1');
is($rc, 0, 'kmsenv disable --version 1') or diag $err;
($rc, $out, $err) = dec("$d/v1.bin");
isnt($rc, 0, 'disabled version refuses');
like($err, qr/version 1 is disabled/, '... saying so');
($rc, $out) = dec("$d/v2.bin");
is($out, 'secret row', 'v2 still decrypts');
($rc, $out, $err) = kmsenv_cli('disable', "$d/k.pem", '--version', '2');
isnt($rc, 0, 'the primary cannot be disabled');
like($err, qr/version 2 is primary/, '... saying why');
($rc, $out, $err) = kmsenv_cli('disable', "$d/k.pem", '--version', '9');
like($err, qr/no version 9/, 'unknown version is a clear error');
($rc, $out, $err) = kmsenv_cli('enable', "$d/k.pem", '--version', '1');
is($rc, 0, 'kmsenv enable --version 1');
($rc, $out) = dec("$d/v1.bin");
is($out, 'secret row', 're-enabled version decrypts');

# A record from a version the keyset does not have.
my $v = slurp("$d/v2.bin");
substr($v, 3, 4) = pack('N', 77);
spurt("$d/v77.bin", $v);
($rc, $out, $err) = dec("$d/v77.bin");
like($err, qr/record is under version 77, which this keyset does not have/, 'unknown version in a record');

# Rewrap: new KEK, same data keys.
make_kek("$d/kek2");
($rc, $out, $err) = kmsenv_cli('rewrap', "$d/k.pem", '--keyring', "file:$d/kek2");
is($rc, 0, 'kmsenv rewrap to a new KEK') or diag $err;
unlink("$d/kek");
($rc, $out) = kmsenv_cli('inspect', "$d/k.pem");
like($out, qr/kek 1: file:\Q$d\E\/kek2/, 'keyset now names the new KEK');
($rc, $out, $err) = dec("$d/v1.bin");
is($out, 'secret row', 'old records decrypt under the new KEK (data keys unchanged)') or diag $err;

# Two KEKs at once: loads while one is missing.
make_kek("$d/kek3");
($rc, $out, $err) = kmsenv_cli('rewrap', "$d/k.pem", '--keyring', "file:$d/kek2;file:$d/kek3");
is($rc, 0, 'rewrap under two KEKs') or diag $err;
rename("$d/kek2", "$d/kek2.gone");
($rc, $out, $err) = dec("$d/v2.bin");
is($out, 'secret row', 'loads through the second KEK when the first is missing') or diag $err;
rename("$d/kek2.gone", "$d/kek2");

# Concurrent rotations never lose a version.
my $before = () = (kmsenv_cli('inspect', "$d/k.pem"))[1] =~ /^  version \d+:/mg;
my @pids;
for my $w (1 .. 3) {
    my $pid = fork() // die;
    if ($pid == 0) {
        for (1 .. 4) { my ($r) = kmsenv_cli('rotate', "$d/k.pem"); exit 1 if $r }
        exit 0;
    }
    push @pids, $pid;
}
my $fails = 0;
for (@pids) { waitpid($_, 0); $fails++ if $? }
is($fails, 0, '3 writers x 4 concurrent rotations succeed');
($rc, $out) = kmsenv_cli('inspect', "$d/k.pem");
my $after = () = $out =~ /^  version \d+:/mg;
is($after, $before + 12, "no rotation lost ($before + 12 versions)");
my @tmp = glob("$d/.kmsenv-keyset.*");
is(scalar @tmp, 0, 'no temp files left behind');
($rc, $out) = dec("$d/v1.bin");
is($out, 'secret row', 'v1 still decrypts after 14 rotations');

done_testing();
