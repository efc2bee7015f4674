# SPDX-License-Identifier: Apache-2.0
# Loading keysets: special files, kmsenv: URI parsing, no unwrap nobody asked
# for, strict containers and size limit, errors that say what failed, and
# encoders that refuse what a keyset cannot be (password-encrypted, public).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(mkfifo);
use Kmsenv;
use KmsenvTLS;

my $d = tmpdir();
make_kek("$d/kek");
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/k.pem");
is($rc, 0, 'keyset') or BAIL_OUT($err);
my $der = pem_body(slurp("$d/k.pem"));
spurt("$d/k.der", $der);

# Like Kmsenv::ossl, but the command is killed by SIGALRM after $secs (the
# alarm survives exec), so a regression that blocks fails instead of hanging.
my $BOUND = 60;
sub ossl_bounded {
    my ($opt, $sub, @args) = @_;
    my $t = tmpdir();
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my %e = (san_env(), OPENSSL_CONF => '/dev/null', %{ $opt->{env} // {} });
        $ENV{$_} = $e{$_} for keys %e;
        open(STDIN, '<', '/dev/null') or die;
        open(STDOUT, '>', "$t/out") or die;
        open(STDERR, '>', "$t/err") or die;
        alarm($BOUND);
        exec('openssl', $sub, prov_args(), @args) or die "exec: $!";
    }
    waitpid($pid, 0);
    my $r = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my ($o, $e) = (slurp("$t/out"), slurp("$t/err"));
    $r = 97 if $e =~ /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)/;
    return ($r, $o, $e);
}

# Keyring calls made by one command, from the debug log.
sub calls {
    my ($sub, @args) = @_;
    unlink("$d/debug.log");
    my @r = ossl({ env => { KMSENV_DEBUG => "file:$d/debug.log,level:2" } },
        $sub, @args);
    my $n = () = slurp("$d/debug.log") =~ /keyring call: /g;
    return ($n, @r);
}

# --- 1. FIFOs and special files fail fast -----------------------------------
mkfifo("$d/fifo", 0600) or die "mkfifo: $!";
($rc, $out, $err) = ossl_bounded({}, 'pkey', '-in', "kmsenv:$d/fifo", '-noout');
ok($rc != 0 && $rc < 128, 'kmsenv: URI naming a FIFO fails without hanging') or diag "rc=$rc $err";
like($err, qr/key file \Q$d\E\/fifo is not a regular file/, '... saying it is not a regular file');
($rc, $out, $err) = ossl_bounded({}, 'storeutl', "kmsenv:$d/fifo");
ok($rc < 128, 'storeutl on a kmsenv: FIFO returns without hanging') or diag "rc=$rc $err";
like($err, qr/key file \Q$d\E\/fifo is not a regular file/, '... with the error');
($rc, $out, $err) = ossl_bounded({ env => { KMSENV_KEYSET => "$d/fifo" } },
    'pkey', '-in', 'kmsenv:', '-noout');
ok($rc != 0 && $rc < 128, 'a configured default keyset that is a FIFO fails fast') or diag "rc=$rc $err";
like($err, qr/is not a regular file/, '... clearly');
($rc, $out, $err) = ossl_bounded({}, 'pkey', '-in', 'kmsenv:/dev/zero', '-noout');
isnt($rc, 0, 'kmsenv:/dev/zero is refused');
like($err, qr/key file \/dev\/zero is not a regular file/, '... as not a regular file');

