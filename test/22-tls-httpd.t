# SPDX-License-Identifier: Apache-2.0
# Apache httpd (Debian's apache2-bin, mod_ssl) serving a KMS-wrapped private
# key, unmodified, configured through OPENSSL_CONF only (default, then
# kmsenv): SSLCertificateKeyFile names the wrapped PEM. mod_ssl loads it
# with SSL_CTX_use_PrivateKey_file in the parent, in post_config, before
# the children fork; httpd runs post_config twice at startup, so a start
# makes exactly two keyring unwraps (both in the parent), a graceful
# restart one more, and no handshake any. Prefork with 2 children serving
# RSA and ECDSA P-256 over TLS 1.2 and 1.3, the event MPM in daemon mode,
# an aws-kms KEK counted at the KMS emulator, and the failures: no kmsenv
# in OPENSSL_CONF, the KEK gone.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Kmsenv;
use KmsenvTLS;
use KmsEmu;

my $httpd = (grep { -x $_ } '/usr/sbin/apache2', '/usr/sbin/httpd')[0];
my $mods  = (grep { -f "$_/mod_ssl.so" } '/usr/lib/apache2/modules',
    '/usr/lib64/httpd/modules', '/usr/lib/httpd/modules')[0];
plan skip_all => 'Apache httpd with mod_ssl not installed (scripts/deps.sh installs apache2-bin)'
  unless $httpd && $mods;

my $d = tmpdir();
my $B = build_dir();
make_kek("$d/kek");
make_kek("$d/kek2");
sub plain { run({ env => { OPENSSL_CONF => '/dev/null' } }, 'openssl', @_) }

my %gen = (
    rsa  => [qw(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)],
    p256 => [qw(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)],
);
for my $t (qw(rsa p256)) {
    my ($rc, $o, $e) = plain('genpkey', @{ $gen{$t} }, '-out', "$d/$t.key");
    is($rc, 0, "$t: plain key") or diag($e);
    ($rc, $o, $e) = plain('req', '-new', '-x509', '-key', "$d/$t.key", '-subj', '/CN=localhost',
        '-days', '2', '-addext', 'subjectAltName=DNS:localhost', '-out', "$d/$t.crt");
    is($rc, 0, "$t: certificate") or diag($e);
    ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/$t.key", '--out', "$d/$t.w.pem",
        '--keyring', "file:$d/kek");
    is($rc, 0, "$t: kmsenv wrap") or diag($e);
}

# The recommended order (README "Provider order", conf/kmsenv-local.cnf),
# and a configuration without kmsenv.
my $provs = "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
  . "[provider_sect]\ndefault = default_sect\n%s[default_sect]\nactivate = 1\n%s";
spurt("$d/kmsenv.cnf", sprintf($provs, "kmsenv = kmsenv_sect\n",
    "[kmsenv_sect]\nmodule = $B/kmsenv.so\nactivate = 1\n"));
spurt("$d/nokmsenv.cnf", sprintf($provs, '', ''));

sub wait_until {
    my ($secs, $cond) = @_;
    for (1 .. $secs * 20) {
        return 1 if $cond->();
        select(undef, undef, undef, 0.05);
    }
    return 0;
}

my %daemons;    # pid files of daemonized servers, killed at the end whatever happens
END { for (keys %daemons) { my ($p) = slurp($_) =~ /(\d+)/; kill('KILL', $p) if $p } }

