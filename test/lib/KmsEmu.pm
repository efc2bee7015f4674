# SPDX-License-Identifier: Apache-2.0
# Loopback AWS KMS emulator for the tests: starter, control-plane client, a
# pure-Perl SigV4 KMS client, the metadata credential servers, test PKI, and
# the small HTTP/1.1 server both emulator scripts are built on.
# See test/kmsemu/README.md for the whole picture.
package KmsEmu;
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use POSIX qw(strftime :sys_wait_h);
use Time::HiRes qw(sleep time);
use Exporter 'import';
use Scalar::Util ();

our @EXPORT_OK = qw(b64 unb64);

my $EMU_DIR = abs_path(dirname(__FILE__) . '/../kmsemu');
my $JSON    = JSON::PP->new->canonical->utf8;

sub b64   { return encode_base64($_[0], '') }
sub unb64 { return decode_base64($_[0]) }

# ---------------------------------------------------------------- PKI

# A test CA, a server certificate for 127.0.0.1 / ::1 / localhost signed by
# it, and an unrelated second CA, all made with the openssl CLI. Keys are
# RSA 2048 like the real KMS endpoints' certificates; key_type => 'ec'
# makes them ECDSA P-256 instead.
sub make_pki {
    my ($dir, %o) = @_;
    make_path($dir);
    my %p = (
        ca       => "$dir/ca.pem",
        ca_key   => "$dir/ca.key",
        cert     => "$dir/server.pem",
        key      => "$dir/server.key",
        other_ca => "$dir/other-ca.pem",
    );
    my $newkey = ($o{key_type} // 'rsa') eq 'ec'
      ? '-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'
      : '-newkey rsa:2048 -nodes';
    _openssl("req -x509 $newkey -keyout $p{ca_key} -out $p{ca} -days 3650"
          . " -subj '/CN=kmsemu test CA'"
          . ' -addext basicConstraints=critical,CA:TRUE'
          . ' -addext keyUsage=critical,keyCertSign,cRLSign');
    _openssl("req -x509 $newkey -keyout $dir/other-ca.key -out $p{other_ca}"
          . " -days 3650 -subj '/CN=kmsemu unrelated CA'"
          . ' -addext basicConstraints=critical,CA:TRUE'
          . ' -addext keyUsage=critical,keyCertSign,cRLSign');
    _openssl("req -new $newkey -keyout $p{key} -out $dir/server.csr"
          . " -subj '/CN=127.0.0.1'");
    _spurt("$dir/server.ext",
            "basicConstraints=CA:FALSE\n"
          . "keyUsage=critical,digitalSignature,keyEncipherment\n"
          . "extendedKeyUsage=serverAuth\n"
          . "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n");
    _openssl("x509 -req -in $dir/server.csr -CA $p{ca} -CAkey $p{ca_key}"
          . " -CAcreateserial -days 3650 -out $p{cert}"
          . " -extfile $dir/server.ext");
    return \%p;
}

sub _openssl {
    my ($args) = @_;
    # Our own config only: a test may point OPENSSL_CONF at the provider.
    my $out = `OPENSSL_CONF=/dev/null openssl $args 2>&1`;
    die "openssl $args failed:\n$out" if $?;
}

# ---------------------------------------------------------------- starter

# Forks and execs a server script in its own process group, then waits for
# its port file and a successful connect. Returns { pid, port }.
sub _spawn_server {
    my (%o) = @_;    # script, args, dir, log, port_file, what
    unlink $o{port_file};
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        # Keep the test's OpenSSL/sanitizer setup away from the server's
        # libssl (it would load the provider under test, or ASan).
        $ENV{OPENSSL_CONF} = '/dev/null';
        delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
              OPENSSL_MODULES SSL_CERT_FILE SSL_CERT_DIR)};
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $o{log}) or POSIX::_exit(111);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(111);
        exec($^X, "$EMU_DIR/$o{script}", @{ $o{args} },
            '--port-file', $o{port_file}, '--parent-pid', $o{parent})
          or POSIX::_exit(112);
    }
    my $deadline = time + 10;
    my $port;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            die "$o{what} exited during start-up (status $?):\n"
              . _slurp($o{log});
        }
        if (-s $o{port_file}) {
            ($port) = _slurp($o{port_file}) =~ /^(\d+)\s*$/;
            if ($port) {
                my $s = IO::Socket::INET->new(
                    PeerAddr => '127.0.0.1', PeerPort => $port,
                    Proto => 'tcp', Timeout => 1);
                if ($s) { close $s; return { pid => $pid, port => $port } }
            }
        }
        sleep 0.02;
    }
    _kill_group($pid);
    die "$o{what} did not come up within 10 s:\n" . _slurp($o{log});
}

