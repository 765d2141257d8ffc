# A directory `uri` that answers with a redirect (here a URL without a path,
# answered 301 by nginx itself) is followed to the real ACME directory.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer moved {
        uri http://127.0.0.1:%%HTTP_PORT%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location = / {
            return 301 %%ACME_URI%%;
        }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name moved.test;
        acme_certificate moved;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
ok $t->wait_for(sub { $t->tls_get(name => 'moved.test', ca => $root)->{verified} }, timeout => 30),
    'certificate issued through the redirected directory';
like $t->error_log, qr/acme: certificate "moved\.test" issued by "moved"/, 'issuance logged';
my $access = do { local (@ARGV, $/) = $t->dir . '/access.log'; <> } // '';
like $access, qr{"GET / HTTP/1\.1" 301 }, 'the configured uri answered 301';

done_testing;
