# SPDX-License-Identifier: Apache-2.0
# Wrapped private keys used unmodified by real consumers: kmsenv wrap (and
# --generate), openssl pkey (-pubout, -text, the wrapped form written
# back), req (self-signed and CSR), a CA whose key is wrapped (x509 -req
# -CAkey), and s_server + s_client over TLS 1.2 and 1.3 for RSA, RSA-PSS,
# ECDSA P-256/P-384 and Ed25519, in both provider orders; one keyring
# unwrap per server, none per handshake.
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
make_kek("$d/kek2");
my @DEF = ('-provider-path', $B, '-provider', 'default', '-provider', 'kmsenv');
my @KMS = ('-provider-path', $B, '-provider', 'kmsenv', '-provider', 'default');

sub plain { run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', @_) }
sub with  { my $order = shift; my $sub = shift;
    run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', $sub, @$order, @_) }

# key types: name => genpkey args
my %gen = (
    rsa     => [qw(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)],
    rsapss  => [qw(-algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048)],
    p256    => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)],
    p384    => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-384)],
    ed25519 => [qw(-algorithm ED25519)],
);
my @types = qw(rsa rsapss p256 p384 ed25519);

# --- making wrapped keys ---------------------------------------------------
for my $t (@types) {
    my ($rc, $o, $e) = plain('genpkey', @{ $gen{$t} }, '-out', "$d/$t.key");
    is($rc, 0, "$t: plain key") or diag($e);
    ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/$t.key", '--out',
        "$d/$t.w.pem", '--keyring', "file:$d/kek");
    is($rc, 0, "$t: kmsenv wrap") or diag($e);
    my $w = slurp("$d/$t.w.pem");
    like($w, qr/^-----BEGIN KMSENV WRAPPED PRIVATE KEY-----\n/, "$t: wrapped PEM label");
    unlike($w, qr/PRIVATE KEY-----\n.*BEGIN/s, "$t: one block only");
    is((stat("$d/$t.w.pem"))[2] & 0777, 0600, "$t: written mode 0600");
}

# traditional PEM and DER inputs
{
    my ($rc, $o, $e) = plain('ec', '-in', "$d/p256.key", '-out', "$d/trad.pem");
    is($rc, 0, 'traditional EC key');
    like(slurp("$d/trad.pem"), qr/BEGIN EC PRIVATE KEY/, 'it is traditional');
    ($rc, $o, $e) = plain('pkey', '-in', "$d/rsa.key", '-outform', 'DER', '-out', "$d/rsa.der");
    is($rc, 0, 'DER RSA key');
    for my $in ("trad.pem", "rsa.der") {
        ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/$in", '--out', "$d/$in.w.pem",
            '--keyring', "file:$d/kek");
        is($rc, 0, "kmsenv wrap --in $in") or diag($e);
    }
    my ($r1, $p1) = plain('pkey', '-in', "$d/p256.key", '-pubout');
    my ($r2, $p2) = with(\@DEF, 'pkey', '-in', "$d/trad.pem.w.pem", '-pubout');
    is($p2, $p1, 'traditional input: same public key');
}

# refused: unsupported type and size, no keyring, --out over --in
{
    plain('genpkey', '-algorithm', 'ED448', '-out', "$d/ed448.key");
    my ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/ed448.key", '--out', "$d/x.pem",
        '--keyring', "file:$d/kek");
    isnt($rc, 0, 'Ed448 refused');
    plain('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', "$d/r1024.key");
    ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/r1024.key", '--out', "$d/x.pem",
        '--keyring', "file:$d/kek");
    isnt($rc, 0, 'RSA-1024 refused');
    like($e, qr/2048 to 4096 bits/, 'the error says which sizes');
    plain('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1', '-out', "$d/k1.key");
    ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/k1.key", '--out', "$d/x.pem",
        '--keyring', "file:$d/kek");
    isnt($rc, 0, 'secp256k1 refused');
    ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/rsa.key", '--out', "$d/x.pem");
    isnt($rc, 0, 'no keyring: refused');
    like($e, qr/keyring/i, 'the error names the keyring');
    ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/rsa.key", '--out', "$d/rsa.key",
        '--keyring', "file:$d/kek");
    is($rc, 2, '--out over --in refused');
    ok(!-e "$d/x.pem", 'nothing written on failure');
}

