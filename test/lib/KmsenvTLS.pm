# SPDX-License-Identifier: Apache-2.0
# TLS test helpers: a free loopback port, an `openssl s_server` started in
# the background (sanitizer environment included), and its exit status.
package KmsenvTLS;
use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use Kmsenv qw(tmpdir slurp san_env);

our @EXPORT = qw(free_port start_s_server finish_s_server);

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
        LocalPort => 0, Proto => 'tcp') or die "socket: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# start_s_server(order => [provider args], cert => F, key => F, n => N,
#   env => {VAR => value or undef to unset}, extra => [s_server args],
#   bound => seconds): s_server serves N connections, then exits. Returns
#   (pid, port, dir); dir/out and dir/err hold its output. OPENSSL_CONF is
#   /dev/null unless env sets it.
sub start_s_server {
    my (%o) = @_;
    my $t = tmpdir();
    my $port = free_port();
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my %e = (san_env(), OPENSSL_CONF => '/dev/null', %{ $o{env} // {} });
        for (keys %e) {
            if (defined $e{$_}) { $ENV{$_} = $e{$_} } else { delete $ENV{$_} }
        }
        open(STDIN, '<', '/dev/null') or die;
        open(STDOUT, '>', "$t/out") or die;
        open(STDERR, '>', "$t/err") or die;
        alarm($o{bound} // 90);
        exec('openssl', 's_server', @{ $o{order} }, '-accept',
            "127.0.0.1:$port", '-naccept', $o{n}, '-cert', $o{cert},
            '-key', $o{key}, '-www', @{ $o{extra} // [] }) or die;
    }
    for (1 .. 600) {
        last if slurp("$t/out") =~ /ACCEPT/;
        last if waitpid($pid, 1) == $pid;
        select(undef, undef, undef, 0.05);
    }
    return ($pid, $port, $t);
}

# Waits for it; returns (exit status, stderr). A sanitizer report counts as
# a failure (97).
sub finish_s_server {
    my ($pid, $t) = @_;
    waitpid($pid, 0);
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my $e = slurp("$t/err");
    $rc = 97 if $e =~ /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)/;
    return ($rc, $e);
}

1;
