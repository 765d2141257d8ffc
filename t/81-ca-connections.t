# The CA's connections fail during a renewal, behind a proxy nginx in front
# of Pebble: closed without an answer (return 444), cut in the middle of
# an answer, closed on the finalize request of an order that was otherwise
# ready, then answering slowly. The current certificate is served and
# verifies throughout; each failure is logged with the transport error and
# the time of the next attempt (the backoff, capped at a tenth of the
# lifetime); the ready order is resumed rather than ordered again; and the
# slow CA still issues.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use FaultTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

# Backoff capped at 7 s (plus up to 20 %); renewal 5 s after issuance.
my $f = FaultTest->start(name => 'conn.test', lifetime => 75, renew_before => 70, proxy => 1,
    log_level => 'info');
my $t = $f->t;
# Until every worker has the first certificate, another one still answers
# with the placeholder, which $f->check counts as bad.
$t->wait_installed('conn.test') or die('not installed by every worker');
my $first = $f->first;

sub backoff_ok {
    my ($line, $what) = @_;
    my $delay = $f->next_attempt_in($line);
    ok $delay >= 6 && $delay <= 10, "$what: next attempt after the capped backoff ($delay s)";
}

# 1. Connections closed without an answer.
my $mark = $t->log_mark;
$t->set_ca_fault('close');
my $f1 = $f->wait_failure($mark);
ok $f1, 'closed connections fail the attempt' or die('no failure');
# libcurl words it by its TLS library: OpenSSL 3.0 (bookworm) gives curl's
# own "Empty reply", 3.5 (trixie, sid) an unexpected EOF.
like $f1, qr/failed: .*(?:Empty reply from server|unexpected eof while reading)/,
    'the transport error is logged';
backoff_ok($f1, 'closed');
# In place after 1 and 3 s; a retried POST needs a new nonce, whose HEAD
# is retried in place too; libcurl sends a request once more itself when a
# reused connection closes without an answer.
my @closed = grep { $_->{status} == 444 } $t->ca_proxy_requests;
ok @closed >= 3 && @closed <= 8, scalar(@closed) . ' tries in place' or diag explain \@closed;
my $spent = $closed[-1]{time} - $closed[0]{time};
ok $spent >= 3.9 && $spent <= 6, sprintf('over %.1f s', $spent);
my $next = AcmeTest::next_attempt_time($f1);

# 2. Answers cut in the middle of their body.
$mark = $t->log_mark;
$t->set_ca_fault('cut');
my $f2 = $f->wait_failure($mark);
ok $f2, 'cut answers fail the attempt';
like $f2, qr/failed: .*(?:transfer closed|Transferred a partial file|outstanding read data|bytes missing)/i,
    'the truncated transfer is logged';
backoff_ok($f2, 'cut');
my ($first_cut) = grep { $_->{time} > $closed[-1]{time} } $t->ca_proxy_requests;
cmp_ok $first_cut->{time}, '>=', $next - 0.01, 'the attempt did not start before the announced time';
is $f->check->{serial}, $first->{serial}, 'the current certificate is still served';
is $t->cert_record('conn.test')->{failures}, 2, '.json: two failures';

# 3. The finalize request of a ready order is closed: Pebble never sees it,
#    the order stays ready and is resumed by the next attempt.
$mark = $t->log_mark;
$t->set_ca_fault('close', paths => '^/finalize-order/');
my $f3 = $f->wait_failure($mark);
ok $f3, 'a closed finalize fails the attempt';
backoff_ok($f3, 'finalize');
ok glob($f->state . '/conn.test-*.order.json'), 'the order is saved for the next attempt';
my $orders = $t->pebble_orders;
is $orders, 2, 'one renewal order so far';

# 4. The CA answers again, slowly (1 KB/s): the saved order is resumed and
#    completes.
$mark = $t->log_mark;
$t->set_ca_fault('slow', rate => 1000);
ok $f->wait_renewed(timeout => 40), 'renewed through the slow CA' or die('not renewed');
my $log = $t->error_log($mark);
like $log, qr/acme: resuming order "[^"]+" for certificate "conn\.test" \(ready\)/, 'from the saved order';
my ($took) = $log =~ /acme: certificate "conn\.test" issued by "pebble", .*\(order took ([\d.]+) s\)/;
cmp_ok $took // 0, '>', 1, 'the order took its time (' . ($took // '?') . ' s)';
unlike $log, qr/failed:/, 'and did not fail';
cmp_ok $t->pebble_orders - $orders, '<=', 1, 'at most one extra order';
is $t->pebble_orders, 2, '(none in fact)';
$f->finish;

done_testing;
