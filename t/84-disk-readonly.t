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
use AcmeTest;
use FaultTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

# Backoff capped at 9 s.
my $f = FaultTest->start(name => 'ro.test', lifetime => 90, renew_before => 85, proxy => 1,
    tmpfs => '1m', log_level => 'info');
my $t = $f->t;
# Until every worker has the first certificate, another one still answers
# with the placeholder, which $f->check counts as bad.
$t->wait_installed('ro.test') or die('not installed by every worker');
my $state = $f->state;
my $base = $f->base;
my %stored = map { $_ => sha256_hex(AcmeTest::_slurp("$base.$_")) } qw(crt key json);

sub store_intact {
    my ($what) = @_;
    is sha256_hex(AcmeTest::_slurp("$base.$_")), $stored{$_}, "$what: $_ unchanged" for qw(crt key);
    is_deeply [glob("$state/*.tmp.*")], [], "$what: no temporary file";
}

# 1. Read-only before the renewal.
my $mark = $t->log_mark;
my $requests = () = $t->ca_proxy_requests;
$t->set_read_only($state, 1);
my $f1 = $f->wait_line(qr/acme: certificate "ro\.test": .*, next attempt at /, $mark);
ok $f1, 'the renewal fails' or die('no failure');
like $f1, qr/open\(\) "\Q$state\E\/\.lock" failed: Read-only file system/, 'naming the file and the cause';
my $delay = $f->next_attempt_in($f1);
ok $delay >= 8 && $delay <= 12, "next attempt after the capped backoff ($delay s)";
is scalar(() = $t->ca_proxy_requests), $requests, 'nothing was sent to the CA';
store_intact('read-only');

# 2. Writable for the next attempt, read-only again while the CA answers
#    its newOrder.
$mark = $t->log_mark;
$t->set_ca_fault('slow', rate => 100, paths => '^/order-plz');
$t->set_read_only($state, 0);
ok $t->wait_for(sub { $f->check; $t->pebble_orders == 2 }, timeout => 30, interval => 0.1),
    'the next attempt orders';
$t->set_read_only($state, 1);
my $f2 = $f->wait_failure($mark);
ok $f2, 'and fails';
like $f2, qr/failed: open\(\) "\Q$base\E\.order\.json" failed: Read-only file system/,
    'when it saves the order, naming the file';
like $t->error_log($mark), qr/\[error\].*acme: open\(\) "\Q$base\E\.json\.tmp\.\d+\.\d+" failed: Read-only file system/,
    'the record cannot be written either';
store_intact('read-only mid-order');
is sha256_hex(AcmeTest::_slurp("$base.json")), $stored{json}, 'the record is the old one';

# 3. Writable again.
$mark = $t->log_mark;
$t->set_ca_fault('pass');
$t->set_read_only($state, 0);
ok $f->wait_renewed, 'renewed once the directory is writable' or die('not renewed');
like $t->error_log($mark), qr/acme: certificate "ro\.test" issued by "pebble"/, 'issuance logged';
is $t->pebble_orders, 3, 'one order more: the one answered after the directory became read-only';
my $rec = $t->cert_record('ro.test', state => $state);
ok !$rec->{failures} && !$rec->{last_error}, '.json: no failure left';
is_deeply [glob("$state/*.tmp.*")], [], 'no temporary file left';
$f->finish;

done_testing;
