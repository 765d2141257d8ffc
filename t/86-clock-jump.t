# The wall clock jumps forward past the renewal time (nginx runs under
# libfaketime; Pebble keeps real time, so after the jump nginx's clock is
# ahead of the CA's). The certificate is renewed once; the renewed
# certificate, which by its dates is already due by nginx's clock, is not
# renewed again and again (a renewal every 5 s, for ever) but after the
# lifetime share it was issued for; the helper does not spin meanwhile.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use Time::Local ();
use AcmeTest;
use FaultTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');
plan skip_all => 'needs libfaketime (apt-get install faketime)' unless AcmeTest::faketime_available();

my $jump = 100;    # past the renewal time (90 s into 120), before expiry
my $f = FaultTest->start(name => 'clock.test', lifetime => 120, renew_before => 30,
    timeout => 150, faketime => 1, log_level => 'info');
my $t = $f->t;
# Until every worker has the first certificate, another one still answers
# with the placeholder, which $f->check counts as bad.
$t->wait_installed('clock.test') or die('not installed by every worker');
my $first = $f->first;
my $helper = $t->helper_pid;
my $cpu0 = cpu($helper);
is $t->pebble_orders, 1, 'one order';

my $mark = $t->log_mark;
my $jumped_at = time;
$t->set_fake_time($jump);
# The scheduler sleeps until its next check (the first look at ARI, a
# tenth of the lifetime after issuance); under libfaketime it wakes then.
my $renewed = $f->wait_renewed(interval => 0.2);
ok $renewed, 'renewed after the jump' or die('not renewed');
$f->far_ari($renewed);
my ($issued) = $t->error_log($mark) =~ /^(.*acme: certificate "clock\.test" issued by "pebble".*, valid until .*)$/m;
ok $issued, 'issuance logged' and note $issued;
# Both times are nginx's (the jumped clock).
my ($y, $mo, $d, $h, $mi, $s) = ($issued // '') =~ /renewal at (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/;
my $in = defined $y ? Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) - AcmeTest::log_time($issued) : -1;
ok $in >= 85 && $in <= 95, "the next renewal in about 90 s, as for the first certificate ($in s)";

# Watch: the renewed certificate's renewal point is 90 s after its notBefore
# by the CA's clock, already past by nginx's; it must not be renewed at once.
my $watch = 25;
while (time < $jumped_at + $watch) {
    $f->check;
    sleep 0.5;
}
is $t->pebble_orders, 2, "one renewal in the $watch s after the jump, not a burst";
my @issued = $t->error_log($mark) =~ /acme: certificate "clock\.test" issued by "pebble"/g;
is scalar(@issued), 1, 'one issuance logged';
like $t->error_log($mark), qr/\[warn\].*acme: certificate "clock\.test" issued by "pebble" is due for renewal at once by this host's clock \(its notBefore was \d+ s ago/,
    'the clock difference is reported';
my $cpu = cpu($helper) - $cpu0;
cmp_ok $cpu, '<', 1, sprintf('the helper used %.2f s of CPU meanwhile', $cpu);
is $t->helper_pid, $helper, 'same helper process';
$f->finish;

done_testing;

sub cpu {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;
}