# --generate: the key is made inside the provider
for my $g (['ec', 'P-256'], ['p-384', 'P-384'], ['rsa', 'RSA'], ['ed25519', 'ED25519']) {
    my ($rc, $o, $e) = kmsenv_cli('wrap', '--generate', $g->[0], '--out',
        "$d/gen-$g->[0].pem", '--keyring', "file:$d/kek");
    is($rc, 0, "kmsenv wrap --generate $g->[0]") or diag($e);
    ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$d/gen-$g->[0].pem", '-text', '-noout');
    is($rc, 0, "generated $g->[0]: loads") or diag($e);
    like($o, qr/\Q$g->[1]\E|Public-Key|ED25519/i, "generated $g->[0]: of its type");
}

# --- the public part exports, the private part never ----------------------
for my $t (@types) {
    my ($r1, $p1) = plain('pkey', '-in', "$d/$t.key", '-pubout');
    for my $o ([\@DEF, 'default first'], [\@KMS, 'kmsenv first']) {
        my ($rc, $p2, $e) = with($o->[0], 'pkey', '-in', "$d/$t.w.pem", '-pubout');
        is($rc, 0, "$t ($o->[1]): pkey -pubout") or diag($e);
        is($p2, $p1, "$t ($o->[1]): the same public key as the plain key");
    }
    my ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$d/$t.w.pem", '-text', '-noout');
    is($rc, 0, "$t: pkey -text") or diag($e);
    like($o, qr/never shown/, "$t: -text says the private key is wrapped");
    unlike($o, qr/priv(ate)?[-_ ]?(key|Exponent)?:|prime1|exponent1|coefficient/i,
        "$t: -text shows no private numbers");
    ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$d/$t.w.pem");
    is($rc, 0, "$t: pkey writes it") or diag($e);
    is($o, slurp("$d/$t.w.pem"), "$t: pkey writes the wrapped form back");
    ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$d/$t.w.pem", '-traditional');
    unlike($o, qr/BEGIN (RSA |EC )?PRIVATE KEY/, "$t: no plaintext key with -traditional");
}

# --- certificates ----------------------------------------------------------
for my $t (@types) {
    # A self-signed certificate that may act as a CA (OpenSSL 3.5 refuses
    # an issuer without basicConstraints CA:TRUE).
    my ($rc, $o, $e) = with(\@DEF, 'req', '-new', '-x509', '-key', "$d/$t.w.pem",
        '-subj', '/CN=localhost', '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,digitalSignature,keyCertSign',
        '-addext', 'subjectAltName=DNS:localhost',
        '-out', "$d/$t.crt");
    is($rc, 0, "$t: req -x509 with the wrapped key") or diag($e);
    ($rc, $o, $e) = plain('verify', '-CAfile', "$d/$t.crt", "$d/$t.crt");
    is($rc, 0, "$t: its self-signed certificate verifies") or diag($e);
}
{
    my ($rc, $o, $e) = with(\@DEF, 'req', '-new', '-key', "$d/p256.w.pem",
        '-subj', '/CN=csr.example', '-out', "$d/p256.csr");
    is($rc, 0, 'req -new (CSR) with a wrapped key') or diag($e);
    ($rc, $o, $e) = plain('req', '-in', "$d/p256.csr", '-verify', '-noout');
    is($rc, 0, 'the CSR signature verifies') or diag($e);

    # a CA whose key is wrapped signs a leaf; the leaf verifies
    for my $ca (qw(rsa p256)) {
        ($rc, $o, $e) = plain('req', '-new', '-key', "$d/p384.key", '-subj',
            "/CN=leaf-$ca", '-out', "$d/leaf-$ca.csr");
        ($rc, $o, $e) = with(\@DEF, 'x509', '-req', '-in', "$d/leaf-$ca.csr",
            '-CA', "$d/$ca.crt", '-CAkey', "$d/$ca.w.pem", '-CAcreateserial',
            '-days', '1', '-out', "$d/leaf-$ca.crt");
        is($rc, 0, "x509 -req -CAkey wrapped $ca CA key") or diag($e);
        ($rc, $o, $e) = plain('verify', '-CAfile', "$d/$ca.crt", "$d/leaf-$ca.crt");
        is($rc, 0, "the leaf issued by the wrapped $ca CA key verifies") or diag($e);
    }
    # a certificate that is not the key's is refused
    ($rc, $o, $e) = with(\@DEF, 'x509', '-req', '-in', "$d/leaf-rsa.csr",
        '-CA', "$d/p256.crt", '-CAkey', "$d/rsa.w.pem", '-CAcreateserial',
        '-days', '1', '-out', "$d/mismatch.crt");
    isnt($rc, 0, 'CA certificate and wrapped key that do not match: refused');
}

