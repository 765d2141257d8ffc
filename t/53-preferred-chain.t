# preferred_chain: with alternate roots (PEBBLE_ALTERNATE_ROOTS) the stored
# and served chain is the one whose topmost certificate the named root
# issued; a name no chain matches keeps the default chain, with a notice.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_ALTERNATE_ROOTS => 2 });

# Root N's PEM and common name, from Pebble's management API.
my (%root_file, %root_cn);
for my $n (0 .. 2) {
    my $r = $t->pebble_mgmt(GET => "/roots/$n");
    die "GET /roots/$n: $r->{status}" unless $r->{success};
    $root_file{$n} = $t->write_file("root-$n.pem", $r->{content});
    my $bio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    Net::SSLeay::BIO_write($bio, $r->{content});
    my $x509 = Net::SSLeay::PEM_read_bio_X509($bio);
    $root_cn{$n} = AcmeTest::cert_info($x509)->{subject_cn};
    Net::SSLeay::X509_free($x509);
    Net::SSLeay::BIO_free($bio);
}
isnt $root_cn{1}, $root_cn{0}, "alternate root: $root_cn{1}";

$t->write_nginx_conf(<<"EOF2");
http {
    acme_issuer alternate {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-alternate;
        accept_terms_of_service;
        preferred_chain "$root_cn{1}";
    }
    acme_issuer nomatch {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-nomatch;
        accept_terms_of_service;
        preferred_chain "No Such Root";
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name alternate.test;
        acme_certificate alternate;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name nomatch.test;
        acme_certificate nomatch;
    }
}
EOF2
$t->start_nginx;

# The top of a PEM chain: the issuer CN of its last certificate.
sub top_issuer {
    my ($pem) = @_;
    my @blocks = $pem =~ /(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)/sg;
    my $bio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    Net::SSLeay::BIO_write($bio, $blocks[-1]);
    my $x509 = Net::SSLeay::PEM_read_bio_X509($bio);
    my $cn = AcmeTest::cert_info($x509)->{issuer_cn};
    Net::SSLeay::X509_free($x509);
    Net::SSLeay::BIO_free($bio);
    return $cn;
}
sub stored_chain {
    my ($issuer, $name) = @_;
    my $dir = $t->dir . "/acme-$issuer";
    opendir my $dh, $dir or return '';
    my ($crt) = grep { /^\Q$name\E-.*\.crt$/ } readdir $dh;
    return $crt ? do { local (@ARGV, $/) = "$dir/$crt"; <> } : '';
}

my $r = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'alternate.test', ca => $root_file{1});
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $r, 'served chain verifies against the preferred alternate root';
is top_issuer($r->{chain_pem} // ''), $root_cn{1}, 'served chain ends under the preferred root';
is top_issuer(stored_chain('alternate', 'alternate.test')), $root_cn{1}, 'stored chain ends under the preferred root';
ok !$t->tls_get(name => 'alternate.test', ca => $root_file{0})->{verified}, 'and not under the default root';

$r = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'nomatch.test', ca => $root_file{0});
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $r, 'no matching chain: the default chain, which verifies against root 0';
is top_issuer(stored_chain('nomatch', 'nomatch.test')), $root_cn{0}, 'stored chain ends under the default root';
my $cn0 = $root_cn{0};
like $t->error_log, qr/\[notice\] .*acme: certificate "nomatch\.test": no chain issued by "No Such Root" \(offered: "\Q$cn0\E", "[^"]+", "[^"]+"\), using the default chain/,
    'notice names the chains offered';

done_testing;
