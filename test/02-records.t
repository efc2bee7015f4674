# SPDX-License-Identifier: Apache-2.0
# Context-bound records through openssl pkeyutl.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;

my $d = tmpdir();
make_kek("$d/kek");
my ($rc, $out, $err) = ossl('genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/k.pem");
is($rc, 0, 'keyset') or BAIL_OUT($err);

sub enc {
    my ($in, @ctx) = @_;
    spurt("$d/pt", $in);
    my @o = map { ('-pkeyopt', "context:$_") } @ctx;
    my ($r, $o, $e) = ossl('pkeyutl', '-encrypt', '-inkey', "$d/k.pem", @o,
        '-in', "$d/pt", '-out', "$d/ct");
    return $r == 0 ? slurp("$d/ct") : undef;
}

sub dec {
    my ($ct, @ctx) = @_;
    spurt("$d/ct2", $ct);
    my @o = map { ('-pkeyopt', "context:$_") } @ctx;
    return ossl('pkeyutl', '-decrypt', '-inkey', "$d/k.pem", @o,
        '-in', "$d/ct2");
}

for my $size (0, 1, 4096, 1024 * 1024) {
    my $pt = join '', map { chr(int(rand(256))) } 1 .. $size;
    my $ct = enc($pt, 'table=cards,row=42');
    ok(defined $ct, "encrypt $size bytes");
    is(length($ct), $size + 47, "record of $size bytes has 47 bytes overhead");
    my ($r, $o, $e) = dec($ct, 'table=cards,row=42');
    is($r, 0, "decrypt $size bytes") or diag $e;
    ok($o eq $pt, "round trip of $size bytes");
    ($r, $o, $e) = dec($ct, 'table=cards,row=43');
    isnt($r, 0, "$size bytes: wrong context fails");
    is($o, '', "$size bytes: nothing released on failure");
}

my $ct = enc('4111111111111111', 'table=cards,row=42');
my ($r, $o, $e) = dec($ct, 'row=42,table=cards');
is($o, '4111111111111111', 'reordered pairs decrypt (the context is a set)');
($r, $o, $e) = dec($ct, 'table=cards', 'row=42');
is($o, '4111111111111111', 'repeated context options accumulate');
($r, $o, $e) = dec($ct, 'table=cards');
isnt($r, 0, 'missing pair fails');
like($e, qr/decryption refused under context \{table=cards\}/, '... with the context in the error');
($r, $o, $e) = dec($ct, 'table=cards,row=42,tenant=a');
isnt($r, 0, 'extra pair fails');
($r, $o, $e) = dec($ct, 'table=users,row=42');
isnt($r, 0, 'other table fails');
($r, $o, $e) = dec($ct);
isnt($r, 0, 'no context fails');

# A record moved to another row.
my $row7 = enc('5500000000000004', 'table=cards,row=7');
($r, $o, $e) = dec($row7, 'table=cards,row=42');
isnt($r, 0, 'record moved to row 42 fails');
like($e, qr/record authentication failed/, '... as an authentication failure');

# Bad context syntax.
($r, $o, $e) = dec($ct, 'table');
like($e, qr/expected key=value/, 'malformed context is a clear error');
($r, $o, $e) = dec($ct, 'kmsenv:x=1');
like($e, qr/reserved prefix/, 'reserved context keys are refused');
($r, $o, $e) = dec($ct, 'a=1,a=2');
like($e, qr/given twice with different values/, 'conflicting duplicates are refused');
($r, $o, $e) = dec($ct, 'row=42', 'table=cards', 'row=42');
is($o, '4111111111111111', 'an identical repeated pair is harmless');

# Escapes: a comma inside a value.
my $esc = enc('x', 'note=a\,b');
($r, $o, $e) = dec($esc, 'note=a\,b');
is($o, 'x', 'escaped comma in a value');
($r, $o, $e) = dec($esc, 'note=a', 'b=');
isnt($r, 0, 'escaping is not ambiguous');

# Every single-byte flip of a record is rejected, and releases nothing.
my $small = enc('hello', 't=1');
my $bad = 0;
for my $i (0 .. length($small) - 1) {
    my $t = $small;
    substr($t, $i, 1) = chr(ord(substr($t, $i, 1)) ^ 0x01);
    my ($fr, $fo) = dec($t, 't=1');
    $bad++ if $fr == 0 || $fo ne '';
}
is($bad, 0, 'all ' . length($small) . ' single-byte flips of a record are rejected');

# Truncation and garbage.
($r, $o, $e) = dec(substr($small, 0, 46), 't=1');
like($e, qr/not a kmsenv record/, 'a truncated record is rejected clearly');
($r, $o, $e) = dec(substr($small, 0, length($small) - 1), 't=1');
isnt($r, 0, 'a record missing its last byte fails');
($r, $o, $e) = dec('x' x 100, 't=1');
like($e, qr/not a kmsenv record/, 'garbage is rejected clearly');

# Empty plaintext still authenticates: wrong context on an empty record fails.
my $empty = enc('', 't=1');
($r, $o, $e) = dec($empty, 't=2');
isnt($r, 0, 'empty record under the wrong context fails');

done_testing();