# --- TLS ------------------------------------------------------------------
# s_server serving n connections (KmsenvTLS), then its exit status.
sub start_server {
    my ($order, $cert, $key, $n, $env) = @_;
    return start_s_server(order => $order, cert => $cert, key => $key,
        n => $n, env => $env);
}
sub finish_server { return finish_s_server(@_) }

sub client {
    my ($port, $ca, @args) = @_;
    return run({ env => { OPENSSL_CONF => '/dev/null' }, stdin => "GET / HTTP/1.0\r\n\r\n" },
        'openssl', 's_client', '-connect', "127.0.0.1:$port", '-CAfile', $ca,
        '-verify_return_error', '-servername', 'localhost', @args);
}

# Default first (the recommended order) for every type; kmsenv first for
# RSA, RSA-PSS and Ed25519 over both versions, and EC over TLS 1.3 (with
# kmsenv first, OpenSSL 3.0's libssl drops the P-curves as key exchange
# groups, whose keymgmt fetch then lands on kmsenv, and with them a
# TLS 1.2 ECDSA certificate: see README "Provider order"). OpenSSL 3.5
# keeps them: there EC over TLS 1.2 runs kmsenv first too.
my ($ossl_minor) = `openssl version` =~ /^OpenSSL 3\.(\d+)/;
my $ec12_kms_first = ($ossl_minor // 0) >= 5;
my @runs;
for my $t (@types) {
    push @runs, [$t, \@DEF, 'default first', [qw(-tls1_2 -tls1_3)]];
    push @runs, [$t, \@KMS, 'kmsenv first',
        [$t =~ /^p/ && !$ec12_kms_first ? qw(-tls1_3) : qw(-tls1_2 -tls1_3)]];
}
my $log_n = 0;
for my $r (@runs) {
    my ($t, $order, $oname, $vers) = @$r;
    my $log = "$d/debug-" . $log_n++ . ".log";
    my ($pid, $port, $sd) = start_server($order, "$d/$t.crt", "$d/$t.w.pem",
        2 * @$vers, { KMSENV_DEBUG => "file:$log,level:1" });
    for my $v (@$vers) {
        for my $i (1, 2) {
            my ($rc, $o, $e) = client($port, "$d/$t.crt", $v);
            my $want = $v eq '-tls1_2' ? 'TLSv1.2' : 'TLSv1.3';
            ok($rc == 0 && $o =~ /Verify return code: 0 \(ok\)/ && $o =~ /^New, \Q$want\E, Cipher is /m,
                "$t ($oname): s_server with the wrapped key, $want handshake $i")
              or diag("$o\n$e");
        }
    }
    my ($src, $serr) = finish_server($pid, $sd);
    is($src, 0, "$t ($oname): s_server exits cleanly") or diag($serr);
    my $calls = () = slurp($log) =~ /keyring call: unwrap/g;
    is($calls, 1, "$t ($oname): one keyring unwrap for " . 2 * @$vers . " handshakes");
}

# RSA-PSS signatures with an RSA key, forced on the client
{
    my ($pid, $port, $sd) = start_server(\@DEF, "$d/rsa.crt", "$d/rsa.w.pem", 2);
    my ($rc, $o, $e) = client($port, "$d/rsa.crt", '-tls1_2', '-sigalgs', 'RSA-PSS+SHA256');
    ok($rc == 0 && $o =~ /Peer signature type: (?:RSA-PSS|rsa_pss_rsae_)/, # 3.0 | 3.5 names
       'RSA key: RSA-PSS signature (TLS 1.2)')
      or diag("$o\n$e");
    ($rc, $o, $e) = client($port, "$d/rsa.crt", '-tls1_2', '-sigalgs', 'RSA+SHA256');
    ok($rc == 0 && $o =~ /Peer signature type: (?:RSA\b|rsa_pkcs1_)/, 'RSA key: PKCS#1 v1.5 signature (TLS 1.2)')
      or diag("$o\n$e");
    my ($src, $serr) = finish_server($pid, $sd);
    is($src, 0, 's_server exits cleanly') or diag($serr);
}

# TLS 1.2 RSA key exchange: the premaster is decrypted with the wrapped key
for my $o ([\@DEF, 'default first'], [\@KMS, 'kmsenv first']) {
    my ($pid, $port, $sd) = start_server($o->[0], "$d/rsa.crt", "$d/rsa.w.pem", 1);
    my ($rc, $out, $e) = client($port, "$d/rsa.crt", '-tls1_2', '-cipher', 'AES128-GCM-SHA256');
    ok($rc == 0 && $out =~ /^New, TLSv1\.2, Cipher is AES128-GCM-SHA256/m,
        "RSA key exchange (TLS 1.2) with the wrapped key ($o->[1])") or diag("$out\n$e");
    my ($src, $serr) = finish_server($pid, $sd);
    is($src, 0, 's_server exits cleanly') or diag($serr);
}

# --- operations outside TLS, both orders ----------------------------------
spurt("$d/msg", "attack at dawn\n");
plain('pkey', '-in', "$d/$_.key", '-pubout', '-out', "$d/$_.pub") for @types;
plain('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', "$d/peer.key");
plain('pkey', '-in', "$d/peer.key", '-pubout', '-out', "$d/peer.pub");
for my $o ([\@DEF, 'default first'], [\@KMS, 'kmsenv first']) {
    my $n = $o->[1];
    # RSA decryption: PKCS#1 v1.5 and OAEP (padding forwarded)
    for my $pad ([], ['-pkeyopt', 'rsa_padding_mode:oaep']) {
        plain('pkeyutl', '-encrypt', '-pubin', '-inkey', "$d/rsa.pub", @$pad,
            '-in', "$d/msg", '-out', "$d/ct");
        my ($rc, $out, $e) = with($o->[0], 'pkeyutl', '-decrypt', '-inkey', "$d/rsa.w.pem",
            @$pad, '-in', "$d/ct");
        is($out, "attack at dawn\n", "RSA decrypt @$pad ($n)") or diag($e);
    }
    # ECDH: the same secret as the peer computes
    my ($rc, $s1, $e) = with($o->[0], 'pkeyutl', '-derive', '-inkey', "$d/p256.w.pem",
        '-peerkey', "$d/peer.pub");
    my (undef, $s2) = plain('pkeyutl', '-derive', '-inkey', "$d/peer.key", '-peerkey', "$d/p256.pub");
    ok($rc == 0 && length($s1) == 32 && $s1 eq $s2, "ECDH derive with the wrapped key ($n)")
      or diag($e);
    # RSA-PSS with options, ECDSA, Ed25519: verified with the plain public key
    ($rc, my $out, $e) = with($o->[0], 'dgst', '-sha384', '-sigopt', 'rsa_padding_mode:pss',
        '-sigopt', 'rsa_pss_saltlen:32', '-sign', "$d/rsa.w.pem", '-out', "$d/s.pss", "$d/msg");
    is($rc, 0, "dgst -sign RSA-PSS with -sigopt ($n)") or diag($e);
    ($rc, $out, $e) = plain('dgst', '-sha384', '-sigopt', 'rsa_padding_mode:pss',
        '-sigopt', 'rsa_pss_saltlen:32', '-verify', "$d/rsa.pub", '-signature', "$d/s.pss", "$d/msg");
    is($rc, 0, "  verifies ($n)") or diag($e);
    for my $t (qw(p384 ed25519 rsapss)) {
        my @md = $t eq 'ed25519' ? () : ('-digest', 'sha256');
        ($rc, $out, $e) = with($o->[0], 'pkeyutl', '-sign', '-rawin', @md, '-inkey',
            "$d/$t.w.pem", '-in', "$d/msg", '-out', "$d/s.$t");
        is($rc, 0, "pkeyutl -sign $t ($n)") or diag($e);
        ($rc, $out, $e) = plain('pkeyutl', '-verify', '-rawin', @md, '-pubin', '-inkey',
            "$d/$t.pub", '-in', "$d/msg", '-sigfile', "$d/s.$t");
        is($rc, 0, "  verifies with the plain public key ($n)") or diag("$out$e");
        ($rc, $out, $e) = with($o->[0], 'pkeyutl', '-verify', '-rawin', @md, '-inkey',
            "$d/$t.w.pem", '-in', "$d/msg", '-sigfile', "$d/s.$t");
        is($rc, 0, "  and with the wrapped key ($n)") or diag("$out$e");
    }
    # plain keys still work with kmsenv loaded (a private key is never
    # imported into the opaque keymgmt)
    ($rc, $out, $e) = with($o->[0], 'dgst', '-sha256', '-sign', "$d/rsa.key", '-out',
        "$d/s.plain", "$d/msg");
    is($rc, 0, "a plain RSA key signs ($n)") or diag($e);
    ($rc, $out, $e) = with($o->[0], 'pkeyutl', '-derive', '-inkey', "$d/peer.key",
        '-peerkey', "$d/p256.pub");
    ok($rc == 0 && $out eq $s2, "a plain EC key derives ($n)") or diag($e);
}

# --- no unwrap unless a private key is wanted ------------------------------
{
    my $log = "$d/pub.log";
    my ($rc, $out, $e) = run({ env => { OPENSSL_CONF => '/dev/null',
        KMSENV_DEBUG => "file:$log,level:1" } }, 'openssl', 'pkey', @DEF,
        '-pubin', '-in', "$d/p256.w.pem", '-pubout');
    my ($r1, $p1) = plain('pkey', '-in', "$d/p256.key", '-pubout');
    is($out, $p1, 'pkey -pubin reads the public key of a wrapped key') or diag($e);
    my $calls = () = slurp($log) =~ /keyring call: unwrap/g;
    is($calls, 0, '  without a keyring call');
}

# --- a Python ssl server, configured through OPENSSL_CONF only -------------
SKIP: {
    my ($prc, $pver) = run({ env => { LD_PRELOAD => undef } },
        'python3', '-c', 'import ssl; print(ssl.OPENSSL_VERSION)');
    my ($orc, $over) = plain('version');
    my ($pv) = $pver =~ /OpenSSL (\d+\.\d+)/;
    my ($ov) = $over =~ /OpenSSL (\d+\.\d+)/;
    # python3 is a dependency (scripts/deps.sh): never skipped for want of
    # it. Only the OpenSSL 3.5 leg, whose openssl is not the one python3's
    # ssl module is linked against, skips.
    ok($prc == 0 && defined $pv, 'python3 ssl runs') or diag $pver;
    skip("python3 ssl is on OpenSSL $pv, openssl here is $ov", 6)
      unless defined $pv && defined $ov && $pv eq $ov;
    spurt("$d/py.cnf", <<"CNF");
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
kmsenv = kmsenv_sect
[default_sect]
activate = 1
[kmsenv_sect]
module = $B/kmsenv.so
activate = 1
CNF
    spurt("$d/srv.py", <<'PY');
import socket, ssl, sys
cert, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
for _ in range(n):
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(100)
        t.sendall(b"HTTP/1.0 200 OK\r\n\r\nkmsenv python " + t.version().encode() + b"\n")
        t.unwrap()
        t.close()
    except Exception as e:
        print("ERR", e, flush=True)
        c.close()
PY
    for my $t (qw(p256 rsa ed25519)) {
        my $sd = tmpdir();
        my $pid = fork() // die;
        if ($pid == 0) {
            my %e = (san_env(), OPENSSL_CONF => "$d/py.cnf");
            # the interpreter is not instrumented: only our module is checked
            $e{ASAN_OPTIONS} = 'detect_leaks=0' if exists $e{ASAN_OPTIONS};
            $ENV{$_} = $e{$_} for keys %e;
            open(STDOUT, '>', "$sd/out") or die;
            open(STDERR, '>', "$sd/err") or die;
            alarm(90);
            exec('python3', "$d/srv.py", "$d/$t.crt", "$d/$t.w.pem", 2) or die;
        }
        my $port;
        for (1 .. 400) {
            ($port) = slurp("$sd/out") =~ /^(\d+)$/m;
            last if $port || waitpid($pid, 1) == $pid;
            select(undef, undef, undef, 0.05);
        }
        my @ok;
        for my $v ('-tls1_2', '-tls1_3') {
            my ($rc, $out, $e) = client($port // 1, "$d/$t.crt", $v, '-ign_eof');
            push @ok, $out =~ /kmsenv python TLSv1\.[23]/ && $out =~ /Verify return code: 0/;
        }
        waitpid($pid, 0);
        ok($ok[0], "$t: Python ssl server (load_cert_chain with the wrapped key), TLS 1.2")
          or diag(slurp("$sd/out") . slurp("$sd/err"));
        ok($ok[1], "$t: Python ssl server, TLS 1.3") or diag(slurp("$sd/err"));
    }
}

# --- nginx: master + 2 workers, the key through OPENSSL_CONF only ---------
SKIP: {
    my $nginx = (grep { -x $_ } '/usr/sbin/nginx', '/usr/bin/nginx')[0];
    skip('nginx not installed (scripts/deps.sh installs nginx-light)', 8) unless $nginx;
    for my $t (qw(p256 rsa)) {
        my $nd = tmpdir();
        my $port = free_port();
        spurt("$nd/nginx.conf", <<"CONF");
worker_processes 2;
master_process on;
daemon off;
user root;
pid $nd/nginx.pid;
error_log $nd/error.log notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $nd/tmp_body;
    proxy_temp_path $nd/tmp_proxy;
    fastcgi_temp_path $nd/tmp_fcgi;
    uwsgi_temp_path $nd/tmp_uwsgi;
    scgi_temp_path $nd/tmp_scgi;
    server {
        listen 127.0.0.1:$port ssl reuseport;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $d/$t.crt;
        ssl_certificate_key $d/$t.w.pem;
        location / { return 200 "worker \$pid\\n"; }
    }
}
CONF
        my $log = "$nd/kmsenv.log";
        my $pid = fork() // die;
        if ($pid == 0) {
            my %e = (san_env(), OPENSSL_CONF => "$d/py.cnf",
                KMSENV_DEBUG => "file:$log,level:1");
            $e{ASAN_OPTIONS} = 'detect_leaks=0' if exists $e{ASAN_OPTIONS};
            $ENV{$_} = $e{$_} for keys %e;
            open(STDOUT, '>', "$nd/out") or die;
            open(STDERR, '>', "$nd/err") or die;
            alarm(120);
            exec($nginx, '-p', $nd, '-c', "$nd/nginx.conf", '-e', "$nd/err.log") or die;
        }
        for (1 .. 400) {
            last if (() = slurp("$nd/error.log") =~ /start worker process/g) >= 2;
            last if waitpid($pid, 1) == $pid;
            select(undef, undef, undef, 0.05);
        }
        my (%workers, $good);
        for my $i (1 .. 60) {
            my ($rc, $out, $e) = run({ env => { LD_PRELOAD => undef, OPENSSL_CONF => '/dev/null' } },
                'curl', '-sS', '--cacert', "$d/$t.crt", ($i % 2 ? '--tlsv1.2' : '--tlsv1.3'),
                ($i % 2 ? ('--tls-max', '1.2') : ()),
                '--resolve', "localhost:$port:127.0.0.1", "https://localhost:$port/");
            if ($rc == 0 && $out =~ /^worker (\d+)$/) { $workers{$1}++; $good++ }
            else { diag("curl $i: $rc $out $e") if !$good && $i < 3 }
        }
        is($good, 60, "nginx ($t): 60 HTTPS requests over TLS 1.2 and 1.3 with the wrapped key")
          or diag(slurp("$nd/error.log") . slurp("$nd/err"));
        is(scalar(keys %workers), 2, "nginx ($t): both workers served")
          or diag(join(' ', %workers));
        my $calls = () = slurp($log) =~ /keyring call: unwrap/g;
        is($calls, 1, "nginx ($t): one keyring unwrap (in the master), none per connection");
        kill('QUIT', $pid);
        waitpid($pid, 0);
        unlike(slurp("$nd/error.log") . slurp("$nd/err"), qr/\[(alert|emerg)\]|AddressSanitizer|runtime error/,
            "nginx ($t): no alerts, no sanitizer report");
    }
}

# --- failures name what failed ---------------------------------------------
{
    my ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/p256.key", '--out', "$d/k2.pem",
        '--keyring', "file:$d/kek2");
    is($rc, 0, 'wrapped under a second KEK');
    unlink("$d/kek2");
    ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$d/k2.pem", '-text', '-noout');
    isnt($rc, 0, 'KEK gone: the load fails');
    like($e, qr/kek2/, 'the error names the KEK');
    # a header whose public key was swapped for another key's is refused
    my $a = pem_body(slurp("$d/p256.w.pem"));
    my ($rc2, $pa) = plain('pkey', '-in', "$d/p256.key", '-pubout', '-outform', 'DER');
    my ($rc3, $pb) = plain('pkey', '-in', "$d/trad.pem", '-pubout', '-outform', 'DER');
    plain('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', "$d/other.key");
    my (undef, $pc) = plain('pkey', '-in', "$d/other.key", '-pubout', '-outform', 'DER');
    my $i = index($a, $pa);
    ok($i > 0 && length($pc) == length($pa), 'found the SPKI in the header');
    substr($a, $i, length($pc)) = $pc;
    spurt("$d/swapped.pem", pem_wrap('KMSENV WRAPPED PRIVATE KEY', $a));
    ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$d/swapped.pem", '-text', '-noout');
    isnt($rc, 0, 'public key swapped in the header: refused');
    like($e, qr/unwrap|tamper|authentic/i, 'as an unwrap or tamper failure');
}


