# SPDX-License-Identifier: Apache-2.0
# kmsenv rewrap and inspect on wrapped private keys (FORMATS.md §8): a
# rewrap from one file: KEK to another (and to several) keeps PEM or DER,
# the public header, owner/mode and symlinks, and the key then loads only
# with the new KEK(s) and still serves TLS; the KEK policy and the one
# unwrap hold as for keysets; inspect prints the public header and never a
# secret; rotate/disable/enable/promote say the file is a wrapped key.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Digest::SHA qw(sha256_hex);
use Kmsenv;

my $d = tmpdir();
mkdir "$d/keks";
mkdir "$d/evil";
make_kek("$d/keks/A");
make_kek("$d/keks/B");
make_kek("$d/keks/C");
make_kek("$d/evil/E");
my ($rc, $out, $err);

sub plain { run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', @_) }

# Keyring calls made by one command, from the debug log.
sub calls {
    my ($opt, @cmd) = @_;
    unlink("$d/debug.log");
    my %env = (KMSENV_DEBUG => "file:$d/debug.log,level:2", %{ $opt->{env} // {} });
    my @r = $opt->{cli} ? kmsenv_cli({ env => \%env }, @cmd)
                        : ossl({ env => \%env }, @cmd);
    my $n = () = slurp("$d/debug.log") =~ /keyring call: unwrap/g;
    return ($n, @r);
}

sub pubout {
    my ($f) = @_;
    my ($r, $o, $e) = ossl('pkey', '-in', $f, '-pubout', '-outform', 'DER');
    return $r == 0 ? $o : "load failed: $e";
}

sub header_lines {
    my ($text) = @_;
    return join("\n", grep { /^(type|purpose|created|public key SHA-256): / }
        split /\n/, $text);
}

# Plain keys of each kind, wrapped under A (PEM, and one DER).
my %gen = (
    rsa     => [qw(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)],
    p256    => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)],
    ed25519 => [qw(-algorithm ED25519)],
);
for my $t (sort keys %gen) {
    ($rc, $out, $err) = plain('genpkey', @{ $gen{$t} }, '-out', "$d/$t.key");
    is($rc, 0, "$t: plain key") or diag $err;
    ($rc, $out, $err) = kmsenv_cli('wrap', '--in', "$d/$t.key", '--out',
        "$d/$t.pem", '--keyring', "file:$d/keks/A");
    is($rc, 0, "$t: wrapped under A") or diag $err;
}
($rc, $out, $err) = kmsenv_cli('wrap', '--in', "$d/p256.key", '--out',
    "$d/p256.der", '--keyring', "file:$d/keks/A", '--der');
is($rc, 0, 'p256: wrapped under A as DER') or diag $err;

# --- inspect ---------------------------------------------------------------
{
    ($rc, $out, $err) = plain('pkey', '-in', "$d/p256.key", '-pubout', '-outform', 'DER');
    my $spki = $out;
    my ($n, $r, $o, $e) = calls({ cli => 1 }, 'inspect', "$d/p256.pem");
    is($r, 0, 'inspect a wrapped key') or diag $e;
    is($n, 0, '... without a keyring call');
    like($o, qr/^KMSENV WRAPPED PRIVATE KEY/, '... says what it is');
    like($o, qr/^type: EC prime256v1, 256 bits$/m, '... the type');
    like($o, qr/^purpose: private-key$/m, '... the purpose');
    like($o, qr/^created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, '... when it was made');
    like($o, qr/^public key SHA-256: \Q${\ sha256_hex($spki)}\E$/m,
        '... the SHA-256 of its public key');
    like($o, qr/^key-encryption keys: 1\n  kek 1: file:\Q$d\E\/keks\/A, fingerprint [0-9a-f]{32}$/m,
        '... its KEK');
    # never a secret: not the private scalar, not a PEM private key
    ($rc, my $text) = plain('pkey', '-in', "$d/p256.key", '-text', '-noout');
    my ($priv) = $text =~ /priv:\n((?:\s+[0-9a-f:]+\n)+)/;
    (my $privhex = $priv // 'none') =~ s/[\s:]//g;
    ok(length($privhex) >= 60, 'the plain key\'s private scalar, for comparison');
    unlike(lc($o) =~ s/[\s:]//gr, qr/\Q$privhex\E/, 'inspect shows no private scalar');
    unlike($o . $e, qr/BEGIN .*PRIVATE KEY/, '... and no key block');
    ($r, my $o2, $e) = kmsenv_cli('inspect', "$d/p256.der");
    is($r, 0, 'inspect a DER wrapped key') or diag $e;
    is(header_lines($o2) =~ s/^created: .*\n//mr, header_lines($o) =~ s/^created: .*\n//mr,
        '... same type, purpose and public key as its PEM twin');
    ($r, $o, $e) = kmsenv_cli('inspect', "$d/ed25519.pem");
    like($o, qr/^type: ED25519, 256 bits$/m, 'inspect an Ed25519 key');
    ($r, $o, $e) = kmsenv_cli('inspect', "$d/rsa.pem");
    like($o, qr/^type: RSA, 2048 bits$/m, 'inspect an RSA key');
    # a KEK spec with terminal escapes is shown escaped
    my $evil = "$d/k\e]0:owned\a\e[31mred\r\nx";
    make_kek($evil);
    ($r, $o, $e) = kmsenv_cli('wrap', '--generate', 'p-256', '--out',
        "$d/esc.pem", '--keyring', "file:$evil");
    is($r, 0, 'a key under a KEK whose path holds escapes') or diag $e;
    ($r, $o, $e) = kmsenv_cli('inspect', "$d/esc.pem");
    like($o, qr/k\\x1b\]0:owned\\x07\\x1b\[31mred\\x0d\\x0ax/, 'inspect shows the spec escaped');
    ok(($o . $e) !~ /[\x00-\x08\x0b-\x1f\x7f]/, '... no control bytes');
    # garbage with our label
    spurt("$d/bad.pem", "-----BEGIN KMSENV WRAPPED PRIVATE KEY-----\nBAVLTVNFTg==\n"
        . "-----END KMSENV WRAPPED PRIVATE KEY-----\n");
    ($r, $o, $e) = kmsenv_cli('inspect', "$d/bad.pem");
    isnt($r, 0, 'inspect of a malformed wrapped key fails');
    like($e, qr/cannot read the wrapped private key/, '... saying so');
}

# --- refusals ----------------------------------------------------------------
for my $cmd (['rotate'], ['disable', '--version', '1'], ['enable', '--version', '1'],
             ['promote', '--version', '1']) {
    my $before = slurp("$d/p256.pem");
    ($rc, $out, $err) = kmsenv_cli($cmd->[0], "$d/p256.pem", @{$cmd}[1 .. $#$cmd]);
    isnt($rc, 0, "$cmd->[0] on a wrapped key fails");
    like($err, qr/is a wrapped private key \(KMSENV WRAPPED PRIVATE KEY\), not a keyset/,
        '... saying it is a wrapped private key');
    is(slurp("$d/p256.pem"), $before, '... the file unchanged');
}

# --- rewrap A -> B -------------------------------------------------------------
for my $f ("p256.pem", "p256.der", "rsa.pem", "ed25519.pem") {
    my $path = "$d/$f";
    my $pub = pubout($path);
    ($rc, my $ins) = kmsenv_cli('inspect', $path);
    my $first = substr(slurp($path), 0, 1);
    chmod(0640, $path) or die;
    my ($n, $r, $o, $e) = calls({ cli => 1 }, 'rewrap', $path, '--keyring', "file:$d/keks/B");
    is($r, 0, "$f: rewrap A -> B") or diag $e;
    like($o, qr/rewrap done; wrapped private key under 1 KEK$/m, '... says so');
    is($n, 1, '... one unwrap');
    is(substr(slurp($path), 0, 1), $first, '... same form (PEM or DER)');
    if ($f =~ /pem$/) {
        like(slurp($path), qr/\A-----BEGIN KMSENV WRAPPED PRIVATE KEY-----\n/, '... PEM label');
    }
    is(sprintf('%04o', (stat($path))[2] & 07777), '0640', '... mode kept');
    ($r, $o, $e) = kmsenv_cli('inspect', $path);
    is(header_lines($o), header_lines($ins), '... public header unchanged');
    like($o, qr/kek 1: file:\Q$d\E\/keks\/B,/, '... now under B');
    unlike($o, qr/keks\/A/, '... and no longer under A');
    is(pubout($path), $pub, '... same public key');
}
# Only B unwraps it now.
rename("$d/keks/B", "$d/keks/B.away") or die;
($rc, $out, $err) = ossl('pkey', '-in', "$d/p256.pem", '-noout');
isnt($rc, 0, 'with A but not B: the rewrapped key does not load');
like($err, qr/keks\/B/, '... naming B');
rename("$d/keks/B.away", "$d/keks/B") or die;
rename("$d/keks/A", "$d/keks/A.away") or die;
($rc, $out, $err) = ossl('pkey', '-in', "$d/p256.der", '-noout');
is($rc, 0, 'with B and without A: the rewrapped DER key loads') or diag $err;
# X509_check_private_key and a real handshake with the rewrapped key.
($rc, $out, $err) = ossl('req', '-new', '-x509', '-key', "$d/p256.pem",
    '-subj', '/CN=localhost', '-days', '1', '-out', "$d/p256.crt");
is($rc, 0, 'self-signed certificate from the rewrapped key') or diag $err;
my $port = do {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die;
    my $p = $s->sockport;
    close $s;
    $p;
};
sub serve {
    my ($key, $crt) = @_;
    my $sd = tmpdir();
    my $pid = fork() // die;
    if ($pid == 0) {
        my %e = (san_env(), OPENSSL_CONF => '/dev/null');
        for (keys %e) { if (defined $e{$_}) { $ENV{$_} = $e{$_} } else { delete $ENV{$_} } }
        open(STDIN, '<', '/dev/null') or die;
        open(STDOUT, '>', "$sd/out") or die;
        open(STDERR, '>', "$sd/err") or die;
        alarm(60);
        exec('openssl', 's_server', prov_args(), '-accept', "127.0.0.1:$port",
            '-naccept', 1, '-cert', $crt, '-key', $key, '-www') or die;
    }
    for (1 .. 400) {
        last if slurp("$sd/out") =~ /ACCEPT/ || waitpid($pid, 1) == $pid;
        select(undef, undef, undef, 0.05);
    }
    my ($crc, $o, $e) = run({ env => { OPENSSL_CONF => '/dev/null' },
        stdin => "GET / HTTP/1.0\r\n\r\n" }, 'openssl', 's_client', '-connect',
        "127.0.0.1:$port", '-CAfile', $crt, '-verify_return_error');
    waitpid($pid, 0);
    return ($crc == 0 && $o =~ /Verify return code: 0 \(ok\)/, slurp("$sd/err") . $e);
}
my ($ok, $why) = serve("$d/p256.pem", "$d/p256.crt");
ok($ok, 's_server with the rewrapped key: a verified handshake') or diag $why;
rename("$d/keks/A.away", "$d/keks/A") or die;

# --- several KEKs, symlinks --------------------------------------------------
mkdir "$d/links";
symlink("../rsa.pem", "$d/links/key.pem") or die;
($rc, $out, $err) = kmsenv_cli('rewrap', "$d/links/key.pem", '--keyring',
    "file:$d/keks/A;file:$d/keks/C");
is($rc, 0, 'rewrap through a symlink to A;C') or diag $err;
like($out, qr/under 2 KEKs/, '... two KEKs');
ok(-l "$d/links/key.pem", '... the link stays a link');
($rc, $out) = kmsenv_cli('inspect', "$d/rsa.pem");
like($out, qr/key-encryption keys: 2\n  kek 1: file:\Q$d\E\/keks\/A,.*\n  kek 2: file:\Q$d\E\/keks\/C,/,
    '... the target lists A and C');
for my $gone ('A', 'C') {
    rename("$d/keks/$gone", "$d/keks/$gone.away") or die;
    my ($n, $r, $o, $e) = calls({}, 'pkey', '-in', "$d/rsa.pem", '-noout');
    is($r, 0, "loads without $gone") or diag $e;
    is($n, 1, '... one unwrap');
    rename("$d/keks/$gone.away", "$d/keks/$gone") or die;
}
my @tmp = grep { /^\.kmsenv-/ } do { opendir(my $dh, $d) or die; readdir($dh) };
is("@tmp", '', 'no temp files left');

# --- a combined certificate + key file (nginx, HAProxy) ----------------------
{
    my $c = "$d/combined";
    mkdir $c;
    my $pem_end = '-----END KMSENV WRAPPED PRIVATE KEY-----';
    for my $t (qw(p256 rsa ed25519)) {
        my @gen = $t eq 'p256' ? ('p-256') : $t eq 'rsa' ? ('rsa', '--bits', '2048') : ('ed25519');
        ($rc, $out, $err) = kmsenv_cli('wrap', '--generate', @gen, '--out',
            "$c/$t.pem", '--keyring', "file:$d/keks/A");
        is($rc, 0, "$t: a key under A for a combined file") or diag $err;
        ($rc, $out, $err) = ossl('req', '-new', '-x509', '-key', "$c/$t.pem",
            '-subj', "/CN=$t", '-days', '1', '-out', "$c/$t.crt");
        is($rc, 0, '... its certificate') or diag $err;
        my $crt = slurp("$c/$t.crt");
        (my $key = slurp("$c/$t.pem")) =~ s/\n\z//;
        my $before = "# server key and chain\r\n" . $crt . "\ntext between\n";
        my $after = "\r\n" . $crt . "trailing text, no newline";
        spurt("$c/$t.combo", $before . $key . $after);
        my $pub = pubout("$c/$t.combo");
        unlike($pub, qr/^load failed/, '... openssl loads the key from the combined file');
        chmod(0640, "$c/$t.combo") or die;
        my ($n, $r, $o, $e) = calls({ cli => 1 }, 'rewrap', "$c/$t.combo",
            '--keyring', "file:$d/keks/B");
        is($r, 0, "$t: rewrap the combined file A -> B") or diag $e;
        is($n, 1, '... one unwrap');
        my $now = slurp("$c/$t.combo");
        my $at = index($now, '-----BEGIN KMSENV WRAPPED PRIVATE KEY-----');
        my $to = index($now, $pem_end) + length($pem_end);
        is(substr($now, 0, $at), $before, '... every byte before the key kept');
        is(substr($now, $to), $after, '... every byte after the key kept');
        isnt(substr($now, $at, $to - $at), $key, '... the key block rewritten');
        is(sprintf('%04o', (stat("$c/$t.combo"))[2] & 07777), '0640', '... mode kept');
        ($r, $o, $e) = kmsenv_cli('inspect', "$c/$t.combo");
        like($o, qr/^key-encryption keys: 1\n  kek 1: file:\Q$d\E\/keks\/B,/m,
            '... inspect: now under B') or diag $e;
        rename("$d/keks/A", "$d/keks/A.away") or die;
        is(pubout("$c/$t.combo"), $pub, '... loads with B alone, same public key');
        ($r, $o, $e) = plain('x509', '-in', "$c/$t.combo", '-noout', '-subject');
        like($o, qr/CN\s*=\s*$t/, '... the certificate still reads') or diag $e;
        ($r, my $certpub) = plain('x509', '-in', "$c/$t.combo", '-noout', '-pubkey');
        ($r, $o, $e) = ossl('pkey', '-in', "$c/$t.combo", '-pubout');
        is($o, $certpub, '... the key matches the certificate') or diag $e;
        rename("$d/keks/A.away", "$d/keks/A") or die;
    }
    # Two wrapped keys (or a keyset and a wrapped key) in one file: refused.
    (my $one = slurp("$c/p256.pem")) =~ s/\n\z/\n/;
    ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
        '-pkeyopt', "keyring:file:$d/keks/A", '-out', "$c/ks.pem");
    is($rc, 0, 'a keyset') or diag $err;
    for my $two ([slurp("$c/p256.crt") . $one . slurp("$c/rsa.pem"), 'two wrapped keys'],
        [$one . "text\n" . slurp("$c/ks.pem"), 'a wrapped key and a keyset'])
    {
        spurt("$c/two.pem", $two->[0]);
        my ($n, $r, $o, $e) = calls({ cli => 1 }, 'rewrap', "$c/two.pem",
            '--keyring', "file:$d/keks/B");
        isnt($r, 0, "rewrap of a file with $two->[1] fails");
        like($e, qr/two\.pem: holds more than one kmsenv key .*the file is unchanged/,
            '... saying why');
        is($n, 0, '... before any unwrap');
        is(slurp("$c/two.pem"), $two->[0], '... the file unchanged');
    }
    my @t = grep { /^\.kmsenv-/ } do { opendir(my $dh, $c) or die; readdir($dh) };
    is("@t", '', 'no temp files left');
}

# --- the rewrap keygen (kmsenv-rewrap-key): the type is checked first --------
{
    # What kmsenv rewrap asks the provider; here with the wrong keymgmt.
    sub keyring_calls {
        my ($opt, @cmd) = @_;
        unlink("$d/debug.log");
        my @r = ossl({ env => { KMSENV_DEBUG => "file:$d/debug.log,level:2" } }, @cmd);
        my $n = () = slurp("$d/debug.log") =~ /keyring call: /g;
        return ($n, @r);
    }
    ($rc, $out, $err) = kmsenv_cli('wrap', '--generate', 'p-256', '--out',
        "$d/kg.der", '--der', '--keyring', "file:$d/keks/A");
    is($rc, 0, 'a DER P-256 key under A') or diag $err;
    my $hex = unpack('H*', slurp("$d/kg.der"));
    my @gen = ('-propquery', 'provider=kmsenv', '-pkeyopt', "keyring:file:$d/keks/B",
        '-outform', 'DER', '-out', "$d/kg.out");
    my ($n, $r, $o, $e) = keyring_calls({}, 'genpkey', '-algorithm', 'EC',
        '-pkeyopt', "hexkmsenv-rewrap-key:$hex", @gen);
    is($r, 0, 'rewrap keygen with the EC keymgmt') or diag $e;
    is($n, 2, '... one unwrap and one wrap');
    for my $alg ('ED25519', 'RSA') {
        ($n, $r, $o, $e) = keyring_calls({}, 'genpkey', '-algorithm', $alg,
            '-pkeyopt', "hexkmsenv-rewrap-key:$hex", @gen);
        isnt($r, 0, "the $alg keymgmt refuses to rewrap an EC key");
        like($e, qr/the key to rewrap is a EC key, not $alg/, '... saying why');
        is($n, 0, '... without a keyring call');
    }
    ($n, $r, $o, $e) = keyring_calls({}, 'genpkey', '-algorithm', 'EC',
        '-pkeyopt', 'hexkmsenv-rewrap-key:' . unpack('H*', "\x04\x05hello"), @gen);
    isnt($r, 0, 'a rewrap key that is not a wrapped key is refused');
    like($e, qr/the key to rewrap/, '... saying which');
    is($n, 0, '... without a keyring call');
}

# --- the KEK policy ----------------------------------------------------------
{
    my %pol = (KMSENV_ALLOWED_KEKS => "file:$d/keks/");
    my $before = slurp("$d/ed25519.pem");
    my ($n, $r, $o, $e) = calls({ cli => 1, env => \%pol }, 'rewrap',
        "$d/ed25519.pem", '--keyring', "file:$d/keks/C;file:$d/evil/E");
    isnt($r, 0, 'rewrap to a KEK outside allowed_keks is refused');
    like($e, qr/evil\/E is refused/, '... by the policy');
    like($e, qr/the file is unchanged/, '... and says the file is unchanged');
    is($n, 0, '... before any unwrap');
    is(slurp("$d/ed25519.pem"), $before, '... the file unchanged');
    ($r, $o, $e) = kmsenv_cli({ env => \%pol }, 'rewrap', "$d/ed25519.pem",
        '--keyring', "file:$d/keks/C");
    is($r, 0, 'rewrap within the policy works') or diag $e;
    ($r, $o, $e) = kmsenv_cli('rewrap', "$d/ed25519.pem");
    is($r, 2, 'rewrap without --keyring is a usage error');
}

# --- a rewrapped key is bound to its public key and purpose (§8.2) ------------
{
    # Header of one key, wrap list and seal of another: the KEK context
    # (the public key's hash) no longer matches, so nothing unwraps.
    ($rc, $out, $err) = kmsenv_cli('rewrap', "$d/p256.der", '--keyring', "file:$d/keks/C");
    is($rc, 0, 'rewrap the DER key to C') or diag $err;
    ($rc, $out, $err) = kmsenv_cli('wrap', '--generate', 'p-256', '--out',
        "$d/other.der", '--der', '--keyring', "file:$d/keks/C");
    is($rc, 0, 'another P-256 key under C') or diag $err;
    my ($a, $b) = (slurp("$d/p256.der"), slurp("$d/other.der"));
    # the SPKI (91 bytes for P-256) is at the same place in both
    my $at = index($a, "\x00\x5b\x30\x59");
    ok($at > 0 && index($b, "\x00\x5b\x30\x59") == $at, 'both headers have a P-256 SPKI at the same offset');
    substr($b, $at, 93) = substr($a, $at, 93);
    spurt("$d/swapped.der", $b);
    ($rc, $out, $err) = ossl('pkey', '-in', "$d/swapped.der", '-noout');
    isnt($rc, 0, 'another key\'s wrap list under this public key does not load');
}

done_testing();
