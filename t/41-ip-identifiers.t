# IP address certificates (RFC 8738): addresses in server_name and in
# acme_certificate are ordered as "ip" identifiers and end up as IP SANs
# (never as the CN), validated by http-01 at http://<ip>/ and by
# tls-alpn-01 with the reverse-DNS name as SNI. ::1 is added when the
# machine has IPv6 on loopback.
use strict;
use warnings;
use Test::More;
use IO::Socket::IP;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120, log_level => 'info');
my $v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => $t->port('https'), Listen => 1)
    && IO::Socket::IP->new(LocalHost => '::1', LocalPort => $t->port('http'), Listen => 1) ? 1 : 0;
diag 'no usable ::1: IPv6 parts skipped' unless $v6;

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->make_cert(name => 'static.test');
my $conf = <<'EOF2';
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    acme_issuer by-http {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-http;
        accept_terms_of_service;
    }
    acme_issuer by-alpn {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-alpn;
        accept_terms_of_service;
        challenge tls-alpn-01;
    }
    # Port 80 only redirects; http-01 is answered before that.
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        V6 listen [::1]:%%HTTP_PORT%%;
        server_name static.test;
        location / { return 301 https://$host$request_uri; }
    }
    # Clients that connect to an address send no SNI: the default server.
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl default_server;
        V6 listen [::1]:%%HTTPS_PORT%% ssl default_server;
        server_name 127.0.0.1 V6[::1];
        acme_certificate by-http;
        acme_certificate by-alpn 127.0.0.1 V6::1 key=rsa:2048;
        location / { return 200 "ip\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name static.test;
        ssl_certificate %%TESTDIR%%/static.test.crt;
        ssl_certificate_key %%TESTDIR%%/static.test.key;
    }
}
EOF2
if ($v6) {
    $conf =~ s/V6 ?//g;
} else {
    $conf =~ s/^\s*V6 .*\n//mg;
    $conf =~ s/ V6[^\s;]+//g;
}
$t->write_nginx_conf($conf);
$t->start_nginx;

my $root = $t->pebble_root;
my @want = $v6 ? ('127.0.0.1', '::1') : ('127.0.0.1');
my %suites = (ec => 'ECDHE-ECDSA-AES128-GCM-SHA256', rsa => 'ECDHE-RSA-AES128-GCM-SHA256');
for my $kind (qw(ec rsa)) {
    my $how = $kind eq 'ec' ? 'http-01' : 'tls-alpn-01';
    my $r = $t->wait_for(sub {
            my $r = $t->tls_get(name => '127.0.0.1', ca => $root, request => '/',
                ssl_options => { SSL_version => 'TLSv1_2', SSL_cipher_list => $suites{$kind} });
            $r->{verified} ? $r : undef
        }, timeout => 30);
    ok $r, "$kind certificate by $how verifies for 127.0.0.1" or next;
    is $r->{key_type}, $kind, "$kind: key type";
    is_deeply [sort @{ $r->{sans} }], [sort @want], "$kind: IP SANs " . join(', ', @want);
    is $r->{subject_cn}, undef, "$kind: no address as the CN";
    is $r->{body}, "ip\n", "$kind: served";
}

my $log = $t->error_log;
for my $ip (@want) {
    like $log, qr/acme: authorization for "\Q$ip\E" is valid \(http-01\)/, "$ip validated by http-01";
    like $log, qr/acme: authorization for "\Q$ip\E" is valid \(tls-alpn-01\)/, "$ip validated by tls-alpn-01";
}
like $log, qr/acme: answered http-01 challenge/, 'http-01 answered by nginx on port 80';
like $log, qr/acme: answering tls-alpn-01 challenge for "1\.0\.0\.127\.in-addr\.arpa"/,
    'tls-alpn-01 for 127.0.0.1 with its in-addr.arpa name';
SKIP: {
    skip 'no IPv6', 1 unless $v6;
    like $log, qr/acme: answering tls-alpn-01 challenge for "1(?:\.0){31}\.ip6\.arpa"/,
        'tls-alpn-01 for ::1 with its ip6.arpa name';
}
unlike $log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts in the error log';

# What Pebble was asked for: identifiers of type "ip".
my $ip_ids = $t->pebble_log_count(qr/Identifier:acme\.Identifier\{Type:"ip", Value:"127\.0\.0\.1"\}/);
cmp_ok $ip_ids, '>=', 2, 'Pebble validated 127.0.0.1 as an "ip" identifier, once per certificate';
is $t->pebble_log_count(qr/Identifier:acme\.Identifier\{Type:"dns"/), 0, 'and nothing as "dns"';

# The store is named after the first identifier.
ok glob($t->dir . '/acme-http/127.0.0.1-*.crt'), 'acme-http: 127.0.0.1-<hash>.crt';
ok glob($t->dir . '/acme-alpn/127.0.0.1-*.crt'), 'acme-alpn: 127.0.0.1-<hash>.crt';

done_testing;
