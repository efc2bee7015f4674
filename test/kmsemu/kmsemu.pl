#!/usr/bin/env perl
# SPDX-License-Identifier: Apache-2.0
# Loopback AWS KMS emulator (JSON 1.1 protocol, SigV4-verified), with STS
# AssumeRoleWithWebIdentity and a test control plane under /_emu/ on the
# same listener. Flags and behaviour: README.md beside this file.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use KmsEmu ();
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate gcm_decrypt_verify);
use Fcntl qw(:flock);
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

my %opt = (
    region => 'us-east-1', account => '111122223333', idle_timeout => 30,
    max_body => 1024 * 1024, clock_skew => 300,
);
my @cred_args;
GetOptions(
    'state-dir=s'    => \$opt{dir},
    'region=s'       => \$opt{region},
    'account=s'      => \$opt{account},
    'tls-cert=s'     => \$opt{tls_cert},
    'tls-key=s'      => \$opt{tls_key},
    'port=i'         => \$opt{port},
    'port-file=s'    => \$opt{port_file},
    'cred=s'         => \@cred_args,
    'mrk-seed=s'     => \$opt{mrk_seed},
    'parent-pid=i'   => \$opt{parent_pid},
    'idle-timeout=i' => \$opt{idle_timeout},
    'max-body=i'     => \$opt{max_body},
    'clock-skew=i'   => \$opt{clock_skew},
) or die "usage: see test/kmsemu/README.md\n";
die "--state-dir is required\n" unless $opt{dir};
die "--tls-cert and --tls-key go together\n"
  if !!$opt{tls_cert} != !!$opt{tls_key};
die "--mrk-seed must be hex\n"
  if defined $opt{mrk_seed} && $opt{mrk_seed} !~ /^(?:[0-9a-fA-F]{2})+$/;
$opt{port_file} //= "$opt{dir}/port";

my $JSON = JSON::PP->new->canonical->utf8;
my $REGION  = $opt{region};
my $ACCOUNT = $opt{account};
my $STATE   = "$opt{dir}/state.json";
my $LOCK    = "$opt{dir}/state.lock";

# ------------------------------------------------------------------ state
#
# One JSON file, read and rewritten under an exclusive flock by whichever
# per-connection process handles a request:
#   keys     id => { id, created, description, enabled, mrk, version,
#                    materials => { version => hex } (non-mrk), seq }
#   aliases  'alias/x' => { target, created }
#   creds    akid => { secret, token, expires }
#   faults   [ { kind, count, op, delay_ms, short } ]
#   counters { requests => {op => n}, ok => {op => n}, akid => {akid => n} }
#   web_identity { token, role_arn, expires_in }
#   mrk_seed hex

sub with_state {
    return KmsEmu::HTTPD::with_state($STATE, $LOCK, \&new_state, @_);
}

sub new_state {
    return {
        keys => {}, aliases => {}, creds => {}, faults => [], seq => 0,
        counters => { requests => {}, ok => {}, akid => {} },
        web_identity => undef,
        mrk_seed => unpack('H*', KmsEmu::HTTPD::random_bytes(32)),
    };
}

