# SPDX-License-Identifier: Apache-2.0
# Wrapped private keys (FORMATS.md §8), beyond the consumers of 20-tls.t:
# every supported size and curve (RSA 3072/4096, P-521, too large refused),
# kmsenv wrap --generate for each type, every input form (PKCS#8 and
# traditional, PEM and DER), the C export paths and public-only import
# (export_probe --wrapped, both provider orders), RSA PKCS#1 v1.5 implicit
# rejection identical to the plain key's, the purpose authenticated in the
# header, and TLS 1.2 with X25519 when kmsenv is listed first. The KEK
# context binding (purpose, public key) is tested at C level in
# test/unit/test_wrapkey.c.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Kmsenv;
use KmsenvTLS;

my $d = tmpdir();
my $B = build_dir();
make_kek("$d/kek");
my @DEF = ('-provider-path', $B, '-provider', 'default', '-provider', 'kmsenv');
my @KMS = ('-provider-path', $B, '-provider', 'kmsenv', '-provider', 'default');
my @ORDERS = ([\@DEF, 'default first', 'def'], [\@KMS, 'kmsenv first', 'kms']);

sub plain { run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', @_) }
sub with  { my $order = shift; my $sub = shift;
    run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', $sub, @$order, @_) }
sub wrap  { kmsenv_cli('wrap', @_, '--keyring', "file:$d/kek") }
sub pubout { my ($key) = @_; my (undef, $p) = plain('pkey', '-in', $key, '-pubout'); $p }

spurt("$d/msg", "attack at dawn\n");

# Signs msg with the wrapped key (dgst, in the given order) and verifies
# with the plain public key; returns (ok, diag).
sub sign_verify {
    my ($order, $wkey, $pub, $md) = @_;
    my @md = $md ? ("-$md") : ();
    my ($rc, $o, $e);
    if ($md) {
        ($rc, $o, $e) = with($order, 'dgst', @md, '-sign', $wkey, '-out', "$d/sig", "$d/msg");
        return (0, "sign: $e") if $rc;
        ($rc, $o, $e) = plain('dgst', @md, '-verify', $pub, '-signature', "$d/sig", "$d/msg");
    } else {    # Ed25519: one-shot
        ($rc, $o, $e) = with($order, 'pkeyutl', '-sign', '-rawin', '-inkey', $wkey,
            '-in', "$d/msg", '-out', "$d/sig");
        return (0, "sign: $e") if $rc;
        ($rc, $o, $e) = plain('pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', $pub,
            '-in', "$d/msg", '-sigfile', "$d/sig");
    }
    return ($rc == 0, "verify: $o$e");
}

# --- 1. sizes and curves ---------------------------------------------------
my %gen = (
    rsa2048 => [qw(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)],
    rsa3072 => [qw(-algorithm RSA -pkeyopt rsa_keygen_bits:3072)],
    rsa4096 => [qw(-algorithm RSA -pkeyopt rsa_keygen_bits:4096)],
    rsapss  => [qw(-algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048)],
    p256    => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)],
    p521    => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-521)],
    ed25519 => [qw(-algorithm ED25519)],
    other   => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)],
);
my %md = (rsa2048 => 'sha256', rsa3072 => 'sha384', rsa4096 => 'sha512',
    rsapss => 'sha256', p256 => 'sha256', p521 => 'sha512', ed25519 => undef);
for my $t (sort keys %gen) {
    my ($rc, $o, $e) = plain('genpkey', @{ $gen{$t} }, '-out', "$d/$t.key");
    is($rc, 0, "$t: plain key") or diag($e);
    plain('pkey', '-in', "$d/$t.key", '-pubout', '-out', "$d/$t.pub");
}
for my $t (qw(rsa3072 rsa4096 p521)) {
    my ($rc, $o, $e) = wrap('--in', "$d/$t.key", '--out', "$d/$t.w.pem");
    is($rc, 0, "$t: kmsenv wrap") or diag($e);
    for my $or (@ORDERS) {
        my ($r2, $p2, $e2) = with($or->[0], 'pkey', '-in', "$d/$t.w.pem", '-pubout');
        ok($r2 == 0 && $p2 eq slurp("$d/$t.pub"), "$t ($or->[1]): loads, -pubout is the plain key's")
          or diag($e2);
        my ($ok, $why) = sign_verify($or->[0], "$d/$t.w.pem", "$d/$t.pub", $md{$t});
        ok($ok, "$t ($or->[1]): dgst -sign with the wrapped key, verified with the plain public key")
          or diag($why);
    }
}
{
    my ($rc, $o, $e) = plain('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4104',
        '-out', "$d/rsa4104.key");
    is($rc, 0, 'rsa4104: plain key') or diag($e);
    ($rc, $o, $e) = wrap('--in', "$d/rsa4104.key", '--out', "$d/rsa4104.w.pem");
    isnt($rc, 0, 'RSA-4104 refused by kmsenv wrap');
    like($e, qr/2048 to 4096 bits.*4104|4104.*2048 to 4096/s, '  the error says which sizes, and this one')
      or diag($e);
    ok(!-e "$d/rsa4104.w.pem", '  nothing written');
}

