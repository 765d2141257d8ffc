# common_name_in_csr: off (the default) puts no subject CN in the CSR; on
# puts the first DNS name there, and never an IP address. Pebble does not
# copy the CSR's CN into certificates, so the CSRs are read on their way to
# the CA: the test nginx also proxies the ACME traffic and logs the bodies.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use JSON::PP;
use MIME::Base64 qw(decode_base64url);

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my ($crt, $key) = $t->make_cert(name => '127.0.0.1', file => 'proxy');
$t->write_nginx_conf(<<"EOF2");
http {
    log_format bodies '\$request_uri \$request_body';
    acme_issuer cn {
        uri https://127.0.0.1:%%PORT_PROXY%%/dir;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-cn;
        accept_terms_of_service;
        common_name_in_csr on;
    }
    acme_issuer nocn {
        uri https://127.0.0.1:%%PORT_PROXY%%/dir;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-nocn;
        accept_terms_of_service;
    }
    # Pebble builds its URLs from the Host header, so every request of the
    # engine comes through here.
    server {
        listen 127.0.0.1:%%PORT_PROXY%% ssl;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        access_log %%TESTDIR%%/bodies.log bodies;
        location / {
            proxy_pass https://127.0.0.1:@{[ $t->port('acme') ]};
            proxy_set_header Host \$host:\$server_port;
        }
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name cn.test www.cn.test;
        acme_certificate cn;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name nocn.test;
        acme_certificate nocn;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name ip.test;
        acme_certificate cn 127.0.0.1;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
ok $t->wait_for(sub { $t->tls_get(name => 'cn.test', ca => $root)->{verified} }, timeout => 30), 'cn.test issued';
ok $t->wait_for(sub { $t->tls_get(name => 'nocn.test', ca => $root)->{verified} }, timeout => 30), 'nocn.test issued';
ok $t->wait_for(sub { ($t->tls_get(name => 'ip.test')->{issuer_cn} // '') =~ /Pebble/ }, timeout => 30), 'IP certificate issued';

# Subject and SANs of every CSR sent to finalize.
my %csr;
open my $fh, '<', $t->dir . '/bodies.log' or die;
while (my $line = <$fh>) {
    my ($uri, $body) = $line =~ m{^(/finalize-order/\S+) (.*)$} or next;
    $body =~ s/\\x([0-9A-Fa-f]{2})/chr hex $1/ge;
    my $payload = decode_json(decode_base64url(decode_json($body)->{payload}));
    my $der = decode_base64url($payload->{csr});
    my $file = $t->write_file('csr.der', $der);
    my (undef, $text) = AcmeTest::_run('openssl', 'req', -inform => 'DER', -in => $file, -noout, -subject, -text);
    my ($subject) = $text =~ /^subject=\s*(.*)$/m;
    my ($sans) = $text =~ /Subject Alternative Name:.*?\n\s*(.*)\n/s;
    $csr{$sans} = $subject;
}
is scalar keys %csr, 3, 'three CSRs seen' or diag explain \%csr;
my ($cn) = grep { /DNS:cn\.test/ } keys %csr;
my ($nocn) = grep { /DNS:nocn\.test/ } keys %csr;
my ($ip) = grep { /IP Address:127\.0\.0\.1/ } keys %csr;
like $cn && $csr{$cn}, qr/^CN\s*=\s*cn\.test$/, 'on: the first DNS name is the CSR\'s CN';
is $nocn && $csr{$nocn}, '', 'off: no subject in the CSR';
is $ip && $csr{$ip}, '', 'on, IP identifier: no subject in the CSR';

done_testing;
