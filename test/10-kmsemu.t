# SPDX-License-Identifier: Apache-2.0
# The loopback KMS emulator, STS and the credential servers, checked through
# the pure-Perl SigV4 client in KmsEmu.pm and through the real curl CLI.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes qw(time);
use Kmsenv qw(tmpdir slurp spurt);
use KmsEmu qw(b64 unb64);

my $JSON = JSON::PP->new->canonical->utf8;
my $dir  = tmpdir();
my $pki  = KmsEmu::make_pki("$dir/pki");
my $seed = unpack('H*', join '', map { chr int rand 256 } 1 .. 32);

my %STATIC = (akid => 'AKIAEMUSTATIC0000001', secret => 'static/secret+key');
my %TOKEN  = (akid => 'ASIAEMUSESSION000001', secret => 'session-secret',
    token => 'FwoGZXIvYXdzEN3//session+token/with=signs');

# A: https, us-east-1. B: plain http, us-west-2, same mrk seed (the other
# "region" of the same multi-Region keys).
my $A = KmsEmu->start(dir => "$dir/a", pki => $pki, mrk_seed => $seed,
    creds => [ {%STATIC}, {%TOKEN} ]);
my $B = KmsEmu->start(dir => "$dir/b", region => 'us-west-2',
    mrk_seed => $seed, creds => [ {%STATIC} ]);

