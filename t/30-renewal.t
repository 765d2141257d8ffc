# Renewal by itself: with 30-second certificates the served serial changes
# before expiry, with no reload, no new worker and no failed handshake in
# between, at the time the ratio rule (half the lifetime for short
# certificates, with jitter) gives. Pebble's ARI window is +-24 h around
# two thirds of the lifetime, which for seconds-long certificates means
# "now": the test moves it after expiry, which must not postpone renewal.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $lifetime = 30;
my $t = AcmeTest->new(timeout => 180, log_level => 'info');
# Pebble uses its "default" profile when an order names none.
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name renew.test;
        acme_certificate pebble;
        location / { return 200 "ok\n"; }
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
my $https = $t->port('https');

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'renew.test', port => $https, ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'first certificate served' or die('no certificate');
# Until every worker has it, another worker still answers with the
# placeholder: that is no failure of renewal, nor a new serial.
$t->wait_installed('renew.test') or die('not installed by every worker');
my $life = $first->{not_after} - $first->{not_before};
cmp_ok abs($life - $lifetime), '<=', 1, "certificate lives $lifetime s";
my @workers = sort $t->worker_pids;
# The engine first asks ARI a tenth of the lifetime after issuance.
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400, $first->{not_after} + 2 * 86400);

my ($json) = glob($t->dir . '/acme/renew.test-*.json');
my $meta = JSON::PP::decode_json(do { local (@ARGV, $/) = $json; <> });
my $mid = $first->{not_before} + $life / 2;
cmp_ok abs($meta->{renewal_at} - $mid), '<=', 2,
    'renewal planned at half the lifetime, within the jitter window';

# Keep connecting until the serial changes: every handshake must verify.
my ($failed, $handshakes, $renewed, $seen_at) = (0, 0, undef, undef);
my $deadline = time + $lifetime + 10;
while (time < $deadline) {
    my $r = $t->tls_get(name => 'renew.test', port => $https, ca => $root, request => '/');
    $handshakes++;
    if (!$r->{verified} || ($r->{status} // 0) != 200) {
        $failed++;
        diag "failed: " . ($r->{error} // $r->{verify_error} // "status $r->{status}");
    }
    if ($r->{serial} && $r->{serial} ne $first->{serial}) {
        ($renewed, $seen_at) = ($r, time);
        last;
    }
    select undef, undef, undef, 0.05;
}
ok $renewed, "serial changed by itself ($handshakes handshakes)" or die('not renewed');
is $failed, 0, 'no failed handshake or request while renewing';
cmp_ok $seen_at, '<', $first->{not_after}, 'new certificate served before the old one expired';
cmp_ok $seen_at, '>=', $meta->{renewal_at}, 'not before the planned renewal time';
cmp_ok $renewed->{not_after}, '>', $first->{not_after}, 'new certificate lasts longer';
is_deeply [sort $t->worker_pids], \@workers, 'same worker processes (no reload)';
is $t->pebble_orders, 2, 'one renewal order';
like $t->error_log, qr/acme: certificate "renew\.test" issued by "pebble", valid until .*renewal at /,
    'renewal logged';
unlike $t->error_log, qr/\[(?:alert|crit|emerg|error)\]/, 'no errors logged';

done_testing;
