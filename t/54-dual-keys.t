# RSA and ECDSA certificates for the same names: `key=ecdsa:256 key=rsa:2048`
# in one acme_certificate, or two acme_certificate lines, order one
# certificate per key type and serve ECDSA to clients that support it, RSA
# to the others; both renew and hot-swap on their own. `key=rsa:2048` alone
# gives RSA, the default P-256.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 240);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 }, config => {
    profiles => { brief => { description => 'renewed within the test', validityPeriod => 30 } },
});
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        profile default;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name dual.test www.dual.test;
        acme_certificate pebble key=ecdsa:256 key=rsa:2048 profile=brief;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name twolines.test;
        acme_certificate pebble;
        acme_certificate pebble key=rsa:2048;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name rsa.test;
        acme_certificate pebble key=rsa:2048;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name default.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
my $port = $t->port('https');
my @workers = sort $t->worker_pids;

# openssl s_client limited to one signature algorithm family: the server
# must pick the certificate whose key can sign with it.
sub s_client {
    my ($name, $sigalgs) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec 'openssl', 's_client', -connect => "127.0.0.1:$port", -servername => $name,
            -sigalgs => $sigalgs, -CAfile => $root, -verify_hostname => $name;
        exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my %r = (out => $out);
    $r{verified} = $out =~ /Verify return code: 0 \(ok\)/ ? 1 : 0;
    ($r{bits}) = $out =~ /Server public key is (\d+) bit/;
    ($r{peer_sig}) = $out =~ /Peer signature type: (\S+)/;
    my ($pem) = $out =~ /(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)/s;
    if ($pem) {
        my $bio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
        Net::SSLeay::BIO_write($bio, $pem);
        my $x509 = Net::SSLeay::PEM_read_bio_X509($bio);
        %r = (%r, %{ AcmeTest::cert_info($x509) });
        Net::SSLeay::X509_free($x509);
        Net::SSLeay::BIO_free($bio);
    }
    return \%r;
}
my $ecdsa = 'ECDSA+SHA256';
my $rsa = 'RSA-PSS+SHA256:RSA+SHA256';

my %first;
for my $name (qw(dual.test twolines.test)) {
    my $ec = $t->wait_for(sub { my $r = s_client($name, $ecdsa); $r->{verified} ? $r : undef }, timeout => 30);
    my $rs = $t->wait_for(sub { my $r = s_client($name, $rsa); $r->{verified} && ($r->{key_type} // '') eq 'rsa' ? $r : undef }, timeout => 30);
    ok $ec, "$name: an ECDSA-only client gets a valid certificate";
    ok $rs, "$name: an RSA-only client gets a valid certificate";
    next unless $ec && $rs;
    is $ec->{key_type}, 'ec', "$name: ECDSA key for the ECDSA client";
    is $ec->{bits}, 256, "$name: P-256";
    is $rs->{key_type}, 'rsa', "$name: RSA key for the RSA client";
    is $rs->{bits}, 2048, "$name: RSA 2048";
    is_deeply [sort @{ $ec->{sans} }], [sort @{ $rs->{sans} }], "$name: both for the same names";
    isnt $ec->{serial}, $rs->{serial}, "$name: two certificates";
    $first{$name} = { ec => $ec->{serial}, rsa => $rs->{serial} };
}

my $r = $t->wait_for(sub { my $r = $t->tls_get(name => 'rsa.test', ca => $root); $r->{verified} ? $r : undef }, timeout => 30);
is $r && $r->{key_type}, 'rsa', 'key=rsa:2048 alone: RSA';
is $r && $r->{key_bits}, 2048, 'key=rsa:2048 alone: 2048 bits';
$r = $t->wait_for(sub { my $r = $t->tls_get(name => 'default.test', ca => $root); $r->{verified} ? $r : undef }, timeout => 30);
is $r && $r->{key_type}, 'ec', 'default: ECDSA';
is $r && $r->{key_bits}, 256, 'default: P-256';

# The 30 s pair renews; each key type gets its new certificate.
for my $type (qw(ec rsa)) {
    my $sig = $type eq 'ec' ? $ecdsa : $rsa;
    my $new = $t->wait_for(sub {
        my $r = s_client('dual.test', $sig);
        $r->{verified} && ($r->{key_type} // '') eq $type && $r->{serial} ne $first{'dual.test'}{$type} ? $r : undef
    }, timeout => 40);
    ok $new, "dual.test: the $type certificate was renewed and swapped in";
}
is_deeply [sort $t->worker_pids], \@workers, 'same workers throughout';

opendir my $dh, $t->dir . '/acme' or die;
my @crt = grep { /^dual\.test-.*\.crt$/ } readdir $dh;
is scalar @crt, 2, 'two certificate files for dual.test';

done_testing;
