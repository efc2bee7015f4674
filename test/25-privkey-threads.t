# SPDX-License-Identifier: Apache-2.0
# Wrapped private keys (RSA, EC P-256, Ed25519) used by 6 threads at once:
# the per-key inner operation templates (provider/keys/privkey_ops.c) are
# made and published on first use while other threads dup them; digest
# templates: 12 names and aliases for a table of 8 (aliases share one,
# the rest get a context of their own). Every signature verifies with the
# plain public key, decryption and ECDH give the right results. Under
# KMSENV_TSAN the suite runs this file with ThreadSanitizer (ctest -L
# threads).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
my $b = build_dir();
make_kek("$d/kek");
my ($rc, $out, $err);
my %gen = (rsa => ['rsa', '--bits', '2048'], ec => ['p-256'], ed25519 => ['ed25519']);
for my $t (qw(rsa ec ed25519)) {
    ($rc, $out, $err) = kmsenv_cli('wrap', '--generate', @{ $gen{$t} },
        '--out', "$d/$t.pem", '--keyring', "file:$d/kek");
    is($rc, 0, "$t: a wrapped key") or diag $err;
}

my $threads = 6;
my $rounds = 4;
# Each run is a first use of every template (3 runs: more chances for TSan
# to see a publication race).
for my $run (1 .. 3) {
    unlink("$d/trace");
    ($rc, $out, $err) = run({ env => { KMSENV_DEBUG => "file:$d/trace,level:2" } },
        "$b/privkey_threads", $b, $threads, $rounds,
        map { "$d/$_.pem" } qw(rsa ec ed25519));
    is($rc, 0, "run $run: $threads threads sign, verify, decrypt and derive with each key")
        or diag "$out\n$err";
    for my $line (split /\n/, $out) {
        next unless $line =~ /^(not )?ok \d+ - (.*)/;
        ok(!$1, "  $2");
    }
    like($out, qr/^\d+ passed, 0 failed$/m, '... the probe ran to its end');

    # Each template was made once per key, however many threads wanted it
    # first.
    my $trace = slurp("$d/trace");
    my %made;
    for (split /\n/, $trace) {
        $made{"$1 for $2"}++ if /inner template(?: alias)?: (.*?) for (.*)$/;
    }
    ok(scalar(keys %made) > 0, '... the trace lists the templates made');
    my @twice = grep { $made{$_} > 1 } sort keys %made;
    is("@twice", '', '... no template made twice');
    for my $k ('RSA', 'EC') {
        my $n = grep { /^digest-sign \S+ for wrapped $k key$/ } keys %made;
        is($n, 8, "... $k digest-sign: the table holds 8 names");
    }
    like($trace, qr/inner template alias: digest-sign/, '... aliases share a template');
    like($trace, qr/inner context \(no template room\): digest-sign/,
        '... names beyond the table get a context of their own');
}

done_testing();
