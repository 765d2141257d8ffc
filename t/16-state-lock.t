# Two nginx instances on one state directory (as during a binary upgrade):
# only one engine acts on it; the other waits and says so.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $a = AcmeTest->new(timeout => 120);
my $b = AcmeTest->new(timeout => 120);
$a->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my $state = $a->dir . '/shared-state';
my $conf = <<"EOF2";
http {
    acme_issuer pebble {
        uri ACME_URI;
        ssl_trusted_certificate PEBBLE_CA;
        state_path $state;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name lock.test;
        acme_certificate pebble;
    }
}
EOF2
for my $t ($a, $b) {
    (my $c = $conf) =~ s/ACME_URI/$a->acme_uri/e;
    $c =~ s/PEBBLE_CA/$a->pebble_ca_file/e;
    $t->write_nginx_conf($c);
}
$a->start_nginx;
my $root = $a->pebble_root;
ok $a->wait_for(sub {
    $a->tls_get(name => 'lock.test', port => $a->port('https'), ca => $root)->{verified}
}, timeout => 30), 'first instance issued the certificate';

# The second instance starts while the first engine holds the lock.
$b->start_nginx;
ok $b->wait_log(qr/acme: state "\Q$state\E" is locked by another nginx process, waiting/, 10),
    'second engine waits for the lock';
ok $b->tls_get(name => 'lock.test', port => $b->port('https'), ca => $root)->{verified},
    'second instance serves the stored certificate from the start';

# When the first instance goes away, the second engine takes over.
$a->stop_nginx;
ok $b->wait_log(qr/acme: certificate "lock\.test" is valid until/, 10),
    'second engine took the lock and found the stored certificate';
is $a->pebble_orders, 1, 'one order in all';

done_testing;
