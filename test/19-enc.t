# SPDX-License-Identifier: Apache-2.0
# openssl enc -kmsenv-aes-256-gcm -K '' (issue 9): the real CLI, sizes around
# the 4 KiB frames and 10 MiB, base64, a tar pipe, openssl.cnf-only use, the
# failure matrix (wrong context / keyset, truncation, tampering: non-zero
# exit), rotation, one keyring call per process, and the C EVP probe.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
make_kek("$d/kek");
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/ks.pem");
is($rc, 0, 'keyset generated') or diag $err;
($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/other.pem");
is($rc, 0, 'second keyset generated') or diag $err;

my %ENVK = (KMSENV_KEYSET => "$d/ks.pem", KMSENV_CONTEXT => 'app=test,db=7');

sub enc {
    my ($in, $outf, %o) = @_;
    my @a = ('-kmsenv-aes-256-gcm', '-K', '', ($o{d} ? '-d' : ()),
        ($o{a} ? '-a' : ()), '-in', $in, '-out', $outf);
    return ossl({ env => { %ENVK, %{ $o{env} // {} } } }, 'enc', @a);
}

sub random_file {
    my ($p, $n) = @_;
    open(my $r, '<:raw', '/dev/urandom') or die;
    my $b = '';
    read($r, $b, $n) == $n or die if $n;
    spurt($p, $b);
    return $b;
}

my $seg = 4096;
for my $n (0, 1, $seg - 1, $seg, $seg + 1, 10 * 1024 * 1024) {
    my $pt = random_file("$d/p$n", $n);
    ($rc, $out, $err) = enc("$d/p$n", "$d/c$n");
    is($rc, 0, "enc $n bytes") or diag $err;
    is($err, '', "enc $n bytes: no prompt, no warning");
    ($rc, $out, $err) = enc("$d/c$n", "$d/b$n", d => 1);
    is($rc, 0, "enc -d $n bytes") or diag $err;
    is($err, '', "enc -d $n bytes: no prompt, no warning");
    ok(slurp("$d/b$n") eq $pt, "$n bytes round-trip");
}
my $big = 10 * 1024 * 1024;
my $csize = -s "$d/c$big";
ok($csize < $big + $big / 4096 * 20 + 64, "10 MiB overhead: $csize bytes");

# base64 both ways
($rc, $out, $err) = enc("$d/p4097", "$d/a.b64", a => 1);
is($rc, 0, 'enc -a') or diag $err;
like(slurp("$d/a.b64"), qr/^[A-Za-z0-9+\/=\n]+$/, 'base64 output');
($rc, $out, $err) = enc("$d/a.b64", "$d/a.out", d => 1, a => 1);
is($rc, 0, 'enc -d -a') or diag $err;
ok(slurp("$d/a.out") eq slurp("$d/p4097"), 'base64 round trip');

# tar c | enc | enc -d | tar x
mkdir "$d/tree"; mkdir "$d/tree/sub"; mkdir "$d/untar";
random_file("$d/tree/a", 70000);
random_file("$d/tree/sub/b", 3);
spurt("$d/tree/sub/c", "hello\n");
my $p = join(' ', map { "'$_'" } prov_args());
($rc, $out, $err) = run({ env => { %ENVK, OPENSSL_CONF => '/dev/null' } },
    'sh', '-c',
    "set -e; env -u LD_PRELOAD tar c -C '$d/tree' . | openssl enc $p -kmsenv-aes-256-gcm -K '' "
      . "| openssl enc $p -d -kmsenv-aes-256-gcm -K '' | env -u LD_PRELOAD tar x -C '$d/untar'");
is($rc, 0, 'tar | enc | enc -d | tar x') or diag $err;
ok(slurp("$d/untar/a") eq slurp("$d/tree/a")
      && slurp("$d/untar/sub/b") eq slurp("$d/tree/sub/b")
      && slurp("$d/untar/sub/c") eq "hello\n", 'tree reproduced');

# openssl.cnf only: no -provider flags, keyset= and context= in the config
my $cnf = slurp("$FindBin::Bin/../conf/kmsenv-local.cnf");
my $mod = build_dir() . '/kmsenv.so';
$cnf =~ s/^# module = .*$/module = $mod/m;
$cnf =~ s/^keyring = .*$/keyring = file:$d\/kek/m;
$cnf =~ s/^# keyset = .*$/keyset = $d\/ks.pem/m;
$cnf =~ s/^# context = .*$/context = app=test,db=7/m;
spurt("$d/openssl.cnf", $cnf);
my %cenv = (OPENSSL_CONF => "$d/openssl.cnf", KMSENV_KEYSET => undef,
    KMSENV_CONTEXT => undef);
($rc, $out, $err) = run({ env => \%cenv }, 'openssl', 'enc',
    '-kmsenv-aes-256-gcm', '-K', '', '-in', "$d/p4097", '-out', "$d/cnf.enc");
is($rc, 0, 'openssl.cnf-only enc') or diag $err;
($rc, $out, $err) = run({ env => \%cenv }, 'openssl', 'enc', '-d',
    '-kmsenv-aes-256-gcm', '-K', '', '-in', "$d/c4097", '-out', "$d/cnf.out");
is($rc, 0, 'openssl.cnf-only enc -d of an env-made stream') or diag $err;
ok(slurp("$d/cnf.out") eq slurp("$d/p4097"), 'openssl.cnf-only round trip');
($rc, $out, $err) = run({ env => \%cenv }, 'openssl', 'enc', '-d',
    '-kmsenv-aes-256-gcm', '-K', '', '-in', "$d/cnf.enc", '-out', "$d/cnf.out2");
ok($rc == 0 && slurp("$d/cnf.out2") eq slurp("$d/p4097"), 'and back');

# Failure matrix: every case exits non-zero.
sub dec_fails {
    my ($name, $in, %o) = @_;
    my ($r, undef, $e) = enc($in, "$d/fail.out", d => 1, %o);
    ok($r != 0 && $r < 90, "$name: enc -d fails (exit $r)") or diag $e;
    return $e;
}
my $e = dec_fails('wrong context', "$d/c4097",
    env => { KMSENV_CONTEXT => 'app=test,db=8' });
like($e, qr/authentication/, 'wrong context: error says authentication');
dec_fails('missing context', "$d/c4097", env => { KMSENV_CONTEXT => undef });
dec_fails('wrong keyset', "$d/c4097", env => { KMSENV_KEYSET => "$d/other.pem" });
($rc, $out, $err) = enc("$d/p0", "$d/x", env => { KMSENV_KEYSET => undef });
ok($rc != 0 && $err =~ /no keyset/, 'no keyset: clear error') or diag $err;

# A kmsenv: URI as the keyset is percent-decoded as the kmsenv: store does
# (path and keyring=), with %00 and bad escapes refused.
sub pct { my $s = shift; $s =~ s{([^A-Za-z0-9/._-])}{sprintf('%%%02X', ord $1)}ge; $s }
{
    my $sp = "$d/key dir %";
    mkdir $sp or die "$sp: $!";
    spurt("$sp/ks.pem", slurp("$d/ks.pem"));
    spurt("$sp/k ek", slurp("$d/kek"));
    chmod 0600, "$sp/k ek";
    my $uri = 'kmsenv:' . pct("$sp/ks.pem");
    ok($uri =~ /%20/ && $uri =~ /%25/, "URI with escapes: $uri");
    ($rc, $out, $err) = enc("$d/p4097", "$d/u.enc", env => { KMSENV_KEYSET => $uri });
    is($rc, 0, 'keyset kmsenv: URI with %20 and %25: enc') or diag $err;
    ($rc, $out, $err) = enc("$d/u.enc", "$d/u.out", d => 1,
        env => { KMSENV_KEYSET => $uri . '?keyring=' . pct('file:' . "$sp/k ek") });
    ok($rc == 0 && slurp("$d/u.out") eq slurp("$d/p4097"),
        'and enc -d with a %-encoded ?keyring= round-trips') or diag $err;
    ($rc, $out, $err) = enc("$d/p1", "$d/x", env => { KMSENV_KEYSET => 'kmsenv:' . pct($d) . '/ks%00.pem' });
    ok($rc != 0 && $err =~ /%00 \(a NUL byte\) is not allowed/, '%00 in a keyset URI refused')
        or diag $err;
    ($rc, $out, $err) = enc("$d/p1", "$d/x", env => { KMSENV_KEYSET => 'kmsenv:' . pct($d) . '/ks%zz.pem' });
    ok($rc != 0 && $err =~ /two hex digits/, 'bad escape in a keyset URI refused') or diag $err;
    ($rc, $out, $err) = enc("$d/p1", "$d/x", env => { KMSENV_KEYSET => "kmsenv:$d/ks.pem?keyring=%00" });
    ok($rc != 0 && $err =~ /bad keyring= value: %00/, '%00 in keyring= refused') or diag $err;
}

my $ct = slurp("$d/c$big");
my $small = slurp("$d/c" . ($seg + 1));
# Frame boundaries, by walking the length fields (FORMATS.md §7.1): the
# first frame of `openssl enc` is 4080 bytes (the lag), the others 4096.
sub frames {
    my ($s) = @_;
    my ($pos, @b) = (16);
    while (length($s) - $pos > 32) {
        push @b, $pos;
        $pos += 4 + unpack('N', substr($s, $pos, 4)) + 16;
    }
    return (@b, $pos);    # the last one is the tail's start
}
my @sb = frames($small);
my @bb = frames($ct);
is(scalar(@sb), 3, 'small stream: 2 frames and a tail');
ok($bb[2] - $bb[1] == $bb[3] - $bb[2] && $bb[2] - $bb[1] == $seg + 20,
    'openssl enc frames are 4096 bytes');
my @cuts = (0, 1, 15, 16, 17, length($small) - 1, length($small) - 16,
    length($small) - 17, length($small) - 33,
    map { ($_, $_ + 3, $_ - 2) } @sb);
# frame boundaries of the 10 MiB stream (+/- a few bytes), sampled
for (my $i = 0; $i < @bb; $i += 37) {
    push @cuts, map { "big:$_" } ($bb[$i], $bb[$i] + 3, $bb[$i] - 2);
}
push @cuts, "big:$bb[-1]";
my $bad = 0;
for my $c (@cuts) {
    my ($data, $len) = $c =~ /^big:(\d+)/ ? ($ct, $1) : ($small, $c);
    spurt("$d/t", substr($data, 0, $len));
    my ($r) = enc("$d/t", "$d/t.out", d => 1);
    $bad++ if $r == 0;
}
is($bad, 0, scalar(@cuts) . ' truncations fail');
spurt("$d/t", $small . "x");
($rc) = enc("$d/t", "$d/t.out", d => 1);
isnt($rc, 0, 'extension fails');
$bad = 0;
my @idx = (0 .. 40, map { int(rand(length($small))) } 1 .. 40);
for my $i (@idx) {
    my $t = $small;
    substr($t, $i, 1) = chr(ord(substr($t, $i, 1)) ^ 0x01);
    spurt("$d/t", $t);
    my ($r) = enc("$d/t", "$d/t.out", d => 1);
    $bad++ if $r == 0;
}
is($bad, 0, scalar(@idx) . ' tampered bytes of a small stream fail');
$bad = 0;
for my $k (1 .. 12) {
    my $t = $ct;
    my $i = int(rand(length($t)));
    substr($t, $i, 1) = chr(ord(substr($t, $i, 1)) ^ 0x80);
    spurt("$d/t", $t);
    my ($r) = enc("$d/t", "$d/t.out", d => 1);
    $bad++ if $r == 0;
}
is($bad, 0, '12 sampled tampered bytes of 10 MiB fail');
# reordering two frames of the 4097-byte... use the 10 MiB one: frames 1, 2
{
    my $f = $seg + 20;
    my $t = $ct;
    my $a = $bb[1];
    substr($t, $a, 2 * $f) = substr($ct, $a + $f, $f) . substr($ct, $a, $f);
    spurt("$d/t", $t);
    my ($r) = enc("$d/t", "$d/t.out", d => 1);
    isnt($r, 0, 'reordered frames fail');
    # frame 0 (4080 bytes, checked) and at most 4064 unchecked bytes
    ok(-s "$d/t.out" <= 4080 + 4064, 'reordered: released within the bound')
        or diag -s "$d/t.out";
}
# Above 4 GiB: 4.1 GiB of zeros through a pipe, encrypted and decrypted
# (64-bit byte and frame counters); compared byte for byte with the source.
{
    my $n = 4400 * 1000 * 1000;
    my $e = "openssl enc $p -kmsenv-aes-256-gcm -K ''";
    my ($r, undef, $e2) = run({ env => { %ENVK, OPENSSL_CONF => '/dev/null' } },
        'bash', '-c',
        "set -o pipefail; env -u LD_PRELOAD head -c $n /dev/zero | $e "
          . "| $e -d | env -u LD_PRELOAD cmp - "
          . "<(env -u LD_PRELOAD head -c $n /dev/zero)");
    is($r, 0, '4.4 GB (> 4 GiB) round trip through a pipe') or diag $e2;
}
# A tampered length field: refused above 1 MiB before anything of that frame
# is released (FORMATS.md §7.4).
{
    my $t = $ct;
    substr($t, $bb[0], 1) = chr(ord(substr($t, $bb[0], 1)) | 0x40);
    spurt("$d/t", $t);
    my ($r, undef, $e) = enc("$d/t", "$d/t.out", d => 1);
    isnt($r, 0, 'a tampered frame length fails');
    is(-s "$d/t.out" // 0, 0, 'nothing released for a tampered length')
        or diag -s "$d/t.out";
    like($e, qr/bad length \d+ \(1\.\.1048576/, 'the error states the limit');
}

# Rotation: old streams still decrypt; new ones use version 2.
($rc, $out, $err) = kmsenv_cli('rotate', "$d/ks.pem");
is($rc, 0, 'kmsenv rotate') or diag $err;
($rc, $out, $err) = enc("$d/c4097", "$d/rot.out", d => 1);
ok($rc == 0 && slurp("$d/rot.out") eq slurp("$d/p4097"),
    'a version-1 stream decrypts after rotation') or diag $err;
($rc, $out, $err) = enc("$d/p4097", "$d/v2.enc");
is(unpack('N', substr(slurp("$d/v2.enc"), 1, 4)), 2, 'new stream names version 2');
($rc, $out, $err) = enc("$d/v2.enc", "$d/v2.out", d => 1);
ok($rc == 0 && slurp("$d/v2.out") eq slurp("$d/p4097"), 'version-2 stream decrypts');

# One keyring call per process (10 MiB, one stream), and the C probe: many
# streams in one process, still one call.
unlink "$d/log";
($rc, $out, $err) = enc("$d/p$big", "$d/once.enc",
    env => { KMSENV_DEBUG => "file:$d/log,level:1" });
my @calls = grep { /keyring call/ } split /\n/, slurp("$d/log");
is(scalar(@calls), 1, 'enc: one keyring call per process');
unlink "$d/log";
($rc, $out, $err) = run({ env => { OPENSSL_CONF => '/dev/null',
            KMSENV_DEBUG => "file:$d/log,level:1" } },
    build_dir() . '/enc_probe', build_dir(), "$d/ks.pem", 'app=probe');
is($rc, 0, 'C EVP probe (random updates, exact buffers)') or diag "$out$err";
unlike($out, qr/^not ok/m, 'probe: all ok') or diag $out;
@calls = grep { /keyring call/ } split /\n/, slurp("$d/log");
is(scalar(@calls), 1, 'probe: 24 streams, one keyring call');

done_testing();
