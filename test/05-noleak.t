# SPDX-License-Identifier: Apache-2.0
# No leak: derive the KSK and every data key independently (KEK file +
# docs/FORMATS.md, with CryptX's AES-GCM), then look for them in every output
# of every command: text, PEM, DER, errors, the debug log, the C export paths.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Kmsenv;
use Crypt::AuthEnc::GCM qw(gcm_decrypt_verify);
use MIME::Base64 qw(encode_base64);

# CryptX wants plain strings: copy substr() results before passing them.
sub gcm_open {
    my ($key, $iv, $aad, $ct, $tag) = map { my $c = "$_"; $c } @_;
    return gcm_decrypt_verify('AES', $key, $iv, $aad, $ct, $tag);
}

my $d = tmpdir();
my $kek = make_kek("$d/kek");
my %env = (KMSENV_DEBUG => "file:$d/debug.log,level:2");
my @outputs;
sub keep { my @r = @_; push @outputs, $r[1], $r[2]; return @r }

keep(ossl({ env => \%env }, 'genpkey', '-algorithm', 'KMSENV-KEYSET',
    '-pkeyopt', "keyring:file:$d/kek", '-out', "$d/k.pem"));
keep(kmsenv_cli({ env => \%env }, 'rotate', "$d/k.pem"));
keep(kmsenv_cli({ env => \%env }, 'rotate', "$d/k.pem"));
keep(kmsenv_cli({ env => \%env }, 'disable', "$d/k.pem", '--version', '1'));

# --- independent derivation (docs/FORMATS.md) ---
my $der = pem_body(slurp("$d/k.pem"));
my ($tag, $l1) = unpack('CC', $der);
my $off = 2;
if ($l1 & 0x80) { my $n = $l1 & 0x7f; $off += $n }
my $body = substr($der, $off);
is(substr($body, 0, 8), 'KMSENVKS', 'keyset magic');
my $p = 8;
my $fmt = unpack('C', substr($body, $p, 1)); $p += 1;
my $id = substr($body, $p, 16); $p += 16;
$p += 8 + 1;                      # created, alg
$p += 4;                          # primary
my $nver = unpack('n', substr($body, $p, 2)); $p += 2;
$p += 13 * $nver;
my $nwrap = unpack('C', substr($body, $p, 1)); $p += 1;
my $blob;
for (1 .. $nwrap) {
    my $sl = unpack('n', substr($body, $p, 2)); $p += 2 + $sl;
    my $fl = unpack('C', substr($body, $p, 1)); $p += 1 + $fl;
    my $bl = unpack('n', substr($body, $p, 2)); $p += 2;
    $blob //= substr($body, $p, $bl); $p += $bl;
}
my $aad_len = $p;
is($nver, 3, 'three versions');

sub ctx_enc {
    my (%c) = @_;
    my $e = pack('n', scalar keys %c);
    for my $k (sort keys %c) { $e .= pack('n/a* n/a*', $k, $c{$k}) }
    return $e;
}
my $ctx = ctx_enc('kmsenv:keyset' => unpack('H*', $id), 'kmsenv:purpose' => 'keyset');
is(substr($blob, 0, 1), "\x01", 'file wrap blob version');
my $ksk = gcm_open($kek, substr($blob, 1, 12),
    "kmsenv-file-wrap-v1\0" . $ctx, substr($blob, 13, 32), substr($blob, 45, 16));
ok(defined $ksk && length($ksk) == 32, 'KSK derived independently from the KEK file');
my $sealed = substr($body, $aad_len);
my $keys = gcm_open($ksk, substr($sealed, 0, 12),
    substr($body, 0, $aad_len), substr($sealed, 12, 32 * $nver),
    substr($sealed, 12 + 32 * $nver, 16));
ok(defined $keys && length($keys) == 32 * $nver, 'all data keys derived independently');
my @secrets = ($kek, $ksk, map { substr($keys, 32 * $_, 32) } 0 .. $nver - 1);

# --- exercise every command and path ---
spurt("$d/pt", 'card 4111111111111111');
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem", '-text', '-noout'));
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem", '-text'));
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem"));
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem", '-outform', 'DER'));
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem", '-pubout'));
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem", '-text_pub', '-noout'));
keep(ossl({ env => \%env }, 'pkeyutl', '-encrypt', '-inkey', "$d/k.pem",
    '-pkeyopt', 'context:a=1', '-in', "$d/pt", '-out', "$d/ct"));
keep(ossl({ env => \%env }, 'pkeyutl', '-decrypt', '-inkey', "$d/k.pem",
    '-pkeyopt', 'context:a=2', '-in', "$d/ct"));
keep(ossl({ env => \%env }, 'pkeyutl', '-decrypt', '-inkey', "kmsenv:$d/k.pem",
    '-pkeyopt', 'context:a=1', '-in', "$d/ct"));
keep(kmsenv_cli({ env => \%env }, 'inspect', "$d/k.pem"));
keep(run({ env => \%env }, build_dir() . '/export_probe', build_dir(), "$d/k.pem"));
make_kek("$d/other");
rename("$d/kek", "$d/kek.real"); rename("$d/other", "$d/kek");
keep(ossl({ env => \%env }, 'pkey', '-in', "$d/k.pem", '-noout'));   # wrong KEK
rename("$d/kek.real", "$d/kek");
push @outputs, slurp("$d/debug.log");
ok(length(slurp("$d/debug.log")) > 0, 'debug log was written');
my @files = glob("$d/*");
push @outputs, map { slurp($_) } grep { !/\/(kek|kek\.real|other)$/ } @files;

my $found = 0;
for my $s (@secrets) {
    my @forms = ($s, unpack('H*', $s), uc unpack('H*', $s),
        encode_base64($s, ''), substr(encode_base64($s, ''), 0, 40));
    for my $o (@outputs) {
        for my $f (@forms) { $found++ if index($o, $f) >= 0 }
    }
}
is($found, 0, 'no KEK, KSK or data key (raw, hex or base64) in any of '
    . scalar(@outputs) . ' outputs');

done_testing();
