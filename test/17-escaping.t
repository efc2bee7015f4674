# SPDX-License-Identifier: Apache-2.0
# Text from an unauthenticated keyset (its KEK spec) reaches errors, the
# debug log and -text/inspect output escaped: no terminal control bytes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
my $evil = "$d/k\e]0:owned\a\e[31mred\r\nx";
make_kek($evil);
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$evil", '-out', "$d/ks.pem");
is($rc, 0, 'keyset under a KEK whose path holds escapes') or diag $err;

sub clean {
    my ($text, $what) = @_;
    ok($text !~ /[\x00-\x08\x0b-\x1f\x7f]/, "$what: no control bytes");
}

($rc, $out, $err) = ossl('pkey', '-in', "$d/ks.pem", '-text', '-noout');
is($rc, 0, '-text works');
like($out, qr/k\\x1b\]0:owned\\x07\\x1b\[31mred\\x0d\\x0ax/, '-text shows the spec escaped');
clean($out, '-text');
($rc, $out, $err) = kmsenv_cli('inspect', "$d/ks.pem");
clean($out . $err, 'kmsenv inspect');

unlink $evil;
($rc, $out, $err) = ossl({ env => { KMSENV_DEBUG => "file:$d/log,level:2" } },
    'pkeyutl', '-encrypt', '-inkey', "$d/ks.pem", '-pkeyopt', 'context:a=1',
    '-in', '/dev/null', '-out', "$d/rec");
isnt($rc, 0, 'missing KEK fails');
like($err, qr/KEK file \Q$d\E\/k\\x1b\]0:owned\\x07\\x1b\[31mred\\x0d\\x0ax: No such file/,
    'the error names the KEK file, escaped');
clean($err, 'error output');
my $log = slurp("$d/log");
like($log, qr/\\x1b\[31m/, 'the debug log has the spec, escaped');
my @lines = split /\n/, $log;
is(scalar(grep { !/^kmsenv\[\d+\]: / } @lines), 0, 'every debug log line is one entry');
clean(join('', @lines), 'debug log');

done_testing();
