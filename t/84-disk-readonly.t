# The state directory becomes read-only while nginx runs (a read-only bind
# mount of the tmpfs over itself: remount,ro of the file system is refused
# while the engine holds its lock file open): first before a renewal (no
# lease can be taken, so no order goes to the CA), then while the CA
# answers a newOrder (slowly, behind the CA proxy), so the order cannot be
# saved. Nothing stored changes, the current certificate is served and
# verifies, the errors name the files, the retries follow the backoff, and
# once the directory is writable again the certificate is renewed.
use strict;
use warnings;
use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $lifetime = 90;    # backoff capped at 9 s
my $t = AcmeTest->new(timeout => 180);
my $state = $t->mount_tmpfs('acme', size => '1m');
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->start_ca_proxy;
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer pebble {
        uri https://127.0.0.1:%%PORT_CA_PROXY%%/dir;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        renew_before_expiry 85s;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name ro.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'ro.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'certificate issued' or BAIL_OUT('no certificate');
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400,
    $first->{not_after} + 2 * 86400);
my ($crt) = glob("$state/ro.test-*.crt");
(my $base = $crt) =~ s/\.crt$//;
my %stored = map { $_ => sha256_hex(AcmeTest::_slurp("$base.$_")) } qw(crt key json);
my @bad;

sub served_ok {
    my $r = $t->tls_get(name => 'ro.test', ca => $root);
    push @bad, $r->{verify_error} // $r->{error} // $r->{serial}
        unless $r->{verified} && $r->{serial} eq $first->{serial};
    return $r;
}

sub wait_line {
    my ($re, $mark) = @_;
    my $line;
    $t->wait_for(sub {
        served_ok();
        ($line) = grep { $_ =~ $re } split /\n/, $t->error_log($mark);
        $line
    }, timeout => 40, interval => 0.25);
    return $line;
}

sub store_intact {
    my ($what) = @_;
    is sha256_hex(AcmeTest::_slurp("$base.$_")), $stored{$_}, "$what: $_ unchanged" for qw(crt key);
    is_deeply [glob("$state/*.tmp.*")], [], "$what: no temporary file";
}

# 1. Read-only before the renewal.
my $mark = $t->log_mark;
my $requests = () = $t->ca_proxy_requests;
$t->set_read_only($state, 1);
my $f1 = wait_line(qr/acme: certificate "ro\.test": .*, next attempt at /, $mark);
ok $f1, 'the renewal fails' or BAIL_OUT('no failure');
like $f1, qr/open\(\) "\Q$state\E\/\.lock" failed: Read-only file system/, 'naming the file and the cause';
my $delay = AcmeTest::next_attempt_time($f1) - AcmeTest::log_time($f1);
ok $delay >= 8 && $delay <= 12, "next attempt after the capped backoff ($delay s)";
is scalar(() = $t->ca_proxy_requests), $requests, 'nothing was sent to the CA';
store_intact('read-only');

# 2. Writable for the next attempt, read-only again while the CA answers
#    its newOrder.
$mark = $t->log_mark;
$t->set_ca_fault('slow', rate => 100, paths => '^/order-plz');
$t->set_read_only($state, 0);
ok $t->wait_for(sub { served_ok(); $t->pebble_orders == 2 }, timeout => 30, interval => 0.1),
    'the next attempt orders';
$t->set_read_only($state, 1);
my $f2 = wait_line(qr/acme: certificate "ro\.test" from "pebble" failed: /, $mark);
ok $f2, 'and fails';
like $f2, qr/failed: open\(\) "\Q$base\E\.order\.json\.tmp\.\d+\.\d+" failed: Read-only file system/,
    'when it saves the order, naming the file';
like $t->error_log($mark), qr/\[error\].*acme: open\(\) "\Q$base\E\.json\.tmp\.\d+\.\d+" failed: Read-only file system/,
    'the record cannot be written either';
store_intact('read-only mid-order');
is sha256_hex(AcmeTest::_slurp("$base.json")), $stored{json}, 'the record is the old one';

# 3. Writable again.
$mark = $t->log_mark;
$t->set_ca_fault('pass');
$t->set_read_only($state, 0);
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'ro.test', ca => $root);
    return $r if $r->{verified} && $r->{serial} ne $first->{serial};
    served_ok();
    undef
}, timeout => 30, interval => 0.25);
ok $renewed, 'renewed once the directory is writable' or BAIL_OUT('not renewed');
like $t->error_log($mark), qr/acme: certificate "ro\.test" issued by "pebble"/, 'issuance logged';
is $t->pebble_orders, 3, 'one order more: the one answered after the directory became read-only';
my $rec = $t->cert_record('ro.test', state => $state);
ok !$rec->{failures} && !$rec->{last_error}, '.json: no failure left';
is_deeply [glob("$state/*.tmp.*")], [], 'no temporary file left';
is scalar(@bad), 0, 'the old certificate was served, and verified, until the renewal'
    or diag explain \@bad;
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'nothing worse than an error logged';

done_testing;
