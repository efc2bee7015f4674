# SPDX-License-Identifier: Apache-2.0
# Test helpers: run real openssl commands against the built provider.
package Kmsenv;
use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use FindBin;

our @EXPORT = qw(build_dir tmpdir run ossl kmsenv_cli make_kek slurp spurt
  prov_args pem_body pem_wrap san_env);

my $root = abs_path("$FindBin::Bin/..");

sub build_dir {
    my $b = $ENV{KMSENV_BUILD_DIR} // "$root/build";
    die "no kmsenv.so in $b (build first)\n" unless -f "$b/kmsenv.so";
    return abs_path($b);
}

sub tmpdir { return tempdir('kmsenv-test-XXXXXX', TMPDIR => 1, CLEANUP => 1) }

# Under ASan the sanitizer runtime must be loaded before openssl itself.
sub san_env {
    my $san = $ENV{KMSENV_SANITIZE} // '';
    if ($san eq 'TSAN') {
        chomp(my $tsan = `gcc -print-file-name=libtsan.so`);
        return (
            LD_PRELOAD   => $tsan,
            TSAN_OPTIONS => 'halt_on_error=1:exitcode=96:second_deadlock_stack=1',
        );
    }
    return () unless $san =~ /^(ON|1|TRUE)$/i;
    chomp(my $asan = `gcc -print-file-name=libasan.so`);
    chomp(my $ubsan = `gcc -print-file-name=libubsan.so`);
    return (
        LD_PRELOAD => "$asan $ubsan",
        ASAN_OPTIONS =>
          'detect_leaks=1:abort_on_error=0:exitcode=99:allocator_may_return_null=1',
        UBSAN_OPTIONS => 'print_stacktrace=1:halt_on_error=1:exitcode=98',
        LSAN_OPTIONS  => "suppressions=$root/test/lsan.supp:print_suppressions=0",
    );
}

# run({env => {...}, stdin => $data}, @cmd) -> ($rc, $stdout, $stderr)
sub run {
    my $opt = ref $_[0] eq 'HASH' ? shift : {};
    my @cmd = @_;
    my $d = tmpdir();
    my ($in, $out, $err) = ("$d/in", "$d/out", "$d/err");
    spurt($in, $opt->{stdin} // '');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my %e = (san_env(), %{ $opt->{env} // {} });
        while (my ($k, $v) = each %e) {
            if (defined $v) { $ENV{$k} = $v } else { delete $ENV{$k} }
        }
        open(STDIN,  '<', $in)  or die;
        open(STDOUT, '>', $out) or die;
        open(STDERR, '>', $err) or die;
        exec(@cmd) or die "exec $cmd[0]: $!";
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    $rc = 128 + ($? & 127) if $? & 127;
    my ($o, $e) = (slurp($out), slurp($err));
    # A sanitizer report is always a failure, whatever the command returned.
    if ($e =~ /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer)/) {
        $rc = 97;
        print STDERR "# sanitizer report from @cmd:\n$e";
    }
    return ($rc, $o, $e);
}

sub prov_args {
    return ('-provider-path', build_dir(), '-provider', 'default',
        '-provider', 'kmsenv');
}

# ossl($opt?, 'pkeyutl', args...) -> openssl SUBCMD <provider args> args...
sub ossl {
    my $opt = ref $_[0] eq 'HASH' ? shift : {};
    my ($sub, @args) = @_;
    my %o = %$opt;
    $o{env} = { OPENSSL_CONF => '/dev/null', %{ $o{env} // {} } }
      unless $o{keep_conf};
    return run(\%o, 'openssl', $sub, ($o{no_prov} ? () : prov_args()), @args);
}

sub kmsenv_cli {
    my $opt = ref $_[0] eq 'HASH' ? shift : {};
    my %o = %$opt;
    $o{env} = { OPENSSL_CONF => '/dev/null', %{ $o{env} // {} } };
    return run(\%o, build_dir() . '/kmsenv', '--provider-path', build_dir(), @_);
}

sub make_kek {
    my ($path, $mode) = @_;
    open(my $r, '<:raw', '/dev/urandom') or die;
    read($r, my $k, 32) == 32 or die;
    spurt($path, $k);
    chmod($mode // 0600, $path);
    return $k;
}

sub slurp {
    my ($p) = @_;
    open(my $f, '<:raw', $p) or return '';
    local $/;
    my $d = <$f>;
    return $d // '';
}

sub spurt {
    my ($p, $d) = @_;
    open(my $f, '>:raw', $p) or die "$p: $!";
    print $f $d;
    close $f;
}

# DER inside a PEM block, and back.
sub pem_body {
    my ($pem) = @_;
    require MIME::Base64;
    my ($b) = $pem =~ /-----BEGIN [^-]+-----\n(.*?)-----END/s or return undef;
    return MIME::Base64::decode_base64($b);
}

sub pem_wrap {
    my ($label, $der) = @_;
    require MIME::Base64;
    my $b = MIME::Base64::encode_base64($der, '');
    $b =~ s/(.{64})/$1\n/g;
    $b .= "\n" unless $b =~ /\n$/;
    return "-----BEGIN $label-----\n$b-----END $label-----\n";
}

1;
