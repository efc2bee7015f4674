#!/usr/bin/env perl
# SPDX-License-Identifier: Apache-2.0
# Loopback credential metadata servers for the tests (plain http,
# 127.0.0.1): the ECS container credentials endpoint or EC2 IMDSv2.
# Flags and behaviour: README.md beside this file.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use KmsEmu ();
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use Fcntl qw(:flock);
use POSIX qw(strftime);
use Time::HiRes ();

my %opt = (expires_in => 3600, role_name => 'kmsemu-role', idle_timeout => 30);
GetOptions(
    'mode=s'         => \$opt{mode},
    'state-dir=s'    => \$opt{dir},
    'port=i'         => \$opt{port},
    'port-file=s'    => \$opt{port_file},
    'akid=s'         => \$opt{akid},
    'secret=s'       => \$opt{secret},
    'token=s'        => \$opt{token},
    'expires-in=i'   => \$opt{expires_in},
    'auth-token=s'   => \$opt{auth_token},
    'role-name=s'    => \$opt{role_name},
    'role-arn=s'     => \$opt{role_arn},
    'parent-pid=i'   => \$opt{parent_pid},
    'idle-timeout=i' => \$opt{idle_timeout},
) or die "usage: see test/kmsemu/README.md\n";
die "--mode ecs|imds is required\n"
  unless ($opt{mode} // '') =~ /^(?:ecs|imds)$/;
die "--state-dir is required\n" unless $opt{dir};
die "--akid and --secret are required\n" unless $opt{akid} && $opt{secret};
$opt{port_file} //= "$opt{dir}/port";
$opt{role_arn} //= "arn:aws:iam::111122223333:role/$opt{role_name}";

my $JSON  = JSON::PP->new->canonical->utf8;
my $STATE = "$opt{dir}/credstate.json";
my $LOCK  = "$opt{dir}/credstate.lock";

# State shared by the per-connection processes, under an exclusive flock:
# creds {akid, secret, token, expires_in}, counters {path => n},
# tokens {imds token => expiry epoch}, fail (credential requests left to
# answer with HTTP 500).
sub with_state {
    return scalar KmsEmu::HTTPD::with_state($STATE, $LOCK, sub { return {} }, @_);
}

with_state(sub {
    my ($st) = @_;
    $st->{creds} = { akid => $opt{akid}, secret => $opt{secret},
        token => $opt{token}, expires_in => $opt{expires_in} };
    $st->{counters} //= {};
    $st->{tokens} //= {};
    $st->{fail} //= 0;
});

sub iso { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }

sub resp {
    my ($status, $body, $type) = @_;
    return { status => $status, body => $body,
        headers => [ 'Content-Type' => $type // 'text/plain' ] };
}

sub json_resp { resp($_[0], $JSON->encode($_[1]), 'application/json') }

sub hdr {
    my ($req, $name) = @_;
    my $v = $req->{h}{$name};
    return $v ? $v->[0] : undef;
}

# The credential document fields common to both modes; undef with a 500
# when a failure was injected.
sub cred_doc {
    my ($st) = @_;
    return undef if $st->{fail} && $st->{fail}-- > 0;
    my $c = $st->{creds};
    return {
        AccessKeyId => $c->{akid}, SecretAccessKey => $c->{secret},
        Token => $c->{token} // '',
        Expiration => iso(time + $c->{expires_in}),
    };
}

my %CONTROL = (
    counters => sub { $_[0]{counters} },
    'reset-counters' => sub { $_[0]{counters} = {}; {} },
    set => sub {
        my ($st, $a) = @_;
        for my $k (qw(akid secret token expires_in)) {
            $st->{creds}{$k} = $a->{$k} if exists $a->{$k};
        }
        $st->{fail} = $a->{fail} if defined $a->{fail};
        return {};
    },
);

sub ecs {
    my ($st, $req) = @_;
    return resp(405, "method not allowed\n") unless $req->{method} eq 'GET';
    if (defined $opt{auth_token}) {
        my $a = hdr($req, 'authorization');
        return json_resp(401, { message => 'Authorization header missing' })
          unless defined $a;
        return json_resp(403, { message => 'Authorization token invalid' })
          unless $a eq $opt{auth_token};
    }
    my $d = cred_doc($st)
      // return json_resp(500, { message => 'injected failure' });
    $d->{RoleArn} = $opt{role_arn};
    return json_resp(200, $d);
}

sub imds {
    my ($st, $req) = @_;
    my $now = time;
    delete @{ $st->{tokens} }{ grep { $st->{tokens}{$_} < $now }
          keys %{ $st->{tokens} } };
    if ($req->{path} eq '/latest/api/token') {
        return resp(405, "method not allowed\n") unless $req->{method} eq 'PUT';
        my $ttl = hdr($req, 'x-aws-ec2-metadata-token-ttl-seconds');
        return resp(400, "missing or bad token TTL\n")
          unless defined $ttl && $ttl =~ /^\d+$/ && $ttl >= 1 && $ttl <= 21600;
        my $tok = 'AQAEA' . unpack('H*', KmsEmu::HTTPD::random_bytes(24));
        $st->{tokens}{$tok} = $now + $ttl;
        return { status => 200, body => $tok, headers => [
            'Content-Type' => 'text/plain',
            'X-aws-ec2-metadata-token-ttl-seconds' => $ttl ] };
    }
    return resp(405, "method not allowed\n") unless $req->{method} eq 'GET';
    my $tok = hdr($req, 'x-aws-ec2-metadata-token');
    return resp(401, "Unauthorized\n")
      unless defined $tok && $st->{tokens}{$tok};
    my $base = '/latest/meta-data/iam/security-credentials';
    return resp(200, $opt{role_name}) if $req->{path} =~ m{^\Q$base\E/?$};
    if ($req->{path} eq "$base/$opt{role_name}") {
        my $d = cred_doc($st)
          // return json_resp(500, { Code => 'Failure' });
        return json_resp(200, { Code => 'Success', LastUpdated => iso($now),
            Type => 'AWS-HMAC', %$d });
    }
    return resp(404, "Not Found\n");
}

sub handler {
    my ($req) = @_;
    if ($req->{path} =~ m{^/_emu/([\w-]+)$}) {
        my $fn = $CONTROL{$1} // return resp(404, "no such control\n");
        my $a = $req->{body} =~ /\S/ ? eval { $JSON->decode($req->{body}) } : {};
        return resp(400, "bad JSON\n") unless ref $a eq 'HASH';
        return json_resp(200, with_state(sub { $fn->($_[0], $a) }));
    }
    my $r = with_state(sub {
        my ($st) = @_;
        $st->{counters}{ $req->{path} }++;
        return $opt{mode} eq 'ecs' ? ecs($st, $req) : imds($st, $req);
    });
    printf STDERR "%s %s %s %s %s\n", strftime('%H:%M:%S', localtime),
      $opt{mode}, $req->{method}, $req->{path}, $r->{status};
    return $r;
}

$0 = "kmsemu-credserver $opt{mode}";
KmsEmu::HTTPD::serve(
    port => $opt{port}, port_file => $opt{port_file},
    parent_pid => $opt{parent_pid}, idle_timeout => $opt{idle_timeout},
    max_body => 64 * 1024, handler => \&handler,
    on_listen => sub { print STDERR "credserver $opt{mode} on 127.0.0.1:$_[0]\n" },
);