# A keyset whose recorded KEK file has been replaced by a FIFO.
make_kek("$d/kekf");
($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kekf", '-out', "$d/f.pem");
is($rc, 0, 'keyset under a KEK file');
unlink("$d/kekf");
mkfifo("$d/kekf", 0600) or die "mkfifo: $!";
($rc, $out, $err) = ossl_bounded({}, 'pkey', '-in', "$d/f.pem", '-noout');
ok($rc != 0 && $rc < 128, 'KEK file replaced by a FIFO: load fails without hanging') or diag "rc=$rc $err";
like($err, qr/\Q$d\E\/kekf.*not a regular file/, '... naming the KEK file');
($rc, $out, $err) = ossl_bounded({}, 'pkey', '-in', "kmsenv:$d/f.pem", '-noout');
ok($rc != 0 && $rc < 128, '... also through kmsenv:') or diag "rc=$rc $err";

# --- 2. kmsenv: URI parsing ---------------------------------------------------
spurt("$d/k.pem.bak", "not a keyset\n");
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem%00.bak", '-noout');
isnt($rc, 0, '%00 in the path does not truncate it (k.pem%00.bak is not k.pem)');
like($err, qr/bad path: %00 \(a NUL byte\) is not allowed/, '... it is refused as a bad URI');
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem?keyring=file:$d/kek%00junk", '-noout');
isnt($rc, 0, '%00 in keyring= is refused');
like($err, qr/bad keyring= value: %00/, '... as a bad URI');
for my $bad ('%zz', '%4', '%') {
    ($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem$bad", '-noout');
    like($err, qr/invalid kmsenv: URI.*must be followed by two hex digits/,
        "invalid escape '$bad' is refused");
}
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem?keyring=file:$d/kek&keyring=file:$d/kek", '-noout');
like($err, qr/keyring= given twice/, 'keyring= given twice is refused');
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/k.pem?keyring=", '-noout');
like($err, qr/keyring= needs a keyring SPEC/, 'empty keyring= is refused');

# '&' and '?' in a path, percent-encoded.
spurt("$d/a&b?.pem", slurp("$d/k.pem"));
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/a%26b%3F.pem", '-noout');
is($rc, 0, '%26 and %3F in a path') or diag $err;

# keyring=A;B is a list: B is used when A cannot unwrap.
make_kek("$d/k1");
make_kek("$d/k2");
($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/k1;file:$d/k2", '-out', "$d/two.pem");
is($rc, 0, 'keyset under two KEKs') or diag $err;
mkdir("$d/moved");
rename("$d/k1", "$d/moved/new1");
rename("$d/k2", "$d/moved/new2");
make_kek("$d/moved/wrong");
my $n;
($n, $rc, $out, $err) = calls('pkey', '-in',
    "kmsenv:$d/two.pem?keyring=file:$d/moved/missing;file:$d/moved/new2", '-noout');
is($rc, 0, 'keyring=MISSING;NEW2 loads through NEW2') or diag $err;
is($n, 1, '... with one keyring call');
($n, $rc, $out, $err) = calls('pkey', '-in',
    "kmsenv:$d/two.pem?keyring=file:$d/moved/wrong;file:$d/moved/new2", '-noout');
is($rc, 0, 'keyring=WRONG;NEW2 loads through NEW2') or diag $err;
is($n, 1, '... with one keyring call (the wrong KEK is skipped by fingerprint)');
($rc, $out, $err) = ossl('pkey', '-in',
    "kmsenv:$d/two.pem?keyring=file:$d/moved/wrong%3Bfile:$d/moved/new2", '-noout');
is($rc, 0, '%3B separates KEKs like ;') or diag $err;
($rc, $out, $err) = ossl('pkey', '-in',
    "kmsenv:$d/two.pem?keyring=file:$d/moved/new2;file:$d/moved/new1", '-noout');
is($rc, 0, 'KEKs in any order') or diag $err;
($rc, $out, $err) = ossl('pkey', '-in',
    "kmsenv:$d/two.pem?keyring=file:$d/moved/wrong;file:$d/moved/missing", '-noout');
isnt($rc, 0, 'no KEK of the list unwraps: fails');
like($err, qr/none of the 2 KEKs of keyring=file:.*could unwrap it/, '... saying so');
like($err, qr/configured file:\Q$d\E\/moved\/wrong is KEK/, '... with each KEK\'s reason');
rename("$d/moved/new2", "$d/moved/n&2");
($rc, $out, $err) = ossl('pkey', '-in',
    "kmsenv:$d/two.pem?keyring=file:$d/moved/missing;file:$d/moved/n%262", '-noout');
is($rc, 0, '%26 inside a keyring spec is a literal &') or diag $err;

# --- 3. No keyring call unless a private key is wanted -----------------------
# OpenSSL 3.0's pkey -pubin asks for a public key only. 3.5's asks its
# decoders for the whole key pair (selection 0x87) and takes the public part
# afterwards (through kmsenv: URIs too): a private key *is* wanted there,
# so one unwrap is right, and writing the (absent) public part is still
# refused.
my ($ossl_minor) = `openssl version` =~ /^OpenSSL 3\.(\d+)/;
for my $f ("$d/k.pem", "$d/k.der", "kmsenv:$d/k.pem", "kmsenv:$d/k.der") {
    ($n) = calls('storeutl', '-certs', $f);
    is($n, 0, "storeutl -certs $f: no keyring call");
    ($n, $rc) = calls('pkey', '-pubin', '-in', $f, '-noout');
    if (($ossl_minor // 0) < 5) {
        isnt($rc, 0, "pkey -pubin -in $f: no public key");
        is($n, 0, '... and no keyring call');
    } else {
        cmp_ok($n, '<=', 1, "pkey -pubin -in $f (OpenSSL 3.$ossl_minor asks for the key pair): at most one keyring call");
        ($n, $rc, $out, $err) = calls('pkey', '-pubin', '-in', $f);
        like($err, qr/no public part/, '... and no public part is written');
    }
    ($n, $rc, $out, $err) = calls('pkey', '-in', $f, '-noout');
    is($rc, 0, "pkey -in $f loads") or diag $err;
    is($n, 1, '... with one keyring call');
    ($n, $rc, $out, $err) = calls('storeutl', $f);
    like($out, qr/Total found: 1/, "storeutl $f (anything) finds the keyset");
    is($n, 1, '... with one keyring call');
}

# --- 4. Strict containers, bounded input -------------------------------------
spurt("$d/trail.der", $der . "\0junk");
for my $f ("$d/trail.der", "kmsenv:$d/trail.der") {
    ($rc, $out, $err) = ossl('pkey', '-in', $f, '-noout');
    isnt($rc, 0, "DER keyset with trailing bytes is refused ($f)");
    like($err, qr/trailing data after the keyset's \d+-byte DER encoding/, '... saying why');
}
# Over 1 MiB: a keyset header declaring more, and the bytes to go with it.
my $big = "\x04\x83\x10\x00\x10" . 'KMSENVKS' . ("\0" x (0x100010 - 8));
spurt("$d/big.der", $big);
spurt("$d/big.pem", pem_wrap('KMSENV KEYSET', $big));
for my $f ("$d/big.der", "$d/big.pem") {
    ($rc, $out, $err) = ossl('pkey', '-in', $f, '-noout');
    isnt($rc, 0, "oversized keyset is refused ($f)");
    like($err, qr/over the input limit of 1048576 bytes/, '... stating the limit');
}
for my $f ("$d/big.der", "$d/big.pem") {
    ($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$f", '-noout');
    like($err, qr/larger than the limit of 1048576/, "kmsenv:$f: refused, stating the limit");
}
# A keyset followed by more than 1 MiB of padding: not silently cut at 1 MiB.
spurt("$d/pad.der", $der . ("\0" x (1024 * 1024)));
($rc, $out, $err) = ossl('pkey', '-in', "$d/pad.der", '-noout');
like($err, qr/trailing data/, 'keyset padded past 1 MiB is refused');

# --- 5. Errors say which check failed -----------------------------------------
my $cut = substr($der, 0, 100);
spurt("$d/t.der", $cut);
spurt("$d/t.pem", pem_wrap('KMSENV KEYSET', $cut));
for my $f ("$d/t.pem", "$d/t.der", "kmsenv:$d/t.pem", "kmsenv:$d/t.der") {
    ($rc, $out, $err) = ossl('pkey', '-in', $f, '-noout');
    isnt($rc, 0, "truncated keyset fails ($f)");
    like($err, qr/keyset truncated: 100 of the \d+ bytes/, '... saying it is truncated');
}
my $x = $der;
substr($x, length($x) - 5, 1) = chr(ord(substr($x, length($x) - 5, 1)) ^ 1);
spurt("$d/x.der", $x);
spurt("$d/x.pem", pem_wrap('KMSENV KEYSET', $x));
for my $f ("$d/x.pem", "$d/x.der", "kmsenv:$d/x.pem", "kmsenv:$d/x.der") {
    ($rc, $out, $err) = ossl('pkey', '-in', $f, '-noout');
    isnt($rc, 0, "tampered keyset fails ($f)");
    like($err, qr/failed authentication/, '... saying authentication failed');
}
spurt("$d/b.pem", "-----BEGIN KMSENV KEYSET-----\nBIIB!!!!Nk\n-----END KMSENV KEYSET-----\n");
for my $f ("$d/b.pem", "kmsenv:$d/b.pem") {
    ($rc, $out, $err) = ossl('pkey', '-in', $f, '-noout');
    isnt($rc, 0, "bad base64 fails ($f)");
    like($err, qr/bad PEM base64 in the "KMSENV KEYSET" block/, '... saying so');
}
(my $noend = slurp("$d/k.pem")) =~ s/-----END.*//s;
spurt("$d/noend.pem", $noend);
($rc, $out, $err) = ossl('pkey', '-in', "$d/noend.pem", '-noout');
like($err, qr/malformed "KMSENV KEYSET" PEM block \(truncated or no END line\)/,
    'PEM without its END line: said so');
# the same for a wrapped private key: the error names its label
spurt("$d/bw.pem", "-----BEGIN KMSENV WRAPPED PRIVATE KEY-----\nBIIB!!!!Nk\n"
    . "-----END KMSENV WRAPPED PRIVATE KEY-----\n");
for my $f ("$d/bw.pem", "kmsenv:$d/bw.pem") {
    ($rc, $out, $err) = ossl('pkey', '-in', $f, '-noout');
    isnt($rc, 0, "wrapped key with bad base64 fails ($f)");
    like($err, qr/bad PEM base64 in the "KMSENV WRAPPED PRIVATE KEY" block/,
        '... naming its block');
}

# --- 6. Encoders refuse what a keyset cannot be -------------------------------
unlink("$d/enc.pem");
($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-aes256', '-passout', 'pass:x',
    '-out', "$d/enc.pem");
isnt($rc, 0, 'pkey -aes256 on a keyset fails');
like($err, qr/cannot be password-encrypted/, '... saying keysets are wrapped, not password-encrypted');
unlike(slurp("$d/enc.pem"), qr/KMSENV KEYSET/, '... and writes no keyset');
($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-out', "$d/plain.pem");
is($rc, 0, 'pkey -out without a cipher still writes the keyset');
is(slurp("$d/plain.pem"), slurp("$d/k.pem"), '... unchanged');
for my $form ('PEM', 'DER') {
    ($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-pubout', '-outform', $form);
    isnt($rc, 0, "pkey -pubout -outform $form fails");
    like($err, qr/a keyset is a symmetric key and has no public part/, '... with a clear error');
    is($out, '', '... writing nothing');
}
($rc, $out, $err) = ossl('pkey', '-in', "$d/k.pem", '-text', '-noout');
like($out, qr/KMSENV-KEYSET keyset/, '-text still shows the metadata');

# A keyset after leading text and other PEM blocks (a certificate bundle
# kept with it) loads through both paths; a file with no keyset block says
# so.
($rc, $out, $err) = run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:P-256', '-nodes', '-keyout', "$d/cert.key", '-subj',
    '/CN=kmsenv-test', '-out', "$d/cert.pem");
is($rc, 0, 'a certificate to keep beside the keyset') or diag $err;
spurt("$d/bundle.pem", "notes about this file\n" . slurp("$d/cert.pem") . slurp("$d/k.pem"));
for my $in ("$d/bundle.pem", "kmsenv:$d/bundle.pem") {
    ($rc, $out, $err) = ossl('pkey', '-in', $in, '-text', '-noout');
    like($out, qr/KMSENV-KEYSET keyset/, "keyset after text and a certificate: $in");
}
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/cert.pem", '-noout');
like($err, qr/neither a DER kmsenv key nor a "KMSENV KEYSET" or "KMSENV WRAPPED PRIVATE KEY" PEM block/,
    'a PEM file with no keyset block says so');

# --- 7. Wrapped private keys through kmsenv: URIs ------------------------------
# The store loads them as keys of their type, one unwrap per load; asked for
# a certificate nothing is read, asked for a public key (OpenSSL 3.0's pkey
# -pubin) the header's public key comes back without an unwrap.
make_kek("$d/wk");
($rc, $out, $err) = kmsenv_cli('wrap', '--generate', 'p-256', '--out', "$d/w.pem",
    '--keyring', "file:$d/wk");
is($rc, 0, 'a wrapped P-256 key') or diag $err;
($rc, $out, $err) = kmsenv_cli('wrap', '--generate', 'ed25519', '--out', "$d/w.der",
    '--der', '--keyring', "file:$d/wk");
is($rc, 0, 'a wrapped Ed25519 key, DER') or diag $err;
for my $w ("$d/w.pem", "$d/w.der") {
    my ($r0, $pub) = ossl('pkey', '-in', $w, '-pubout');
    like($pub, qr/BEGIN PUBLIC KEY/, "$w: public key through the file path");
    my $u = "kmsenv:$w";
    ($n, $rc, $out, $err) = calls('pkey', '-in', $u, '-pubout');
    is($rc, 0, "pkey -in $u -pubout") or diag $err;
    is($out, $pub, '... the public key');
    is($n, 1, '... one keyring call');
    ($n, $rc, $out, $err) = calls('pkey', '-pubin', '-in', $u, '-pubout');
    is($out, $pub, "pkey -pubin -in $u: the public key") or diag $err;
    if (($ossl_minor // 0) < 5) {
        is($n, 0, '... without a keyring call');
    } else {
        cmp_ok($n, '<=', 1, '... at most one keyring call');
    }
    ($n, $rc, $out, $err) = calls('storeutl', '-certs', $u);
    # 3.0 prints "Total found: 0"; 3.5 prints nothing when nothing matched
    ok($rc == 0 && ($out =~ /^Total found: 0$/m || $out eq ''),
        "storeutl -certs $u: nothing") or diag "$rc: $out$err";
    is($n, 0, '... no keyring call');
    ($n, $rc, $out, $err) = calls('storeutl', '-keys', $u);
    like($out, qr/Total found: 1/, "storeutl -keys $u finds the key") or diag $err;
    like($out, qr/BEGIN KMSENV WRAPPED PRIVATE KEY/, '... and writes its wrapped form');
    is($n, 1, '... one keyring call');
    ($n, $rc, $out, $err) = calls('pkey', '-in', $u, '-text', '-noout');
    like($out, qr/kmsenv wrapped (EC|ED25519) key/, "pkey -text $u: an opaque key") or diag $err;
    unlike($out, qr/priv:/, '... no private numbers');
}
# ?keyring= overrides the recorded KEK for wrapped keys too.
mkdir("$d/wmoved");
rename("$d/wk", "$d/wmoved/wk2") or die;
make_kek("$d/wmoved/wrong");
($n, $rc, $out, $err) = calls('pkey', '-in',
    "kmsenv:$d/w.pem?keyring=file:$d/wmoved/wrong;file:$d/wmoved/wk2", '-pubout');
is($rc, 0, 'wrapped key: keyring=WRONG;MOVED loads through MOVED') or diag $err;
is($n, 1, '... with one keyring call');
($rc, $out, $err) = ossl('pkey', '-in', "kmsenv:$d/w.pem", '-noout');
isnt($rc, 0, 'without keyring= the moved KEK is not found');
rename("$d/wmoved/wk2", "$d/wk") or die;
# s_server -key kmsenv:...: one handshake.
($rc, $out, $err) = ossl('req', '-new', '-x509', '-key', "kmsenv:$d/w.pem",
    '-subj', '/CN=localhost', '-days', '1', '-out', "$d/w.crt");
is($rc, 0, 'req -x509 -key kmsenv:') or diag $err;
{
    my ($pid, $port, $sd) = start_s_server(order => [prov_args()],
        cert => "$d/w.crt", key => "kmsenv:$d/w.pem", n => 1, bound => $BOUND,
        env => { KMSENV_DEBUG => "file:$d/sdebug.log,level:2" });
    ($rc, $out, $err) = run({ env => { OPENSSL_CONF => '/dev/null' },
        stdin => "GET / HTTP/1.0\r\n\r\n" }, 'openssl', 's_client', '-connect',
        "127.0.0.1:$port", '-CAfile', "$d/w.crt", '-verify_return_error');
    waitpid($pid, 0);
    like($out, qr/Verify return code: 0 \(ok\)/, 's_server -key kmsenv:...: a verified handshake')
      or diag slurp("$sd/err"), $err;
    my $u = () = slurp("$d/sdebug.log") =~ /keyring call: /g;
    is($u, 1, '... with one keyring call');
}

done_testing();