like($A->url, qr{^https://127\.0\.0\.1:\d+$}, 'A is https on loopback');
like($B->url, qr{^http://127\.0\.0\.1:\d+$},  'B is plain http on loopback');

# ------------------------------------------------------------------ helpers

# A successful call: returns the decoded answer, fails the test otherwise.
sub ok_call {
    my ($emu, $op, $p, $name, %o) = @_;
    my ($st, $j, $raw) = $emu->kms($op, $p, %o);
    is($st, 200, $name // "$op succeeds") or diag $raw;
    return $j // {};
}

# A call that must fail with this HTTP status, __type and message.
sub err_call {
    my ($emu, $op, $p, $type, $msg, $name, %o) = @_;
    my $status = delete $o{status} // 400;
    my ($st, $j, $raw, $h) = $emu->kms($op, $p, %o);
    subtest $name => sub {
        is($st, $status, "HTTP $status");
        is($j && $j->{__type}, $type, $type) or diag $raw;
        if (ref $msg) { like($j && $j->{message}, $msg, 'message') }
        elsif (defined $msg) { is($j && $j->{message}, $msg, 'message') }
        like($h->{'x-amzn-requestid'} // '', qr/^[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}$/,
            'x-amzn-RequestId');
    };
    return $j;
}

# Key id and material version named in one of our blobs.
sub blob_info {
    my $b = unb64($_[0]);
    my $l = ord substr($b, 5, 1);
    return (substr($b, 6, $l), unpack('N', substr($b, 6 + $l, 4)));
}

sub encrypt {
    my ($emu, $key, $pt, $ctx, %o) = @_;
    my $j = ok_call($emu, 'Encrypt', { KeyId => $key, Plaintext => b64($pt),
        ($ctx ? (EncryptionContext => $ctx) : ()) }, "Encrypt under $key", %o);
    return $j->{CiphertextBlob};
}

# Runs a command (no sanitizer preload) -> ($exit, stdout+stderr).
sub capture {
    my @cmd = @_;
    local %ENV = %ENV;
    delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS)};
    $ENV{OPENSSL_CONF} = '/dev/null';
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

my $k1 = $A->create_key(description => 'first');
my $k2 = $A->create_key(description => 'second');
like($k1->{KeyId}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    'non-mrk key id is a UUID');
is($k1->{Arn}, 'arn:aws:kms:us-east-1:111122223333:key/' . $k1->{KeyId},
    'create_key returns the ARN');
$A->create_alias('alias/first', $k1->{KeyId});
my $arn1 = $k1->{Arn};

# ------------------------------------------------------------------ data ops

subtest 'Encrypt/Decrypt round trip, every KeyId form' => sub {
    my %ctx = (purpose => 'test', tenant => 'a b');
    my $blob = encrypt($A, $k1->{KeyId}, "hello world", \%ctx);
    my ($id, $ver) = blob_info($blob);
    is($id, $k1->{KeyId}, 'blob names the key');
    is($ver, 1, 'blob names material version 1');
    for my $form ($k1->{KeyId}, $arn1, 'alias/first',
        'arn:aws:kms:us-east-1:111122223333:alias/first', undef)
    {
        my $j = ok_call($A, 'Decrypt', { CiphertextBlob => $blob,
            EncryptionContext => \%ctx, (defined $form ? (KeyId => $form) : ()),
            GrantTokens => ['gt1', 'gt2'] }, 'Decrypt with KeyId ' . ($form // 'absent'));
        is(unb64($j->{Plaintext} // ''), 'hello world', 'plaintext back');
        is($j->{KeyId}, $arn1, 'response KeyId is the key ARN');
        is($j->{EncryptionAlgorithm}, 'SYMMETRIC_DEFAULT', 'algorithm');
    }
    # Context order on the wire does not matter.
    my $raw = '{"EncryptionContext":{"tenant":"a b","purpose":"test"},'
      . '"CiphertextBlob":"' . $blob . '"}';
    my ($st, $j) = $A->kms('Decrypt', undef, body => $raw);
    is($st, 200, 'context in another order decrypts');
    my $e = encrypt($A, 'alias/first', 'x');
    is((blob_info($e))[0], $k1->{KeyId}, 'Encrypt through an alias');
    my $j2 = ok_call($A, 'Encrypt', { KeyId => $arn1, Plaintext => b64('y') });
    is($j2->{KeyId}, $arn1, 'Encrypt answers the key ARN');
    my $max = encrypt($A, $k1->{KeyId}, 'z' x 4096);
    ok($max, '4096-byte plaintext is accepted');
};

subtest 'GenerateDataKey and WithoutPlaintext' => sub {
    for my $case ([ KeySpec => 'AES_256', 32 ], [ KeySpec => 'AES_128', 16 ],
        [ NumberOfBytes => 1, 1 ], [ NumberOfBytes => 1024, 1024 ])
    {
        my ($f, $v, $len) = @$case;
        my $j = ok_call($A, 'GenerateDataKey', { KeyId => 'alias/first',
            $f => $v, EncryptionContext => { k => 'v' } }, "GenerateDataKey $f=$v");
        my $pt = unb64($j->{Plaintext} // '');
        is(length $pt, $len, "$len-byte data key");
        is($j->{KeyId}, $arn1, 'KeyId is the ARN');
        my $d = ok_call($A, 'Decrypt', { CiphertextBlob => $j->{CiphertextBlob},
            EncryptionContext => { k => 'v' } });
        is(unb64($d->{Plaintext} // ''), $pt, 'the blob decrypts to the data key');
    }
    my $j = ok_call($A, 'GenerateDataKeyWithoutPlaintext',
        { KeyId => $k1->{KeyId}, KeySpec => 'AES_256' });
    ok(!exists $j->{Plaintext}, 'no Plaintext in the answer');
    my $d = ok_call($A, 'Decrypt', { CiphertextBlob => $j->{CiphertextBlob} });
    is(length(unb64($d->{Plaintext} // '')), 32, 'blob holds a 32-byte key');
    my $a = ok_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId}, KeySpec => 'AES_256' });
    my $b = ok_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId}, KeySpec => 'AES_256' });
    isnt($a->{Plaintext}, $b->{Plaintext}, 'data keys differ each time');
};

subtest 'ReEncrypt' => sub {
    my $blob = encrypt($A, $k1->{KeyId}, 'move me', { from => '1' });
    my $j = ok_call($A, 'ReEncrypt', { CiphertextBlob => $blob,
        SourceEncryptionContext => { from => '1' }, SourceKeyId => 'alias/first',
        DestinationKeyId => $k2->{KeyId},
        DestinationEncryptionContext => { to => '2' } });
    is($j->{KeyId}, $k2->{Arn}, 'KeyId is the destination ARN');
    is($j->{SourceKeyId}, $arn1, 'SourceKeyId is the source ARN');
    is((blob_info($j->{CiphertextBlob}))[0], $k2->{KeyId}, 'new blob names key 2');
    my $d = ok_call($A, 'Decrypt', { CiphertextBlob => $j->{CiphertextBlob},
        EncryptionContext => { to => '2' } });
    is(unb64($d->{Plaintext} // ''), 'move me', 're-encrypted blob decrypts');
    err_call($A, 'ReEncrypt', { CiphertextBlob => $blob,
        DestinationKeyId => $k2->{KeyId} }, 'InvalidCiphertextException', undef,
        'ReEncrypt with the wrong source context');
    err_call($A, 'ReEncrypt', { CiphertextBlob => $blob, SourceKeyId => $k2->{KeyId},
        SourceEncryptionContext => { from => '1' }, DestinationKeyId => $k2->{KeyId} },
        'IncorrectKeyException', qr/does not identify/, 'ReEncrypt with the wrong SourceKeyId');
};

subtest 'key management operations' => sub {
    my $j = ok_call($A, 'CreateKey', { Description => 'via api', KeySpec => 'SYMMETRIC_DEFAULT' });
    my $m = $j->{KeyMetadata} // {};
    like($m->{KeyId} // '', qr/^[0-9a-f-]{36}$/, 'CreateKey: UUID');
    is($m->{Description}, 'via api', 'description kept');
    is($m->{KeyState}, 'Enabled', 'new key enabled');
    my $mj = ok_call($A, 'CreateKey', { MultiRegion => JSON::PP::true });
    like($mj->{KeyMetadata}{KeyId} // '', qr/^mrk-[0-9a-f]{32}$/, 'MultiRegion: mrk- id');
    ok($mj->{KeyMetadata}{MultiRegion}, 'MultiRegion flag');
    my $d = ok_call($A, 'DescribeKey', { KeyId => 'alias/first' });
    is($d->{KeyMetadata}{Arn}, $arn1, 'DescribeKey through an alias');
    is($d->{KeyMetadata}{Description}, 'first', 'description');
    my $l = ok_call($A, 'ListKeys', {});
    ok((grep { $_->{KeyId} eq $k1->{KeyId} && $_->{KeyArn} eq $arn1 }
          @{ $l->{Keys} // [] }), 'ListKeys lists key 1');
    my $p = ok_call($A, 'ListKeys', { Limit => 1 });
    is(scalar @{ $p->{Keys} // [] }, 1, 'ListKeys Limit');
    ok($p->{Truncated} && $p->{NextMarker}, 'truncated with a marker');
    my $p2 = ok_call($A, 'ListKeys', { Limit => 1, Marker => $p->{NextMarker} });
    isnt($p2->{Keys}[0]{KeyId}, $p->{Keys}[0]{KeyId}, 'the marker pages on');
    ok_call($A, 'CreateAlias', { AliasName => 'alias/api', TargetKeyId => $k2->{KeyId} });
    my $al = ok_call($A, 'ListAliases', { KeyId => $k2->{KeyId} });
    is_deeply([ map { $_->{AliasName} } @{ $al->{Aliases} // [] } ], ['alias/api'],
        'ListAliases filtered by key');
    is($al->{Aliases}[0]{AliasArn}, 'arn:aws:kms:us-east-1:111122223333:alias/api', 'AliasArn');
    err_call($A, 'CreateAlias', { AliasName => 'alias/api', TargetKeyId => $k1->{KeyId} },
        'AlreadyExistsException', qr/already exists/, 'alias exists');
    ok_call($A, 'DeleteAlias', { AliasName => 'alias/api' });
    err_call($A, 'Encrypt', { KeyId => 'alias/api', Plaintext => b64('x') },
        'NotFoundException', 'Alias arn:aws:kms:us-east-1:111122223333:alias/api is not found.',
        'deleted alias is gone');
    err_call($A, 'DeleteAlias', { AliasName => 'alias/api' }, 'NotFoundException',
        qr/is not found/, 'DeleteAlias of a missing alias');
};

subtest 'enable/disable' => sub {
    my $k = $A->create_key;
    my $blob = encrypt($A, $k->{KeyId}, 'd');
    ok_call($A, 'DisableKey', { KeyId => $k->{KeyId} });
    my $msg = "$k->{Arn} is disabled.";
    err_call($A, 'Encrypt', { KeyId => $k->{KeyId}, Plaintext => b64('x') },
        'DisabledException', $msg, 'Encrypt under a disabled key');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob }, 'DisabledException', $msg,
        'Decrypt under a disabled key');
    err_call($A, 'GenerateDataKey', { KeyId => $k->{KeyId}, KeySpec => 'AES_256' },
        'DisabledException', $msg, 'GenerateDataKey under a disabled key');
    is(ok_call($A, 'DescribeKey', { KeyId => $k->{KeyId} })->{KeyMetadata}{KeyState},
        'Disabled', 'DescribeKey says Disabled');
    ok_call($A, 'EnableKey', { KeyId => $k->{KeyId} });
    ok_call($A, 'Decrypt', { CiphertextBlob => $blob }, 'decrypts once enabled');
    $A->disable_key($k->{KeyId});
    err_call($A, 'Decrypt', { CiphertextBlob => $blob }, 'DisabledException', $msg,
        'control disable-key');
    $A->enable_key($k->{KeyId});
    ok_call($A, 'Decrypt', { CiphertextBlob => $blob }, 'control enable-key');
};

# ------------------------------------------------------------------ errors

subtest 'encryption context must match exactly' => sub {
    my $blob = encrypt($A, $k1->{KeyId}, 'c', { a => '1', b => '2' });
    for my $case ([ 'different value', { a => '1', b => '3' } ],
        [ 'missing pair', { a => '1' } ], [ 'extra pair', { a => '1', b => '2', c => '3' } ],
        [ 'no context', undef ], [ 'key case', { A => '1', b => '2' } ])
    {
        my ($name, $ctx) = @$case;
        err_call($A, 'Decrypt', { CiphertextBlob => $blob,
            ($ctx ? (EncryptionContext => $ctx) : ()) },
            'InvalidCiphertextException', undef, "context: $name");
    }
    my $noctx = encrypt($A, $k1->{KeyId}, 'c');
    err_call($A, 'Decrypt', { CiphertextBlob => $noctx, EncryptionContext => { a => '1' } },
        'InvalidCiphertextException', undef, 'context given, none at encryption');
};

subtest 'corrupted and foreign blobs' => sub {
    my $blob = unb64(encrypt($A, $k1->{KeyId}, 'corrupt me'));
    for my $pos (0, 5, 10, length($blob) - 20, length($blob) - 1) {
        my $bad = $blob;
        substr($bad, $pos, 1) = chr(ord(substr($bad, $pos, 1)) ^ 0x01);
        err_call($A, 'Decrypt', { CiphertextBlob => b64($bad) },
            'InvalidCiphertextException', undef, "bit flipped at byte $pos");
    }
    err_call($A, 'Decrypt', { CiphertextBlob => b64(substr($blob, 0, 30)) },
        'InvalidCiphertextException', undef, 'truncated blob');
    err_call($A, 'Decrypt', { CiphertextBlob => b64('not a blob at all') },
        'InvalidCiphertextException', undef, 'random bytes');
    err_call($A, 'Decrypt', { CiphertextBlob => 'not*base64!' },
        'SerializationException', undef, 'bad base64');
};

subtest 'IncorrectKeyException and NotFoundException' => sub {
    my $blob = encrypt($A, $k1->{KeyId}, 'ik');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob, KeyId => $k2->{KeyId} },
        'IncorrectKeyException',
        'The key ID in the request does not identify a CMK that can perform this operation.',
        'Decrypt naming another key');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob, KeyId => $k2->{Arn} },
        'IncorrectKeyException', undef, 'Decrypt naming another key by ARN');
    my $missing = '00000000-0000-4000-8000-000000000000';
    err_call($A, 'Encrypt', { KeyId => $missing, Plaintext => b64('x') },
        'NotFoundException',
        "Key 'arn:aws:kms:us-east-1:111122223333:key/$missing' does not exist",
        'unknown key id');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob, KeyId => $missing },
        'NotFoundException', qr/does not exist/, 'Decrypt naming an unknown key');
    err_call($A, 'DescribeKey', { KeyId => 'alias/nope' }, 'NotFoundException',
        'Alias arn:aws:kms:us-east-1:111122223333:alias/nope is not found.', 'unknown alias');
    err_call($A, 'DescribeKey', { KeyId => "arn:aws:kms:us-east-1:444455556666:key/$k1->{KeyId}" },
        'NotFoundException', qr/does not exist/, 'ARN of another account');
};

subtest 'ValidationException and friends' => sub {
    err_call($A, 'Encrypt', { KeyId => $k1->{KeyId}, Plaintext => b64('p' x 4097) },
        'ValidationException', qr/less than or equal to 4096/, '4097-byte plaintext');
    err_call($A, 'Encrypt', { KeyId => $k1->{KeyId}, Plaintext => '' },
        'ValidationException', qr/greater than or equal to 1/, 'empty plaintext');
    err_call($A, 'Encrypt', { Plaintext => b64('x') }, 'ValidationException',
        qr/Value null at 'keyId'/, 'missing KeyId');
    err_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId}, KeySpec => 'AES_256',
        NumberOfBytes => 32 }, 'ValidationException', undef, 'KeySpec and NumberOfBytes');
    err_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId} }, 'ValidationException',
        undef, 'neither KeySpec nor NumberOfBytes');
    err_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId}, NumberOfBytes => 1025 },
        'ValidationException', qr/1024/, 'NumberOfBytes 1025');
    err_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId}, NumberOfBytes => 0 },
        'ValidationException', undef, 'NumberOfBytes 0');
    err_call($A, 'GenerateDataKey', { KeyId => $k1->{KeyId}, KeySpec => 'AES_512' },
        'ValidationException', qr/keySpec/, 'unknown KeySpec');
    err_call($A, 'Encrypt', undef, 'SerializationException', undef, 'bad JSON',
        body => '{"KeyId": ');
    err_call($A, 'Encrypt', undef, 'SerializationException', undef, 'JSON that is not an object',
        body => '[1,2]');
    err_call($A, 'Encrypt', { KeyId => $k1->{KeyId}, Plaintext => b64('x'),
        EncryptionContext => { a => { b => 1 } } }, 'SerializationException', undef,
        'context value not a string');
    err_call($A, 'FlyToTheMoon', {}, 'UnknownOperationException', undef, 'unknown operation');
    err_call($A, 'ListKeys', {}, 'UnknownOperationException', undef, 'target of another service',
        target => 'DynamoDB_20120810.ListTables');
};

