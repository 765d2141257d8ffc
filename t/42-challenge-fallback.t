# Challenge preference and fallback: with `challenge tls-alpn-01 http-01`
# and the TLS port unreachable for Pebble, tls-alpn-01 fails and a new
# order at once validates with http-01; renewals then start with http-01.
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
        server_name fallback.test;
        acme_certificate pebble;
        location / { return 200 "fallback\n"; }
    }
}
EOF2
$t->start_nginx;

my $root = $t->pebble_root;
my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'fallback.test', ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 30);
ok $r, 'certificate issued although tls-alpn-01 cannot succeed';
is_deeply $r->{sans}, ['fallback.test'], 'for the configured name';

my $log = $t->error_log;
like $log, qr/\[warn\] .*acme: certificate "fallback\.test": authorization for "fallback\.test" by tls-alpn-01 failed: urn:ietf:params:acme:error:\w+: .*, trying another challenge type/,
    'the tls-alpn-01 failure is logged with the CA\'s problem';
like $log, qr/acme: authorization for "fallback\.test" is valid \(http-01\)/, 'then validated by http-01';
unlike $log, qr/acme: certificate "fallback\.test" from "pebble" failed/, 'the attempt as a whole did not fail';
unlike $log, qr/next attempt at/, 'no backoff delay';
is $t->pebble_orders, 2, 'a second order right away';
like $log, qr/acme: answered http-01 challenge/, 'nginx answered http-01';
my $meta = JSON::PP::decode_json(AcmeTest::_slurp((glob $t->dir . '/acme/fallback.test-*.json')[0]));
is $meta->{failures}, 0, '.json: no failure recorded';

is_deeply $meta->{challenge_failures}, { 'fallback.test' => ['tls-alpn-01'] },
    '.json: the challenge type that failed';

# The next order for the certificate (its files gone, then a reload: a new
# helper process) goes straight to http-01. Pebble reuses a valid
# authorization now and then even with PEBBLE_AUTHZREUSE=0 (about once in a
# hundred orders), and then nothing is validated: go again in that case.
my ($issued, $after, $rounds);
for my $round (1 .. 3) {
    $rounds = $round;
    my $mark = $t->log_mark;
    unlink glob $t->dir . '/acme/fallback.test-*.{crt,key}';
    $t->reload_nginx;
    $issued = $t->wait_log(qr/acme: certificate "fallback\.test" issued/, 30, $mark);
    $after = $t->error_log($mark);
    last if !$issued || $after =~ /acme: authorization for "fallback\.test" is valid/;
    note 'Pebble reused the valid authorization, nothing was validated: once more';
}
ok $issued, 'ordered again after the reload';
like $after, qr/authorization for "fallback\.test" is valid \(http-01\)/, 'by http-01';
unlike $after, qr/by tls-alpn-01 failed/, 'without trying tls-alpn-01 first';
is $t->pebble_orders, 2 + $rounds, 'in one order';

done_testing;
