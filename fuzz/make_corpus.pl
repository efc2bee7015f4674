#!/usr/bin/env perl
# SPDX-License-Identifier: Apache-2.0
# Writes the seed corpora in fuzz/corpus/<target>/ (small, committed; rerun
# after changing a vector). Sources: the test vectors of docs/FORMATS.md
# (contexts §1.3, record §2.6, keyset §3.5, stream §7.5, wrapped key §8.3), answers in the form the KMS
# emulator test/kmsemu/kmsemu.pl produces (KMS JSON, STS XML), and AWS
# shared credentials/config files.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use MIME::Base64 qw(encode_base64);

my $dir = dirname(__FILE__) . '/corpus';

sub put {
    my ($target, $name, $bytes) = @_;
    make_path("$dir/$target");
    open my $fh, '>:raw', "$dir/$target/$name" or die "$target/$name: $!";
    print $fh $bytes;
    close $fh or die;
}
sub h { my $x = shift; $x =~ s/\s+//g; pack 'H*', $x }

# docs/FORMATS.md §2.6 and §3.5
my $record = h('4b450100000001808182838485868788898a8b8c8d8e8f9091929394959697a2
18185f6b16500ca221981c195a90113b10894cc418c0cb50b97cc99b77ba5a');
my $keyset = h('048201054b4d53454e564b5301f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000000
006553f100010000000200020000000102000000006553f10000000002010000
00006555428001001466696c653a2f6574632f6b6d73656e762f6b656b10f970
f15f2534a15411780bc2e4dc8bc9003d01b0b1b2b3b4b5b6b7b8b9babba674a3
d64dd4743b991362fc9659c790349651f744c9e8d59620faf98b3e5e76c64c8c
96499c3870072901a9581c2ffda0a1a2a3a4a5a6a7a8a9aaabd78e043ce6ee9a
2a71664bf585b13ef9ff06e7d4f87a933afac5f481f5df60e77ab65060e47502
86c07382b572c109e6d27d3555dfcc2427e249a7de4de3ebaf626bf35bf6925f
40ef0db5705e887f85');
my $pem = "-----BEGIN KMSENV KEYSET-----\n"
  . join('', map { "$_\n" } encode_base64($keyset, '') =~ /(.{1,64})/g)
  . "-----END KMSENV KEYSET-----\n";

# Seeds are (over)written, never removed: fuzz/corpus also holds committed
# inputs that fuzzing found, which this script does not regenerate.

# context: texts; a NUL splits two texts parsed into one context
put('context', 'vector-1', 'table=cards,row=42');
put('context', 'vector-2', 'note=a\,b\=c\\\\d,x=');
put('context', 'vector-order', "\xc3\xa9=4,ab=3,a=2,B=1");
put('context', 'accumulate', "a=1,b=2\0b=2,c=3");
put('context', 'conflict', "a=1\0a=2,b=\\=");
put('context', 'reserved', "kmsenv:keyset=x\0aws:x=1");
put('context', 'large', 'k=' . ('v' x 4096) . ',l=' . ('w' x 4000));

# record
put('record', 'vector', $record);
put('record', 'header-only', substr($record, 0, 47));
put('record', 'plaintext', '4111111111111111');

# keyset
put('keyset', 'vector', $keyset);
put('keyset', 'truncated', substr($keyset, 0, 173));
(my $long = $keyset) =~ s/^\x04\x82\x01\x05/\x04\x83\x00\x01\x05/;
put('keyset', 'non-minimal-length', $long);

# decoder: the keyset as DER and PEM, and other things a decoder meets
put('decoder', 'keyset.der', $keyset);
put('decoder', 'keyset.pem', $pem);
(my $other = $pem) =~ s/KMSENV KEYSET/PRIVATE KEY/g;
put('decoder', 'other-label.pem', $other);

# wrapkey: wrapped private keys (§8) sealed under the §8.3 container key
# (40 41 ... 5f), so that the target's unseal and re-encode path is reached:
# the §8.3 Ed25519 vector (rebuilt here, checked byte for byte), and fixed
# RSA-2048 and EC P-256 test keys with the vector's wrap list (whose blob
# does not unwrap for them: the target never unwraps). DER and PEM.
{
    require Crypt::AuthEnc::GCM;
    sub b64 { my $x = shift; $x =~ s/\s+//g; return MIME::Base64::decode_base64($x) }
    my $der_octets = sub {
        my $c = shift;
        my $n = length $c;
        return "\x04" . ($n < 0x80 ? chr($n) : $n < 0x100 ? "\x81" . chr($n)
            : $n < 0x10000 ? "\x82" . pack('n', $n) : "\x83" . substr(pack('N', $n), 1)) . $c;
    };
    my $ck = h('404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f');
    my $nonce = h('a0a1a2a3a4a5a6a7a8a9aaab');
    my $wraps = h('01 0014 66696c653a2f6574632f6b6d73656e762f6b656b
        10 f970f15f2534a15411780bc2e4dc8bc9 003d 01b0b1b2b3b4b5b6b7b8b9babba674a3d6
        4dd4743b991362fc9659c790349651f744c9e8d59620faf98b3e5e76008ef173fc9e8c66
        7bef65cb88ef6bb7');
    my $wrapkey = sub {
        my ($type, $spki, $p8, $purpose) = @_;
        my $aad = 'KMSENVPK' . pack('C C', 1, $type) . h('000000006553f100')
          . pack('C', length $purpose) . $purpose . pack('n', length $spki) . $spki
          . $wraps;
        my ($ct, $tag) = Crypt::AuthEnc::GCM::gcm_encrypt_authenticate('AES', $ck,
            $nonce, $aad, $p8);
        return $der_octets->($aad . $nonce . $ct . $tag);
    };
    my $pemw = sub {
        return "-----BEGIN KMSENV WRAPPED PRIVATE KEY-----\n"
          . join('', map { "$_\n" } encode_base64($_[0], '') =~ /(.{1,64})/g)
          . "-----END KMSENV WRAPPED PRIVATE KEY-----\n";
    };
    my $vector = h('0481ff4b4d53454e56504b0104000000006553f1000b707269766174652d6b65
        79002c302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0e
        e172f3daa62325af021a68f707511a01001466696c653a2f6574632f6b6d7365
        6e762f6b656b10f970f15f2534a15411780bc2e4dc8bc9003d01b0b1b2b3b4b5
        b6b7b8b9babba674a3d64dd4743b991362fc9659c790349651f744c9e8d59620
        faf98b3e5e76008ef173fc9e8c667bef65cb88ef6bb7a0a1a2a3a4a5a6a7a8a9
        aaabe7a1043ee2db992b7a44248e8d9e34d67276445a0392df4d5858a46e7b2e
        523c1edeb72abb624db89861049d424258a938cfde49bb27947a898b9f152f2a
        1a02');
    my $ed = $wrapkey->(4,
        h('302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'),
        h('302e020100300506032b6570042204209d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'),
        'private-key');
    $ed eq $vector or die "wrapkey: the rebuilt §8.3 vector differs\n";
    my $rsa = $wrapkey->(1, b64(<<'SPKI'), b64(<<'PKCS8'), 'tls-server');
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApKCXdx4H9+MGMOBU8WbT
QQ0V11axbgHFYaYjbj6p3oGj4hDPFnrEk113PBkwMiUy+LlI85qfbmjZVsYo+L0b
HjNm85mUvi/NX6P3KMIxqi7yDRpf2Nv9XeYboMOuZBaUc8DaOskrzSCUgg8vLFJA
orCw7n8iaHfC1pfI3Rz2dSYlrmpQVbhUsc63cZ6zP9BTMvMYreGYFtr3ByvB7kRU
TczhM86riHhaacP1nqCDsZQeehf8SsSO/YRYcqeESdYW6bA0H5S22clGskG31crt
/KIhfRke2k3a/d5bHq1eBypi/ODk9yuEkAWRa80RS7cc/tPLa8EAH/ou59HjMWEv
+wIDAQAB
SPKI
MIIEpAIBAAKCAQEApKCXdx4H9+MGMOBU8WbTQQ0V11axbgHFYaYjbj6p3oGj4hDP
FnrEk113PBkwMiUy+LlI85qfbmjZVsYo+L0bHjNm85mUvi/NX6P3KMIxqi7yDRpf
2Nv9XeYboMOuZBaUc8DaOskrzSCUgg8vLFJAorCw7n8iaHfC1pfI3Rz2dSYlrmpQ
VbhUsc63cZ6zP9BTMvMYreGYFtr3ByvB7kRUTczhM86riHhaacP1nqCDsZQeehf8
SsSO/YRYcqeESdYW6bA0H5S22clGskG31crt/KIhfRke2k3a/d5bHq1eBypi/ODk
9yuEkAWRa80RS7cc/tPLa8EAH/ou59HjMWEv+wIDAQABAoIBAB0IOx3lHGehUDav
YRt/VDMNITRsE/c/9bSeTXJEN8XHHAUijLq8pM0ONxhQoti9CaumVVCsjIA2mll8
sb4H72/Yhcfg5kPR/0hmDJDSClsmU0ZvR8bhKOH10hp8V9VLzBtLv9CNKJ3QqI/1
KI8K5F4shc9ReVpuAFzCwMgJswb+jjAV8xZf0K164XskeUM7V7kmiPGO6yYl15rf
hEKfMo5S1czNTMUlNAa48bjAt4IIxqk45LVSkvHmpe5SIJRBNCjXnjGdSbe3zrua
lDrdzs3xaWtKgtEdCJIokHXtQLHnwEa/zowrmhbipMt3VTsT4whVtljWQks5S5Xf
70XjoCECgYEA2YuKW3zSxAKuscBtQOjn1nFWbcKIiLdObJl5uo/YnexD8PBSuG7u
/v7Ny0Wcz3rKCfECZS1FLvJ/txQNMn/938YMRSKou98MwT7zDu1Cd5985aFXQNKv
EglprCAILUPZVo7XgW7EOFyXUsJO+NN7pTATPc+fjTEsSyP6IPUhaeECgYEAwbpj
wcMMPPYPPo/kNhYsDqjGpq/EYkTCNHKy20D5HWaWagUQHDNUuYCJVQEldHizq8mg
6oRHaC8LDr9dQ9B458NkVvpGd6Pint6g9lXU/LtjsGs/T+aZBZkBi2v8D4BE9i4W
YmSBhISSi3nsHzdinasYm2AGIozo6sWR8DNkLVsCgYEA2Hx2iSikjY6lzhnSH2An
Jk3PVpbaTEMudgAdFT0EsdNmoSRnDUbH61Yh8YEq1YY5/L6sRYdRa7DCy6vWnkSk
ncV2fG5LP/pttPkx487T8Dr0jYeLTuTad7aKRFH0ESeN5wdrClDyT6xEooTfFdtP
FknLPB2bh2RB0dzRk26de8ECgYEAikR05JtIhc387WMXt361rTTKq7dxi82Vaoee
nhxOcKyCmGLKr8X3J3rVCcWKrQlk+ywqXJdSu8ovszPj5f3J/WiYmfeBCez/VvKA
obB7FnLMYOL6yhVEjBk7X/4PZiTfk3ErashfJGzWhxPa8iC+ktfF9UdguZImv0GJ
uo2DZ1cCgYAexzoCye7iOKlrYWFA0Ng7cXi12HsQZGA8W82DMTy0kWGlntVezXGW
nry6+0VLIFN5pRWTAcEI8QlFX6aodmd9dOyosgEr2o35lZ3fGmoZK7UDM6IPCo+L
f5uWrnG0DIjaKIwRrLF9NOoElvhuBXa+Mg3g2PkXDUTblzSJ/Ym7cw==
PKCS8
    my $ec = $wrapkey->(3, b64(<<'SPKI'), b64(<<'PKCS8'), 'private-key');
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQzUHy6/RgK6ah65X/RN2byGc2Lso
tmCknXIb7kRdBRqVnuD9uy/wVOIAmAzErW2+uISOEqAaeHsfsNAW0S+vpQ==
SPKI
MHcCAQEEIOp9Ua4NZWYK4MGhsuYdCqpp6Xk40qDYE5lUk44w/45toAoGCCqGSM49
AwEHoUQDQgAEQzUHy6/RgK6ah65X/RN2byGc2LsotmCknXIb7kRdBRqVnuD9uy/w
VOIAmAzErW2+uISOEqAaeHsfsNAW0S+vpQ==
PKCS8
    put('wrapkey', 'ed25519-vector.der', $ed);
    put('wrapkey', 'ed25519-vector.pem', $pemw->($ed));
    put('wrapkey', 'rsa2048.der', $rsa);
    put('wrapkey', 'rsa2048.pem', $pemw->($rsa));
    put('wrapkey', 'ec-p256.der', $ec);
    put('wrapkey', 'ec-p256.pem', "notes kept beside the key\n" . $pemw->($ec));
    put('wrapkey', 'truncated.der', substr($ec, 0, 120));
}

# stream (FORMATS.md §7): flags (bit 0: encrypt the payload first; bit 1:
# then flip a bit; bit 2: then cut), 8 bytes of seed for the update sizes,
# the payload. Streams under the keys of §7.5 (version 7: DEK 11 x 32,
# version 1: DEK 33 x 32; keyset id 22 x 16, context app=test), computed
# with Python cryptography (HKDF and AESGCM exactly as §7.2): the §7.5
# vector; frames of 200, 33 and 1 bytes and a tail of 16 (version 7);
# frames of 100, 31 and 32 and a tail of 5 (version 1); the empty stream.
my %stream = (
    'vector' => h('01000000070102030405060708090a0b00000018814e7f8e87e02d2410fb282e
6b64cf9e7f840053606dc9adf30a1e267f35d6ca754b603fbf1b0e6c00000005
7e2de8c672616b627994d3a9a37b5d18c7d9ea71af105084141ebaf13279f71c
3c7e951d191dccde55ecb1ca6a6a702c00d8fe9b6f'),
    'multi' => h('0100000007000102030405060708090a000000c853e9a79772f8fa8691ffbf0d
e02b9658767a67e67311bdc58a1f881536e878cf393cf404ae3c5a48276ca3cf
c62be5a5af534ce2463ece1a2250b222dc2aea0bec9a326789fbf47f2b5ee0b3
b3e2a64ba3e0a969a5e1a3e2292d75ea0da66539608ea0a3eff643681c827118
e1c452b76be871453f34bc9c020b82637d0f0651da52f60043f7f2386631cd19
45a0242f13f9c3e8f9b6f12042a2f3e824b75ae6b06aa0fedb83be60b640cda3
68806c7652c359c33d5520feebf6a4979bfcc9824d828ae29551329744235986
4fa07af449809f9da618efe2000000215bec0f970a64416d0c63ab4730a05cd1
d7d7764530daab21708beea93b2f153ca6e735ca70a523bfe202b1a53c962a9a
8100000001b6d75f04b90b64a6cd9e4e98ee58894d0efd1265aa1d4006ead3d7
c6edc80edad3bbc6bec1bdecbf405556edfb9cd3d36f'),
    'v1-short-tail' => h('01000000010b0c0d0e0f10111213141500000064c1cfff9db9bbccde0b3e49f8
6fa3af01516018f3c441f2e58ce6d71197d23fe7122713501f0b69faaf48b494
54ab379ed8407bbc0c68be2954bb3a4d53b683e852828791acec39ffbd13302d
5c34b51dcf117e7302073844f946c8dc370a1f969c9bff5251d91aaa8bd6f3a2
f4ffa822de54a9c90000001f851983650a1b964edf18983d61c631f03df76729
9b6b72ccfd2ce123350340808a30f3e3ba23b9d73c215a87e26e6800000020a4
f0f8bf6f727d49224fbefe8a21e68afce0d62cdadf0c3c155ac051ba175e5d97
84dae90be22743531982c9e5518e2991a9bc66fad267a7d11b778fdbbccdcefb
e3ef81e4'),
    'empty' => h('0100000007161718191a1b1c1d1e1f20f7b9616b8809270e8e4e96322b0fb493'),
);
my @seeds = ("\x00" x 8, "\x01\x23\x45\x67\x89\xab\xcd\xef", "\xff" x 8);
for my $name (sort keys %stream) {
    put('stream', "$name-$_", "\x00" . $seeds[$_] . $stream{$name}) for 0 .. 2;
}
put('stream', 'vector-truncated', "\x00" . $seeds[1] . substr($stream{vector}, 0, 80));
put('stream', 'vector-extended', "\x00" . $seeds[1] . $stream{vector} . 'x');
put('stream', 'roundtrip-empty', "\x01" . $seeds[1]);
put('stream', 'roundtrip-45', "\x01" . $seeds[1] . 'kmsenv stream test vector, forty-five bytes!!');
put('stream', 'roundtrip-5000', "\x01" . $seeds[2] . ('0123456789' x 500));
put('stream', 'flip-300', "\x03" . $seeds[1] . ('z' x 300));
put('stream', 'cut-300', "\x05" . $seeds[2] . ('y' x 300));

# json: KMS answers as kmsemu.pl writes them (JSON::PP canonical)
my $arn = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
my $b64 = encode_base64(h('404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f'), '');
my $blob = encode_base64('E' x 150, '');
put('json', 'decrypt', qq({"EncryptionAlgorithm":"SYMMETRIC_DEFAULT","KeyId":"$arn","Plaintext":"$b64"}));
put('json', 'generate-data-key', qq({"CiphertextBlob":"$blob","KeyId":"$arn","Plaintext":"$b64"}));
put('json', 'error', q({"__type":"AccessDeniedException","message":"User: arn:aws:iam::111122223333:user/kmsemu is not authorized to perform: kms:Decrypt"}));
put('json', 'ecs-credentials', qq({\n  "AccessKeyId" : "ASIAIOSFODNN7EXAMPLE",\n  "Expiration" : "2030-01-01T00:00:00Z",\n  "RoleArn" : "arn:aws:iam::111122223333:role/r",\n  "SecretAccessKey" : "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",\n  "Token" : "tok\\/en=="\n}\n));
put('json', 'escapes-nesting', q({"a":[1,-2.5e+3,0.0E-1,true,false,null,{"b":{"c":[]}}],"Message":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","Plain\u0074ext":"x"}));

# ini: credentials and config files
put('ini', 'credentials', "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ; comment\n\n# comment\n[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key: s3cr3t\naws_session_token = tok\n");
put('ini', 'config', "[default]\nregion = eu-west-1\n[profile dev]\nregion=us-east-1\ns3 =\n  max_concurrent_requests = 10\nrole_arn = arn:aws:iam::111122223333:role/r\nsource_profile = default\nweb_identity_token_file = ~/token\n[profile  dev ]\nrole_session_name = s\n");

# xml: STS answers as kmsemu.pl writes them
put('xml', 'assume-role', <<'XML');
<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>kmsemu-subject</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::111122223333:assumed-role/role/s&amp;1</Arn>
      <AssumedRoleId>AROAABCDEFGHIJKLMNOPQ:s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FQoGZXIvYXdzE&#x41;&#65;<![CDATA[tok]]></SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>
      <Expiration>2030-01-01T00:00:00.123+01:00</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <!-- <Credentials/> -->
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
XML
put('xml', 'error', <<'XML');
<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidIdentityToken</Code>
    <Message>Token &lt;expired&gt; &quot;x&quot; &apos;y&apos;</Message>
  </Error>
  <RequestId>req-2</RequestId>
</ErrorResponse>
XML
