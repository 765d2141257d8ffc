# master_process off with a stream block and no http block: the single
# process runs the engine for the stream block's own configuration (found
# through ngx_http_acme_cycle_main_conf), answers tls-alpn-01 and serves
# the certificate.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, stream => 1);

my $t = AcmeTest->new(timeout => 90);
$t->start_backend('backend');
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2', stream => 1, master_process => 0);
stream {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge tls-alpn-01;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        acme_certificate pebble single.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
my $r = $t->wait_for(sub { my $r = $t->tls_get(name => 'single.test', ca => $root, request => '/'); $r->{verified} ? $r : undef }, timeout => 60);
ok $r, 'single process: stream cert issued and served' or diag $t->error_log;
done_testing;
