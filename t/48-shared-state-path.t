# Several acme_issuer blocks with the same state_path and the same
# account_key file (nginx-acme configurations do this): each issuer keeps
# its account record and certificates in a directory of its own inside the
# path, one engine manages both, and both certificates are served.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
system('openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-out', $t->dir . '/account.pem') == 0 or die 'openssl genpkey failed';
chmod 0644, $t->dir . '/account.pem';
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer first {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        account_key %%TESTDIR%%/account.pem;
        accept_terms_of_service;
    }
    acme_issuer second {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme/;
        account_key %%TESTDIR%%/account.pem;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name one.test;
        acme_certificate first;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name two.test;
        acme_certificate second;
    }
}
EOF2
my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts two issuers with one state_path' or diag $out;
$t->start_nginx;
my $root = $t->pebble_root;
for my $name ('one.test', 'two.test') {
    ok $t->wait_for(sub { $t->tls_get(name => $name, ca => $root)->{verified} }, timeout => 30),
        "$name: issued and served";
}
my $d = $t->dir . '/acme';
ok glob("$d/first/one.test-*.crt"), 'the first issuer keeps its certificate in first/';
ok glob("$d/second/two.test-*.crt"), 'the second in second/';
ok -f "$d/first/account.json" && -f "$d/second/account.json", 'each has its account record';
ok !glob("$d/*.crt"), 'nothing of theirs at the top';
my $started = () = $t->error_log =~ /acme: engine started for 2 certificate/g;
is $started, 1, 'one engine for both';

# A reload keeps them apart and orders nothing.
my $orders = $t->pebble_orders;
$t->reload_nginx;
ok $t->tls_get(name => 'two.test', ca => $root)->{verified}, 'served after a reload';
sleep 1;
is $t->pebble_orders, $orders, 'no new order after the reload';

done_testing;