# Start-up: command-line credentials and seed into the (possibly existing)
# state.
with_state(sub {
    my ($st) = @_;
    for my $c (@cred_args) {
        my ($akid, $secret, $token) = split /:/, $c, 3;
        die "--cred AKID:SECRET[:TOKEN]\n" unless length($akid // '')
          && length($secret // '');
        $st->{creds}{$akid} = { secret => $secret, token => $token };
    }
    $st->{mrk_seed} = lc $opt{mrk_seed} if defined $opt{mrk_seed};
});

# ------------------------------------------------------------------ helpers

# KMS-style errors travel as exceptions: die kms_err(Type, message, status).
sub kms_err {
    my ($type, $msg, $status) = @_;
    return bless { type => $type, msg => $msg, status => $status // 400 },
      'KmsEmu::Err';
}

sub key_arn   { "arn:aws:kms:$REGION:$ACCOUNT:key/$_[0]" }
sub alias_arn { "arn:aws:kms:$REGION:$ACCOUNT:$_[0]" }

sub validation {
    die kms_err('ValidationException', "1 validation error detected: $_[0]");
}

# Typed parameter access; a wrong JSON type is a SerializationException,
# as with the real service.
sub p_str {
    my ($p, $name, $required, $max) = @_;
    my $v = $p->{$name};
    if (!defined $v) {
        return undef unless $required;
        my $lc = lcfirst $name;
        validation("Value null at '$lc' failed to satisfy constraint: "
              . 'Member must not be null');
    }
    die kms_err('SerializationException',
        "Expected a string for '$name'") if ref $v;
    if (length($v) < 1 || ($max && length($v) > $max)) {
        my $lc = lcfirst $name;
        validation("Value '$v' at '$lc' failed to satisfy constraint: "
              . 'Member must have length '
              . (length($v) < 1 ? 'greater than or equal to 1'
                : "less than or equal to $max"));
    }
    return $v;
}

sub p_blob {
    my ($p, $name, $required, $max) = @_;
    my $v = $p->{$name};
    if (!defined $v) {
        return undef unless $required;
        validation("Value null at '" . lcfirst($name)
              . "' failed to satisfy constraint: Member must not be null");
    }
    die kms_err('SerializationException',
        "Expected a base64 string for '$name'") if ref $v;
    die kms_err('SerializationException',
        "Value for '$name' is not valid base64")
      unless length($v) % 4 == 0 && $v =~ m{^[A-Za-z0-9+/]*={0,2}$};
    my $b = decode_base64($v);
    my $lc = lcfirst $name;
    validation("Value at '$lc' failed to satisfy constraint: "
          . 'Member must have length greater than or equal to 1')
      if length($b) < 1;
    validation("Value at '$lc' failed to satisfy constraint: "
          . "Member must have length less than or equal to $max")
      if $max && length($b) > $max;
    return $b;
}

sub p_int {
    my ($p, $name) = @_;
    my $v = $p->{$name};
    return undef unless defined $v;
    die kms_err('SerializationException', "Expected an integer for '$name'")
      if ref $v || $v !~ /^-?\d+$/;
    return 0 + $v;
}

sub p_bool {
    my ($p, $name) = @_;
    my $v = $p->{$name};
    return 0 unless defined $v;
    die kms_err('SerializationException', "Expected a boolean for '$name'")
      unless JSON::PP::is_bool($v);
    return $v ? 1 : 0;
}

sub p_context {
    my ($p, $name) = @_;
    my $c = $p->{$name};
    return {} unless defined $c;
    die kms_err('SerializationException',
        "Expected a map of strings for '$name'")
      unless ref $c eq 'HASH' && !grep { !defined || ref } values %$c;
    return $c;
}

sub p_grant_tokens {
    my ($p) = @_;
    my $g = $p->{GrantTokens};
    return unless defined $g;
    die kms_err('SerializationException', 'Expected a list for GrantTokens')
      unless ref $g eq 'ARRAY' && !grep { !defined || ref } @$g;
    validation("Value '[...]' at 'grantTokens' failed to satisfy constraint: "
          . 'Member must have length less than or equal to 10') if @$g > 10;
}

sub p_algorithm {
    my ($p, $name) = @_;
    my $a = p_str($p, $name);
    validation("Value '$a' at '" . lcfirst($name) . "' failed to satisfy "
          . 'constraint: Member must satisfy enum value set: '
          . '[SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]')
      if defined $a && $a ne 'SYMMETRIC_DEFAULT';
}

# A key from any of the four KeyId forms; NotFoundException otherwise.
sub resolve_key {
    my ($st, $spec) = @_;
    my $name = $spec;
    if ($spec =~ /^arn:/) {
        my ($region, $account, $rest) =
          $spec =~ m{^arn:aws:kms:([^:]*):([^:]*):((?:key|alias)/.+)$}
          or die kms_err('NotFoundException', "Invalid arn $spec");
        if ($region ne $REGION || $account ne $ACCOUNT) {
            die kms_err('NotFoundException', "Invalid arn $region")
              if $region ne $REGION;
            die kms_err('NotFoundException',
                $rest =~ /^alias/ ? "Alias $spec is not found."
                : "Key '$spec' does not exist");
        }
        $name = $rest;
        $name =~ s{^key/}{};
    }
    if ($name =~ m{^alias/}) {
        my $a = $st->{aliases}{$name}
          or die kms_err('NotFoundException',
            'Alias ' . alias_arn($name) . ' is not found.');
        return $st->{keys}{ $a->{target} };
    }
    die kms_err('NotFoundException', "Invalid keyId '$name'")
      unless $name =~ /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
    return $st->{keys}{$name}
      // die kms_err('NotFoundException',
        "Key '" . key_arn($name) . "' does not exist");
}

sub check_enabled {
    my ($k) = @_;
    die kms_err('DisabledException', key_arn($k->{id}) . ' is disabled.')
      unless $k->{enabled};
}

# ------------------------------------------------------------------ crypto

# The 32-byte backing key of one material version: random per key, except
# mrk- keys, whose material is derived from the seed so that instances
# sharing a seed (two "regions") agree on it.
sub material {
    my ($st, $k, $version) = @_;
    if ($k->{mrk}) {
        return undef if $version < 1 || $version > 1_000_000;
        return hmac_sha256("kmsemu-mrk\0$k->{id}\0$version",
            pack('H*', $st->{mrk_seed}));
    }
    my $hex = $k->{materials}{$version};
    return defined $hex ? pack('H*', $hex) : undef;
}

# KeyMaterialId of one material version: 64 lower-case hex digits, as the
# service answers (derived from the key id and version, so replicas of an
# mrk- key agree on it, like the real service's shared material).
sub key_material_id {
    my ($k, $version) = @_;
    return sha256_hex("kmsemu-key-material\0$k->{id}\0$version");
}

# Encryption context in a canonical, unambiguous byte form: sorted by key,
# each key and value length-prefixed.
sub canon_context {
    my ($c) = @_;
    my $s = pack('N', scalar keys %$c);
    for my $k (sort keys %$c) {
        my ($kb, $vb) = map { my $x = $_; utf8::encode($x); $x } $k, $c->{$k};
        $s .= pack('N/a* N/a*', $kb, $vb);
    }
    return $s;
}

# Blob: "KEMU" 0x01 | u8 id length | key id | u32 material version |
# 12-byte IV | AES-256-GCM ciphertext | 16-byte tag. AAD: everything before
# the IV (so the key id and version are authenticated) + canonical context.
sub seal {
    my ($st, $k, $pt, $ctx) = @_;
    my $head = 'KEMU' . pack('C C/a* N', 1, $k->{id}, $k->{version});
    my $iv = KmsEmu::HTTPD::random_bytes(12);
    my ($ct, $tag) = gcm_encrypt_authenticate('AES',
        material($st, $k, $k->{version}), $iv, $head . canon_context($ctx), $pt);
    return $head . $iv . $ct . $tag;
}

# Returns (key id, version, iv, ct, tag, head) or dies InvalidCiphertext.
sub parse_blob {
    my ($blob) = @_;
    my $bad = kms_err('InvalidCiphertextException', undef);
    die $bad unless length($blob) >= 6 && substr($blob, 0, 5) eq "KEMU\x01";
    my $idlen = ord substr($blob, 5, 1);
    my $hlen = 6 + $idlen + 4;
    die $bad if length($blob) < $hlen + 12 + 16;
    my $id = substr($blob, 6, $idlen);
    my $version = unpack('N', substr($blob, 6 + $idlen, 4));
    return ($id, $version, substr($blob, 0, $hlen),
        substr($blob, $hlen, 12), substr($blob, $hlen + 12, -16),
        substr($blob, -16));
}

# Decrypts a blob; the key must exist here (else the blob is not one this
# "region" can read: InvalidCiphertextException), be the one KeyId names
# (IncorrectKeyException) and be enabled.
sub unseal {
    my ($st, $blob, $ctx, $key_spec) = @_;
    my ($id, $version, $head, $iv, $ct, $tag) = parse_blob($blob);
    my $want = defined $key_spec ? resolve_key($st, $key_spec) : undef;
    die kms_err('IncorrectKeyException', 'The key ID in the request does not '
          . 'identify a CMK that can perform this operation.')
      if $want && $want->{id} ne $id;
    my $k = $st->{keys}{$id}
      // die kms_err('InvalidCiphertextException', undef);
    check_enabled($k);
    my $m = material($st, $k, $version)
      // die kms_err('InvalidCiphertextException', undef);
    my $pt = gcm_decrypt_verify('AES', $m, $iv, $head . canon_context($ctx),
        $ct, $tag);
    die kms_err('InvalidCiphertextException', undef) unless defined $pt;
    return ($k, $pt, $version);
}

# ------------------------------------------------------------------ keys

sub new_key {
    my ($st, %o) = @_;
    my $id = $o{id} // ($o{mrk}
        ? 'mrk-' . unpack('H32', KmsEmu::HTTPD::random_bytes(16))
        : KmsEmu::HTTPD::uuid());
    return $st->{keys}{$id} if $st->{keys}{$id};    # replicate twice: no-op
    my $k = $st->{keys}{$id} = {
        id => $id, created => time, description => $o{description} // '',
        enabled => 1, mrk => $o{mrk} ? 1 : 0, version => $o{version} // 1,
        seq => ++$st->{seq}, replica => $o{replica} ? 1 : 0,
    };
    $k->{materials} = { 1 => unpack('H*', KmsEmu::HTTPD::random_bytes(32)) }
      unless $k->{mrk};
    return $k;
}

sub rotate {
    my ($k) = @_;
    $k->{version}++;
    $k->{materials}{ $k->{version} } =
      unpack('H*', KmsEmu::HTTPD::random_bytes(32))
      unless $k->{mrk};
}

sub key_metadata {
    my ($k) = @_;
    my $t = JSON::PP::true;
    my $f = JSON::PP::false;
    my $m = {
        AWSAccountId => $ACCOUNT, KeyId => $k->{id}, Arn => key_arn($k->{id}),
        CreationDate => 0 + sprintf('%.3f', $k->{created}),
        Enabled => $k->{enabled} ? $t : $f,
        Description => $k->{description},
        KeyUsage => 'ENCRYPT_DECRYPT',
        KeyState => $k->{enabled} ? 'Enabled' : 'Disabled',
        Origin => 'AWS_KMS', KeyManager => 'CUSTOMER',
        CustomerMasterKeySpec => 'SYMMETRIC_DEFAULT',
        KeySpec => 'SYMMETRIC_DEFAULT',
        EncryptionAlgorithms => ['SYMMETRIC_DEFAULT'],
        MultiRegion => $k->{mrk} ? $t : $f,
    };
    if ($k->{mrk}) {
        $m->{MultiRegionConfiguration} = {
            MultiRegionKeyType => $k->{replica} ? 'REPLICA' : 'PRIMARY',
            PrimaryKey => { Arn => key_arn($k->{id}), Region => $REGION },
            ReplicaKeys => [],
        };
    }
    return $m;
}

# ------------------------------------------------------------------ KMS ops
# Each: ($st, \%params) -> \%response; errors are thrown.

sub data_key {
    my ($st, $p, $with_plaintext) = @_;
    my $k = resolve_key($st, p_str($p, 'KeyId', 1, 2048));
    my $ctx = p_context($p, 'EncryptionContext');
    p_grant_tokens($p);
    my $spec = p_str($p, 'KeySpec');
    my $n = p_int($p, 'NumberOfBytes');
    if (defined $spec && defined $n || !defined $spec && !defined $n) {
        die kms_err('ValidationException',
            'Please specify either number of bytes or key spec.');
    }
    if (defined $spec) {
        $n = { AES_256 => 32, AES_128 => 16 }->{$spec}
          // validation("Value '$spec' at 'keySpec' failed to satisfy "
              . 'constraint: Member must satisfy enum value set: '
              . '[AES_256, AES_128]');
    }
    validation("Value '$n' at 'numberOfBytes' failed to satisfy constraint: "
          . 'Member must have value '
          . ($n < 1 ? 'greater than or equal to 1' : 'less than or equal to 1024'))
      if $n < 1 || $n > 1024;
    check_enabled($k);
    my $pt = KmsEmu::HTTPD::random_bytes($n);
    my $r = {
        CiphertextBlob => encode_base64(seal($st, $k, $pt, $ctx), ''),
        KeyId => key_arn($k->{id}),
        KeyMaterialId => key_material_id($k, $k->{version}),
    };
    $r->{Plaintext} = encode_base64($pt, '') if $with_plaintext;
    return $r;
}