# ------------------------------------------------------------------ rotation, mrk

subtest 'rotation keeps old blobs decryptable' => sub {
    my $k = $A->create_key;
    my $old = encrypt($A, $k->{KeyId}, 'v1 data', { r => 'x' });
    is((blob_info($old))[1], 1, 'blob before rotation: version 1');
    my $r = $A->rotate_key($k->{KeyId});
    is($r->{Version}, 2, 'control rotate-key: version 2');
    my $new = encrypt($A, $k->{KeyId}, 'v2 data', { r => 'x' });
    is((blob_info($new))[1], 2, 'blob after rotation: version 2');
    my $j = ok_call($A, 'RotateKeyOnDemand', { KeyId => $k->{KeyId} });
    is($j->{KeyId}, $k->{Arn}, 'RotateKeyOnDemand answers the ARN');
    my $newer = encrypt($A, $k->{KeyId}, 'v3 data');
    is((blob_info($newer))[1], 3, 'RotateKeyOnDemand: version 3');
    for my $c ([ $old, 'v1 data', { r => 'x' } ], [ $new, 'v2 data', { r => 'x' } ],
        [ $newer, 'v3 data', undef ])
    {
        my $d = ok_call($A, 'Decrypt', { CiphertextBlob => $c->[0],
            ($c->[2] ? (EncryptionContext => $c->[2]) : ()) });
        is(unb64($d->{Plaintext} // ''), $c->[1], "$c->[1] still decrypts");
    }
    # The version is authenticated: relabelling a v1 blob as v2 fails.
    my $b = unb64($old);
    my $l = ord substr($b, 5, 1);
    substr($b, 6 + $l, 4) = pack('N', 2);
    err_call($A, 'Decrypt', { CiphertextBlob => b64($b), EncryptionContext => { r => 'x' } },
        'InvalidCiphertextException', undef, 'relabelled material version');
};

subtest 'multi-Region keys across two instances' => sub {
    my $m = $A->create_key(multi_region => 1, description => 'mrk');
    like($m->{KeyId}, qr/^mrk-[0-9a-f]{32}$/, 'mrk id');
    my $blob = encrypt($A, $m->{KeyId}, 'both regions', { c => '1' });
    err_call($B, 'Decrypt', { CiphertextBlob => $blob, EncryptionContext => { c => '1' } },
        'InvalidCiphertextException', undef, 'B cannot decrypt before the key is replicated');
    my $rep = $B->replicate($m->{KeyId});
    is($rep->{Arn}, "arn:aws:kms:us-west-2:111122223333:key/$m->{KeyId}",
        'replica ARN is in B\'s region');
    my $d = ok_call($B, 'Decrypt', { CiphertextBlob => $blob, EncryptionContext => { c => '1' } },
        'B decrypts A\'s mrk blob');
    is(unb64($d->{Plaintext} // ''), 'both regions', 'same plaintext');
    is($d->{KeyId}, $rep->{Arn}, 'B answers with its own ARN');
    my $back = encrypt($B, $m->{KeyId}, 'from B');
    my $a = ok_call($A, 'Decrypt', { CiphertextBlob => $back }, 'A decrypts B\'s mrk blob');
    is(unb64($a->{Plaintext} // ''), 'from B', 'plaintext from B');
    $A->rotate_key($m->{KeyId});
    my $v2 = encrypt($A, $m->{KeyId}, 'rotated');
    is((blob_info($v2))[1], 2, 'rotated mrk blob: version 2');
    ok_call($B, 'Decrypt', { CiphertextBlob => $v2 }, 'B decrypts the rotated mrk blob');
    err_call($B, 'Decrypt', { CiphertextBlob => $blob, KeyId => $m->{Arn} },
        'NotFoundException', undef, 'A\'s ARN does not name a key in B');

    my $bk = $B->create_key;
    err_call($B, 'Decrypt', { CiphertextBlob => $blob, KeyId => $bk->{KeyId},
        EncryptionContext => { c => '1' } }, 'IncorrectKeyException', undef,
        'B: KeyId of another key of B');
    my $plain = encrypt($A, $k1->{KeyId}, 'A only');
    err_call($B, 'Decrypt', { CiphertextBlob => $plain }, 'InvalidCiphertextException',
        undef, 'a non-mrk blob from A does not decrypt in B');

    # Another seed: the same mrk id has other material.
    my $C = KmsEmu->start(dir => "$dir/c", creds => [ {%STATIC} ],
        mrk_seed => 'ab' x 32);
    $C->replicate($m->{KeyId});
    err_call($C, 'Decrypt', { CiphertextBlob => $blob, EncryptionContext => { c => '1' } },
        'InvalidCiphertextException', undef, 'another seed cannot decrypt');
    $C->stop;
    ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $C->port, Proto => 'tcp'),
        'stop closes the listener');
};

# ------------------------------------------------------------------ SigV4

subtest 'SigV4 rejections' => sub {
    my $mismatch = 'The request signature we calculated does not match the signature you '
      . 'provided. Check your AWS Secret Access Key and signing method. Consult the '
      . 'service documentation for details.';
    my $invalid_token = 'The security token included in the request is invalid.';
    ok_call($A, 'ListKeys', {}, 'static credentials accepted', creds => \%STATIC);
    ok_call($A, 'ListKeys', {}, 'session credentials accepted', creds => \%TOKEN);
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', $mismatch, 'wrong secret',
        creds => { %STATIC, secret => 'nope' });
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', $invalid_token,
        'unknown access key id', creds => { %STATIC, akid => 'AKIAUNKNOWN000000000' });
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', $invalid_token,
        'session token missing', creds => { %TOKEN, token => undef });
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', $invalid_token,
        'session token wrong', creds => { %TOKEN, token => 'other' });
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', $invalid_token,
        'session token not signed', creds => \%TOKEN,
        signed_headers => [qw(host x-amz-date content-type x-amz-target)]);
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', $invalid_token,
        'token sent with long-term credentials', creds => { %STATIC, token => 'x' });
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', qr/^Signature expired: \d{8}T\d{6}Z is now earlier than/,
        'date 6 minutes old', time => time - 360);
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', qr/^Signature not yet current: /,
        'date 6 minutes ahead', time => time + 360);
    ok_call($A, 'ListKeys', {}, 'date 4 minutes off is accepted', time => time - 240);
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException',
        'Credential should be scoped to a valid region. ', 'scope region us-west-2',
        region => 'us-west-2');
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException',
        "Credential should be scoped to correct service: 'kms'. ", 'scope service s3',
        service => 's3');
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', qr/'Host'.*SignedHeader/,
        'host not signed', signed_headers => [qw(x-amz-date content-type x-amz-target)]);
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', qr/X-Amz-Date/,
        'x-amz-date not signed', signed_headers => [qw(host content-type x-amz-target)]);
    err_call($A, 'Encrypt', { KeyId => $k1->{KeyId}, Plaintext => b64('a') },
        'InvalidSignatureException', $mismatch, 'body changed after signing',
        tamper => sub { $_[0]{body} =~ s/"Plaintext":"YQ=="/"Plaintext":"Yg=="/ or die });
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', $mismatch,
        'signed header changed after signing',
        tamper => sub { my $h = $_[0]{headers}; for (my $i = 0; $i < @$h; $i += 2) {
            $h->[$i + 1] = 'TrentService.ListAliases' if $h->[$i] eq 'X-Amz-Target' } });
    err_call($A, 'ListKeys', {}, 'InvalidSignatureException', qr/x-amz-content-sha256/,
        'x-amz-content-sha256 not the body hash',
        headers => [ 'X-Amz-Content-Sha256' => 'ab' x 32 ]);
    ok_call($A, 'ListKeys', {}, 'correct x-amz-content-sha256 accepted',
        headers => [ 'X-Amz-Content-Sha256' => Digest::SHA::sha256_hex('{}') ]);
    ok_call($A, 'ListKeys', {}, 'unsigned extra header is fine',
        tamper => sub { push @{ $_[0]{headers} }, 'X-Extra' => 'added later' });
    err_call($A, 'ListKeys', {}, 'MissingAuthenticationTokenException',
        'Missing Authentication Token', 'no Authorization header', unsigned => 1);
    err_call($A, 'ListKeys', {}, 'IncompleteSignatureException', undef,
        'malformed Authorization header',
        tamper => sub { my $h = $_[0]{headers}; for (my $i = 0; $i < @$h; $i += 2) {
            $h->[$i + 1] = 'AWS4-HMAC-SHA256 Credential=x' if $h->[$i] eq 'Authorization' } });
};