# Starts httpd; returns a handle: {pid (the exec'd process), dir, port}.
#   key, cert, mpm (prefork|event), conf (OPENSSL_CONF), env, daemon
sub start_httpd {
    my (%o) = @_;
    my $hd = tmpdir();
    chmod(0755, $hd);    # the children (User nobody when run as root) read htdocs
    mkdir("$hd/htdocs") or die;
    spurt("$hd/htdocs/index.html", "kmsenv httpd\n");
    chmod(0644, "$hd/htdocs/index.html");
    my $port = free_port();
    my $mpm = $o{mpm} // 'prefork';
    my $procs = $mpm eq 'prefork'
      ? "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 4\n"
      : "StartServers 2\nServerLimit 2\nThreadsPerChild 4\nMinSpareThreads 2\n"
      . "MaxSpareThreads 8\nMaxRequestWorkers 8\n";
    # As root the children run as an unprivileged user (httpd refuses to
    # serve as root); the key is read by the parent only.
    my $group = (grep { defined getgrnam($_) } qw(nogroup nobody))[0] // 'nobody';
    my $user = $> == 0 ? "User nobody\nGroup $group\n" : '';
    my $load = '';
    for my $m (qw(unixd log_config)) {
        $load .= "<IfModule !${m}_module>\nLoadModule ${m}_module $mods/mod_$m.so\n</IfModule>\n"
          if -f "$mods/mod_$m.so";
    }
    spurt("$hd/httpd.conf", <<"CONF");
ServerRoot $hd
ServerName localhost
DefaultRuntimeDir $hd
PidFile $hd/httpd.pid
ErrorLog $hd/error.log
LogLevel info
LoadModule mpm_${mpm}_module $mods/mod_mpm_$mpm.so
LoadModule ssl_module $mods/mod_ssl.so
LoadModule authz_core_module $mods/mod_authz_core.so
$load$procs$user
Mutex file:$hd default
Listen 127.0.0.1:$port
LogFormat "%P %{SSL_PROTOCOL}x %>s" kmsenv
CustomLog $hd/access.log kmsenv
DocumentRoot $hd/htdocs
<Directory $hd/htdocs>
    Require all granted
</Directory>
SSLEngine on
SSLProtocol -all +TLSv1.2 +TLSv1.3
SSLSessionCache none
SSLCertificateFile $o{cert}
SSLCertificateKeyFile $o{key}
CONF
    $daemons{"$hd/httpd.pid"} = 1 if $o{daemon};
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my %e = (san_env(), OPENSSL_CONF => $o{conf} // "$d/kmsenv.cnf",
            KMSENV_DEBUG => "file:$hd/kmsenv.log,level:1", %{ $o{env} // {} });
        # httpd itself is not instrumented and does not free its pools at
        # exit: only our module's memory errors are checked (as for nginx).
        $e{ASAN_OPTIONS} .= ':detect_leaks=0' if exists $e{ASAN_OPTIONS};
        for (keys %e) { if (defined $e{$_}) { $ENV{$_} = $e{$_} } else { delete $ENV{$_} } }
        # prefork's shutdown signals its whole process group (killpg)
        POSIX::setsid();
        open(STDIN, '<', '/dev/null') or die;
        open(STDOUT, '>', "$hd/out") or die;
        open(STDERR, '>', "$hd/err") or die;
        alarm(240) unless $o{daemon};    # a hung server dies
        exec($httpd, '-f', "$hd/httpd.conf", ($o{daemon} ? () : ('-DFOREGROUND'))) or die;
    }
    my $h = { pid => $pid, dir => $hd, port => $port, daemon => $o{daemon} };
    my $exited = 0;
    wait_until(90, sub {
        return 1 if slurp("$hd/error.log") =~ /resuming normal operations/;
        return $exited = 1 if logs($h) =~ /Configuration Failed/;
        if (!$h->{reaped} && waitpid($pid, POSIX::WNOHANG()) == $pid) {
            $h->{rc} = $? >> 8;
            $h->{reaped} = 1;
            # in daemon mode the process started exits once detached
            return $exited = 1 if !$o{daemon} || $h->{rc} != 0;
        }
        return 0;
    });
    if ($o{daemon}) {    # the exec'd process exits once the daemon is detached
        if (!$h->{reaped}) {
            waitpid($pid, 0);
            $h->{rc} = $? >> 8;
        }
        ($h->{daemon_pid}) = slurp("$hd/httpd.pid") =~ /(\d+)/;
    }
    $h->{up} = !$exited && slurp("$hd/error.log") =~ /resuming normal operations/;
    if (!$h->{up} && !$h->{reaped} && !$o{daemon}) {    # failed: it is exiting
        waitpid($pid, 0);
        $h->{rc} = $? >> 8;
        $h->{reaped} = 1;
    }
    return $h;
}

sub server_pid { my ($h) = @_; return $h->{daemon} ? $h->{daemon_pid} : $h->{pid} }

sub stop_httpd {
    my ($h) = @_;
    my $p = server_pid($h) or return;
    return if $h->{reaped} && !$h->{daemon};
    kill('TERM', $p);
    if ($h->{daemon}) {
        # gone, or a zombie of whoever reaps orphans
        wait_until(60, sub { !kill(0, $p) || slurp("/proc/$p/stat") =~ /^\d+ \(.*\) Z/ })
          or kill('KILL', $p);
        delete $daemons{"$h->{dir}/httpd.pid"};
    } else {
        wait_until(60, sub { waitpid($p, POSIX::WNOHANG()) != 0 }) or do {
            kill('KILL', $p);
            waitpid($p, 0);
        };
        $h->{rc} = $? >> 8;
    }
}

sub logs { my ($h) = @_; return join('', map { slurp("$h->{dir}/$_") } qw(error.log err out)) }

# n HTTPS requests with curl, alternately TLS 1.2 and 1.3; returns how
# many got the page.
sub requests {
    my ($h, $ca, $n) = @_;
    my $good = 0;
    for my $i (1 .. $n) {
        my ($rc, $out, $e) = run({ env => { LD_PRELOAD => undef, OPENSSL_CONF => '/dev/null' } },
            'curl', '-sS', '--cacert', $ca,
            ($i % 2 ? ('--tlsv1.2', '--tls-max', '1.2') : ('--tlsv1.3')),
            '--resolve', "localhost:$h->{port}:127.0.0.1", "https://localhost:$h->{port}/index.html");
        if ($rc == 0 && $out eq "kmsenv httpd\n") { $good++ }
        elsif ($good == 0 && $i < 3) { diag("curl $i: rc $rc $out$e") }
    }
    return $good;
}

# The access log: {pid => count}, {protocol => count}, statuses other than 200
sub access {
    my ($h) = @_;
    my (%pids, %proto, $bad);
    for (split /\n/, slurp("$h->{dir}/access.log")) {
        my ($p, $v, $s) = split / /;
        $pids{$p}++;
        $proto{$v}++;
        $bad++ if $s ne '200';
    }
    return (\%pids, \%proto, $bad // 0);
}

# keyring unwraps in the KMSENV_DEBUG log: {pid => count}
sub unwraps {
    my ($h) = @_;
    my %u;
    my $log = slurp("$h->{dir}/kmsenv.log");
    $u{$1}++ while $log =~ /^kmsenv\[(\d+)\]: keyring call: unwrap/mg;
    return \%u;
}
sub total { my $n = 0; $n += $_ for values %{ $_[0] }; return $n }

sub clean_logs {
    my ($h, $what) = @_;
    my $l = logs($h);
    unlike($l, qr/AddressSanitizer|LeakSanitizer|runtime error:/, "$what: no sanitizer report");
    unlike($l, qr/\[\w*:?(emerg|alert|crit)\]/, "$what: no emerg/alert/crit in the error log");
}

# --- prefork, 2 children, RSA and ECDSA P-256, TLS 1.2 and 1.3 ------------
my $N = 60;
for my $t (qw(rsa p256)) {
    my $h = start_httpd(key => "$d/$t.w.pem", cert => "$d/$t.crt");
    ok($h->{up}, "$t: httpd (prefork) starts with SSLCertificateKeyFile = the wrapped key")
      or diag(logs($h));
    SKIP: {
        skip("httpd did not start", $t eq 'p256' ? 13 : 9) unless $h->{up};
        my $u = unwraps($h);
        is(total($u), 2, "$t: two keyring unwraps at startup (httpd runs post_config twice)");
        is_deeply([keys %$u], [$h->{pid}], "$t: both in the parent, before the children fork");
        is(requests($h, "$d/$t.crt", $N), $N, "$t: $N HTTPS requests over TLS 1.2 and 1.3")
          or diag(logs($h));
        my ($pids, $proto, $bad) = access($h);
        is($proto->{'TLSv1.2'} // 0, $N / 2, "$t: half of them TLS 1.2 (server side)");
        is($proto->{'TLSv1.3'} // 0, $N / 2, "$t: half TLS 1.3");
        is($bad, 0, "$t: all answered 200");
        cmp_ok(scalar(keys %$pids), '>=', 2, "$t: more than one child served")
          or diag(explain($pids));
        ok(keys(%$pids) >= 1 && !exists $pids->{ $h->{pid} }, "$t: children, not the parent, served");
        is(total(unwraps($h)), 2, "$t: no keyring call per handshake");
        note("$t: children seen: " . join(', ', map { "$_=$pids->{$_}" } sort keys %$pids));

        if ($t eq 'p256') {
            # a graceful restart re-reads the configuration (and the key) once
            my $before = $pids;
            kill('USR1', $h->{pid});
            wait_until(60, sub { (() = slurp("$h->{dir}/error.log") =~ /resuming normal operations/g) >= 2 });
            is(requests($h, "$d/$t.crt", 10), 10, "$t: serves after a graceful restart");
            my ($after) = access($h);
            ok((grep { !$before->{$_} } keys %$after) > 0, "$t: by the new generation of children");
            $u = unwraps($h);
            is(total($u), 3, "$t: the restart made one more unwrap");
            is_deeply([keys %$u], [$h->{pid}], "$t: in the parent");
        }
    }
    stop_httpd($h);
    is($h->{rc}, 0, "$t: httpd exits cleanly on SIGTERM") or diag(logs($h));
    clean_logs($h, $t);
}

# --- the event MPM in daemon mode (Debian's default MPM; apachectl start) --
# The first configuration pass runs in the process started, the second in
# the detached daemon: one unwrap in each.
{
    my $h = start_httpd(key => "$d/p256.w.pem", cert => "$d/p256.crt", mpm => 'event', daemon => 1);
    ok($h->{up} && $h->{rc} == 0 && $h->{daemon_pid}, 'event MPM, daemon mode: httpd starts')
      or diag(logs($h));
    SKIP: {
        skip("httpd did not start", 5) unless $h->{up} && $h->{daemon_pid};
        is(requests($h, "$d/p256.crt", 20), 20, 'event, daemon: 20 HTTPS requests');
        my ($pids) = access($h);
        ok(keys(%$pids) >= 1 && !exists $pids->{ $h->{daemon_pid} },
            'event, daemon: children served');
        note('event: children seen: ' . join(', ', map { "$_=$pids->{$_}" } sort keys %$pids));
        my $u = unwraps($h);
        is(total($u), 2, 'event, daemon: two unwraps in all');
        is($u->{ $h->{pid} }, 1, '  one in the process started (first configuration pass)');
        is($u->{ $h->{daemon_pid} }, 1, '  one in the detached daemon (second pass)');
    }
    stop_httpd($h);
    clean_logs($h, 'event, daemon');
}

# --- failures ----------------------------------------------------------------
{
    # no kmsenv in OPENSSL_CONF: the wrapped key is not a key
    my $h = start_httpd(key => "$d/p256.w.pem", cert => "$d/p256.crt", conf => "$d/nokmsenv.cnf");
    ok(!$h->{up} && $h->{rc}, 'without kmsenv in OPENSSL_CONF: httpd refuses to start');
    like(logs($h), qr/AH02564:.*\Q$d\E\/p256\.w\.pem/, '  naming the key file');
    unlike(logs($h), qr/AddressSanitizer|runtime error:/, '  no sanitizer report');

    # the KEK gone: the start fails; mod_ssl's DER fallbacks push the
    # kmsenv error out of OpenSSL's error queue, KMSENV_DEBUG names the KEK
    my ($rc, $o, $e) = kmsenv_cli('wrap', '--in', "$d/p256.key", '--out', "$d/k2.pem",
        '--keyring', "file:$d/kek2");
    is($rc, 0, 'wrapped under a second KEK') or diag($e);
    unlink("$d/kek2");
    $h = start_httpd(key => "$d/k2.pem", cert => "$d/p256.crt");
    ok(!$h->{up} && $h->{rc}, 'KEK gone: httpd refuses to start');
    like(logs($h), qr/AH02564:.*\Q$d\E\/k2\.pem/, '  naming the key file');
    like(slurp("$h->{dir}/kmsenv.log"), qr/KEK file \Q$d\E\/kek2/, '  the KMSENV_DEBUG log names the KEK');
    unlike(logs($h), qr/AddressSanitizer|runtime error:/, '  no sanitizer report');
}

# --- an aws-kms KEK at the KMS emulator: Decrypt calls counted ------------------
{
    my $pki = KmsEmu::make_pki("$d/pki");
    my %creds = (akid => 'AKIAEMUTESTENV000022', secret => 'envSecretKey/22abcdefghijklmnopqrstuvwxyz012');
    my $emu = KmsEmu->start(dir => "$d/east", region => 'us-east-1', pki => $pki,
        creds => [ {%creds} ]);
    my $k = $emu->create_key(description => 'httpd');
    my %env = KmsEmu::client_env(creds => \%creds, dir => $d, pki => $pki, endpoint => $emu->url);
    my ($rc, $o, $e) = kmsenv_cli({ env => \%env }, 'wrap', '--in', "$d/p256.key",
        '--out', "$d/aws.w.pem", '--keyring', "aws-kms:$k->{Arn}");
    is($rc, 0, 'aws-kms: kmsenv wrap') or diag($e);
    is($emu->count('Decrypt'), 0, 'aws-kms: no Decrypt to wrap');
    my $h = start_httpd(key => "$d/aws.w.pem", cert => "$d/p256.crt", env => \%env);
    ok($h->{up}, 'aws-kms: httpd starts') or diag(logs($h));
    SKIP: {
        skip("httpd did not start", 6) unless $h->{up};
        is($emu->count('Decrypt'), 2, 'aws-kms: two Decrypt calls at startup (two configuration passes)');
        is(requests($h, "$d/p256.crt", 50), 50, 'aws-kms: 50 HTTPS requests');
        my ($pids) = access($h);
        cmp_ok(scalar(keys %$pids), '>=', 2, 'aws-kms: more than one child served');
        is($emu->count('Decrypt'), 2, 'aws-kms: no Decrypt per handshake');
        kill('USR1', $h->{pid});
        wait_until(60, sub { (() = slurp("$h->{dir}/error.log") =~ /resuming normal operations/g) >= 2 });
        is(requests($h, "$d/p256.crt", 4), 4, 'aws-kms: serves after a graceful restart');
        is($emu->count('Decrypt'), 3, 'aws-kms: the restart made one Decrypt');
    }
    stop_httpd($h);
    is($h->{rc}, 0, 'aws-kms: httpd exits cleanly') or diag(logs($h));
    clean_logs($h, 'aws-kms');
}

done_testing();