# kmsenv wrap --generate: each type is made inside the provider, loads and
# signs; its public key is of the asked type
my @gens = (
    ['rsa',           [],                 qr/Public-Key: \(2048 bit\)/, 'sha256'],
    ['rsa',           ['--bits', '3072'], qr/Public-Key: \(3072 bit\)/, 'sha256'],
    ['rsa-pss',       [],                 qr/rsassaPss/,                'sha256'],
    ['ec',            [],                 qr/P-256/,                    'sha256'],
    ['p-256',         [],                 qr/P-256/,                    'sha256'],
    ['p-384',         [],                 qr/P-384/,                    'sha384'],
    ['p-521',         [],                 qr/P-521/,                    'sha512'],
    ['ec',            ['--curve', 'P-521'], qr/P-521/,                  'sha512'],
    ['ed25519',       [],                 qr/ED25519/,                  undef],
);
my $gn = 0;
for my $g (@gens) {
    my ($type, $extra, $want, $md) = @$g;
    my $n = "gen$gn"; $gn++;
    my $what = join(' ', $type, @$extra);
    my ($rc, $o, $e) = wrap('--generate', $type, @$extra, '--out', "$d/$n.w.pem");
    is($rc, 0, "kmsenv wrap --generate $what") or diag($e);
    ($rc, my $pub, $e) = with(\@DEF, 'pkey', '-in', "$d/$n.w.pem", '-pubout');
    is($rc, 0, "  --generate $what: loads") or diag($e);
    spurt("$d/$n.pub", $pub);
    my (undef, $txt) = plain('pkey', '-pubin', '-in', "$d/$n.pub", '-text', '-noout');
    my (undef, $asn) = plain('asn1parse', '-in', "$d/$n.pub");
    like("$txt$asn", $want, "  --generate $what: the public key is of the asked type");
    for my $or (@ORDERS) {
        my ($ok, $why) = sign_verify($or->[0], "$d/$n.w.pem", "$d/$n.pub", $md);
        ok($ok, "  --generate $what ($or->[1]): signs, verified with its public key") or diag($why);
    }
}

# --- 2. input forms --------------------------------------------------------
# Which form a DER key is in: PKCS#8 carries the algorithm OID, a
# traditional key does not.
my $OID_RSA = "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01";
my $OID_EC  = "\x06\x07\x2a\x86\x48\xce\x3d\x02\x01";
my $OID_PSS = "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a";
{
    my @forms = (
        ['rsa2048', 'pkcs8.pem', [qw(pkey)],                               qr/^-----BEGIN PRIVATE KEY-----/],
        ['rsa2048', 'trad.pem',  [qw(rsa -traditional)],                   qr/^-----BEGIN RSA PRIVATE KEY-----/],
        ['rsa2048', 'pkcs8.der', [qw(pkcs8 -topk8 -nocrypt -outform DER)], $OID_RSA],
        ['rsa2048', 'trad.der',  [qw(rsa -traditional -outform DER)],      undef],
        ['p256',    'pkcs8.pem', [qw(pkey)],                               qr/^-----BEGIN PRIVATE KEY-----/],
        ['p256',    'trad.pem',  [qw(ec)],                                 qr/^-----BEGIN EC PRIVATE KEY-----/],
        ['p256',    'pkcs8.der', [qw(pkcs8 -topk8 -nocrypt -outform DER)], $OID_EC],
        ['p256',    'trad.der',  [qw(ec -outform DER)],                    undef],
        ['p521',    'trad.der',  [qw(ec -outform DER)],                    undef],
        ['rsapss',  'pkcs8.der', [qw(pkcs8 -topk8 -nocrypt -outform DER)], $OID_PSS],
    );
    for my $f (@forms) {
        my ($t, $form, $cmd, $check) = @$f;
        my ($sub, @args) = @$cmd;
        my $in = "$d/$t.$form";
        my ($rc, $o, $e) = plain($sub, @args, '-in', "$d/$t.key", '-out', $in);
        is($rc, 0, "$t as $form") or diag($e);
        my $bytes = slurp($in);
        if (ref $check) {
            like($bytes, $check, "  $t.$form is in that form");
        } elsif (defined $check) {
            ok(index($bytes, $check) >= 0, "  $t.$form is PKCS#8 DER (algorithm OID)");
        } elsif ($form eq 'trad.der') {
            ok(index($bytes, $OID_RSA) < 0 && index($bytes, $OID_EC) < 0 && $bytes =~ /^\x30/,
                "  $t.$form is a traditional DER key (no algorithm OID)");
        }
        ($rc, $o, $e) = wrap('--in', $in, '--out', "$in.w.pem");
        is($rc, 0, "  kmsenv wrap --in $t.$form") or diag($e);
        for my $or (@ORDERS) {
            my ($r2, $p2, $e2) = with($or->[0], 'pkey', '-in', "$in.w.pem", '-pubout');
            ok($r2 == 0 && $p2 eq slurp("$d/$t.pub"),
                "  $t.$form wrapped ($or->[1]): loads, -pubout equals the plain key's") or diag($e2);
        }
    }
}

