# SPDX-License-Identifier: Apache-2.0
# String OSSL_PARAMs are read by data_size (a NUL inside a context, a rewrap
# or genpkey keyring is refused; an unterminated context binds exactly its
# bytes), and keys are shared safely between threads. Under KMSENV_TSAN the
# suite runs this file with ThreadSanitizer (ctest -L threads).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
my $b = build_dir();
make_kek("$d/kek");
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/ks.pem");
is($rc, 0, 'keyset generated') or diag $err;

sub probe_ok {
    my ($name, @args) = @_;
    my ($rc, $out, $err) = run("$b/param_probe", $b, @args);
    is($rc, 0, $name) or diag "$out\n$err";
    for my $line (split /\n/, $out) {
        next unless $line =~ /^(not )?ok - (.*)/;
        ok(!$1, "  $2");
    }
}

probe_ok('string params honour data_size', 'params', "$d/ks.pem", "$d/kek");

# The record path and key params from 4 threads while a fifth rotates the
# same key: no torn reads of the version list (TSan checks the locking).
probe_ok('records, params and rotation from 4 threads', 'race', "$d/ks.pem",
    4, 300);

# Nonces are drawn in batches; a batch never crosses fork().
probe_ok('parent and child never share a nonce after fork', 'fork', "$d/ks.pem");

# Errors go to the provider instance that raised them: with two instances
# loaded, unloading either leaves the other's errors intact.
probe_ok('errors follow their provider instance', 'instances');

# KMSENV_DEBUG level 2 traces every dispatch entry.
spurt("$d/pt", 'x');
($rc, $out, $err) = ossl({ env => { KMSENV_DEBUG => "file:$d/trace,level:2" } },
    'pkeyutl', '-encrypt', '-inkey', "$d/ks.pem", '-pkeyopt', 'context:a=1',
    '-in', "$d/pt", '-out', "$d/rec");
is($rc, 0, 'encrypt with a level-2 trace') or diag $err;
my $trace = slurp("$d/trace");
like($trace, qr/dispatch $_\b/, "trace has $_") for qw(pem2der_decode init rc_encrypt);

# 8 threads load the same keyset at once.
($rc, $out, $err) = run("$b/kms_probe", $b, 'threads', "$d/ks.pem", 8);
is($rc, 0, '8 threads load one keyset at once') or diag $err;

done_testing();
