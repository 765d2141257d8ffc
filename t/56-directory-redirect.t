# A directory `uri` that answers with a redirect (here a URL without a path,
# answered 301 by nginx itself) is followed to the real ACME directory; with
# `resolver`, also to another port of the same name; never from https to
# http; and only the directory fetch follows redirects.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my ($hop_crt, $hop_key) = $t->make_cert(names => ['ca.acme.test', '127.0.0.1'], file => 'hop');
$t->write_nginx_conf(<<"EOF2");
http {
    resolver 127.0.0.1:%%DNS_PORT%%;
    acme_issuer moved {
        uri http://127.0.0.1:%%HTTP_PORT%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    # The name is looked up through nginx's resolver for each hop.
    acme_issuer hop {
        uri https://ca.acme.test:%%PORT_HOP%%/directory;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-hop;
        accept_terms_of_service;
    }
    acme_issuer downgrade {
        uri https://127.0.0.1:%%PORT_HOP%%/downgrade;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-downgrade;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location = / {
            return 301 %%ACME_URI%%;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_HOP%% ssl;
        ssl_certificate $hop_crt;
        ssl_certificate_key $hop_key;
        location = /directory {
            return 301 https://ca.acme.test:%%PORT_ACME%%/dir;
        }
        location = /downgrade {
            return 302 http://127.0.0.1:%%HTTP_PORT%%/;
        }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name moved.test;
        acme_certificate moved;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name hop.test;
        acme_certificate hop;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name downgrade.test;
        acme_certificate downgrade;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
ok $t->wait_for(sub { $t->tls_get(name => 'moved.test', ca => $root)->{verified} }, timeout => 30),
    'certificate issued through the redirected directory';
ok $t->wait_log(qr/acme: certificate "moved\.test" issued by "moved"/, 5), 'issuance logged';
my $access = do { local (@ARGV, $/) = $t->dir . '/access.log'; <> } // '';
like $access, qr{"GET / HTTP/1\.1" 301 }, 'the configured uri answered 301';

ok $t->wait_for(sub { $t->tls_get(name => 'hop.test', ca => $root)->{verified} }, timeout => 30),
    'with resolver: a redirect to another port of the same name is followed';
my $refused = $t->wait_log(qr/acme: certificate "downgrade\.test" from "downgrade" failed: /, 30);
like $refused, qr{redirected from https://127\.0\.0\.1:\d+/downgrade to http://127\.0\.0\.1:\d+/, which is not https},
    'a redirect from https to http is not followed';
my @gets = $access =~ m{"GET / HTTP/1\.1" 301 }g;
$access = do { local (@ARGV, $/) = $t->dir . '/access.log'; <> } // '';
unlike $access, qr{"(?:POST|GET) /(?:\S*) HTTP/1\.1" 302 .*\n.*"(?:POST|GET) / }, 'nothing went to the http target';

done_testing;