my %OPS = (
    CreateKey => sub {
        my ($st, $p) = @_;
        my $spec = p_str($p, 'KeySpec') // p_str($p, 'CustomerMasterKeySpec')
          // 'SYMMETRIC_DEFAULT';
        my $usage = p_str($p, 'KeyUsage') // 'ENCRYPT_DECRYPT';
        die kms_err('UnsupportedOperationException',
            "KeySpec $spec is not supported by this emulator")
          unless $spec eq 'SYMMETRIC_DEFAULT';
        die kms_err('ValidationException',
            "KeyUsage $usage is not compatible with KeySpec $spec")
          unless $usage eq 'ENCRYPT_DECRYPT';
        my $k = new_key($st, mrk => p_bool($p, 'MultiRegion'),
            description => p_str($p, 'Description'));
        return { KeyMetadata => key_metadata($k) };
    },
    DescribeKey => sub {
        my ($st, $p) = @_;
        p_grant_tokens($p);
        my $k = resolve_key($st, p_str($p, 'KeyId', 1, 2048));
        return { KeyMetadata => key_metadata($k) };
    },
    ListKeys => sub {
        my ($st, $p) = @_;
        my @k = sort { $a->{seq} <=> $b->{seq} } values %{ $st->{keys} };
        return page($p, 'Keys',
            [ map { { KeyId => $_->{id}, KeyArn => key_arn($_->{id}) } } @k ]);
    },
    ListAliases => sub {
        my ($st, $p) = @_;
        my $only = p_str($p, 'KeyId');
        $only = resolve_key($st, $only)->{id} if defined $only;
        my @a;
        for my $n (sort keys %{ $st->{aliases} }) {
            my $a = $st->{aliases}{$n};
            next if defined $only && $a->{target} ne $only;
            push @a, { AliasName => $n, AliasArn => alias_arn($n),
                TargetKeyId => $a->{target},
                CreationDate => 0 + sprintf('%.3f', $a->{created}) };
        }
        return page($p, 'Aliases', \@a);
    },
    CreateAlias => sub {
        my ($st, $p) = @_;
        my $name = p_str($p, 'AliasName', 1, 256);
        my $target = p_str($p, 'TargetKeyId', 1, 2048);
        create_alias($st, $name, $target);
        return {};
    },
    UpdateAlias => sub {
        my ($st, $p) = @_;
        update_alias($st, p_str($p, 'AliasName', 1, 256),
            p_str($p, 'TargetKeyId', 1, 2048));
        return {};
    },
    DeleteAlias => sub {
        my ($st, $p) = @_;
        my $name = p_str($p, 'AliasName', 1, 256);
        delete $st->{aliases}{$name}
          or die kms_err('NotFoundException',
            'Alias ' . alias_arn($name) . ' is not found.');
        return {};
    },
    EnableKey => sub {
        my ($st, $p) = @_;
        resolve_key($st, p_str($p, 'KeyId', 1, 2048))->{enabled} = 1;
        return {};
    },
    DisableKey => sub {
        my ($st, $p) = @_;
        resolve_key($st, p_str($p, 'KeyId', 1, 2048))->{enabled} = 0;
        return {};
    },
    RotateKeyOnDemand => sub {
        my ($st, $p) = @_;
        my $k = resolve_key($st, p_str($p, 'KeyId', 1, 2048));
        check_enabled($k);
        rotate($k);
        return { KeyId => key_arn($k->{id}) };
    },
    GenerateDataKey => sub { data_key(@_, 1) },
    GenerateDataKeyWithoutPlaintext => sub { data_key(@_, 0) },
    Encrypt => sub {
        my ($st, $p) = @_;
        my $k = resolve_key($st, p_str($p, 'KeyId', 1, 2048));
        my $pt = p_blob($p, 'Plaintext', 1, 4096);
        my $ctx = p_context($p, 'EncryptionContext');
        p_grant_tokens($p);
        p_algorithm($p, 'EncryptionAlgorithm');
        check_enabled($k);
        return {
            CiphertextBlob => encode_base64(seal($st, $k, $pt, $ctx), ''),
            KeyId => key_arn($k->{id}),
            EncryptionAlgorithm => 'SYMMETRIC_DEFAULT',
        };
    },
    Decrypt => sub {
        my ($st, $p) = @_;
        my $blob = p_blob($p, 'CiphertextBlob', 1, 6144);
        my $ctx = p_context($p, 'EncryptionContext');
        my $kid = p_str($p, 'KeyId', 0, 2048);
        p_grant_tokens($p);
        p_algorithm($p, 'EncryptionAlgorithm');
        my ($k, $pt, $version) = unseal($st, $blob, $ctx, $kid);
        return {
            Plaintext => encode_base64($pt, ''),
            KeyId => key_arn($k->{id}),
            KeyMaterialId => key_material_id($k, $version),
            EncryptionAlgorithm => 'SYMMETRIC_DEFAULT',
        };
    },
    ReEncrypt => sub {
        my ($st, $p) = @_;
        my $blob = p_blob($p, 'CiphertextBlob', 1, 6144);
        my $sctx = p_context($p, 'SourceEncryptionContext');
        my $dctx = p_context($p, 'DestinationEncryptionContext');
        my $skid = p_str($p, 'SourceKeyId', 0, 2048);
        my $dk = resolve_key($st, p_str($p, 'DestinationKeyId', 1, 2048));
        p_grant_tokens($p);
        p_algorithm($p, $_) for qw(SourceEncryptionAlgorithm
          DestinationEncryptionAlgorithm);
        my ($sk, $pt, $sversion) = unseal($st, $blob, $sctx, $skid);
        check_enabled($dk);
        return {
            CiphertextBlob => encode_base64(seal($st, $dk, $pt, $dctx), ''),
            KeyId => key_arn($dk->{id}),
            SourceKeyId => key_arn($sk->{id}),
            SourceKeyMaterialId => key_material_id($sk, $sversion),
            DestinationKeyMaterialId => key_material_id($dk, $dk->{version}),
            SourceEncryptionAlgorithm => 'SYMMETRIC_DEFAULT',
            DestinationEncryptionAlgorithm => 'SYMMETRIC_DEFAULT',
        };
    },
);

