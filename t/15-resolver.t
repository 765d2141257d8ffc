# With a `resolver` in the http block the engine resolves the CA's host name
# through it (here the DNS stub, which knows names the system does not).
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
(my $uri = $t->acme_uri) =~ s{//127\.0\.0\.1:}{//ca.acme.test:};
$t->write_nginx_conf(<<"EOF2");
http {
    resolver 127.0.0.1:%%DNS_PORT%%;
    acme_issuer pebble {
        uri $uri;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name resolver.test;
        acme_certificate pebble;
    }
}
EOF2
ok system('getent', 'hosts', 'ca.acme.test') != 0, 'the system resolver does not know the CA name';
$t->start_nginx;
my $root = $t->pebble_root;
ok $t->wait_for(sub {
    $t->tls_get(name => 'resolver.test', port => $t->port('https'), ca => $root)->{verified}
}, timeout => 30), 'certificate issued from a CA found through nginx\'s resolver';

done_testing;
