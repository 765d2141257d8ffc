# External Account Binding (RFC 8555 section 7.3.4) against a Pebble that
# requires it: the MAC key inline (data:) and from a file (with alg=HS384)
# both get an account and a certificate; a wrong MAC key gets a clear error
# with the CA's problem, no account, and the key never shows in the log or
# the store.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use MIME::Base64 qw(encode_base64url);

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

sub random_key { encode_base64url(join '', map { chr int rand 256 } 1 .. ($_[0] // 32)) }
# HS384 needs a key of at least 48 bytes (RFC 7518 section 3.2).
my %keys = ('kid-inline' => random_key(), 'kid-file' => random_key(48), 'kid-wrong' => random_key());
my $wrong = random_key();

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 }, config => {
    externalAccountBindingRequired => JSON::PP::true,
    externalAccountMACKeys => \%keys,
});
my $key_file = $t->write_file('eab.key', "$keys{'kid-file'}\n");
my %state = map { $_ => $t->dir . "/acme-$_" } qw(inline file wrong unknown none);

$t->write_nginx_conf(<<"EOF2");
http {
    acme_issuer inline {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path $state{inline};
        accept_terms_of_service;
        external_account_key kid-inline data:$keys{'kid-inline'};
    }
    acme_issuer file {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path $state{file};
        accept_terms_of_service;
        external_account_key kid-file $key_file alg=HS384;
    }
    acme_issuer wrong {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path $state{wrong};
        accept_terms_of_service;
        external_account_key kid-wrong data:$wrong;
    }
    acme_issuer unknown {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path $state{unknown};
        accept_terms_of_service;
        external_account_key kid-nosuch data:$keys{'kid-inline'};
    }
    acme_issuer none {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path $state{none};
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name inline.test;
        acme_certificate inline;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name file.test;
        acme_certificate file;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name wrong.test;
        acme_certificate wrong;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name unknown.test;
        acme_certificate unknown;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name none.test;
        acme_certificate none;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;

for my $name (qw(inline file)) {
    ok $t->wait_for(sub {
        $t->tls_get(name => "$name.test", ca => $root)->{verified}
    }, timeout => 30), "$name: account bound, certificate issued";
    ok -s "$state{$name}/account.json", "$name: account.json stored";
}

my $line = $t->wait_log(qr/certificate "wrong\.test" from "wrong" failed/, 20);
like $line, qr/account registration failed \(external account binding, kid "kid-wrong"\): urn:ietf:params:acme:error:\w+: \S.*, next attempt at /,
    'wrong MAC key: the log says the account was refused, with the CA\'s problem';
ok !-e "$state{wrong}/account.json", 'wrong MAC key: no account stored';
is $t->tls_get(name => 'wrong.test')->{subject_cn}, 'acme fallback', 'wrong MAC key: still the fallback';

$line = $t->wait_log(qr/certificate "unknown\.test" from "unknown" failed/, 20);
like $line, qr/account registration failed \(external account binding, kid "kid-nosuch"\): urn:ietf:params:acme:error:\w+: \S.*, next attempt at /,
    'unknown kid: the log says the account was refused, with the CA\'s problem';
ok !-e "$state{unknown}/account.json", 'unknown kid: no account stored';

$line = $t->wait_log(qr/certificate "none\.test" from "none" failed/, 20);
like $line, qr/issuer "none" requires an external account binding: set external_account_key/,
    'no key for a CA that requires one: says what to configure';

is $t->pebble_log_count(qr/There are now \d+ accounts in memory/), 2, 'Pebble created two accounts';

# The MAC keys appear nowhere but in nginx.conf and the key file.
my $log = $t->error_log;
my @stored;
for my $dir (values %state) {
    opendir my $dh, $dir or next;
    push @stored, map { do { local (@ARGV, $/) = "$dir/$_"; <> } } grep { -f "$dir/$_" } readdir $dh;
}
for my $k ($keys{'kid-inline'}, $keys{'kid-file'}, $wrong) {
    unlike $log, qr/\Q$k\E/, 'MAC key not in the error log';
    ok !grep({ index($_, $k) >= 0 } @stored), 'MAC key not in the store';
}

done_testing;
