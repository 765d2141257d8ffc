# Several issuers in one configuration, backed by two Pebble instances: each
# server's certificate comes from its own issuer and chains to that CA's
# root; each issuer has its own account and state directory.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $a = AcmeTest->new(timeout => 180);
my $b = AcmeTest->new(timeout => 180);
$a->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
# Both CAs validate http-01 at the one nginx, which runs under $a.
$b->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { httpPort => $a->port('http'), tlsPort => $a->port('https') });
my ($uri_b, $ca_b) = ($b->acme_uri, $b->pebble_ca_file);

$a->write_nginx_conf(<<"EOF2");
http {
    acme_issuer one {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-one;
        accept_terms_of_service;
    }
    acme_issuer two {
        uri $uri_b;
        ssl_trusted_certificate $ca_b;
        state_path %%TESTDIR%%/acme-two;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name one.test;
        acme_certificate one;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name two.test;
        acme_certificate two;
    }
}
EOF2
$a->start_nginx;
my %root = (one => $a->pebble_root, two => $b->pebble_root);

for my $issuer (qw(one two)) {
    my $other = $issuer eq 'one' ? 'two' : 'one';
    ok $a->wait_for(sub {
        $a->tls_get(name => "$issuer.test", ca => $root{$issuer})->{verified}
    }, timeout => 30), "$issuer.test chains to the root of issuer $issuer";
    ok !$a->tls_get(name => "$issuer.test", ca => $root{$other})->{verified},
        "$issuer.test does not chain to the root of issuer $other";
}

my %account;
for my $issuer (qw(one two)) {
    my $dir = $a->dir . "/acme-$issuer";
    $account{$issuer} = eval { JSON::PP::decode_json(do { local (@ARGV, $/) = "$dir/account.json"; <> }) } || {};
    ok -s "$dir/account.key", "issuer $issuer: own account key";
}
like $account{one}{url}, qr{^https://127\.0\.0\.1:@{[ $a->port('acme') ]}/}, 'issuer one: account at the first CA';
like $account{two}{url}, qr{^https://127\.0\.0\.1:@{[ $b->port('acme') ]}/}, 'issuer two: account at the second CA';
is $a->pebble_orders, 1, 'one order at the first CA';
is $b->pebble_orders, 1, 'one order at the second CA';

done_testing;