# --- 3. purpose binding --------------------------------------------------
# The purpose is authenticated by the seal: rewritten in a wrapped file, the
# key does not load. (A header rewritten and sealed again with the right
# container key is refused by the KEK context: test/unit/test_wrapkey.c.)
{
    my $der = pem_body(slurp("$d/p256.pkcs8.pem.w.pem"));
    my $i = index($der, "\x0bprivate-key");
    ok($i > 0, 'purpose private-key found in the header');
    (my $bad = $der) =~ s/\x0bprivate-key/\x0bprivate-kez/;
    spurt("$d/purpose.w.pem", pem_wrap('KMSENV WRAPPED PRIVATE KEY', $bad));
    for my $or (@ORDERS) {
        my ($rc, $o, $e) = with($or->[0], 'pkey', '-in', "$d/purpose.w.pem", '-pubout');
        isnt($rc, 0, "purpose rewritten in the header ($or->[1]): refused");
        like($e, qr/tamper|authentic/i, '  as a tamper failure') or diag($e);
    }
}

# --- 4/5/6. the C paths (export_probe --wrapped) -----------------------------
# Each type, both provider orders: no private number by any export path,
# public-only import with selection KEYPAIR, X509_check_private_key, and
# EVP_MD_CTX_copy_ex of a digest-sign context half way.
my %wk = (rsa2048 => "$d/rsa2048.pkcs8.pem.w.pem", p256 => "$d/p256.pkcs8.pem.w.pem",
    p521 => "$d/p521.w.pem");