# Limit/Marker paging; the marker is the next index.
sub page {
    my ($p, $field, $items) = @_;
    my $limit = p_int($p, 'Limit') // 100;
    validation("Value '$limit' at 'limit' failed to satisfy constraint: "
          . 'Member must have value between 1 and 1000')
      if $limit < 1 || $limit > 1000;
    my $from = 0;
    if (defined(my $m = p_str($p, 'Marker'))) {
        ($from) = $m =~ /^emu-(\d+)$/
          or die kms_err('InvalidMarkerException', 'Invalid marker');
    }
    my @slice = grep { defined } @$items[ $from .. $from + $limit - 1 ];
    my $more = $from + $limit < @$items;
    return { $field => \@slice, Truncated => $more ? JSON::PP::true
          : JSON::PP::false, ($more ? (NextMarker => 'emu-' . ($from + $limit)) : ()) };
}

sub create_alias {
    my ($st, $name, $target) = @_;
    validation("Value '$name' at 'aliasName' failed to satisfy constraint: "
          . "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+\$")
      unless $name =~ m{^alias/[a-zA-Z0-9:/_-]+$};
    die kms_err('NotAuthorizedException', 'alias/aws/ is reserved')
      if $name =~ m{^alias/aws/};
    die kms_err('ValidationException',
        'TargetKeyId must be a key ID or key ARN, not an alias')
      if $target =~ m{(?:^|:)alias/};
    my $k = resolve_key($st, $target);
    die kms_err('AlreadyExistsException',
        'An alias with the name ' . alias_arn($name) . ' already exists')
      if $st->{aliases}{$name};
    $st->{aliases}{$name} = { target => $k->{id}, created => time };
}

# Points an existing alias at another key (the service's manual rotation).
sub update_alias {
    my ($st, $name, $target) = @_;
    my $a = $st->{aliases}{$name}
      or die kms_err('NotFoundException',
        'Alias ' . alias_arn($name) . ' is not found.');
    die kms_err('ValidationException',
        'TargetKeyId must be a key ID or key ARN, not an alias')
      if $target =~ m{(?:^|:)alias/};
    $a->{target} = resolve_key($st, $target)->{id};
}

# ------------------------------------------------------------------ SigV4

sub sig_err { die kms_err('InvalidSignatureException', $_[0]) }

