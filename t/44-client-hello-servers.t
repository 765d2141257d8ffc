# From nginx 1.29.2 nginx picks the virtual server in a ClientHello callback
# of its own, and settings of the server a name belongs to (here
# ssl_protocols) apply from there. The module's ClientHello callback
# (tls-alpn-01) must hand every other ClientHello on to nginx's: a
# name-based server that allows only TLS 1.3 keeps refusing TLS 1.2 behind a
# default server that allows it, managed by the module or not, while
# tls-alpn-01 still gets a certificate on that listener.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, nginx => '1.29.2');

my $t = AcmeTest->new(timeout => 120, log_level => 'info');
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->make_cert(name => $_) for qw(default.test static13.test);

my $conf = <<'EOF';
http {
    ISSUER
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl default_server;
        server_name default.test;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate %%TESTDIR%%/default.test.crt;
        ssl_certificate_key %%TESTDIR%%/default.test.key;
        location / { return 200 "default\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name managed13.test;
        ssl_protocols TLSv1.3;
        MANAGED
        location / { return 200 "managed13\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name static13.test;
        ssl_protocols TLSv1.3;
        ssl_certificate %%TESTDIR%%/static13.test.crt;
        ssl_certificate_key %%TESTDIR%%/static13.test.key;
        location / { return 200 "static13\n"; }
    }
}
EOF

my $tls12 = { SSL_version => 'TLSv1_2' };
my $tls13 = { SSL_version => 'TLSv1_3' };

sub check_protocols {
    my ($when) = @_;
    my $r = $t->tls_get(name => 'default.test', request => '/', ssl_options => $tls12);
    ok $r->{ok} && ($r->{body} // '') eq "default\n", "$when: default server takes TLS 1.2"
        or diag $r->{error};
    for my $name (qw(managed13.test static13.test)) {
        $r = $t->tls_get(name => $name, request => '/', ssl_options => $tls12);
        ok !$r->{ok}, "$when: $name refuses TLS 1.2"
            or diag "served $r->{protocol}: " . ($r->{body} // '');
        like $r->{error} // '', qr/protocol.version|unsupported protocol|wrong version/i,
            "$when: $name: with a protocol_version alert";
        (my $body = $name) =~ s/\.test$//;
        $r = $t->tls_get(name => $name, request => '/', ssl_options => $tls13);
        ok $r->{ok} && ($r->{body} // '') eq "$body\n", "$when: $name serves TLS 1.3"
            or diag $r->{error};
    }
}

# Without the module, this is what nginx does by itself (managed13.test
# with a certificate of its own, not the one its name asks for).
$t->write_nginx_conf($conf =~ s/ISSUER//r
        =~ s{MANAGED}{ssl_certificate %%TESTDIR%%/default.test.crt;
        ssl_certificate_key %%TESTDIR%%/default.test.key;}r, module => 0);
$t->start_nginx;
check_protocols('without the module');
$t->stop_nginx;

$t->write_nginx_conf($conf =~ s/ISSUER/acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%\/acme;
        accept_terms_of_service;
        challenge tls-alpn-01;
    }/r =~ s/MANAGED/acme_certificate pebble;/r);
$t->start_nginx;
check_protocols('before issuance');

# tls-alpn-01 is the only challenge: Pebble's validation reaches the
# listener with ALPN acme-tls/1 and gets the challenge certificate.
my $root = $t->pebble_root;
my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'managed13.test', ca => $root, request => '/',
            ssl_options => $tls13);
        $r->{verified} ? $r : undef
    }, timeout => 30);
ok $r, 'certificate issued by tls-alpn-01 on that listener' or diag $t->error_log;
is $r && $r->{body}, "managed13\n", 'served over TLS 1.3';
ok $t->error_log =~ /answering tls-alpn-01 challenge for "managed13.test"/,
    'the module answered the challenge';

check_protocols('after issuance');

done_testing;
