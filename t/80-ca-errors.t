# The CA fails during a renewal: a proxy nginx in front of Pebble (the
# stock binary, without the module) answers 500 with a problem document,
# then 503 with a Retry-After longer than the backoff, then fails only the
# certificate download of an order that was otherwise issued. Throughout,
# the current certificate is served and verifies; each failure is logged
# with the CA's problem and the time of the next attempt, which the .json
# record holds too; no attempt starts before that time, nor any request
# before the CA's Retry-After; and when the CA recovers the saved order is
# resumed: the certificate is renewed without another order.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use FaultTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $retry_after = 12;  # longer than the backoff, and than the 10 s retried in place
# The backoff is capped at a tenth of the lifetime: 9 s. Renewal 5 s after
# issuance, before the first ARI check (a tenth of the lifetime), which
# would otherwise meet the faults first.
my $f = FaultTest->start(name => 'faults.test', lifetime => 90, renew_before => 85, proxy => 1,
    log_level => 'info');
my $t = $f->t;
# Until every worker has the first certificate, another one still answers
# with the placeholder, which $f->check counts as bad.
$t->wait_installed('faults.test') or die('not installed by every worker');
my $first = $f->first;

# 1. 500 with a problem document to every signed request: retried in place
#    after 1 and 3 s, then the backoff (1 min, capped at 9 s, plus up to 20 %).
my $mark = $t->log_mark;
$t->set_ca_fault(500, method => 'POST', detail => 'the CA is on fire');
my $f1 = $f->wait_failure($mark);
ok $f1, 'a failed attempt is logged' or die('no failure');
like $f1, qr/failed: urn:ietf:params:acme:error:serverInternal: .*the CA is on fire, next attempt at /,
    'with the CA\'s problem type and detail';
my $next1 = AcmeTest::next_attempt_time($f1);
my $delay1 = $f->next_attempt_in($f1);
ok $delay1 >= 8 && $delay1 <= 12, "next attempt after the backoff capped at a tenth of the lifetime ($delay1 s)";
# The renewal's newOrder names the certificate it replaces; a CA error
# other than rateLimited, a Retry-After or 503 sends it again without
# (Pebble refuses some serials so): three tries each.
my @r500 = grep { $_->{status} == 500 } $t->ca_proxy_requests;
is scalar @r500, 6, 'newOrder retried in place twice, then the same without "replaces"';
cmp_ok $r500[1]{time} - $r500[0]{time}, '>=', 0.95, 'after 1 s';
cmp_ok $r500[2]{time} - $r500[1]{time}, '>=', 2.95, 'then after 3 s';
my $rec = $t->cert_record('faults.test');
is $rec->{last_error}{type}, 'urn:ietf:params:acme:error:serverInternal', '.json: last error';
is $rec->{failures}, 1, '.json: one failure';
is $rec->{next_attempt}, $next1, '.json: the next attempt the log announced';
is $f->check->{serial}, $first->{serial}, 'the current certificate is still served';

# 2. 503 with a Retry-After longer than the backoff to every request, the
#    newNonce HEAD included: no in-place retry, and not a single request
#    before that time.
$mark = $t->log_mark;
$t->set_ca_fault(503, retry_after => $retry_after, detail => 'come back later');
my $f2 = $f->wait_failure($mark);
ok $f2, 'the 503 fails the next attempt';
my @r503 = grep { $_->{status} == 503 } $t->ca_proxy_requests;
is scalar @r503, 1, "no in-place retry for a Retry-After of $retry_after s, and no second newOrder";
cmp_ok $r503[0]{time}, '>=', $next1 - 0.01, 'the attempt did not start before the announced time';
my $next2 = AcmeTest::next_attempt_time($f2);
ok abs($next2 - ($r503[0]{time} + $retry_after)) <= 1.5,
    "next attempt at the Retry-After time ($retry_after s after the 503), not after the backoff"
    or diag $f2;
$rec = $t->cert_record('faults.test');
ok abs(($rec->{retry_after_until} // 0) - ($r503[0]{time} + $retry_after)) <= 1.5,
    '.json: the Retry-After time is kept';
is $rec->{next_attempt}, $next2, '.json: next attempt';
is $rec->{failures}, 2, '.json: two failures';

# 3. The order goes through but the download of its certificate fails:
#    the order (with its key) is kept for the next attempt.
$mark = $t->log_mark;
$t->set_ca_fault(500, paths => '^/certZ/', detail => 'the certificate is not ready');
my $f3 = $f->wait_failure($mark);
ok $f3, 'the failed download fails the attempt';
like $f3, qr/the certificate is not ready/, 'with the CA\'s detail';
my @during = grep { $_->{time} > $r503[0]{time} + 0.001 && $_->{time} < $next2 - 0.01 }
    $t->ca_proxy_requests;
is scalar @during, 0, 'no request reached the CA before the Retry-After time';
my ($saved) = glob($f->state . '/faults.test-*.order.json');
ok $saved, 'the order is saved for the next attempt';
my $order = $saved ? JSON::PP::decode_json(AcmeTest::_slurp($saved)) : {};
ok $order->{key}, 'with the new key';
my $orders = $t->pebble_orders;
is $orders, 2, 'one renewal order so far';
is $f->check->{serial}, $first->{serial}, 'the current certificate is still served';

# 4. The CA recovers: the saved order is resumed, no other order is made.
$mark = $t->log_mark;
$t->set_ca_fault('pass');
my $renewed = $f->wait_renewed;
ok $renewed, 'renewed once the CA recovered' or die('not renewed');
cmp_ok $renewed->{not_after}, '>', $first->{not_after}, 'a new certificate';
like $t->error_log($mark), qr/acme: resuming order "[^"]+" for certificate "faults\.test" \(valid\)/,
    'from the saved order';
cmp_ok $t->pebble_orders - $orders, '<=', 1, 'at most one extra order';
is $t->pebble_orders, 2, '(none in fact)';
ok !glob($f->state . '/*.order.json'), 'the saved order is removed';
$rec = $t->cert_record('faults.test');
ok !$rec->{failures} && !$rec->{last_error} && !$rec->{next_attempt}, '.json: no failure left';
$f->finish;

done_testing;