for my $t (qw(rsapss ed25519)) {
    my ($rc, $o, $e) = wrap('--in', "$d/$t.key", '--out', "$d/$t.w.pem");
    is($rc, 0, "$t: kmsenv wrap") or diag($e);
    $wk{$t} = "$d/$t.w.pem";
}
for my $t (qw(rsa2048 rsapss p256 p521 ed25519 other)) {
    my ($rc, $o, $e) = plain('req', '-new', '-x509', '-key', "$d/$t.key", '-subj', "/CN=$t",
        '-days', '1', '-out', "$d/$t.crt");
    is($rc, 0, "$t: a certificate of the plain key") or diag($e);
}
for my $t (qw(rsa2048 rsapss p256 p521 ed25519)) {
    for my $or (@ORDERS) {
        my ($rc, $out, $err) = run("$B/export_probe", $B, '--wrapped', $or->[2], $wk{$t},
            "$d/$t.key", "$d/$t.crt", "$d/other.crt");
        my $n = 0;
        for my $line (split /\n/, $out) {
            next unless $line =~ /^(not )?ok \d+ - (.*?)(?: # TODO (.*))?$/;
            my ($bad, $name, $todo) = ($1, $2, $3);
            $n++;
            local $TODO = $todo if defined $todo;
            ok(!$bad, "$t ($or->[1]): $name");
        }
        ok($n > 20 && $rc == 0 && $out =~ /^\d+ passed, 0 failed$/m,
            "$t ($or->[1]): export_probe ran every check ($n)") or diag("$rc\n$out\n$err");
    }
}

# --- 7. RSA PKCS#1 v1.5 decryption of invalid ciphertexts ------------------
# OpenSSL 3.2+ (implicit rejection) returns a synthetic plaintext derived
# from the private key and the ciphertext; 3.0 fails with a padding error.
# Whichever this OpenSSL does with the plain key, the wrapped key must do
# exactly the same.
{
    my (undef, $ver) = plain('version');
    my ($maj, $min) = $ver =~ /OpenSSL (\d+)\.(\d+)/;
    my $implicit = $maj > 3 || ($maj == 3 && $min >= 2);
    open(my $r, '<:raw', '/dev/urandom') or die;
    my @cts;
    read($r, my $x, 254);
    push @cts, ['00 01 prefix', "\x00\x01$x"];
    read($r, $x, 254);
    (my $nz = $x) =~ tr/\x00/\x01/;
    push @cts, ['00 02 without a separator', "\x00\x02$nz"];
    read($r, $x, 255);
    substr($x, 0, 1) = "\x03" if substr($x, 0, 1) eq "\x02";    # never valid padding
    push @cts, ['random', "\x00$x"];
    close $r;
    my $errs = sub { join ',', sort $_[0] =~ /rsa routines:[^:]*:([^:\n]+)/g };
    my $i = 0;
    for my $ct (@cts) {
        spurt("$d/bad$i.ct", $ct->[1]);
        for my $opts ([], $implicit ? (['-pkeyopt', 'rsa_pkcs1_implicit_rejection:0']) : ()) {
            my $desc = "$ct->[0]" . (@$opts ? ' (implicit rejection off)' : '');
            my ($prc, $po, $pe) = run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl',
                'pkeyutl', '-decrypt', '-inkey', "$d/rsa2048.key", @$opts, '-in', "$d/bad$i.ct");
            if ($implicit && !@$opts) {
                ok($prc == 0 && length($po) > 0, "plain key: $desc: a synthetic plaintext (implicit rejection)")
                  or diag($pe);
            } else {
                ok($prc != 0 && $po eq '', "plain key: $desc: refused") or diag($pe);
            }
            for my $or (@ORDERS) {
                my ($wrc, $wo, $we) = with($or->[0], 'pkeyutl', '-decrypt', '-inkey',
                    "$d/rsa2048.pkcs8.pem.w.pem", @$opts, '-in', "$d/bad$i.ct");
                ok($wrc == $prc && $wo eq $po && $errs->($we) eq $errs->($pe),
                    "wrapped key ($or->[1]): $desc: the same as the plain key ("
                      . ($prc ? 'error ' . $errs->($pe) : length($po) . ' bytes') . ')')
                  or diag("plain: $prc $pe\nwrapped: $wrc $we");
            }
        }
        $i++;
    }
    # a valid ciphertext still decrypts (control)
    plain('pkeyutl', '-encrypt', '-pubin', '-inkey', "$d/rsa2048.pub", '-in', "$d/msg",
        '-out', "$d/good.ct");
    for my $or (@ORDERS) {
        my ($rc, $o, $e) = with($or->[0], 'pkeyutl', '-decrypt', '-inkey',
            "$d/rsa2048.pkcs8.pem.w.pem", '-in', "$d/good.ct");
        is($o, "attack at dawn\n", "wrapped key ($or->[1]): a valid ciphertext decrypts") or diag($e);
    }
}

# --- 8. TLS 1.2, RSA wrapped key, X25519, kmsenv first ---------------------
sub start_server {
    my ($order, $cert, $key, $n, @extra) = @_;
    return start_s_server(order => $order, cert => $cert, key => $key,
        n => $n, extra => \@extra);
}
sub finish_server { return finish_s_server(@_) }

{
    my ($rc, $o, $e) = with(\@DEF, 'req', '-new', '-x509', '-key', "$d/rsa2048.pkcs8.pem.w.pem",
        '-subj', '/CN=localhost', '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,digitalSignature,keyCertSign,keyEncipherment',
        '-addext', 'subjectAltName=DNS:localhost', '-out', "$d/tls.crt");
    is($rc, 0, 'a certificate signed by the wrapped RSA key') or diag($e);
    for my $or (@ORDERS) {
        my ($pid, $port, $sd) = start_server($or->[0], "$d/tls.crt",
            "$d/rsa2048.pkcs8.pem.w.pem", 2, '-groups', 'X25519');
        for my $cipher ('ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384') {
            my ($crc, $out, $cerr) = run({ env => { OPENSSL_CONF => '/dev/null' },
                    stdin => "GET / HTTP/1.0\r\n\r\n" },
                'openssl', 's_client', '-connect', "127.0.0.1:$port", '-CAfile', "$d/tls.crt",
                '-verify_return_error', '-servername', 'localhost', '-tls1_2',
                '-groups', 'X25519', '-cipher', $cipher);
            ok($crc == 0 && $out =~ /^New, TLSv1\.2, Cipher is \Q$cipher\E/m
                  && $out =~ /(?:Server|Peer) Temp Key: X25519/    # 3.0 | 3.5
                  && $out =~ /Verify return code: 0 \(ok\)/,
                "TLS 1.2 $cipher with X25519, wrapped RSA key ($or->[1])")
              or diag("$out\n$cerr");
        }
        my ($src, $serr) = finish_server($pid, $sd);
        is($src, 0, "  s_server exits cleanly ($or->[1])") or diag($serr);
    }
}

done_testing();
