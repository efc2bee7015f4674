# SPDX-License-Identifier: Apache-2.0
# The kmsenv CLI and the files it rewrites: symlinks, owner/group/mode,
# stale temp files, PEM and DER, special and oversized files.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(mkfifo);
use Time::HiRes ();
use Kmsenv;

my $d = tmpdir();
make_kek("$d/kek");
make_kek("$d/kek2");

sub genkeyset_with {
    my ($path, $kek, @form) = @_;
    my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
        '-pkeyopt', "keyring:file:$kek", @form, '-out', $path);
    is($rc, 0, "keyset $path") or BAIL_OUT($err);
}

sub genkeyset { genkeyset_with($_[0], "$d/kek", @_[1 .. $#_]) }

# Versions as real openssl sees them (not the CLI under test).
sub versions {
    my ($path, @form) = @_;
    my ($rc, $out) = ossl('pkey', @form, '-in', $path, '-text', '-noout');
    return -1 if $rc;
    my $n = () = $out =~ /^  version \d+:/mg;
    return $n;
}

sub time_hires { return Time::HiRes::time() }

sub temps {
    my ($dir) = @_;
    opendir(my $dh, $dir) or die "$dir: $!";
    my @t = sort grep { /^\.kmsenv-keyset\./ } readdir($dh);
    return @t;
}

sub owner_mode {
    my @s = stat($_[0]);
    return sprintf('%d:%d %04o', $s[4], $s[5], $s[2] & 07777);
}

# kmsenv with a generous bound: a hang is killed (rc 137), not waited for.
sub cli_bounded {
    return run({ env => { OPENSSL_CONF => '/dev/null' } }, 'timeout', '-s',
        'KILL', '60', build_dir() . '/kmsenv', '--provider-path', build_dir(),
        @_);
}

my ($rc, $out, $err);

subtest 'symlinks: the target is rewritten, the links stay' => sub {
    mkdir "$d/real";
    mkdir "$d/links";
    genkeyset("$d/real/k.pem");
    symlink('../real/k.pem', "$d/links/l1") or die;
    symlink('l1', "$d/links/l2") or die;
    ($rc, $out, $err) = kmsenv_cli('rotate', "$d/links/l2");
    is($rc, 0, 'rotate through a chain of two links') or diag $err;
    ok(-l "$d/links/l2", 'the outer link is still a link');
    is(readlink("$d/links/l2"), 'l1', '... pointing where it did');
    ok(-l "$d/links/l1", 'the inner link is still a link');
    is(readlink("$d/links/l1"), '../real/k.pem', '... pointing where it did');
    ok(-f "$d/real/k.pem" && !-l "$d/real/k.pem", 'target is a regular file');
    is(versions("$d/real/k.pem"), 2, 'the target has the new version');
    ($rc, $out, $err) = kmsenv_cli('rotate', "$d/links/l1");
    is($rc, 0, 'rotate through one link') or diag $err;
    is(versions("$d/real/k.pem"), 3, 'the target has 3 versions');
    ($rc, $out, $err) = kmsenv_cli('disable', "$d/links/l2", '--version', '1');
    is($rc, 0, 'disable through the chain') or diag $err;
    ok(-l "$d/links/l2" && -l "$d/links/l1", 'links survive disable');
    ($rc, $out) = kmsenv_cli('inspect', "$d/real/k.pem");
    like($out, qr/version 1: disabled/, 'the target has version 1 disabled');
    is_deeply([temps("$d/links"), temps("$d/real")], [], 'no temp files');

    symlink("$d/real/nothing", "$d/links/dangling") or die;
    ($rc, $out, $err) = kmsenv_cli('rotate', "$d/links/dangling");
    isnt($rc, 0, 'a dangling link fails');
    like($err, qr/dangling: does not exist/, '... saying so');
    ok(-l "$d/links/dangling" && !-e "$d/real/nothing",
        '... and creates nothing');
};

subtest 'owner, group and mode survive rewrites' => sub {
    mkdir "$d/own";
    my $k = "$d/own/k.pem";
    genkeyset($k);
    chown(4242, 12345, $k) or die;
    chmod(0640, $k) or die;
    for my $c (['rotate'], ['disable', '--version', '1'],
        ['enable', '--version', '1'], ['promote', '--version', '1'],
        ['rewrap', '--keyring', "file:$d/kek2"])
    {
        ($rc, $out, $err) = kmsenv_cli($c->[0], $k, @$c[1 .. $#$c]);
        is($rc, 0, "$c->[0]") or diag $err;
        is(owner_mode($k), '4242:12345 0640', "... keeps 4242:12345 0640");
    }
    is(versions($k), 2, 'keyset loads after the rewrites');

    chmod(0604, $k) or die;
    chown(0, 12345, $k) or die;
    symlink('k.pem', "$d/own/link") or die;
    ($rc, $out, $err) = kmsenv_cli('rotate', "$d/own/link");
    is($rc, 0, 'rotate through a link') or diag $err;
    is(owner_mode($k), '0:12345 0604', '... keeps 0:12345 0604');
    is(versions($k), 3, '... and rotated');
    is_deeply([temps("$d/own")], [], 'no temp files');
};

subtest 'a group the user cannot give is an error, not a silent change' => sub {
    plan skip_all => 'needs root and setpriv'
      unless $> == 0 && -x '/usr/bin/setpriv';
    my $s = "$d/nobody";
    mkdir $s;
    chmod(0711, $d) or die;
    make_kek("$s/kek");
    genkeyset_with("$s/k.pem", "$s/kek");
    chown(65534, 65534, $s, "$s/kek", "$s/k.pem") or die;
    chown(65534, 12345, "$s/k.pem") or die;
    chmod(0640, "$s/k.pem") or die;
    my $before = slurp("$s/k.pem");
    my @as_nobody = ('setpriv', '--reuid=65534', '--regid=65534',
        '--clear-groups', build_dir() . '/kmsenv', '--provider-path',
        build_dir());
    ($rc, $out, $err) = run({ env => { OPENSSL_CONF => '/dev/null' } },
        @as_nobody, 'rotate', "$s/k.pem");
    isnt($rc, 0, 'rotate as a user outside the group fails');
    like($err, qr/owner 65534:12345, mode 0640\): keeping its owner and group: Operation not permitted; the keyset is unchanged/,
        '... saying why');
    is(slurp("$s/k.pem"), $before, '... keyset unchanged');
    is(owner_mode("$s/k.pem"), '65534:12345 0640', '... owner, group, mode too');
    is_deeply([temps($s)], [], '... no temp files');
    chown(65534, 65534, "$s/k.pem") or die;
    ($rc, $out, $err) = run({ env => { OPENSSL_CONF => '/dev/null' } },
        @as_nobody, 'rotate', "$s/k.pem");
    is($rc, 0, 'rotate as the owner, in its own group') or diag $err;
    is(owner_mode("$s/k.pem"), '65534:65534 0640', '... keeps them');
    # The KEK belongs to 65534: only that user (or root's own KEKs) may use
    # it, so count the versions as that user.
    ($rc, $out, $err) = run({ env => { OPENSSL_CONF => '/dev/null' } },
        @as_nobody, 'inspect', "$s/k.pem");
    is(scalar(() = $out =~ /^  version \d+:/mg), 2, '... rotated') or diag $err;
};

subtest 'stale temp files are removed, nothing else is touched' => sub {
    my $s = "$d/stale";
    mkdir $s;
    genkeyset("$s/k.pem");
    genkeyset("$s/other.pem");
    my $pem = slurp("$s/k.pem");
    my $old = time() - 3600;
    # What killed runs leave: this keyset's temp, a legacy temp (an hour old).
    my @stale = ('.kmsenv-keyset.k.pem.AbC123', '.kmsenv-keyset.Q1w2E3');
    spurt("$s/$_", substr($pem, 0, 40)) for @stale;
    utime($old, $old, "$s/.kmsenv-keyset.Q1w2E3") or die;
    # Not ours to remove.
    my %keep = (
        '.kmsenv-keyset.other.pem.XyZ789'  => 'another keyset\'s temp',
        '.kmsenv-keyset.k.pem.AbC123.keep' => 'a longer name',
        '.kmsenv-keyset.k.pem.AbC12'       => 'a shorter name',
        '.kmsenv-keyset.k.pem.Ab-123'      => 'not a temp suffix',
        '.kmsenv-keyset.R4t5Y6'            => 'a recent legacy temp',
        'k.pem.AbC123'                     => 'a look-alike',
        'notes.txt'                        => 'an unrelated file',
    );
    spurt("$s/$_", "keep $_\n") for keys %keep;
    mkdir "$s/.kmsenv-keyset.k.pem.DirDir" or die;
    symlink('notes.txt', "$s/.kmsenv-keyset.k.pem.LnkLnk") or die;
    utime($old, $old, "$s/.kmsenv-keyset.k.pem.AbC12") or die;

    ($rc, $out, $err) = kmsenv_cli('rotate', "$s/k.pem");
    is($rc, 0, 'rotate') or diag $err;
    is(versions("$s/k.pem"), 2, 'rotated');
    ok(!-e "$s/$_", "stale $_ removed") for @stale;
    like($err, qr/removed \Q$s\E\/\.kmsenv-keyset\.k\.pem\.AbC123, a temp file left by an interrupted run/,
        'the removal is reported');
    is(slurp("$s/$_"), "keep $_\n", "kept: $keep{$_}") for sort keys %keep;
    ok(-d "$s/.kmsenv-keyset.k.pem.DirDir", 'kept: a directory');
    ok(-l "$s/.kmsenv-keyset.k.pem.LnkLnk", 'kept: a symlink');
    is(versions("$s/other.pem"), 1, 'the other keyset is untouched');
};

subtest 'SIGKILL during rewrites: no temp files, keyset intact' => sub {
    my $s = "$d/kill";
    mkdir $s;
    genkeyset("$s/k.pem");
    # Kill at random points of a run (as long as one takes here).
    my $t0 = time_hires();
    ($rc, $out, $err) = kmsenv_cli('rotate', "$s/k.pem");
    is($rc, 0, 'a rotation to time') or diag $err;
    my $span = time_hires() - $t0;
    for my $i (1 .. 20) {
        my $pid = fork() // die;
        if ($pid == 0) {
            my %e = (san_env(), OPENSSL_CONF => '/dev/null');
            @ENV{ keys %e } = values %e;
            open(STDOUT, '>', '/dev/null');
            open(STDERR, '>', '/dev/null');
            exec(build_dir() . '/kmsenv', '--provider-path', build_dir(),
                'rotate', "$s/k.pem") or exit 127;
        }
        select(undef, undef, undef, rand($span));
        kill('KILL', $pid);
        waitpid($pid, 0);
    }
    my $n = versions("$s/k.pem");
    cmp_ok($n, '>=', 1, "keyset loads after 20 killed rotations ($n versions)");
    ($rc, $out, $err) = kmsenv_cli('rotate', "$s/k.pem");
    is($rc, 0, 'a rotation after them succeeds') or diag $err;
    is(versions("$s/k.pem"), $n + 1, '... adding one version');
    is_deeply([temps($s)], [], 'no temp files remain');
};

subtest 'DER in, DER out; PEM in, PEM out' => sub {
    my $s = "$d/der";
    mkdir $s;
    genkeyset("$s/k.der", '-outform', 'DER');
    genkeyset("$s/k.pem");
    spurt("$s/pt", 'secret row');
    # No -keyform DER: under LSan that crashes openssl at exit (not kmsenv).
    ($rc, $out, $err) = ossl('pkeyutl', '-encrypt', '-inkey', "$s/k.der",
        '-pkeyopt', 'context:t=1', '-in', "$s/pt", '-out', "$s/v1.bin");
    is($rc, 0, 'record under the DER keyset') or diag $err;
    ($rc, $out, $err) = kmsenv_cli('inspect', "$s/k.der");
    is($rc, 0, 'inspect a DER keyset') or diag $err;
    like($out, qr/version 1: primary/, '... shows its versions');
    for my $c (['rotate'], ['disable', '--version', '1'],
        ['enable', '--version', '1'], ['rewrap', '--keyring', "file:$d/kek2"])
    {
        ($rc, $out, $err) = kmsenv_cli($c->[0], "$s/k.der", @$c[1 .. $#$c]);
        is($rc, 0, "$c->[0] a DER keyset") or diag $err;
        is(substr(slurp("$s/k.der"), 0, 1), "\x04", '... still DER');
    }
    ($rc, $out) = ossl('pkey', '-inform', 'DER', '-in', "$s/k.der", '-text',
        '-noout');
    like($out, qr/version 2: primary/, 'openssl reads the rewritten DER');
    like($out, qr/kek 1: file:\Q$d\E\/kek2/, '... rewrapped');
    ($rc, $out, $err) = ossl('pkeyutl', '-decrypt', '-inkey', "$s/k.der",
        '-pkeyopt', 'context:t=1', '-in', "$s/v1.bin");
    is($out, 'secret row', 'the old record decrypts') or diag $err;
    ($rc, $out, $err) = kmsenv_cli('rotate', "$s/k.pem");
    is($rc, 0, 'rotate a PEM keyset') or diag $err;
    like(slurp("$s/k.pem"), qr/\A-----BEGIN KMSENV KEYSET-----\n/,
        '... still PEM');
    is(versions("$s/k.pem"), 2, '... rotated');
};

subtest 'other PEM blocks and text around the keyset stay byte for byte' => sub {
    my $s = "$d/combined";
    mkdir $s;
    genkeyset("$s/k.pem");
    ($rc, $out, $err) = run({ env => { OPENSSL_CONF => '/dev/null' } },
        'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
        'ec_paramgen_curve:P-256', '-nodes', '-keyout', "$s/c.key", '-subj',
        '/CN=combined', '-days', '1', '-out', "$s/c.crt");
    is($rc, 0, 'a certificate') or diag $err;
    my $crt = slurp("$s/c.crt");
    my $ks = slurp("$s/k.pem");
    my $before = "# a comment\r\n\n" . $crt . "text between\n";
    my $after = "\r\ntext after\n" . $crt . "\n  the end, no newline";
    (my $block = $ks) =~ s/\n\z//;
    spurt("$s/combo.pem", $before . $block . $after);
    spurt("$s/pt", 'combined row');
    ($rc, $out, $err) = ossl('pkeyutl', '-encrypt', '-inkey', "$s/combo.pem",
        '-pkeyopt', 'context:t=1', '-in', "$s/pt", '-out', "$s/v1.bin");
    is($rc, 0, 'openssl loads the keyset after a certificate') or diag $err;
    my $v = 1;
    for my $c (['rotate'], ['rotate'], ['disable', '--version', '1'],
        ['enable', '--version', '1'], ['promote', '--version', '2'],
        ['rewrap', '--keyring', "file:$d/kek2"])
    {
        ($rc, $out, $err) = kmsenv_cli($c->[0], "$s/combo.pem", @$c[1 .. $#$c]);
        is($rc, 0, "$c->[0] the keyset in a combined file") or diag $err;
        my $now = slurp("$s/combo.pem");
        my $at = index($now, '-----BEGIN KMSENV KEYSET-----');
        my $end = '-----END KMSENV KEYSET-----';
        my $to = index($now, $end) + length($end);
        is(substr($now, 0, $at), $before, '... every byte before it kept');
        is(substr($now, $to), $after, '... every byte after it kept');
        $v++ if $c->[0] eq 'rotate';
        is(versions("$s/combo.pem"), $v, "... openssl reads it: $v versions");
    }
    ($rc, $out) = ossl('pkey', '-in', "$s/combo.pem", '-text', '-noout');
    like($out, qr/version 2: primary/, 'promoted version 2');
    like($out, qr/kek 1: file:\Q$d\E\/kek2,/, 'rewrapped to kek2');
    ($rc, $out, $err) = ossl('pkeyutl', '-decrypt', '-inkey', "$s/combo.pem",
        '-pkeyopt', 'context:t=1', '-in', "$s/v1.bin");
    is($out, 'combined row', 'the old record decrypts') or diag $err;
    ($rc, $out, $err) = kmsenv_cli('inspect', "$s/combo.pem");
    like($out, qr/primary version: 2/, 'inspect reads the combined file')
        or diag $err;

    # The keyset first, a certificate after it (the decoder reads the
    # first block only: this used to drop the certificate).
    my $first = "  \n" . $ks . "\n" . $crt;
    spurt("$s/first.pem", $first);
    ($rc, $out, $err) = kmsenv_cli('rotate', "$s/first.pem");
    is($rc, 0, 'rotate a keyset followed by a certificate') or diag $err;
    my $now = slurp("$s/first.pem");
    like($now, qr/\A  \n-----BEGIN KMSENV KEYSET-----\n/, '... the text before it kept');
    is(substr($now, index($now, "-----END KMSENV KEYSET-----\n") + 28),
        "\n" . $crt, '... the certificate after it kept');
    is(versions("$s/first.pem"), 2, '... rotated');

    # Two keysets in one file: applications load the first only; refused.
    genkeyset("$s/k2.pem");
    for my $two ($crt . $ks . slurp("$s/k2.pem"),
        $ks . "text\n" . slurp("$s/k2.pem") . $crt)
    {
        spurt("$s/two.pem", $two);
        for my $c (['rotate'], ['rewrap', '--keyring', "file:$d/kek2"]) {
            ($rc, $out, $err) = kmsenv_cli($c->[0], "$s/two.pem", @$c[1 .. $#$c]);
            isnt($rc, 0, "$c->[0] on a file with two keysets fails");
            like($err, qr/two\.pem: holds more than one kmsenv key .*the file is unchanged/,
                '... saying why');
            is(slurp("$s/two.pem"), $two, '... the file unchanged');
        }
    }
    # A BEGIN line without its END line.
    (my $cut = $crt . $ks) =~ s/-----END KMSENV KEYSET-----\n//;
    spurt("$s/cut.pem", $cut);
    ($rc, $out, $err) = kmsenv_cli('rotate', "$s/cut.pem");
    isnt($rc, 0, 'a keyset block without its END line is refused');
    like($err, qr/has no END line/, '... saying why');
    is(slurp("$s/cut.pem"), $cut, '... the file unchanged');
    is_deeply([temps($s)], [], 'no temp files remain');
};

subtest 'FIFOs, devices, directories, oversized files' => sub {
    my $s = "$d/special";
    mkdir $s;
    mkfifo("$s/fifo", 0600) or die "mkfifo: $!";
    for my $c ('inspect', 'rotate') {
        ($rc, $out, $err) = cli_bounded($c, "$s/fifo");
        isnt($rc, 137, "$c on a FIFO does not hang");
        isnt($rc, 0, '... fails');
        like($err, qr/fifo: is not a regular file/, '... saying why');
    }
    symlink('fifo', "$s/to-fifo") or die;
    ($rc, $out, $err) = cli_bounded('rotate', "$s/to-fifo");
    like($err, qr/is not a regular file/, 'a link to a FIFO is refused');
    ok(-l "$s/to-fifo", '... and left alone');
    for my $c ('inspect', 'rotate') {
        ($rc, $out, $err) = cli_bounded($c, '/dev/null');
        like($err, qr/is not a regular file/, "$c /dev/null is refused");
        ($rc, $out, $err) = cli_bounded($c, $s);
        like($err, qr/is not a regular file/, "$c on a directory is refused");
    }
    ok(-c '/dev/null', '/dev/null is still a device');

    genkeyset("$s/k.pem");
    my $pem = slurp("$s/k.pem");
    spurt("$s/big.pem", $pem . ("\n" x (1024 * 1024)));
    for my $c ('inspect', 'rotate') {
        ($rc, $out, $err) = cli_bounded($c, "$s/big.pem");
        isnt($rc, 0, "$c on a keyset over 1 MiB fails");
        like($err, qr/big\.pem: is \d+ bytes, larger than the limit of 1048576/,
            '... saying why');
    }
    is(slurp("$s/big.pem"), $pem . ("\n" x (1024 * 1024)), '... file unchanged');
    spurt("$s/edge.pem", $pem . ("\n" x (1024 * 1024 - length $pem)));
    ($rc, $out, $err) = kmsenv_cli('inspect', "$s/edge.pem");
    is($rc, 0, 'a keyset of exactly 1 MiB loads') or diag $err;
};

done_testing();
