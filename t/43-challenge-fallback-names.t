# Challenge fallback for a certificate with several names: an order stops at
# its first failed authorization, so every name may need its own fallback
# order; none of them may turn into a backoff delay.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120, log_level => 'info');
# Pebble's TLS validations go to a port nobody listens on.
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { tlsPort => $t->port('closed') });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge tls-alpn-01 http-01;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name a.names.test b.names.test c.names.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;

my $root = $t->pebble_root;
my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'a.names.test', ca => $root);
        $r->{verified} ? $r : undef
    }, timeout => 30);
ok $r, 'certificate issued although tls-alpn-01 cannot succeed for any name';
is_deeply [sort @{ $r->{sans} || [] }], [qw(a.names.test b.names.test c.names.test)],
    'for all configured names';

my $log = $t->error_log;
unlike $log, qr/acme: certificate "a\.names\.test" from "pebble" failed/, 'no attempt failed as a whole';
unlike $log, qr/next attempt at/, 'no backoff delay';
cmp_ok $t->pebble_orders, '<=', 4, 'at most one fallback order per name';
my $meta = JSON::PP::decode_json(AcmeTest::_slurp((glob $t->dir . '/acme/a.names.test-*.json')[0]));
is $meta->{failures}, 0, '.json: no failure recorded';

done_testing;
