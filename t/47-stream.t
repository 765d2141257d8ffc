# acme_certificate in stream{} with no http block at all: the issuer is in
# the stream block, tls-alpn-01 is answered on the stream TLS listener
# (reached by Pebble through an ssl_preread front that routes by SNI), the
# certificate verifies against Pebble's root through the front and
# directly, connections are proxied to a backend, and the challenge
# handshakes are never passed on to it.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, stream => 1);

my $t = AcmeTest->new(timeout => 120, log_level => 'info');

# The backend logs each connection's request line; an empty line would be
# a connection that sent nothing (the clients here always send a request).
my $backend_log = $t->start_backend('backend');

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { tlsPort => $t->port('front') });

my $conf = <<'EOF2';
stream {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge tls-alpn-01;
    }

    # Port 443 of many set-ups: routed by SNI without terminating TLS.
    map $ssl_preread_server_name $route {
        stream.test  127.0.0.1:%%HTTPS_PORT%%;
        stream2.test 127.0.0.1:%%PORT_SECOND%%;
        default      127.0.0.1:%%PORT_BACKEND%%;
    }
    server {
        listen 127.0.0.1:%%PORT_FRONT%%;
        ssl_preread on;
        proxy_pass $route;
    }

    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        acme_certificate pebble stream.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
    #SECOND#
}
EOF2
$t->write_nginx_conf($conf, stream => 1);

my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts acme_issuer and acme_certificate in stream without http'
    or diag $out;
$t->start_nginx;
my $root = $t->pebble_root;

my $got = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'stream.test', port => $t->port('front'), ca => $root,
        request => '/probe');
    $r->{verified} ? $r : undef
}, timeout => 60);
ok $got, 'a certificate verified against the CA root, through the ssl_preread front'
    or die('no certificate: ' . $t->error_log);
# Until every worker has it, another one still answers with the placeholder.
$t->wait_installed('stream.test') or die('not installed by every worker');
is "@{ $got->{sans} }", 'stream.test', 'for the name acme_certificate gives';
like $got->{issuer_cn}, qr/Pebble Intermediate/i, 'issued by Pebble';
is $got->{key_type}, 'ec', 'ECDSA key, the default';

my $direct = $t->tls_get(name => 'stream.test', port => $t->port('https'), ca => $root,
    request => '/hello');
ok $direct->{verified}, 'the same certificate on the stream listener itself';
is $direct->{serial}, $got->{serial}, 'same serial';
is $direct->{status}, 200, 'proxied to the backend';
is $direct->{body}, "backend\n", 'with the backend\'s answer';

my $no_sni = $t->tls_get(port => $t->port('https'), ca => $root, request => '/probe');
is $no_sni->{serial}, $got->{serial}, 'also served without SNI (no server_name in stream)';

like $t->error_log, qr/answering tls-alpn-01 challenge for "stream\.test"/,
    'tls-alpn-01 answered on the stream listener';
like $t->error_log, qr/tls-alpn-01 handshake done, closing/,
    'and the session ended after the challenge handshake';
my @lines = split /\n/, do { local (@ARGV, $/) = $backend_log; <> } // '';
is scalar(grep { $_ eq '' } @lines), 0,
    'no challenge connection reached the backend (' . scalar(@lines) . ' connections)';
ok scalar(grep { m{^GET /hello } } @lines), 'the client\'s request did';

my @crt = glob($t->dir . '/acme/stream.test-*.crt');
is scalar(@crt), 1, 'the certificate is in the stream issuer\'s state_path';

# A reload with a second stream server: the new configuration (again the
# stream block's own) serves the stored certificate from the first
# handshake, orders only the new one, and the new workers serve both.
(my $second = $conf) =~ s{#SECOND#}{server {
        listen 127.0.0.1:%%PORT_SECOND%% ssl;
        acme_certificate pebble stream2.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }};
$t->write_nginx_conf($second, stream => 1);
my $orders = $t->pebble_orders;
ok $t->reload_nginx, 'reload with a second stream server';
my $kept = $t->tls_get(name => 'stream.test', port => $t->port('https'), ca => $root,
    request => '/probe');
is $kept->{serial}, $got->{serial}, 'the new workers serve the stored certificate at once';
my $new = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'stream2.test', port => $t->port('front'), ca => $root,
        request => '/probe');
    $r->{verified} ? $r : undef
}, timeout => 60);
ok $new, 'the second stream server gets its certificate after the reload';
is $t->pebble_orders, $orders + 1, 'one new order, none for the stored certificate';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
