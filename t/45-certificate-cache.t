# nginx-acme's configuration with nginx's certificate caches (nginx 1.27.2
# caches certificates loaded at configuration time, 1.27.4 added
# ssl_certificate_cache for variable ones): a server with
# `ssl_certificate $acme_certificate; ssl_certificate_cache max=2;` gets and
# serves its certificate, and each renewed certificate is served after the
# swap, after a reload, and after the next swap.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10', nginx => '1.27.4');

my $lifetime = 20;
my $t = AcmeTest->new(timeout => 150);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name cache.test;
        acme_certificate pebble;
        ssl_certificate $acme_certificate;
        ssl_certificate_key $acme_certificate_key;
        ssl_certificate_cache max=2;
        location / { return 200 "cache\n"; }
    }
}
EOF
my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts the configuration' or diag $out;
$t->start_nginx;
my $root = $t->pebble_root;

sub served {
    my $r = $t->tls_get(name => 'cache.test', ca => $root, request => '/');
    return $r->{verified} && ($r->{status} // 0) == 200 ? $r : undef;
}

# The first certificate, then each renewal; a certificate of seconds is
# always due by Pebble's ARI window, so renewals come one after another.
my $first = $t->wait_for(\&served, timeout => 30);
ok $first, 'certificate issued and served' or die('no certificate');

sub next_serial {
    my ($after, $what) = @_;
    my %old = map { $_ => 1 } @$after;
    my $r = $t->wait_for(sub { my $r = served(); $r && !$old{ $r->{serial} } ? $r : undef },
        timeout => $lifetime + 10);
    ok $r, "$what: a renewed certificate is served" or die('not renewed');
    return $r;
}

my $second = next_serial([$first->{serial}], 'after the swap');
cmp_ok $second->{not_after}, '>', $first->{not_after}, 'the renewed certificate lasts longer';

# The serial of the certificate in the store.
sub stored_serial {
    my ($crt) = glob($t->dir . '/acme/cache.test-*.crt');
    my $bio = Net::SSLeay::BIO_new_file($crt, 'r') or return '';
    my $x509 = Net::SSLeay::PEM_read_bio_X509($bio);
    Net::SSLeay::BIO_free($bio);
    return '' unless $x509;
    my $serial = AcmeTest::cert_info($x509)->{serial};
    Net::SSLeay::X509_free($x509);
    return $serial;
}

# What the store held around the reload: a renewal stored just then may
# not be swapped in yet (each worker looks every 100 ms), so the one
# before it is right too.
my $prior = stored_serial();
$t->reload_nginx;
my $before = stored_serial();
my $after_reload = served();
my $stored = stored_serial();
ok $after_reload, 'served after the reload';
ok $after_reload && $after_reload->{serial} ne $first->{serial},
    'after the reload: not the first certificate again';
ok $after_reload && grep({ $after_reload->{serial} eq $_ } $prior, $before, $stored),
    'after the reload: the certificate in the store';
my @issued = map { $_->{serial} } grep { $_ } $first, $second, $after_reload;
my $third = next_serial(\@issued, 'after the reload and the next swap');
cmp_ok $third->{not_after}, '>', $second->{not_after}, 'it lasts longer again';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts logged';

done_testing;