sub uri_encode {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub uri_decode {
    my ($s) = @_;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# Path as sent, with . and .. segments and empty segments removed, each
# segment encoded again (SigV4 for services other than S3).
sub canonical_uri {
    my ($path) = @_;
    my @out;
    for my $seg (split m{/}, $path) {
        next if $seg eq '' || $seg eq '.';
        if ($seg eq '..') { pop @out; next }
        push @out, uri_encode($seg);
    }
    my $u = '/' . join('/', @out);
    $u .= '/' if @out && $path =~ m{/$};
    return $u;
}

sub canonical_query {
    my ($q) = @_;
    my @p;
    for my $kv (split /&/, $q // '') {
        next if $kv eq '';
        my ($k, $v) = split /=/, $kv, 2;
        push @p, [ uri_encode(uri_decode($k)), uri_encode(uri_decode($v // '')) ];
    }
    return join '&', map { "$_->[0]=$_->[1]" }
      sort { $a->[0] cmp $b->[0] || $a->[1] cmp $b->[1] } @p;
}

sub trim_value {
    my ($v) = @_;
    $v =~ s/^\s+|\s+$//g;
    $v =~ s/\s+/ /g;
    return $v;
}

sub hdr1 {
    my ($req, $name) = @_;
    my $v = $req->{h}{$name};
    return $v ? join(',', @$v) : undef;
}

sub parse_amz_date {
    my ($d) = @_;
    my ($Y, $M, $D, $h, $m, $s) =
      ($d // '') =~ /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/ or return undef;
    return eval { timegm($s, $m, $h, $D, $M - 1, $Y) };
}

# Verifies the request's SigV4 signature. Returns the credential's access
# key id or throws the error the real service would answer with.
sub verify_sigv4 {
    my ($st, $req) = @_;
    my $auth = hdr1($req, 'authorization');
    die kms_err('MissingAuthenticationTokenException',
        'Missing Authentication Token') unless defined $auth && $auth ne '';
    my ($alg, $rest) = $auth =~ /^(\S+)\s+(.*)$/s
      or die kms_err('IncompleteSignatureException',
        "Authorization header is malformed: '$auth'");
    die kms_err('IncompleteSignatureException',
        "Unsupported AWS 'algorithm': '$alg'") if $alg ne 'AWS4-HMAC-SHA256';
    my %a;
    for my $kv (split /\s*,\s*/, $rest) {
        my ($k, $v) = $kv =~ /^\s*([A-Za-z]+)=(.*?)\s*$/ or next;
        $a{$k} = $v;
    }
    my @missing = grep { !defined $a{$_} } qw(Credential Signature SignedHeaders);
    die kms_err('IncompleteSignatureException', join(' ',
        map { "Authorization header requires '$_' parameter." } @missing)
          . " Authorization=$auth") if @missing;
    my @scope = split m{/}, $a{Credential}, -1;
    die kms_err('IncompleteSignatureException',
        'Credential must have exactly 5 slash-delimited elements, e.g. '
          . "keyid/date/region/service/term, got '$a{Credential}'")
      unless @scope == 5;
    my ($akid, $sdate, $sregion, $sservice, $term) = @scope;

    my $amz_date = hdr1($req, 'x-amz-date');
    die kms_err('IncompleteSignatureException', "Authorization header requires "
          . "existence of either a 'X-Amz-Date' or a 'Date' header. "
          . "Authorization=$auth") unless defined $amz_date;
    my $t = parse_amz_date($amz_date)
      // die kms_err('IncompleteSignatureException',
        "Date must be in ISO-8601 'basic format'. Got '$amz_date'.");

    my $cred = $st->{creds}{$akid}
      // die kms_err('UnrecognizedClientException',
        'The security token included in the request is invalid.');
    my $token = hdr1($req, 'x-amz-security-token');
    my %signed = map { $_ => 1 } split /;/, $a{SignedHeaders};
    if (defined $cred->{token}) {
        die kms_err('UnrecognizedClientException',
            'The security token included in the request is invalid.')
          unless defined $token && $token eq $cred->{token}
          && $signed{'x-amz-security-token'};
    } elsif (defined $token) {
        die kms_err('UnrecognizedClientException',
            'The security token included in the request is invalid.');
    }
    die kms_err('ExpiredTokenException',
        'The security token included in the request is expired')
      if $cred->{expires} && time > $cred->{expires};

    my $now = time;
    my $fmt = sub { strftime('%Y%m%dT%H%M%SZ', gmtime $_[0]) };
    my $skew = $opt{clock_skew};
    sig_err("Signature expired: $amz_date is now earlier than "
          . $fmt->($now - $skew) . ' (' . $fmt->($now) . ' - '
          . ($skew / 60) . ' min.)') if $t < $now - $skew;
    sig_err("Signature not yet current: $amz_date is still later than "
          . $fmt->($now + $skew) . ' (' . $fmt->($now) . ' + '
          . ($skew / 60) . ' min.)') if $t > $now + $skew;
    sig_err('Date in Credential scope does not match YYYYMMDD from ISO-8601 '
          . "version of date from HTTP: '$sdate' != '"
          . substr($amz_date, 0, 8) . "', from '$amz_date'.")
      if $sdate ne substr($amz_date, 0, 8);
    sig_err('Credential should be scoped to a valid region. ')
      if $sregion ne $REGION;
    sig_err("Credential should be scoped to correct service: 'kms'. ")
      if $sservice ne 'kms';
    sig_err("Credential should be scoped with a valid terminator: "
          . "'aws4_request', not '$term'. ") if $term ne 'aws4_request';
    sig_err("'Host' or ':authority' must be a 'SignedHeader' in the AWS "
          . 'Authorization.') unless $signed{host};
    sig_err("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
      unless $signed{'x-amz-date'};

    my $body_hash = sha256_hex($req->{body});
    my $declared = hdr1($req, 'x-amz-content-sha256');
    sig_err("The provided 'x-amz-content-sha256' header does not match what "
          . 'was computed.') if defined $declared && lc $declared ne $body_hash;

    my @names = split /;/, $a{SignedHeaders};
    my $canon_headers = join '', map {
        my $vals = $req->{h}{$_} // [];
        "$_:" . join(',', map { trim_value($_) } @$vals) . "\n";
    } @names;
    my $creq = join "\n", $req->{method}, canonical_uri($req->{path}),
      canonical_query($req->{query}), $canon_headers, $a{SignedHeaders},
      $body_hash;
    my $cscope = "$sdate/$sregion/$sservice/$term";
    my $sts = join "\n", 'AWS4-HMAC-SHA256', $amz_date, $cscope,
      sha256_hex($creq);
    my $k = hmac_sha256($sdate, "AWS4$cred->{secret}");
    $k = hmac_sha256($sregion, $k);
    $k = hmac_sha256($sservice, $k);
    $k = hmac_sha256('aws4_request', $k);
    my $want = hmac_sha256_hex($sts, $k);
    # Compare MACs of both, so the comparison time says nothing useful.
    my $r = KmsEmu::HTTPD::random_bytes(16);
    unless (hmac_sha256($want, $r) eq hmac_sha256(lc $a{Signature}, $r)) {
        print STDERR "[$$] signature mismatch for $akid; canonical request:\n"
          . "$creq\n--- string to sign:\n$sts\n---\n";
        sig_err('The request signature we calculated does not match the '
              . 'signature you provided. Check your AWS Secret Access Key and '
              . 'signing method. Consult the service documentation for details.');
    }
    return $akid;
}

# ------------------------------------------------------------------ faults

# The first pending fault that applies to this operation, consumed.
sub take_fault {
    my ($st, $op, $sts) = @_;
    for my $f (@{ $st->{faults} }) {
        next unless $f->{count} > 0;
        if (defined $f->{op}) { next unless $f->{op} eq $op }
        else { next if $sts }    # unscoped faults hit KMS only
        $f->{count}--;
        my %copy = (%$f, _op => $op);
        $st->{faults} = [ grep { $_->{count} > 0 } @{ $st->{faults} } ];
        return \%copy;
    }
    return undef;
}

my %FAULT_KINDS = map { $_ => 1 }
  qw(throttle internal unavailable delay reset truncate garbage denied expired
  answer error);

# Operations that take DryRun (of those the emulator implements).
my %DRY_RUN_OPS = map { $_ => 1 }
  qw(Decrypt Encrypt GenerateDataKey GenerateDataKeyWithoutPlaintext ReEncrypt);

# ------------------------------------------------------------------ responses

sub json_resp {
    my ($status, $body, $rid) = @_;
    return {
        status  => $status,
        headers => [ 'x-amzn-RequestId' => $rid,
            'Content-Type' => 'application/x-amz-json-1.1',
            'Date' => http_date() ],
        body    => ref $body ? $JSON->encode($body) : $body,
    };
}

# The key ARN a request is about (for AccessDenied messages): its KeyId,
# DestinationKeyId or SourceKeyId, else the key its CiphertextBlob names.
sub request_resource {
    my ($st, $body) = @_;
    my $p = eval { JSON::PP->new->utf8->decode($body // '') };
    return undef unless ref $p eq 'HASH';
    my $spec = $p->{KeyId} // $p->{DestinationKeyId} // $p->{SourceKeyId};
    if (!defined $spec && defined $p->{CiphertextBlob} && !ref $p->{CiphertextBlob}) {
        my $id = eval { (parse_blob(decode_base64($p->{CiphertextBlob})))[0] };
        return defined $id ? key_arn($id) : undef;
    }
    return undef if !defined $spec || ref $spec;
    my $k = eval { resolve_key($st, $spec) };
    return $k ? key_arn($k->{id}) : undef;
}

sub http_date { strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime) }

sub err_resp {
    my ($e, $rid) = @_;
    my $b = { __type => $e->{type} };
    $b->{message} = $e->{msg} if defined $e->{msg};
    return json_resp($e->{status}, $b, $rid);
}

sub fault_resp {
    my ($f, $rid, $ok_body, $xml) = @_;
    my $k = $f->{kind};
    if ($k eq 'throttle') {
        return $xml ? sts_error(400, 'Throttling', 'Rate exceeded', $rid)
          : err_resp(kms_err('ThrottlingException', 'Rate exceeded'), $rid);
    }
    if ($k eq 'internal') {
        return $xml ? sts_error(500, 'InternalFailure',
            'An internal error occurred', $rid, 'Receiver')
          : err_resp(kms_err('KMSInternalException',
            'An internal error occurred. Try again later.', 500), $rid);
    }
    if ($k eq 'unavailable') {
        return { status => 503, headers => [ 'Content-Type' => 'text/html' ],
            body => "<html><body><h1>503 Service Unavailable</h1>"
              . "</body></html>\n" };
    }
    if ($k eq 'denied') {
        my $op = $f->{_op} // 'Unknown';
        my $msg = "User: arn:aws:iam::$ACCOUNT:user/kmsemu is not authorized to "
          . "perform: kms:$op "
          . ($xml ? '' : 'on resource: ' . ($f->{_resource}
              // "arn:aws:kms:$REGION:$ACCOUNT:key/*") . ' ')
          . "because no identity-based policy allows the kms:$op action";
        return $xml ? sts_error(403, 'AccessDenied', $msg, $rid)
          : err_resp(kms_err('AccessDeniedException', $msg), $rid);
    }
    if ($k eq 'error') {
        # Any error answer, verbatim: status, raw __type and message.
        my $b = { __type => $f->{type} // 'KMSInternalException' };
        $b->{message} = $f->{message} if defined $f->{message};
        return json_resp($f->{status} // 400, $b, $rid);
    }
    if ($k eq 'expired') {
        my $msg = 'The security token included in the request is expired';
        return $xml ? sts_error(400, 'ExpiredTokenException', $msg, $rid)
          : err_resp(kms_err('ExpiredTokenException', $msg), $rid);
    }
    return { reset => 1 } if $k eq 'reset';
    if ($k eq 'garbage') {
        my $r = json_resp(200, "<!DOCTYPE html><html><body>Bad gateway: "
              . "upstream sent garbage \x00\xff</body></html>", $rid);
        return $r;
    }
    if ($k eq 'truncate') {
        # A real-looking body cut in half: with valid framing (the client
        # gets a complete 200 whose JSON is cut), or with short => 1 a
        # Content-Length promising the whole body and the connection
        # closed after half of it.
        my $cut = substr($ok_body, 0, int(length($ok_body) / 2));
        my $r = json_resp(200, $cut, $rid);
        if ($f->{short}) {
            my $h = "HTTP/1.1 200 OK\r\n";
            my @h = @{ $r->{headers} };
            while (my ($n, $v) = splice(@h, 0, 2)) { $h .= "$n: $v\r\n" }
            $h .= 'Content-Length: ' . length($ok_body) . "\r\n\r\n";
            return { raw => $h . $cut, close => 1 };
        }
        return $r;
    }
    die "unknown fault kind $k";
}

# ------------------------------------------------------------------ KMS

sub handle_kms {
    my ($req, $rid) = @_;
    my $target = hdr1($req, 'x-amz-target') // '';
    my ($op) = $target =~ /^TrentService\.(\w+)$/;
    my $t0 = time;
    my ($status, $resp, $fault, $akid);
    my $ok_body;
    with_state(sub {
        my ($st) = @_;
        my $c = $st->{counters};
        $c->{requests}{ $op // $target }++;
        my $r = eval {
            die kms_err('UnknownOperationException', undef) unless $op;
            $akid = verify_sigv4($st, $req);
            $c->{akid}{$akid}++;
            $fault = take_fault($st, $op, 0);
            $fault->{_resource} = request_resource($st, $req->{body})
              if $fault && $fault->{kind} eq 'denied';
            die $fault if $fault && $fault->{kind} ne 'delay'
              && $fault->{kind} ne 'truncate' && $fault->{kind} ne 'answer';
            my $fn = $OPS{$op}
              // die kms_err('UnknownOperationException', undef);
            my $ct = hdr1($req, 'content-type') // '';
            # Like the service, insist on the JSON 1.1 content type.
            die kms_err('UnknownOperationException', undef)
              unless $ct =~ m{^application/x-amz-json-1\.[01]\b};
            my $p = $req->{body} =~ /\S/ ? eval { JSON::PP->new->utf8
                  ->decode($req->{body}) } : {};
            die kms_err('SerializationException',
                'Start of structure or map found where not expected.')
              unless ref $p eq 'HASH';
            my $dry = $DRY_RUN_OPS{$op} && p_bool($p, 'DryRun');
            my $res = $fn->($st, $p);
            # Everything checked, nothing returned: what the service does.
            die kms_err('DryRunOperationException', 'The request would have '
                  . 'succeeded, but the DryRun option is set.', 412) if $dry;
            if ($fault && $fault->{kind} eq 'answer') {
                # Fields replaced (null: removed) in the real answer.
                while (my ($n, $v) = each %{ $fault->{patch} // {} }) {
                    if (defined $v) { $res->{$n} = $v } else { delete $res->{$n} }
                }
            }
            $res;
        };
        if ($r) {
            $ok_body = $JSON->encode($r);
            if ($fault && $fault->{kind} eq 'truncate') {
                $resp = fault_resp($fault, $rid, $ok_body);
            } else {
                $c->{ok}{$op}++;
                $resp = json_resp(200, $ok_body, $rid);
            }
        } elsif (ref $@ eq 'KmsEmu::Err') {
            $resp = err_resp($@, $rid);
        } elsif (ref $@ eq 'HASH' && $@->{kind}) {    # a fault
            $resp = fault_resp($@, $rid);
        } else {
            print STDERR "[$$] internal error in $target: $@";
            $resp = err_resp(kms_err('KMSInternalException',
                'An internal error occurred. Try again later.', 500), $rid);
        }
    });
    if ($fault && $fault->{kind} eq 'delay') {
        sleep(($fault->{delay_ms} // 1000) / 1000);
    }
    printf STDERR "%s kms %s %s akid=%s %s%.1fms\n",
      strftime('%H:%M:%S', localtime), $op // $target,
      $resp->{reset} ? 'RESET' : $resp->{status} // 'RAW', $akid // '-',
      $fault ? "fault=$fault->{kind} " : '', (time - $t0) * 1000;
    return $resp;
}

# ------------------------------------------------------------------ STS

sub xml_esc {
    my ($s) = @_;
    $s =~ s/&/&amp;/g;
    $s =~ s/</&lt;/g;
    $s =~ s/>/&gt;/g;
    $s =~ s/"/&quot;/g;
    return $s;
}

sub sts_error {
    my ($status, $code, $msg, $rid, $type) = @_;
    $type //= 'Sender';
    my $b = qq{<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n}
      . "  <Error>\n    <Type>$type</Type>\n    <Code>$code</Code>\n"
      . '    <Message>' . xml_esc($msg) . "</Message>\n  </Error>\n"
      . "  <RequestId>$rid</RequestId>\n</ErrorResponse>\n";
    return { status => $status, body => $b, headers => [
        'x-amzn-RequestId' => $rid, 'Content-Type' => 'text/xml',
        'Date' => http_date() ] };
}

sub form_decode {
    my ($s) = @_;
    my %p;
    for my $kv (split /&/, $s // '') {
        my ($k, $v) = split /=/, $kv, 2;
        for ($k, $v) { next unless defined; tr/+/ /; $_ = uri_decode($_) }
        $p{$k} = $v // '';
    }
    return %p;
}

sub rand_str {
    my ($n, $alphabet) = @_;
    my @a = split //, $alphabet;
    return join '', map { $a[$_ % @a] }
      unpack('C*', KmsEmu::HTTPD::random_bytes($n));
}

sub handle_sts {
    my ($req, $rid) = @_;
    my %p = (form_decode($req->{query}), form_decode($req->{body}));
    my $action = $p{Action} // '';
    my ($resp, $fault);
    with_state(sub {
        my ($st) = @_;
        $st->{counters}{requests}{$action}++;
        $fault = take_fault($st, $action, 1);
        if ($fault && $fault->{kind} ne 'delay') {
            $resp = fault_resp($fault, $rid, '<AssumeRoleWithWebIdentityResponse>'
                  . '<AssumeRoleWithWebIdentityResult><Credentials>', 1);
            return;
        }
        $resp = sts_action($st, $action, \%p, $rid);
        $st->{counters}{ok}{$action}++ if $resp->{status} == 200;
    });
    sleep(($fault->{delay_ms} // 1000) / 1000)
      if $fault && $fault->{kind} eq 'delay';
    printf STDERR "%s sts %s %s\n", strftime('%H:%M:%S', localtime), $action,
      $resp->{reset} ? 'RESET' : $resp->{status} // 'RAW';
    return $resp;
}

sub sts_action {
    my ($st, $action, $p, $rid) = @_;
    return sts_error(400, 'InvalidAction',
        "Could not find operation $action for version "
          . ($p->{Version} // 'NO_VERSION_SPECIFIED'), $rid)
      unless $action eq 'AssumeRoleWithWebIdentity';
    for my $n (qw(RoleArn RoleSessionName WebIdentityToken)) {
        return sts_error(400, 'ValidationError',
            "1 validation error detected: Value null at '" . lcfirst($n)
              . "' failed to satisfy constraint: Member must not be null", $rid)
          unless defined $p->{$n} && $p->{$n} ne '';
    }
    my $wi = $st->{web_identity};
    return sts_error(400, 'InvalidIdentityToken',
        'Couldn\'t retrieve verification key from your identity provider,  '
          . 'please reference AssumeRoleWithWebIdentity documentation for '
          . 'requirements', $rid)
      unless $wi && $p->{WebIdentityToken} eq $wi->{token};
    return sts_error(403, 'AccessDenied',
        'Not authorized to perform sts:AssumeRoleWithWebIdentity', $rid)
      unless $p->{RoleArn} eq $wi->{role_arn};
    my $dur = $p->{DurationSeconds} // 3600;
    return sts_error(400, 'ValidationError', "1 validation error detected: "
          . "Value '$dur' at 'durationSeconds' failed to satisfy constraint: "
          . 'Member must have value between 900 and 43200', $rid)
      unless $dur =~ /^\d+$/ && $dur >= 900 && $dur <= 43200;
    $dur = $wi->{expires_in} if defined $wi->{expires_in};
    my $akid = 'ASIA' . rand_str(16, join('', 'A' .. 'Z', 2 .. 7));
    my $secret = rand_str(40, join('', 'A' .. 'Z', 'a' .. 'z', 0 .. 9, '+/'));
    my $token = 'IQoJb3JpZ2luX2VjE' . encode_base64(
        KmsEmu::HTTPD::random_bytes(180), '');
    my $exp = int(time) + $dur;
    $st->{creds}{$akid} = { secret => $secret, token => $token,
        expires => $exp, source => 'sts' };
    my ($role) = $p->{RoleArn} =~ m{role/(?:.*/)?([^/]+)$};
    $role //= 'role';
    my $sess = xml_esc($p->{RoleSessionName});
    my $iso = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $exp);
    my $roleid = 'AROA' . rand_str(17, join('', 'A' .. 'Z', 2 .. 7));
    my $b = <<"XML";
<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>kmsemu-subject</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::$ACCOUNT:assumed-role/@{[xml_esc($role)]}/$sess</Arn>
      <AssumedRoleId>$roleid:$sess</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>$token</SessionToken>
      <SecretAccessKey>$secret</SecretAccessKey>
      <Expiration>$iso</Expiration>
      <AccessKeyId>$akid</AccessKeyId>
    </Credentials>
    <Provider>kmsemu</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>$rid</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
XML
    return { status => 200, body => $b, headers => [
        'x-amzn-RequestId' => $rid, 'Content-Type' => 'text/xml',
        'Date' => http_date() ] };
}

# ------------------------------------------------------------------ control

sub ctl_key {
    my ($st, $a) = @_;
    my $id = $a->{key_id} // die "key_id required\n";
    return resolve_key($st, $id);
}

my %CONTROL = (
    'create-key' => sub {
        my ($st, $a) = @_;
        my $k = new_key($st, mrk => $a->{multi_region},
            description => $a->{description});
        return { KeyId => $k->{id}, Arn => key_arn($k->{id}) };
    },
    replicate => sub {
        my ($st, $a) = @_;
        my $id = $a->{key_id} // die "key_id required\n";
        $id =~ s{^arn:aws:kms:[^:]*:[^:]*:key/}{};
        die "only mrk- keys replicate: $id\n" unless $id =~ /^mrk-[0-9a-f]{32}$/;
        my $k = new_key($st, id => $id, mrk => 1, replica => 1,
            version => $a->{version}, description => $a->{description});
        return { KeyId => $k->{id}, Arn => key_arn($k->{id}) };
    },
    'create-alias' => sub {
        my ($st, $a) = @_;
        create_alias($st, $a->{alias} // die("alias required\n"),
            $a->{key_id} // die("key_id required\n"));
        return { AliasName => $a->{alias}, AliasArn => alias_arn($a->{alias}) };
    },
    'update-alias' => sub {
        my ($st, $a) = @_;
        update_alias($st, $a->{alias} // die("alias required\n"),
            $a->{key_id} // die("key_id required\n"));
        return { AliasName => $a->{alias}, AliasArn => alias_arn($a->{alias}) };
    },
    'disable-key' => sub { ctl_key(@_)->{enabled} = 0; {} },
    'enable-key'  => sub { ctl_key(@_)->{enabled} = 1; {} },
    'rotate-key'  => sub {
        my $k = ctl_key(@_);
        rotate($k);
        return { KeyId => $k->{id}, Version => $k->{version} };
    },
    fault => sub {
        my ($st, $a) = @_;
        die "unknown fault kind\n" unless $FAULT_KINDS{ $a->{kind} // '' };
        my $n = $a->{count} // 1;
        die "count must be a positive integer\n" unless $n =~ /^\d+$/ && $n > 0;
        die "patch must be an object\n"
          if defined $a->{patch} && ref $a->{patch} ne 'HASH';
        die "status must be an HTTP error status\n"
          if defined $a->{status} && $a->{status} !~ /^[45]\d\d$/;
        push @{ $st->{faults} }, { kind => $a->{kind}, count => 0 + $n,
            op => $a->{op}, delay_ms => $a->{delay_ms} // 1000,
            short => $a->{short} ? 1 : 0,
            map { defined $a->{$_} ? ($_ => $a->{$_}) : () }
              qw(patch status type message) };
        return { faults => $st->{faults} };
    },
    'clear-faults' => sub { $_[0]{faults} = []; {} },
    faults => sub { { faults => $_[0]{faults} } },
    counters => sub { $_[0]{counters} },
    'reset-counters' => sub {
        $_[0]{counters} = { requests => {}, ok => {}, akid => {} };
        {};
    },
    'web-identity' => sub {
        my ($st, $a) = @_;
        die "token and role_arn required\n"
          unless defined $a->{token} && defined $a->{role_arn};
        $st->{web_identity} = { token => $a->{token},
            role_arn => $a->{role_arn}, expires_in => $a->{expires_in} };
        return {};
    },
    'add-creds' => sub {
        my ($st, $a) = @_;
        die "akid and secret required\n"
          unless defined $a->{akid} && defined $a->{secret};
        $st->{creds}{ $a->{akid} } = { secret => $a->{secret},
            token => $a->{token}, expires => $a->{expires} };
        return {};
    },
    'remove-creds' => sub {
        my ($st, $a) = @_;
        delete $st->{creds}{ $a->{akid} // '' };
        return {};
    },
    keys => sub {
        my ($st) = @_;
        return { map { $_->{id} => { version => $_->{version},
            enabled => $_->{enabled}, mrk => $_->{mrk} } }
              values %{ $st->{keys} } };
    },
);

sub handle_control {
    my ($req) = @_;
    my ($name) = $req->{path} =~ m{^/_emu/([\w-]+)$};
    my $fn = $CONTROL{ $name // '' };
    return { status => 404, headers => [ 'Content-Type' => 'application/json' ],
        body => $JSON->encode({ error => "no control $req->{path}" }) }
      unless $fn;
    my $a = $req->{body} =~ /\S/ ? eval { $JSON->decode($req->{body}) } : {};
    return { status => 400, headers => [ 'Content-Type' => 'application/json' ],
        body => $JSON->encode({ error => 'bad JSON' }) } unless ref $a eq 'HASH';
    my $r = eval { with_state(sub { $fn->($_[0], $a) }) };
    if (!$r) {
        my $e = ref $@ eq 'KmsEmu::Err' ? "$@->{type}: " . ($@->{msg} // '') : "$@";
        chomp $e;
        return { status => 400, headers => [ 'Content-Type' => 'application/json' ],
            body => $JSON->encode({ error => $e }) };
    }
    return { status => 200, headers => [ 'Content-Type' => 'application/json' ],
        body => $JSON->encode($r) };
}

# ------------------------------------------------------------------ dispatch

sub handler {
    my ($req) = @_;
    my $rid = KmsEmu::HTTPD::uuid();
    return handle_control($req) if $req->{path} =~ m{^/_emu/};
    if ($req->{method} eq 'POST' && defined hdr1($req, 'x-amz-target')) {
        return handle_kms($req, $rid);
    }
    my $ct = hdr1($req, 'content-type') // '';
    if ($ct =~ m{^application/x-www-form-urlencoded}i
        || $req->{query} =~ /(?:^|&)Action=/) {
        return handle_sts($req, $rid);
    }
    if ($req->{method} eq 'POST') {    # KMS request without a target
        return handle_kms($req, $rid);
    }
    return json_resp(404, { __type => 'UnknownOperationException' }, $rid);
}

$0 = "kmsemu $REGION";
print STDERR strftime('%H:%M:%S', localtime)
  . " kmsemu starting: region $REGION account $ACCOUNT "
  . ($opt{tls_cert} ? 'https' : 'http') . "\n";
KmsEmu::HTTPD::serve(
    port => $opt{port}, port_file => $opt{port_file},
    tls_cert => $opt{tls_cert}, tls_key => $opt{tls_key},
    parent_pid => $opt{parent_pid}, idle_timeout => $opt{idle_timeout},
    max_body => $opt{max_body}, handler => \&handler,
    on_listen => sub { print STDERR "listening on 127.0.0.1:$_[0]\n" },
);
