# A configuration written for the official nginx-acme module works as it is:
# `resolver`, `acme_shared_zone`, `ssl_certificate $acme_certificate` and
# `ssl_certificate_key $acme_certificate_key`. Such servers are served from
# the hot-swapped SSL context, not by nginx's per-handshake certificate
# callback, and show the fallback before the first issuance. A server that
# also loads another certificate through its own variables keeps nginx's
# callback for that one only.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my ($rsa_crt, $rsa_key) = $t->make_cert(name => 'mixed.test', key => 'rsa');
$t->write_nginx_conf(<<"EOF2", log_level => 'debug');
http {
    map \$ssl_server_name \$rsa_crt { default $rsa_crt; }
    map \$ssl_server_name \$rsa_key { default $rsa_key; }

    resolver 127.0.0.1:%%DNS_PORT%%;

    acme_shared_zone zone=ngx_acme_shared:256k;

    acme_issuer example {
        uri         %%ACME_URI%%;
        contact     admin\@example.test;
        state_path  %%TESTDIR%%/acme-example;
        accept_terms_of_service;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        ssl_verify  on;
        challenge   http-01;
        account_key ecdsa:256;
    }

    acme_issuer nowhere {
        uri         https://127.0.0.1:%%PORT_CLOSED%%/dir;
        state_path  %%TESTDIR%%/acme-nowhere;
        accept_terms_of_service;
    }

    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location / {
            return 404;
        }
    }

    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name .example.test;

        acme_certificate example;

        ssl_certificate       \$acme_certificate;
        ssl_certificate_key   \$acme_certificate_key;

        location / {
            return 200 "example\n";
        }
        location = /pem {
            return 200 "\$acme_certificate";
        }
    }

    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name mixed.test;

        acme_certificate example;
        ssl_certificate       \$acme_certificate;
        ssl_certificate_key   \$acme_certificate_key;
        ssl_certificate       \$rsa_crt;
        ssl_certificate_key   \$rsa_key;
    }

    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name pending.test;

        ssl_certificate       \$acme_certificate;
        ssl_certificate_key   \$acme_certificate_key;
        acme_certificate nowhere;

        location = /pem {
            return 200 "\$acme_certificate";
        }
    }
}
EOF2

my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts the nginx-acme configuration' or diag $out;

$t->start_nginx;
my $https = $t->port('https');
my @workers = sort $t->worker_pids;

my $fallback = $t->tls_get(name => 'pending.test', port => $https, request => '/pem');
ok $fallback->{ok}, 'before issuance the handshake succeeds' or diag $fallback->{error};
is $fallback->{subject_cn}, 'acme fallback', 'with the fallback certificate';
like $fallback->{body} // '', qr/^data:-----BEGIN CERTIFICATE-----/, '$acme_certificate is the fallback as data: PEM';

my $root = $t->pebble_root;
my $r = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'www.example.test', port => $https, ca => $root, request => '/');
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $r, 'certificate issued, chain verifies against Pebble\'s root';
is_deeply [sort @{ $r->{sans} || [] }], [qw(example.test www.example.test)], 'names from server_name';
is $r->{body}, "example\n", 'request served';
is_deeply [sort $t->worker_pids], \@workers, 'hot swap: same workers';
# Until every worker has it, another one still serves the fallback (and
# $acme_certificate is the fallback's, without a chain).
$t->wait_installed('example.test') or die('not installed by every worker');

# The variable follows what the server serves.
my $pem = $t->tls_get(name => 'example.test', port => $https, request => '/pem');
(my $leaf = $pem->{cert_pem} // 'none') =~ s/\r//g;
like $pem->{body} // '', qr/^data:\Q$leaf\E-----BEGIN CERTIFICATE-----/, '$acme_certificate is data: + the served chain';

# nginx's certificate callback would log every certificate it loads per
# handshake ("ssl cert: ..."); the module took these servers over.
my $mark = $t->log_mark;
$t->tls_get(name => 'example.test', port => $https) for 1 .. 3;
unlike $t->error_log($mark), qr/ssl cert: /, 'no per-handshake certificate loading';

# The mixed server: the acme certificate from the context, the RSA one
# from nginx's callback, which no longer loads the acme one.
my $ec = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'mixed.test', port => $https, ca => $root,
        ssl_options => { SSL_version => 'TLSv1_2', SSL_cipher_list => 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $ec, 'mixed: ECDSA clients get the acme certificate';
is $ec && $ec->{key_type}, 'ec', 'mixed: ECDSA key';
$mark = $t->log_mark;
my $rsa = $t->tls_get(name => 'mixed.test', port => $https, ca => $t->ca_file,
    ssl_options => { SSL_version => 'TLSv1_2', SSL_cipher_list => 'ECDHE-RSA-AES128-GCM-SHA256' });
ok $rsa->{verified}, 'mixed: RSA clients get the certificate of the other variables';
is $rsa->{key_type}, 'rsa', 'mixed: RSA key';
my @loaded = $t->error_log($mark) =~ /ssl cert: "([^"]*)"/g;
is_deeply \@loaded, [$rsa_crt], 'mixed: only the other variables are loaded per handshake';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