# TERM the server's process group (it and its per-connection children),
# then KILL what is left after a short grace period.
sub _kill_group {
    my ($pid) = @_;
    return unless $pid;
    kill 'TERM', -$pid;
    my $deadline = time + 3;
    my $reaped = 0;
    while (time < $deadline) {
        $reaped ||= waitpid($pid, WNOHANG) == $pid;
        last if $reaped && !kill(0, -$pid);
        sleep 0.02;
    }
    kill 'KILL', -$pid;
    waitpid($pid, 0) unless $reaped;
}

# Every server started by this process, so END can stop them even if a
# test dies or forgets.
my %LIVE;
END {
    local $?;
    for my $s (values %LIVE) { $s->stop if $s && $$ == $s->{owner} }
}

sub start {
    my ($class, %o) = @_;
    my $dir = $o{dir} // die "KmsEmu->start: dir required\n";
    make_path($dir);
    $dir = abs_path($dir);
    my $self = bless {
        dir     => $dir,
        region  => $o{region} // 'us-east-1',
        account => $o{account} // '111122223333',
        pki     => $o{pki},
        creds   => [ @{ $o{creds} // [] } ],
        owner   => $$,
    }, $class;
    my @args = ('--state-dir', $dir, '--region', $self->{region},
        '--account', $self->{account});
    if ($o{pki}) {
        push @args, '--tls-cert', $o{pki}{cert}, '--tls-key', $o{pki}{key};
    }
    for my $c (@{ $self->{creds} }) {
        push @args, '--cred',
          join(':', $c->{akid}, $c->{secret},
            defined $c->{token} ? ($c->{token}) : ());
    }
    push @args, '--mrk-seed', $o{mrk_seed} if defined $o{mrk_seed};
    push @args, @{ $o{extra_args} // [] };
    my $r = _spawn_server(
        script    => 'kmsemu.pl',
        args      => \@args,
        log       => "$dir/kmsemu.log",
        port_file => "$dir/port",
        parent    => $$,
        what      => 'kmsemu',
    );
    @$self{qw(pid port)} = @$r{qw(pid port)};
    $LIVE{"$self"} = $self;
    Scalar::Util::weaken($LIVE{"$self"});
    return $self;
}

sub url {
    my ($s) = @_;
    return ($s->{pki} ? 'https' : 'http') . "://127.0.0.1:$s->{port}";
}
sub port    { $_[0]{port} }

# How many requests (or another counter kind) this emulator served for op.
sub count {
    my ($self, $op, $kind) = @_;
    return $self->counters->{ $kind // 'requests' }{$op} // 0;
}

# The environment of a KMS client that sees only the emulator: these access
# keys, no profile, no shared files, no IMDS, the suite's CA, and endpoint
# (a URL or REGION=URL;...). Extra pairs are added last.
sub client_env {
    my (%o) = @_;    # creds, dir, pki, endpoint, extra pairs...
    my ($creds, $dir, $pki, $endpoint) = delete @o{qw(creds dir pki endpoint)};
    return (
        AWS_ACCESS_KEY_ID           => $creds->{akid},
        AWS_SECRET_ACCESS_KEY       => $creds->{secret},
        AWS_SESSION_TOKEN           => undef,
        AWS_PROFILE                 => undef,
        AWS_REGION                  => 'us-east-1',
        AWS_CONFIG_FILE             => "$dir/none",
        AWS_SHARED_CREDENTIALS_FILE => "$dir/none",
        AWS_EC2_METADATA_DISABLED   => 'true',
        AWS_CA_BUNDLE               => $pki->{ca},
        KMSENV_AWS_ENDPOINT         => $endpoint,
        %o,
    );
}
sub region  { $_[0]{region} }
sub account { $_[0]{account} }
sub dir     { $_[0]{dir} }
sub log_file { "$_[0]{dir}/kmsemu.log" }

sub key_arn {
    my ($s, $id) = @_;
    return "arn:aws:kms:$s->{region}:$s->{account}:key/$id";
}

sub stop {
    my ($s) = @_;
    return unless $s->{pid} && $$ == $s->{owner};
    _kill_group($s->{pid});
    delete $s->{pid};
    delete $LIVE{"$s"};
}

sub DESTROY { local ($@, $!, $?); $_[0]->stop }

# ---------------------------------------------------------------- control

# POST /_emu/NAME with a JSON body; dies on anything but a 200.
sub control {
    my ($s, $name, %args) = @_;
    my ($st, $hdr, $body) = http_request(
        url     => $s->url . "/_emu/$name",
        method  => 'POST',
        headers => [ 'Content-Type' => 'application/json' ],
        body    => $JSON->encode(\%args),
        ca      => $s->{pki} ? $s->{pki}{ca} : undef,
    );
    die "kmsemu control $name: transport error: $body\n" unless $st;
    my $j = eval { $JSON->decode($body) };
    die "kmsemu control $name: HTTP $st: $body\n" unless $st == 200 && $j;
    return $j;
}

sub create_key {
    my ($s, %o) = @_;
    return $s->control('create-key',
        multi_region => $o{multi_region} ? JSON::PP::true : JSON::PP::false,
        (defined $o{description} ? (description => $o{description}) : ()));
}
sub replicate     { $_[0]->control('replicate',   key_id => $_[1]) }
sub create_alias  { $_[0]->control('create-alias', alias => $_[1], key_id => $_[2]) }
sub update_alias  { $_[0]->control('update-alias', alias => $_[1], key_id => $_[2]) }
sub disable_key   { $_[0]->control('disable-key', key_id => $_[1]) }
sub enable_key    { $_[0]->control('enable-key',  key_id => $_[1]) }
sub rotate_key    { $_[0]->control('rotate-key',  key_id => $_[1]) }
sub fault         { my $s = shift; $s->control('fault', @_) }
sub clear_faults  { $_[0]->control('clear-faults') }
sub counters      { $_[0]->control('counters') }
sub reset_counters { $_[0]->control('reset-counters') }
sub web_identity  { my $s = shift; $s->control('web-identity', @_) }
sub add_creds     { my $s = shift; $s->control('add-creds', @_) }

# ---------------------------------------------------------------- HTTP client

# One request on a fresh connection. Returns ($status, \%headers, $body);
# headers are lower-cased names (last value wins). On a transport failure
# (refused, reset, closed early, bad TLS) $status is 0 and $body says why;
# a body cut short of its Content-Length is also status 0.
sub http_request {
    my (%o) = @_;
    my ($scheme, $host, $port, $path) =
      $o{url} =~ m{^(https?)://([^/:]+|\[[^\]]+\]):(\d+)(/.*)?$}
      or die "bad url $o{url}\n";
    $path //= '/';
    $host =~ s/^\[|\]$//g;
    my $sock;
    if ($scheme eq 'https') {
        require IO::Socket::SSL;
        $sock = IO::Socket::SSL->new(
            PeerHost => $host, PeerPort => $port, Timeout => $o{timeout} // 10,
            SSL_verify_mode => 1,    # SSL_VERIFY_PEER
            ($o{ca} ? (SSL_ca_file => $o{ca}) : ()),
            SSL_verifycn_name => $host, SSL_verifycn_scheme => 'http',
        ) or return (0, {}, "connect: " . IO::Socket::SSL::errstr());
    } else {
        $sock = IO::Socket::INET->new(
            PeerAddr => $host, PeerPort => $port, Proto => 'tcp',
            Timeout => $o{timeout} // 10,
        ) or return (0, {}, "connect: $!");
    }
    my $raw = $o{raw};    # a complete request, sent verbatim
    unless (defined $raw) {
        my $body = $o{body} // '';
        my @h = @{ $o{headers} // [] };
        my %have;
        for (my $i = 0; $i < @h; $i += 2) { $have{ lc $h[$i] } = 1 }
        unshift @h, Host => "$host:$port" unless $have{host};
        push @h, 'Content-Length' => length $body
          unless $have{'content-length'} || $have{'transfer-encoding'};
        $raw = ($o{method} // 'POST') . " $path HTTP/1.1\r\n";
        while (my ($k, $v) = splice(@h, 0, 2)) { $raw .= "$k: $v\r\n" }
        $raw .= "Connection: close\r\n\r\n" . $body;
    }
    my $deadline = time + ($o{timeout} // 10);
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $raw) {
        my $n = syswrite($sock, $raw, length($raw) - $off, $off);
        return (0, {}, "write: $!") unless $n;
        $off += $n;
    }
    my $buf = '';
    my $err;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $err = 'timeout'; last }
        my $n;
        my $ok = eval {
            local $SIG{ALRM} = sub { die "timeout\n" };
            alarm(int($left) + 1);
            $n = sysread($sock, $buf, 65536, length $buf);
            alarm 0;
            1;
        };
        alarm 0;
        if (!$ok) { $err = 'timeout'; last }
        if (!defined $n) { $err = "read: $!"; last }
        last if $n == 0;
    }
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    # Skip interim 1xx responses.
    while (defined $head && $head =~ m{^HTTP/1\.\d 1\d\d} && defined $body) {
        ($head, $body) = split /\r\n\r\n/, $body, 2;
    }
    if (!defined $head || !defined $body || $head !~ m{^HTTP/1\.\d (\d{3})}) {
        return (0, {}, $err // ($buf eq '' ? 'empty reply (connection closed)'
              : "bad response: $buf"));
    }
    my $status = $1;
    my %h;
    for my $l (split /\r\n/, $head) {
        $h{ lc $1 } = $2 if $l =~ /^([^:]+):\s*(.*?)\s*$/;
    }
    if (defined $h{'content-length'}) {
        if (length($body) < $h{'content-length'}) {
            return (0, \%h, "short body: " . length($body)
                  . " of $h{'content-length'} bytes: $body");
        }
        $body = substr($body, 0, $h{'content-length'});
    }
    return ($status, \%h, $body);
}

# ---------------------------------------------------------------- KMS client

sub _amz_date { strftime('%Y%m%dT%H%M%SZ', gmtime($_[0])) }

# A SigV4-signed KMS call.
# kms($op, \%params, creds => {akid, secret, token}, time => $epoch,
#     region => scope region, service => scope service,
#     signed_headers => [names], unsigned => 1 (no Authorization),
#     body => raw body instead of JSON of \%params, target => X-Amz-Target,
#     headers => [extra name => value], tamper => sub { my ($req) = @_ })
# $req passed to tamper is { method, path, headers => [name => value, ...],
# body } after signing; change it in place to send something else.
# Blobs in %params and in the answer are base64, as on the wire (b64/unb64).
# Returns ($status, $json_or_undef, $raw_body, \%headers); $status 0 means
# no (complete) HTTP response arrived and $raw_body says why.
sub kms {
    my ($s, $op, $params, %o) = @_;
    my $c = $o{creds} // $s->{creds}[0] // die "kms: no credentials\n";
    my $now = $o{time} // time;
    my $body = $o{body} // $JSON->encode($params // {});
    my $hostport = "127.0.0.1:$s->{port}";
    my @h = (
        'Host'         => $hostport,
        'Content-Type' => 'application/x-amz-json-1.1',
        'X-Amz-Target' => $o{target} // "TrentService.$op",
        'X-Amz-Date'   => _amz_date($now),
        (defined $c->{token} ? ('X-Amz-Security-Token' => $c->{token}) : ()),
        @{ $o{headers} // [] },
    );
    unless ($o{unsigned}) {
        push @h, Authorization => sigv4_authorization(
            headers => \@h, body => $body, time => $now, creds => $c,
            region => $o{region} // $s->{region},
            service => $o{service} // 'kms',
            signed_headers => $o{signed_headers},
        );
    }
    my $req = { method => 'POST', path => '/', headers => \@h, body => $body };
    $o{tamper}->($req) if $o{tamper};
    my ($st, $hdr, $raw) = http_request(
        url     => $s->url . $req->{path},
        method  => $req->{method},
        headers => $req->{headers},
        body    => $req->{body},
        ca      => $s->{pki} ? $s->{pki}{ca} : undef,
        timeout => $o{timeout},
    );
    my $j = $st ? eval { $JSON->decode($raw) } : undef;
    $j = undef unless ref $j eq 'HASH';
    return ($st, $j, $raw, $hdr);
}

# The Authorization header for a POST / request with these headers (a flat
# name => value list) and body. Deliberately separate from the emulator's
# verifier: only the simple case (path /, no query) the tests need.
sub sigv4_authorization {
    my (%o) = @_;
    my @h = @{ $o{headers} };
    my %val;
    while (my ($k, $v) = splice(@h, 0, 2)) {
        $v =~ s/^\s+|\s+$//g;
        $v =~ s/\s+/ /g;
        push @{ $val{ lc $k } }, $v;
    }
    my @signed = $o{signed_headers}
      ? map { lc } @{ $o{signed_headers} }
      : grep { $_ eq 'host' || /^x-amz-/ || $_ eq 'content-type' } keys %val;
    @signed = sort @signed;
    my $canon_headers = join '',
      map { "$_:" . join(',', @{ $val{$_} // [] }) . "\n" } @signed;
    my $signed = join ';', @signed;
    my $amz_date = _amz_date($o{time});
    my $date = substr($amz_date, 0, 8);
    my $creq = join "\n", 'POST', '/', '', $canon_headers, $signed,
      sha256_hex($o{body});
    my $scope = "$date/$o{region}/$o{service}/aws4_request";
    my $sts = join "\n", 'AWS4-HMAC-SHA256', $amz_date, $scope,
      sha256_hex($creq);
    my $k = hmac_sha256($date, "AWS4$o{creds}{secret}");
    $k = hmac_sha256($o{region}, $k);
    $k = hmac_sha256($o{service}, $k);
    $k = hmac_sha256('aws4_request', $k);
    my $sig = hmac_sha256_hex($sts, $k);
    return "AWS4-HMAC-SHA256 Credential=$o{creds}{akid}/$scope, "
      . "SignedHeaders=$signed, Signature=$sig";
}

# An STS form POST (unsigned). Returns ($status, $xml_body).
sub sts {
    my ($s, %params) = @_;
    my $body = join '&', map { _form_enc($_) . '=' . _form_enc($params{$_}) }
      sort keys %params;
    my ($st, $hdr, $raw) = http_request(
        url     => $s->url . '/',
        method  => 'POST',
        headers => [ 'Content-Type' =>
              'application/x-www-form-urlencoded; charset=utf-8' ],
        body    => $body,
        ca      => $s->{pki} ? $s->{pki}{ca} : undef,
    );
    return ($st, $raw, $hdr);
}

sub _form_enc {
    my ($v) = @_;
    $v =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ge;
    return $v;
}

sub _slurp {
    my ($p) = @_;
    open(my $f, '<:raw', $p) or return '';
    local $/;
    return scalar(<$f>) // '';
}

sub _spurt {
    my ($p, $d) = @_;
    open(my $f, '>:raw', $p) or die "$p: $!";
    print $f $d;
    close $f or die "$p: $!";
}

# ================================================================ CredServer

package KmsEmu::CredServer;
use strict;
use warnings;
use File::Path qw(make_path);
use Cwd qw(abs_path);

# mode => 'ecs'|'imds', dir, creds => {akid, secret, token},
# auth_token (ecs), expires_in (seconds, default 3600), role_name (imds),
# role_arn (ecs).
sub start {
    my ($class, %o) = @_;
    my $mode = $o{mode} // die "CredServer->start: mode required\n";
    my $dir = $o{dir} // die "CredServer->start: dir required\n";
    make_path($dir);
    $dir = abs_path($dir);
    my $c = $o{creds} // {};
    my @args = ('--mode', $mode, '--state-dir', $dir,
        '--akid', $c->{akid} // 'ASIAEMUCREDSERVER000',
        '--secret', $c->{secret} // 'credserver-secret',
        (defined $c->{token} ? ('--token', $c->{token}) : ()),
        '--expires-in', $o{expires_in} // 3600);
    push @args, '--auth-token', $o{auth_token} if defined $o{auth_token};
    push @args, '--role-name', $o{role_name} if defined $o{role_name};
    push @args, '--role-arn', $o{role_arn} if defined $o{role_arn};
    my $self = bless { dir => $dir, mode => $mode, owner => $$ }, $class;
    my $r = KmsEmu::_spawn_server(
        script    => 'credserver.pl',
        args      => \@args,
        log       => "$dir/credserver.log",
        port_file => "$dir/port",
        parent    => $$,
        what      => "credserver ($mode)",
    );
    @$self{qw(pid port)} = @$r{qw(pid port)};
    $LIVE{"$self"} = $self;
    Scalar::Util::weaken($LIVE{"$self"});
    return $self;
}

sub url  { "http://127.0.0.1:$_[0]{port}" }
sub port { $_[0]{port} }

sub _control {
    my ($s, $method, $name, $args) = @_;
    my ($st, $h, $body) = KmsEmu::http_request(
        url => $s->url . "/_emu/$name", method => $method,
        headers => [ 'Content-Type' => 'application/json' ],
        body => $args ? $JSON->encode($args) : '');
    my $j = $st == 200 ? eval { $JSON->decode($body) } : undef;
    die "credserver $name: HTTP $st: $body\n" unless $j;
    return $j;
}

# { '/path' => n, ... } (control requests not counted)
sub counters       { $_[0]->_control('GET', 'counters') }
sub reset_counters { $_[0]->_control('POST', 'reset-counters', {}) }

# Change the credentials served from now on: akid, secret, token,
# expires_in, and for testing clients' error handling fail => N (the next N
# credential requests get HTTP 500).
sub set_creds { my ($s, %a) = @_; $s->_control('POST', 'set', \%a) }

sub stop {
    my ($s) = @_;
    return unless $s->{pid} && $$ == $s->{owner};
    KmsEmu::_kill_group($s->{pid});
    delete $s->{pid};
    delete $LIVE{"$s"};
}

sub DESTROY { local ($@, $!, $?); $_[0]->stop }

# ================================================================ HTTPD

# The HTTP/1.1 server under kmsemu.pl and credserver.pl: listens on
# 127.0.0.1, forks one process per connection, keep-alive, Content-Length
# or chunked request bodies, Expect: 100-continue, a body size cap.
#
# serve(port_file, port, tls_cert, tls_key, parent_pid, idle_timeout,
#       max_body, handler => sub { my ($req) = @_; return $resp })
# $req = { method, target, path, query, version, headers => [[name, value]],
#          h => { lc name => [values] }, body, tls }
# $resp = { status, reason, headers => [name => value, ...], body }
#      or { reset => 1 }            close the socket (RST) without answering
#      or { raw => $bytes, close => 1 }  send these bytes verbatim
# Every response gets Content-Length; the handler adds everything else.
package KmsEmu::HTTPD;
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(SOL_SOCKET SO_LINGER);
use POSIX qw(:sys_wait_h);
use Fcntl ();

my %REASON = (
    100 => 'Continue', 200 => 'OK', 400 => 'Bad Request',
    401 => 'Unauthorized', 403 => 'Forbidden', 404 => 'Not Found',
    405 => 'Method Not Allowed', 408 => 'Request Timeout',
    413 => 'Request Entity Too Large', 431 => 'Request Header Fields Too Large',
    500 => 'Internal Server Error', 501 => 'Not Implemented',
    503 => 'Service Unavailable',
);

sub serve {
    my (%o) = @_;
    my $ls = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $o{port} // 0,
        Listen => 128, ReuseAddr => 1, Proto => 'tcp',
    ) or die "listen: $!\n";
    my $ctx;
    if ($o{tls_cert}) {
        require IO::Socket::SSL;
        $ctx = IO::Socket::SSL::SSL_Context->new(
            SSL_server => 1,
            SSL_cert_file => $o{tls_cert}, SSL_key_file => $o{tls_key},
        ) or die "TLS setup: " . IO::Socket::SSL::errstr() . "\n";
    }
    my $port = $ls->sockport;
    if ($o{port_file}) {
        open(my $f, '>', "$o{port_file}.tmp") or die "$o{port_file}: $!\n";
        print $f "$port\n";
        close $f;
        rename("$o{port_file}.tmp", $o{port_file}) or die "rename: $!\n";
    }
    $o{on_listen}->($port) if $o{on_listen};

    my %kids;
    my $stop = 0;
    local $SIG{CHLD} = sub {
        while ((my $p = waitpid(-1, WNOHANG)) > 0) { delete $kids{$p} }
    };
    local $SIG{TERM} = sub { $stop = 1 };
    local $SIG{INT}  = sub { $stop = 1 };
    local $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($ls);
    until ($stop) {
        # The starting test died without stopping us: go away too.
        last if $o{parent_pid} && !kill(0, $o{parent_pid});
        next unless $sel->can_read(0.5);
        my $c = $ls->accept or next;
        my $pid = fork();
        if (!defined $pid) { close $c; next }
        if ($pid == 0) {
            $SIG{CHLD} = 'DEFAULT';
            $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };
            close $ls;
            eval { _connection($c, $ctx, \%o) };
            print STDERR "[$$] connection: $@" if $@ && $@ ne "timeout\n";
            POSIX::_exit(0);
        }
        $kids{$pid} = 1;
        close $c;
    }
    # Reap our per-connection children before going: orphans would linger
    # as zombies until init collects them, and the starter waits for the
    # whole process group to be gone.
    local $SIG{CHLD} = 'DEFAULT';
    kill 'TERM', keys %kids;
    my $deadline = time + 2;
    while (%kids && time < $deadline) {
        my $p = waitpid(-1, WNOHANG);
        if ($p > 0) { delete $kids{$p} }
        elsif ($p < 0) { last }
        else { select(undef, undef, undef, 0.01) }
    }
    kill 'KILL', keys %kids;
    1 while waitpid(-1, 0) > 0;
    return 0;
}

sub _connection {
    my ($c, $ctx, $o) = @_;
    if ($ctx) {
        my $ok = eval {
            local $SIG{ALRM} = sub { die "timeout\n" };
            alarm 10;
            my $r = IO::Socket::SSL->start_SSL($c, SSL_server => 1,
                SSL_reuse_ctx => $ctx);
            alarm 0;
            $r;
        };
        alarm 0;
        unless ($ok) {    # e.g. the client does not trust our CA
            my $why = $@ || IO::Socket::SSL::errstr() || 'closed';
            $why =~ s/\s+$//;
            print STDERR "[$$] TLS handshake failed: $why\n";
            return;
        }
    }
    binmode $c;
    my $buf = '';
    my $idle = $o->{idle_timeout} // 30;
    while (1) {
        my $req = _read_request($c, \$buf, $o, $idle) or return;
        my $resp;
        if ($req->{error}) {
            $resp = $req->{error};
            $resp->{close} = 1;
        } else {
            $resp = eval { $o->{handler}->($req) };
            if (!$resp) {
                print STDERR "[$$] handler died: $@";
                $resp = { status => 500, body => "internal error\n",
                    close => 1, headers => [ 'Content-Type' => 'text/plain' ] };
            }
        }
        if ($resp->{reset}) {
            # Linger 0: close() sends a TCP RST, no TLS close_notify.
            setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
            POSIX::_exit(0);
        }
        my $close = $resp->{close} || !$req->{keep_alive};
        my $out = $resp->{raw} // _format($resp, $close);
        _write_all($c, $out) or return;
        return if $close;
    }
}

sub _format {
    my ($r, $close) = @_;
    my $st = $r->{status} // 200;
    my $body = $r->{body} // '';
    my $s = "HTTP/1.1 $st " . ($r->{reason} // $REASON{$st} // 'Status') . "\r\n";
    my @h = @{ $r->{headers} // [] };
    while (my ($k, $v) = splice(@h, 0, 2)) { $s .= "$k: $v\r\n" }
    $s .= 'Content-Length: ' . length($body) . "\r\n";
    $s .= "Connection: close\r\n" if $close;
    return "$s\r\n$body";
}

sub _write_all {
    my ($c, $d) = @_;
    my $off = 0;
    while ($off < length $d) {
        my $n = syswrite($c, $d, length($d) - $off, $off);
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

# More bytes into $$buf: >0 read, 0 EOF, undef error or timeout.
sub _fill {
    my ($c, $buf, $timeout) = @_;
    my $n;
    my $ok = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm $timeout;
        $n = sysread($c, $$buf, 65536, length $$buf);
        alarm 0;
        1;
    };
    alarm 0;
    return $ok ? $n : undef;
}

sub _err {
    my ($st, $msg) = @_;
    return { error => { status => $st, body => "$msg\n",
        headers => [ 'Content-Type' => 'text/plain',
                     'x-amzn-RequestId' => uuid() ] } };
}

# One request from the connection, or undef at EOF/idle timeout, or
# { error => $resp } for a request we refuse (the connection then closes).
sub _read_request {
    my ($c, $buf, $o, $idle) = @_;
    my $max_head = 64 * 1024;
    my $max_body = $o->{max_body} // 1024 * 1024;
    my $end;
    until (($end = index($$buf, "\r\n\r\n")) >= 0) {
        return _err(431, 'request header too large') if length $$buf > $max_head;
        my $n = _fill($c, $buf, length $$buf ? 30 : $idle);
        return undef unless $n;
    }
    my $head = substr($$buf, 0, $end);
    substr($$buf, 0, $end + 4) = '';
    $head =~ s/^(?:\r\n)+//;
    my ($line, @lines) = split /\r\n/, $head;
    my ($method, $target, $version) =
      ($line // '') =~ m{^([A-Z]+) (\S+) HTTP/(1\.[01])$}
      or return _err(400, 'bad request line');
    my (@headers, %h);
    for my $l (@lines) {
        if ($l =~ /^[ \t]/ && @headers) {    # obsolete line folding
            (my $more = $l) =~ s/^\s+//;
            $headers[-1][1] .= " $more";
            $h{ lc $headers[-1][0] }[-1] .= " $more";
            next;
        }
        my ($k, $v) = $l =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*$/
          or return _err(400, 'bad header line');
        push @headers, [ $k, $v ];
        push @{ $h{ lc $k } }, $v;
    }
    my ($path, $query) = $target =~ /^([^?]*)(?:\?(.*))?$/;
    my $conn = lc join(',', @{ $h{connection} // [] });
    my $keep = $version eq '1.1' ? $conn !~ /\bclose\b/ : $conn =~ /keep-alive/;
    my $req = {
        method => $method, target => $target, path => $path,
        query => $query // '', version => $version, headers => \@headers,
        h => \%h, keep_alive => $keep, tls => $c->isa('IO::Socket::SSL'),
    };
    my $te = lc join(',', @{ $h{'transfer-encoding'} // [] });
    my $cl = $h{'content-length'};
    if ($te ne '' && $te ne 'chunked') {
        return _err(501, 'unsupported transfer-encoding');
    }
    if ($cl && ($te ne '' || @$cl > 1 || $cl->[0] !~ /^\d{1,12}$/)) {
        return _err(400, 'bad content-length');
    }
    my $too_big = { error => { status => 413,
        headers => [ 'Content-Type' => 'application/x-amz-json-1.1',
                     'x-amzn-RequestId' => KmsEmu::HTTPD::uuid() ],
        body => '{"__type":"ValidationException","message":'
              . '"Request body exceeds the maximum size of '
              . "$max_body bytes\"}" } };
    return $too_big if $cl && $cl->[0] > $max_body;
    if (lc(join ',', @{ $h{expect} // [] }) eq '100-continue' && $version eq '1.1') {
        _write_all($c, "HTTP/1.1 100 Continue\r\n\r\n") or return undef;
    }
    my $body = '';
    if ($te eq 'chunked') {
        while (1) {
            my $e;
            until (($e = index($$buf, "\r\n")) >= 0) {
                return _err(400, 'bad chunk') if length $$buf > 1024;
                _fill($c, $buf, 30) or return undef;
            }
            my ($size) = substr($$buf, 0, $e) =~ /^([0-9a-fA-F]{1,8})(?:;.*)?$/
              or return _err(400, 'bad chunk size');
            $size = hex $size;
            substr($$buf, 0, $e + 2) = '';
            if ($size == 0) {    # trailers, then an empty line
                while (1) {
                    until (($e = index($$buf, "\r\n")) >= 0) {
                        return _err(400, 'bad trailer') if length $$buf > $max_head;
                        _fill($c, $buf, 30) or return undef;
                    }
                    my $t = substr($$buf, 0, $e);
                    substr($$buf, 0, $e + 2) = '';
                    last if $t eq '';
                }
                last;
            }
            return $too_big if length($body) + $size > $max_body;
            while (length $$buf < $size + 2) {
                _fill($c, $buf, 30) or return undef;
            }
            return _err(400, 'bad chunk end')
              unless substr($$buf, $size, 2) eq "\r\n";
            $body .= substr($$buf, 0, $size);
            substr($$buf, 0, $size + 2) = '';
        }
    } elsif ($cl) {
        my $want = $cl->[0];
        while (length $$buf < $want) {
            _fill($c, $buf, 30) or return undef;
        }
        $body = substr($$buf, 0, $want);
        substr($$buf, 0, $want) = '';
    }
    $req->{body} = $body;
    return $req;
}

my $URANDOM;
# Runs $code->($state) with the JSON state file under an exclusive flock
# (the per-connection server processes share it), and writes it back
# atomically if it changed. $init->() makes the first state.
sub with_state {
    my ($path, $lock, $init, $code) = @_;
    open(my $lk, '>>', $lock) or die "$lock: $!";
    flock($lk, Fcntl::LOCK_EX()) or die "flock: $!";
    my $text = '';
    if (open(my $f, '<:raw', $path)) { local $/; $text = <$f> // '' }
    my $st = $text eq '' ? $init->() : $JSON->decode($text);
    my @r = eval { $code->($st) };
    my $err = $@;
    my $new = $JSON->encode($st);
    if ($new ne $text) {
        open(my $f, '>:raw', "$path.tmp") or die "$path.tmp: $!";
        print $f $new;
        close $f or die "$path.tmp: $!";
        rename("$path.tmp", $path) or die "rename: $!";
    }
    close $lk;
    die $err if $err;
    return wantarray ? @r : $r[0];
}

sub random_bytes {
    my ($n) = @_;
    open($URANDOM, '<:raw', '/dev/urandom') or die "urandom: $!"
      unless $URANDOM;
    my $b = '';
    while (length $b < $n) {
        my $r = sysread($URANDOM, $b, $n - length $b, length $b);
        die "urandom: $!" unless $r;
    }
    return $b;
}

sub uuid {
    my @b = unpack('C16', random_bytes(16));
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    my $h = unpack('H32', pack('C16', @b));
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
      substr($h, 16, 4), substr($h, 20, 12);
}

1;
