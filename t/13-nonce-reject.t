# Pebble rejecting 30 % of nonces as badNonce: issuance still succeeds.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 30 });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name a.nonce.test b.nonce.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name c.nonce.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name d.nonce.test;
        acme_certificate pebble key=rsa:2048;
    }
}
EOF2
$t->start_nginx;
my $https = $t->port('https');
my $root = $t->pebble_root;
for my $name (qw(a.nonce.test c.nonce.test d.nonce.test)) {
    ok $t->wait_for(sub { $t->tls_get(name => $name, port => $https, ca => $root)->{verified} },
                    timeout => 60), "$name issued despite rejected nonces";
}
is $t->tls_get(name => 'd.nonce.test', port => $https, ca => $root)->{key_type}, 'rsa',
    'key=rsa:2048 gives an RSA certificate';
# Pebble does not log each rejection; make sure the knob took effect.
is $t->pebble_log_count(qr/Configured to reject 30% of good nonces/), 1, 'Pebble rejects nonces';
unlike $t->error_log, qr/failed:/, 'no failed attempt logged';

done_testing;
