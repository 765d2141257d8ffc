# Crash safety of orders: kill -9 of the helper, and later of the whole of
# nginx, while an order waits for validation (the challenge is published
# and the CA told to validate, finalize not yet sent). The saved order
# (<base>.order.json) is resumed instead of making another, the certificate
# is issued, nothing stale is left, and renewals keep working.
#
# Pebble validates http-01 through a gate in this test: a small forwarding
# proxy that holds each validation connection until the test opens it, so
# the kill happens at a known step of the order.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 240, log_level => 'info');
my $dir = $t->dir;
my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('http'));

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { httpPort => $t->port('gate'),
                profiles => { default => { description => 'short', validityPeriod => 30 },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name crash.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
my $state = "$dir/acme";

# 1. kill -9 of the helper while the CA validates the first order.
ok $t->wait_for(sub { $gate->hit }, timeout => 30), 'the CA is validating';
my ($saved) = glob("$state/crash.test-*.order.json");
ok $saved, 'order in progress saved';
my $order = JSON::PP::decode_json(slurp($saved));
like $order->{url}, qr{^https://127\.0\.0\.1:\d+/my-order/}, 'with its URL';
ok !exists $order->{key}, 'no key yet: finalize not sent';
my $helper = $t->helper_pid;
my $mark = $t->log_mark;
kill 'KILL', $helper;
ok $t->wait_for(sub { my $p = $t->helper_pid; $p && $p != $helper }, timeout => 10),
    'helper respawned';
ok $t->wait_log(qr/acme: resuming order "\Q$order->{url}\E" for certificate "crash\.test" \(pending\)/, 20, $mark),
    'the new engine resumes the saved order';
$gate->open;
my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'crash.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'certificate issued from the resumed order';
is $t->pebble_orders, 1, 'no second order';
ok $t->wait_for(sub { !glob("$state/*.order.json") }, timeout => 5), 'saved order removed';

# 2. kill -9 of all of nginx during a renewal; then start it again.
$gate->close;
# Pebble's +-24 h ARI window makes a 30 s certificate due at once. Now and
# then Pebble reuses the valid authorization (even with PEBBLE_AUTHZREUSE=0)
# and that renewal validates nothing: the next one, moments later, does.
ok $t->wait_for(sub { $gate->hit }, timeout => 60), 'renewal validating';
($saved) = glob("$state/crash.test-*.order.json");
$order = JSON::PP::decode_json(slurp($saved));
# A renewal that validated nothing (see above) may already have replaced
# the first certificate: the one to be replaced is what is served now.
my $before = $t->tls_get(name => 'crash.test', ca => $root)->{serial};
my $master = $t->nginx_pids->{master};
kill 'KILL', -$master;    # the master's process group: master, workers, helper
$t->stop_nginx;
$mark = $t->log_mark;
$t->start_nginx;
# The new zone lost the published answer: it must be published again
# before the held validation goes through.
ok $t->wait_log(qr/acme: resuming order "\Q$order->{url}\E" for certificate "crash\.test" \(pending\)/, 20, $mark),
    'the restarted nginx resumes the renewal order';
# The token being validated is the last one Pebble tried; the order is
# republished once nginx serves it again.
my ($held) = ($t->pebble_log =~ m{.*acme-challenge/([A-Za-z0-9_-]+)}s);
ok $t->wait_for(sub {
    $t->http_get("/.well-known/acme-challenge/$held", host => 'crash.test')->{status} == 200
}, timeout => 20), 'the held validation\'s answer is published again';
$gate->open;
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'crash.test', ca => $root);
    $r->{verified} && $r->{serial} ne $before ? $r : undef
}, timeout => 30);
ok $renewed, 'renewed after the restart';
# Until every worker has it, another one still serves $before, which is
# not $renewed: no proof of a renewal in 3.
$t->wait_installed('crash.test', mark => $mark) or die('not installed by every worker');
ok $t->wait_log(qr/acme: certificate "crash\.test" issued by "pebble"/, 5, $mark), 'issuance logged';
unlike $t->error_log($mark), qr/acme: certificate "crash\.test" from "pebble" failed/, 'no failed attempt';
my $orders = $t->pebble_orders;

# 3. Renewals keep working.
my $later = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'crash.test', ca => $root);
    $r->{verified} && $r->{serial} ne $renewed->{serial} ? $r : undef
}, timeout => 40);
ok $later, 'and renewed again';
cmp_ok $t->pebble_orders, '>', $orders, 'with a new order';

done_testing;

sub slurp { local (@ARGV, $/) = @_; <> }