# --- openssl genpkey with the kmsenv keymgmt: wrapped at birth ------------
# The key is generated inside the provider and wrapped there; genpkey's
# encoder writes the wrapped form only, so the plaintext never reaches disk.
{
    my $gd = tmpdir();
    my @g = (['p256', 'EC', [qw(-pkeyopt group:P-256)], qr/P-256|prime256v1/],
             ['p384', 'EC', [qw(-pkeyopt ec_paramgen_curve:P-384)], qr/P-384|secp384r1/],
             ['rsa', 'RSA', [qw(-pkeyopt bits:3072)], qr/3072 bit/],
             ['ed25519', 'ED25519', [], qr/ED25519/i]);
    for my $x (@g) {
        my ($n, $alg, $opts, $shape) = @$x;
        my ($rc, $o, $e) = with(\@DEF, 'genpkey', '-propquery', 'provider=kmsenv',
            '-algorithm', $alg, @$opts, '-pkeyopt', "keyring:file:$d/kek",
            '-out', "$gd/$n.pem");
        is($rc, 0, "$n: genpkey -algorithm $alg -propquery provider=kmsenv") or diag($e);
        my $w = slurp("$gd/$n.pem");
        like($w, qr/\A-----BEGIN KMSENV WRAPPED PRIVATE KEY-----\n[^-]+-----END KMSENV WRAPPED PRIVATE KEY-----\n\z/,
            "  $n: the file is one wrapped key");
        unlike("$o$e", qr/PRIVATE KEY/, "  $n: no key on stdout or stderr");
        ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$gd/$n.pem", '-text', '-noout');
        ok($rc == 0 && $o =~ $shape, "  $n: loads, of its type and size") or diag("$o$e");
        my @md = $n eq 'ed25519' ? () : ('-digest', 'sha256');
        ($rc, $o, $e) = with(\@DEF, 'pkey', '-in', "$gd/$n.pem", '-pubout', '-out', "$gd/$n.pub");
        ($rc, $o, $e) = with(\@DEF, 'pkeyutl', '-sign', '-rawin', @md, '-inkey',
            "$gd/$n.pem", '-in', "$d/msg", '-out', "$gd/$n.sig");
        is($rc, 0, "  $n: signs") or diag($e);
        ($rc, $o, $e) = plain('pkeyutl', '-verify', '-rawin', @md, '-pubin', '-inkey',
            "$gd/$n.pub", '-in', "$d/msg", '-sigfile', "$gd/$n.sig");
        is($rc, 0, "  $n: the signature verifies with the plain public key") or diag("$o$e");
    }
    opendir(my $dh, $gd) or die;
    my @files = sort grep { !/^\./ } readdir($dh);
    is_deeply(\@files, [sort map { ("$_->[0].pem", "$_->[0].pub", "$_->[0].sig") } @g],
        'genpkey wrote nothing but the wrapped keys');
    my ($rc, $o, $e) = with(\@DEF, 'genpkey', '-propquery', 'provider=kmsenv',
        '-algorithm', 'EC', '-pkeyopt', 'group:P-256', '-out', "$gd/none.pem");
    isnt($rc, 0, 'genpkey with the kmsenv keymgmt and no keyring: refused');
    like($e, qr/keyring:SPEC/, '  the error says how to give the keyring');
    ok(!-s "$gd/none.pem", '  no key written');
}
# --- per handshake: no fetch, no KMS call ----------------------------------
# An operation on a wrapped key runs on a dup of an inner context the key
# object made once per operation kind (and digest), when the default
# implementation was fetched; KMSENV_DEBUG level 2 traces each one made.
# 24 handshakes with one loaded key make one per kind used, not one each.
for my $t (qw(rsa p256)) {
    my $log = "$d/tmpl-$t.log";
    my @how = $t eq 'rsa'
        ? (['-tls1_3'], ['-tls1_2'], ['-tls1_2', '-cipher', 'AES128-GCM-SHA256'])
        : (['-tls1_3'], ['-tls1_2']);
    my $n = 24;
    my ($pid, $port, $sd) = start_server(\@DEF, "$d/$t.crt", "$d/$t.w.pem", $n,
        { KMSENV_DEBUG => "file:$log,level:2" });
    my $good = 0;
    for my $i (0 .. $n - 1) {
        my ($rc, $o, $e) = client($port, "$d/$t.crt", @{ $how[$i % @how] });
        $good++ if $rc == 0 && $o =~ /Verify return code: 0 \(ok\)/;
    }
    my ($src, $serr) = finish_server($pid, $sd);
    is($good, $n, "$t: $n handshakes with one loaded wrapped key") or diag($serr);
    is($src, 0, "$t: s_server exits cleanly") or diag($serr);
    my $text = slurp($log);
    my %made;
    $made{$1}++ while $text =~ /inner template: (\S+(?: \S+)?) for /g;
    my %kinds;
    $kinds{(split / /)[0]}++ for keys %made;
    ok($kinds{'digest-sign'}, "$t: the signatures ran on a template")
      or diag(join("\n", grep { /inner|unwrap/ } split /\n/, $text));
    ok($t ne 'rsa' || $kinds{decrypt}, "$t: the RSA key exchanges ran on a template");
    is(scalar(grep { $_ != 1 } values %made), 0,
        "$t: each template made once (" . join(', ', sort keys %made) . ")");
    cmp_ok(scalar(keys %made), '<=', 4, "$t: a few templates for $n handshakes, not one each");
    unlike($text, qr/inner context \(no template room\)/, "$t: no operation without a template");
    my $calls = () = $text =~ /keyring call: unwrap/g;
    is($calls, 1, "$t: one keyring unwrap, none per handshake");
}

done_testing();