subtest 'curl --aws-sigv4 is accepted' => sub {
    my @base = ('curl', '-sS', '--max-time', '10', '--aws-sigv4', 'aws:amz:us-east-1:kms',
        '--cacert', $pki->{ca}, '-H', 'Content-Type: application/x-amz-json-1.1',
        '-H', 'X-Amz-Target: TrentService.ListKeys', '-d', '{}', '-w', '\n%{http_code}');
    my ($rc, $out) = capture(@base, '--user', "$STATIC{akid}:$STATIC{secret}", $A->url);
    is($rc, 0, 'curl ran') or diag $out;
    my ($body, $code) = $out =~ /^(.*)\n(\d+)$/s;
    is($code, 200, 'curl-signed ListKeys: 200') or diag $out;
    my $j = eval { $JSON->decode($body // '') };
    ok($j && grep({ $_->{KeyId} eq $k1->{KeyId} } @{ $j->{Keys} }), 'lists the keys');
    ($rc, $out) = capture(@base, '--user', "$STATIC{akid}:wrong-secret", $A->url);
    ($body, $code) = $out =~ /^(.*)\n(\d+)$/s;
    is($code, 400, 'curl with a wrong secret: 400') or diag $out;
    like($body // '', qr/"__type":"InvalidSignatureException"/, 'InvalidSignatureException');
    ($rc, $out) = capture(@base, '--cacert', $pki->{other_ca}, '--user',
        "$STATIC{akid}:$STATIC{secret}", $A->url);
    isnt($rc, 0, 'curl trusting the unrelated CA refuses the server');
};

# ------------------------------------------------------------------ faults

subtest 'fault injection' => sub {
    my $blob = encrypt($A, $k1->{KeyId}, 'faulty');
    my %dec = (CiphertextBlob => $blob);

    $A->fault(kind => 'throttle', count => 2, op => 'Decrypt');
    ok_call($A, 'Encrypt', { KeyId => $k1->{KeyId}, Plaintext => b64('x') },
        'a fault for Decrypt leaves Encrypt alone');
    err_call($A, 'Decrypt', \%dec, 'ThrottlingException', 'Rate exceeded', "throttled #$_")
      for 1, 2;
    ok_call($A, 'Decrypt', \%dec, 'third Decrypt goes through');

    $A->fault(kind => 'internal', count => 1);
    err_call($A, 'Decrypt', \%dec, 'KMSInternalException', undef, 'internal error', status => 500);

    $A->fault(kind => 'unavailable', count => 1);
    my ($st, $j, $raw) = $A->kms('Decrypt', \%dec);
    is($st, 503, 'unavailable: 503');
    ok(!$j && $raw =~ /Service Unavailable/, 'unavailable: a non-JSON body');

    $A->fault(kind => 'delay', count => 1, delay_ms => 400);
    my $t0 = time;
    ok_call($A, 'Decrypt', \%dec, 'delayed request still answers');
    cmp_ok(time - $t0, '>=', 0.4, 'and takes at least the delay');
    $t0 = time;
    ok_call($A, 'Decrypt', \%dec, 'the next one is not delayed');
    cmp_ok(time - $t0, '<', 0.4, 'fast again');

    $A->fault(kind => 'reset', count => 1);
    ($st, $j, $raw) = $A->kms('Decrypt', \%dec);
    is($st, 0, 'reset: no HTTP response') or diag $raw;

    $A->fault(kind => 'truncate', count => 1);
    ($st, $j, $raw) = $A->kms('Decrypt', \%dec);
    is($st, 200, 'truncate: a 200');
    ok(!$j, 'truncate: body is not valid JSON');
    like($raw, qr/^\{"/, 'truncate: it looks like the start of a JSON answer');

    $A->fault(kind => 'truncate', count => 1, short => 1);
    ($st, $j, $raw) = $A->kms('Decrypt', \%dec);
    is($st, 0, 'truncate short: body shorter than Content-Length');
    like($raw, qr/short body/, 'client saw the short body');

    $A->fault(kind => 'garbage', count => 1);
    ($st, $j, $raw) = $A->kms('Decrypt', \%dec);
    is($st, 200, 'garbage: a 200');
    ok(!$j && length $raw, 'garbage: non-JSON body');

    $A->fault(kind => 'denied', count => 1, op => 'Decrypt');
    err_call($A, 'Decrypt', \%dec, 'AccessDeniedException',
        'User: arn:aws:iam::111122223333:user/kmsemu is not authorized to perform: '
          . "kms:Decrypt on resource: $arn1 because no identity-based policy "
          . 'allows the kms:Decrypt action', 'denied: the service\'s wording, with the key ARN');
    $A->fault(kind => 'denied', count => 1, op => 'Encrypt');
    err_call($A, 'Encrypt', { KeyId => 'alias/first', Plaintext => b64('x') },
        'AccessDeniedException', qr/kms:Encrypt on resource: \Q$arn1\E because/,
        'denied: an alias resolves to the key ARN in the message');
    $A->fault(kind => 'expired', count => 1);
    err_call($A, 'Decrypt', \%dec, 'ExpiredTokenException', qr/expired/, 'expired');

    # Faults reach STS only when scoped to its action.
    $A->web_identity(token => 't', role_arn => 'arn:aws:iam::111122223333:role/f');
    my %sts = (Action => 'AssumeRoleWithWebIdentity', Version => '2011-06-15',
        RoleArn => 'arn:aws:iam::111122223333:role/f', RoleSessionName => 's',
        WebIdentityToken => 't');
    $A->fault(kind => 'throttle', count => 1, op => 'AssumeRoleWithWebIdentity');
    $A->fault(kind => 'internal', count => 1);
    my ($sst, $xml) = $A->sts(%sts);
    is($sst, 400, 'STS throttled');
    like($xml, qr{<Code>Throttling</Code>}, 'STS XML Throttling error');
    ($sst) = $A->sts(%sts);
    is($sst, 200, 'an unscoped fault does not hit STS');
    err_call($A, 'ListKeys', {}, 'KMSInternalException', undef, 'but the next KMS call',
        status => 500);

    $A->fault(kind => 'throttle', count => 5);
    my $c = $A->counters;    # control requests are neither counted nor faulted
    ok($c->{requests}, 'control plane works while faults are pending');
    $A->clear_faults;
    ok_call($A, 'Decrypt', \%dec, 'clear_faults drops pending faults');
    ok(!eval { $A->fault(kind => 'explode', count => 1); 1 }, 'unknown fault kind refused');
};

subtest 'answer and error faults' => sub {
    my $blob = encrypt($A, $k1->{KeyId}, 'patched');
    my %dec = (CiphertextBlob => $blob, KeyId => $arn1);
    $A->fault(kind => 'answer', count => 1, op => 'Decrypt',
        patch => { KeyId => $k2->{Arn}, Plaintext => b64('other'), EncryptionAlgorithm => undef });
    my $j = ok_call($A, 'Decrypt', \%dec, 'answer: a 200');
    is($j->{KeyId}, $k2->{Arn}, 'answer: KeyId replaced');
    is(unb64($j->{Plaintext}), 'other', 'answer: Plaintext replaced');
    ok(!exists $j->{EncryptionAlgorithm}, 'answer: null removes a member');
    ok(exists $j->{KeyMaterialId}, 'answer: other members as served');
    $j = ok_call($A, 'Decrypt', \%dec, 'answer fault consumed');
    is(unb64($j->{Plaintext}), 'patched', 'then the real answer again');

    my $msg = "m \e[31mred\0nul\nline";
    $A->fault(kind => 'error', count => 1, op => 'Decrypt', status => 503,
        type => 'com.amazon#ThrottlingException:http://x/y#z', message => $msg);
    err_call($A, 'Decrypt', \%dec, 'com.amazon#ThrottlingException:http://x/y#z', $msg,
        'error: status, __type and message verbatim (control characters too)', status => 503);
    $A->fault(kind => 'error', count => 1);
    err_call($A, 'Encrypt', { KeyId => $arn1, Plaintext => b64('x') },
        'KMSInternalException', undef, 'error: defaults');
    ok(!eval { $A->fault(kind => 'error', status => 200); 1 }, 'error: a 2xx status is refused');
    ok(!eval { $A->fault(kind => 'answer', patch => 'x'); 1 }, 'answer: patch must be an object');
};

subtest 'KeyMaterialId' => sub {
    my $k = $A->create_key(description => 'material ids');
    my $g = ok_call($A, 'GenerateDataKey', { KeyId => $k->{KeyId}, KeySpec => 'AES_256' });
    like($g->{KeyMaterialId} // '', qr/^[0-9a-f]{64}$/, 'GenerateDataKey: KeyMaterialId, 64 hex digits');
    my $w = ok_call($A, 'GenerateDataKeyWithoutPlaintext', { KeyId => $k->{KeyId}, KeySpec => 'AES_256' });
    is($w->{KeyMaterialId}, $g->{KeyMaterialId}, 'GenerateDataKeyWithoutPlaintext: the same material');
    my $d = ok_call($A, 'Decrypt', { CiphertextBlob => $g->{CiphertextBlob} });
    is($d->{KeyMaterialId}, $g->{KeyMaterialId}, 'Decrypt: the material the blob was made with');
    my $e = ok_call($A, 'Encrypt', { KeyId => $k->{KeyId}, Plaintext => b64('x') });
    ok(!exists $e->{KeyMaterialId}, 'Encrypt: no KeyMaterialId (as the service)');
    $A->rotate_key($k->{KeyId});
    my $g2 = ok_call($A, 'GenerateDataKey', { KeyId => $k->{KeyId}, KeySpec => 'AES_256' });
    like($g2->{KeyMaterialId} // '', qr/^[0-9a-f]{64}$/, 'after rotation: a KeyMaterialId');
    isnt($g2->{KeyMaterialId}, $g->{KeyMaterialId}, '... of the new material');
    $d = ok_call($A, 'Decrypt', { CiphertextBlob => $g->{CiphertextBlob} });
    is($d->{KeyMaterialId}, $g->{KeyMaterialId}, 'an old blob still names the old material');
    my $r = ok_call($A, 'ReEncrypt', { CiphertextBlob => $g->{CiphertextBlob},
        DestinationKeyId => $k2->{KeyId} });
    is($r->{SourceKeyMaterialId}, $g->{KeyMaterialId}, 'ReEncrypt: SourceKeyMaterialId');
    my $g3 = ok_call($A, 'GenerateDataKey', { KeyId => $k2->{KeyId}, KeySpec => 'AES_256' });
    is($r->{DestinationKeyMaterialId}, $g3->{KeyMaterialId}, 'ReEncrypt: DestinationKeyMaterialId');
    my $m = $A->create_key(multi_region => 1);
    $B->replicate($m->{KeyId});
    my $ga = ok_call($A, 'GenerateDataKey', { KeyId => $m->{KeyId}, KeySpec => 'AES_256' });
    my $db = ok_call($B, 'Decrypt', { CiphertextBlob => $ga->{CiphertextBlob} });
    is($db->{KeyMaterialId}, $ga->{KeyMaterialId}, 'replicas of an mrk- key share the material id');
};

subtest 'DryRun' => sub {
    my $blob = encrypt($A, $k1->{KeyId}, 'dry');
    my $dry = JSON::PP::true;
    my $before = $A->counters;
    my %calls = (
        Encrypt => { KeyId => $arn1, Plaintext => b64('x'), DryRun => $dry },
        Decrypt => { CiphertextBlob => $blob, DryRun => $dry },
        GenerateDataKey => { KeyId => $arn1, KeySpec => 'AES_256', DryRun => $dry },
        GenerateDataKeyWithoutPlaintext => { KeyId => $arn1, KeySpec => 'AES_256', DryRun => $dry },
        ReEncrypt => { CiphertextBlob => $blob, DestinationKeyId => $k2->{KeyId}, DryRun => $dry },
    );
    for my $op (sort keys %calls) {
        my $j = err_call($A, $op, $calls{$op}, 'DryRunOperationException',
            'The request would have succeeded, but the DryRun option is set.',
            "$op with DryRun: 412 DryRunOperationException", status => 412);
        ok(!exists $j->{Plaintext} && !exists $j->{CiphertextBlob}, "$op with DryRun: no result");
    }
    my $after = $A->counters;
    is(($after->{ok}{Decrypt} // 0) - ($before->{ok}{Decrypt} // 0), 0, 'dry runs are not counted as served');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob, EncryptionContext => { x => 'y' }, DryRun => $dry },
        'InvalidCiphertextException', undef, 'a dry run that would fail gives the real error');
    err_call($A, 'Encrypt', { KeyId => 'alias/missing', Plaintext => b64('x'), DryRun => $dry },
        'NotFoundException', qr/is not found/, 'DryRun with an unknown key: NotFoundException');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob, DryRun => 'yes' },
        'SerializationException', qr/boolean/, 'DryRun must be a boolean');
    my $j = ok_call($A, 'Decrypt', { CiphertextBlob => $blob, DryRun => JSON::PP::false },
        'DryRun false: a normal Decrypt');
    is(unb64($j->{Plaintext} // ''), 'dry', '... with the plaintext');
};

subtest 'UpdateAlias' => sub {
    $A->create_alias('alias/moving', $k1->{KeyId});
    my $blob = encrypt($A, 'alias/moving', 'before the move');
    ok_call($A, 'UpdateAlias', { AliasName => 'alias/moving', TargetKeyId => $k2->{KeyId} });
    my $j = ok_call($A, 'Encrypt', { KeyId => 'alias/moving', Plaintext => b64('x') });
    is($j->{KeyId}, $k2->{Arn}, 'the alias now names key 2');
    err_call($A, 'Decrypt', { CiphertextBlob => $blob, KeyId => 'alias/moving' },
        'IncorrectKeyException', qr/does not identify/, 'an old blob with the alias as KeyId: IncorrectKeyException');
    $j = ok_call($A, 'Decrypt', { CiphertextBlob => $blob, KeyId => $arn1 },
        'the old blob with its key ARN decrypts');
    err_call($A, 'UpdateAlias', { AliasName => 'alias/none', TargetKeyId => $k2->{KeyId} },
        'NotFoundException', qr/is not found/, 'UpdateAlias of an unknown alias');
    err_call($A, 'UpdateAlias', { AliasName => 'alias/moving', TargetKeyId => 'alias/first' },
        'ValidationException', qr/not an alias/, 'UpdateAlias to an alias');
    $A->update_alias('alias/moving', $k1->{KeyId});
    $j = ok_call($A, 'Encrypt', { KeyId => 'alias/moving', Plaintext => b64('x') });
    is($j->{KeyId}, $arn1, 'control update-alias moves it back');
};

subtest 'counters' => sub {
    $A->reset_counters;
    is_deeply($A->counters, { requests => {}, ok => {}, akid => {} }, 'reset');
    encrypt($A, $k1->{KeyId}, 'count me') for 1 .. 3;
    ok_call($A, 'ListKeys', {}, 'ListKeys with the session creds', creds => \%TOKEN);
    $A->kms('Encrypt', { KeyId => $k1->{KeyId}, Plaintext => b64('x') },
        creds => { %STATIC, secret => 'bad' });
    $A->kms('Decrypt', { CiphertextBlob => b64('junk') });
    $A->counters for 1 .. 2;    # not counted
    my $c = $A->counters;
    is($c->{requests}{Encrypt}, 4, 'Encrypt requests: 3 good + 1 bad signature');
    is($c->{ok}{Encrypt}, 3, 'Encrypt successes: 3');
    is($c->{requests}{Decrypt}, 1, 'Decrypt requests: 1');
    ok(!$c->{ok}{Decrypt}, 'Decrypt successes: none');
    is($c->{ok}{ListKeys}, 1, 'ListKeys: 1');
    is($c->{akid}{ $STATIC{akid} }, 4, 'static akid: 4 authenticated requests');
    is($c->{akid}{ $TOKEN{akid} }, 1, 'session akid: 1');
};

# ------------------------------------------------------------------ STS

subtest 'STS AssumeRoleWithWebIdentity' => sub {
    my $role = 'arn:aws:iam::111122223333:role/emu-role';
    $A->web_identity(token => 'jwt.token.here', role_arn => $role);
    my %p = (Action => 'AssumeRoleWithWebIdentity', Version => '2011-06-15',
        RoleArn => $role, RoleSessionName => 'test-session',
        WebIdentityToken => 'jwt.token.here');
    my ($st, $xml, $h) = $A->sts(%p);
    is($st, 200, 'AssumeRoleWithWebIdentity: 200') or diag $xml;
    like($xml, qr{^<AssumeRoleWithWebIdentityResponse xmlns="https://sts\.amazonaws\.com/doc/2011-06-15/">\s*<AssumeRoleWithWebIdentityResult>}s,
        'real response shape');
    my %c = map { $_ => ($xml =~ m{<$_>([^<]*)</$_>})[0] }
      qw(AccessKeyId SecretAccessKey SessionToken Expiration);
    like($c{AccessKeyId} // '', qr/^ASIA[A-Z2-7]{16}$/, 'ASIA access key id');
    ok(length($c{SecretAccessKey} // '') >= 40, 'secret');
    ok(length($c{SessionToken} // '') > 100, 'session token');
    like($c{Expiration} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'ISO8601 expiration');
    like($h->{'x-amzn-requestid'} // '', qr/^[0-9a-f-]{36}$/, 'request id');
    my $creds = { akid => $c{AccessKeyId}, secret => $c{SecretAccessKey},
        token => $c{SessionToken} };
    $A->reset_counters;
    ok_call($A, 'ListKeys', {}, 'the issued credentials work', creds => $creds);
    is($A->counters->{akid}{ $c{AccessKeyId} }, 1, 'counted under the issued akid');
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', undef,
        'issued credentials need their token', creds => { %$creds, token => undef });

    ($st, $xml) = $A->sts(%p, WebIdentityToken => 'forged');
    is($st, 400, 'wrong web identity token: 400');
    like($xml, qr{<ErrorResponse xmlns="https://sts\.amazonaws\.com/doc/2011-06-15/">.*<Code>InvalidIdentityToken</Code>}s,
        'InvalidIdentityToken');
    ($st, $xml) = $A->sts(%p, RoleArn => 'arn:aws:iam::111122223333:role/other');
    is($st, 403, 'wrong role: 403');
    like($xml, qr{<Code>AccessDenied</Code>}, 'AccessDenied');
    ($st, $xml) = $A->sts(%p, Action => 'GetSessionToken');
    like($xml, qr{<Code>InvalidAction</Code>}, 'other STS actions: InvalidAction');

    $A->web_identity(token => 'jwt.token.here', role_arn => $role, expires_in => -5);
    ($st, $xml) = $A->sts(%p);
    my ($akid) = $xml =~ m{<AccessKeyId>([^<]+)</AccessKeyId>};
    my ($sec) = $xml =~ m{<SecretAccessKey>([^<]+)</SecretAccessKey>};
    my ($tok) = $xml =~ m{<SessionToken>([^<]+)</SessionToken>};
    err_call($A, 'ListKeys', {}, 'ExpiredTokenException', qr/expired/,
        'expired STS credentials', creds => { akid => $akid, secret => $sec, token => $tok });
};

subtest 'add_creds' => sub {
    my %n = (akid => 'AKIAEMUADDED00000001', secret => 'added');
    err_call($A, 'ListKeys', {}, 'UnrecognizedClientException', undef, 'before add_creds',
        creds => \%n);
    $A->add_creds(%n);
    ok_call($A, 'ListKeys', {}, 'after add_creds', creds => \%n);
    my %t = (akid => 'ASIAEMUADDED00000002', secret => 's', token => 'tok');
    $A->add_creds(%t);
    ok_call($A, 'ListKeys', {}, 'added session credentials', creds => \%t);
};

# ------------------------------------------------------------------ HTTP robustness

# Raw HTTP to B (plain http): several requests on one connection, chunked
# bodies, Expect: 100-continue, an oversized body.
sub signed_head {
    my ($emu, $op, $body, %o) = @_;
    my $now = time;
    my @h = (Host => '127.0.0.1:' . $emu->port,
        'Content-Type' => 'application/x-amz-json-1.1',
        'X-Amz-Target' => "TrentService.$op",
        'X-Amz-Date' => KmsEmu::_amz_date($now));
    push @h, Authorization => KmsEmu::sigv4_authorization(headers => \@h,
        body => $body, time => $now, creds => \%STATIC, region => $emu->region,
        service => 'kms');
    my $s = "POST / HTTP/1.1\r\n";
    while (my ($k, $v) = splice(@h, 0, 2)) { $s .= "$k: $v\r\n" }
    return $s;
}

sub raw_exchange {
    my ($emu, $data) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $emu->port,
        Proto => 'tcp', Timeout => 5) or die "connect: $!";
    print $s $data;
    shutdown($s, 1);
    local $/;
    my $r = <$s> // '';
    close $s;
    return $r;
}

subtest 'HTTP/1.1 details' => sub {
    my $b = '{}';
    my $one = signed_head($B, 'ListKeys', $b) . "Content-Length: 2\r\n\r\n$b";
    my $r = raw_exchange($B, $one . $one . $one);
    my @st = $r =~ m{HTTP/1\.1 (\d{3}) }g;
    is_deeply(\@st, [200, 200, 200], 'three requests on one kept-alive connection');
    like($r, qr/^x-amzn-RequestId: [0-9a-f-]{36}\r$/mi, 'request id header');

    my $body = $JSON->encode({ KeyId => 'alias/none', Plaintext => b64('chunky') });
    my $chunked = signed_head($B, 'Encrypt', $body) . "Transfer-Encoding: chunked\r\n\r\n"
      . join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } $body =~ /(.{1,7})/gs)
      . "0\r\n\r\n";
    $r = raw_exchange($B, $chunked);
    like($r, qr{^HTTP/1\.1 400 .*"__type":"NotFoundException"}s,
        'chunked body: signature verified over the decoded body');

    my $exp = signed_head($B, 'ListKeys', $b)
      . "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n$b";
    $r = raw_exchange($B, $exp);
    like($r, qr{^HTTP/1\.1 100 Continue\r\n\r\nHTTP/1\.1 200 }s, 'Expect: 100-continue');

    my $big = 'x' x (1024 * 1024 + 1);
    my ($st, $j) = $B->kms('Encrypt', undef, body => $big);
    is($st, 413, 'a body over 1 MiB: 413');
    $r = raw_exchange($B, "GARBAGE\r\n\r\n");
    like($r, qr{^HTTP/1\.1 400}, 'a bad request line: 400');
    $r = raw_exchange($B, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
    is($r, '', 'a connection closed mid-body gets no answer');
    ok_call($B, 'ListKeys', {}, 'B is still alive after all that');
};

subtest 'concurrent clients' => sub {
    my $n = 6;
    my @pids;
    for my $i (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if (!$pid) {
            my $bad = 0;
            for my $r (1 .. 8) {
                my $pt = "client $i round $r";
                my ($s1, $e) = $A->kms('Encrypt', { KeyId => $k1->{KeyId}, Plaintext => b64($pt) });
                my ($s2, $d) = $A->kms('Decrypt', { CiphertextBlob => $e ? $e->{CiphertextBlob} : 'AA==' });
                $bad++ unless $s1 == 200 && $s2 == 200 && unb64($d->{Plaintext}) eq $pt;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @pids, $pid;
    }
    my $fail = 0;
    for (@pids) { waitpid($_, 0); $fail++ if $? }
    is($fail, 0, "$n clients x 8 round trips at once all succeed");
    my $t0 = time;
    encrypt($A, $k1->{KeyId}, 'timing') for 1 .. 10;
    my $per = (time - $t0) / 10;
    cmp_ok($per, '<', 0.25, sprintf('a request takes %.1f ms (new TLS connection each)', $per * 1000));
};

# ------------------------------------------------------------------ credential servers

subtest 'ECS credential server' => sub {
    my $cs = KmsEmu::CredServer->start(mode => 'ecs', dir => "$dir/ecs",
        creds => { akid => 'ASIAECS0000000000001', secret => 'ecs-secret', token => 'ecs-token' },
        auth_token => 'Bearer abc', expires_in => 1200);
    like($cs->url, qr{^http://127\.0\.0\.1:\d+$}, 'loopback http');
    my ($st, $h, $b) = KmsEmu::http_request(url => $cs->url . '/v2/creds/x', method => 'GET');
    is($st, 401, 'no Authorization: 401');
    ($st, $h, $b) = KmsEmu::http_request(url => $cs->url . '/v2/creds/x', method => 'GET',
        headers => [ Authorization => 'Bearer wrong' ]);
    is($st, 403, 'wrong Authorization: 403');
    ($st, $h, $b) = KmsEmu::http_request(url => $cs->url . '/v2/creds/x', method => 'GET',
        headers => [ Authorization => 'Bearer abc' ]);
    is($st, 200, 'right Authorization: 200');
    my $j = eval { $JSON->decode($b) } // {};
    is($j->{AccessKeyId}, 'ASIAECS0000000000001', 'AccessKeyId');
    is($j->{SecretAccessKey}, 'ecs-secret', 'SecretAccessKey');
    is($j->{Token}, 'ecs-token', 'Token');
    ok($j->{RoleArn}, 'RoleArn');
    my ($Y, $M, $D, $hh, $mm, $ss) = ($j->{Expiration} // '') =~
      /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;
    ok(defined $ss, 'ISO8601 UTC expiration');
    require Time::Local;
    my $exp = defined $ss ? Time::Local::timegm($ss, $mm, $hh, $D, $M - 1, $Y) : 0;
    cmp_ok(abs($exp - time - 1200), '<', 10, 'expires in about 1200 s');
    is_deeply($cs->counters, { '/v2/creds/x' => 3 }, 'per-path counters');
    $cs->set_creds(akid => 'ASIAECS0000000000002', fail => 1);
    ($st) = KmsEmu::http_request(url => $cs->url . '/v2/creds/x', method => 'GET',
        headers => [ Authorization => 'Bearer abc' ]);
    is($st, 500, 'injected failure');
    ($st, $h, $b) = KmsEmu::http_request(url => $cs->url . '/v2/creds/x', method => 'GET',
        headers => [ Authorization => 'Bearer abc' ]);
    like($b, qr/ASIAECS0000000000002/, 'set_creds changes what is served');
    $cs->stop;
};

subtest 'IMDSv2 credential server' => sub {
    my $cs = KmsEmu::CredServer->start(mode => 'imds', dir => "$dir/imds",
        creds => { akid => 'ASIAIMDS000000000001', secret => 'imds-secret', token => 'imds-token' });
    my $base = $cs->url . '/latest/meta-data/iam/security-credentials/';
    my ($st, $h, $b) = KmsEmu::http_request(url => $base, method => 'GET');
    is($st, 401, 'GET without a token: 401');
    ($st) = KmsEmu::http_request(url => $base, method => 'GET',
        headers => [ 'X-aws-ec2-metadata-token' => 'made-up' ]);
    is($st, 401, 'GET with an unknown token: 401');
    ($st) = KmsEmu::http_request(url => $cs->url . '/latest/api/token', method => 'PUT');
    is($st, 400, 'PUT token without a TTL: 400');
    ($st, $h, my $tok) = KmsEmu::http_request(url => $cs->url . '/latest/api/token',
        method => 'PUT', headers => [ 'X-aws-ec2-metadata-token-ttl-seconds' => 21600 ]);
    is($st, 200, 'PUT token: 200');
    ok(length $tok, 'got a token');
    ($st, $h, $b) = KmsEmu::http_request(url => $base, method => 'GET',
        headers => [ 'X-aws-ec2-metadata-token' => $tok ]);
    is($st, 200, 'role list with the token');
    is($b, 'kmsemu-role', 'the role name');
    ($st, $h, $b) = KmsEmu::http_request(url => $base . 'kmsemu-role', method => 'GET',
        headers => [ 'X-aws-ec2-metadata-token' => $tok ]);
    is($st, 200, 'credentials with the token');
    my $j = eval { $JSON->decode($b) } // {};
    is($j->{Code}, 'Success', 'Code Success');
    is($j->{Type}, 'AWS-HMAC', 'Type');
    is($j->{AccessKeyId}, 'ASIAIMDS000000000001', 'AccessKeyId');
    is($j->{Token}, 'imds-token', 'Token');
    like($j->{Expiration} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'Expiration');
    like($j->{LastUpdated} // '', qr/Z$/, 'LastUpdated');
    my $c = $cs->counters;
    is($c->{'/latest/api/token'}, 2, 'token path counted');
    is($c->{'/latest/meta-data/iam/security-credentials/kmsemu-role'}, 1, 'role path counted');
    $cs->stop;
};

subtest 'ECDSA server certificate' => sub {
    my $ec = KmsEmu::make_pki("$dir/pki-ec", key_type => 'ec');
    my $E = KmsEmu->start(dir => "$dir/e", pki => $ec, creds => [ {%STATIC} ]);
    ok_call($E, 'ListKeys', {}, 'Perl client over an ECDSA certificate');
    my ($rc, $out) = capture('curl', '-sS', '--cacert', $ec->{ca}, '--aws-sigv4',
        'aws:amz:us-east-1:kms', '--user', "$STATIC{akid}:$STATIC{secret}",
        '-H', 'Content-Type: application/x-amz-json-1.1',
        '-H', 'X-Amz-Target: TrentService.ListKeys', '-d', '{}', $E->url);
    like($out, qr/"Keys":\[\]/, 'curl over an ECDSA certificate') or diag $out;
    $E->stop;
};

subtest 'start-up failure is reported' => sub {
    my $ok = eval { KmsEmu->start(dir => "$dir/bad", pki => { cert => '/nonexistent',
        key => '/nonexistent', ca => '/nonexistent' }); 1 };
    ok(!$ok, 'start dies when the server cannot come up');
    like($@, qr/TLS setup|exited/, 'with the server\'s own error') or diag $@;
};

ok(-s $A->log_file, 'the emulator logs to its state dir');
$A->stop;
$B->stop;
done_testing;
