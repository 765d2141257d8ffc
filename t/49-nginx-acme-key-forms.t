# Configuration forms of nginx-acme 0.4.1 that this module accepts too:
# `key=ecdsa` and `key=rsa` without a size (P-256 and RSA 2048), P-521 keys
# (`ecdsa:521`) for certificates and for the account (JWS ES512), and
# identifier arguments with a leading dot, which mean the name and its
# www. name as in server_name.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer p521 {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        account_key ecdsa:521;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name forms.test;
        acme_certificate p521 .forms.test key=ecdsa;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name rsa.test;
        acme_certificate p521 rsa.test key=rsa;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name big.test;
        acme_certificate p521 big.test key=ecdsa:521;
    }
}
EOF2
my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts the forms' or diag $out;
$t->start_nginx;
my $root = $t->pebble_root;

sub issued {
    my ($name) = @_;
    return $t->wait_for(sub { my $r = $t->tls_get(name => $name, ca => $root); $r->{verified} ? $r : undef },
        timeout => 30);
}

my $dot = issued('forms.test');
ok $dot, '.forms.test: issued';
is_deeply [sort @{ $dot->{sans} || [] }], ['forms.test', 'www.forms.test'],
    '.forms.test: the name and its www. name';
is "$dot->{key_type}:$dot->{key_bits}", 'ec:256', 'key=ecdsa: P-256';
ok issued('www.forms.test'), 'www.forms.test is served the same certificate';

my $rsa = issued('rsa.test');
ok $rsa, 'key=rsa: issued';
is "$rsa->{key_type}:$rsa->{key_bits}", 'rsa:2048', 'key=rsa: RSA 2048';

my $big = issued('big.test');
ok $big, 'key=ecdsa:521: issued';
is "$big->{key_type}:$big->{key_bits}", 'ec:521', 'key=ecdsa:521: P-521';

my $text = '';
{
    open my $fh, '-|', 'openssl', 'pkey', '-in', $t->dir . '/acme/account.key', '-noout', '-text'
        or die "openssl: $!";
    local $/;
    $text = <$fh> // '';
}
like $text, qr/P-521|secp521r1/, 'the account key is P-521 (its JWS are ES512)';
like $t->error_log, qr/acme: issuer "p521": using account /, 'the CA accepted the account';

done_testing;
