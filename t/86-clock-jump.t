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

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');
plan skip_all => 'needs libfaketime (apt-get install faketime)' unless AcmeTest::faketime_available();

my $lifetime = 120;
my $jump = 100;    # past the renewal time (30 s before expiry), before expiry
my $t = AcmeTest->new(timeout => 150);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->write_nginx_conf(AcmeTest::faketime_conf() . <<'EOF2');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        renew_before_expiry 30s;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name clock.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx(env => $t->faketime_env(offset => 0));
my $root = $t->pebble_root;

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'clock.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'certificate issued under libfaketime' or BAIL_OUT('no certificate');
# Only the ratio rule decides (Pebble's ARI window would make it due).
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400,
    $first->{not_after} + 2 * 86400);
my $helper = $t->helper_pid;
my $cpu0 = cpu($helper);
is $t->pebble_orders, 1, 'one order';

my $mark = $t->log_mark;
my $jumped_at = time;
$t->set_fake_time($jump);
# The scheduler sleeps until its next check (the first look at ARI, a
# tenth of the lifetime after issuance); under libfaketime it wakes then.
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'clock.test', ca => $root);
    $r->{verified} && $r->{serial} ne $first->{serial} ? $r : undef
}, timeout => 30, interval => 0.2);
ok $renewed, 'renewed after the jump' or BAIL_OUT('not renewed');
$t->set_renewal_window($renewed->{cert_pem}, $renewed->{not_after} + 86400,
    $renewed->{not_after} + 2 * 86400);
my $log = $t->error_log($mark);
my ($issued) = $log =~ /^(.*acme: certificate "clock\.test" issued by "pebble".*, valid until .*)$/m;
ok $issued, 'issuance logged' and note $issued;
# Both times are nginx's (the jumped clock).
my ($y, $mo, $d, $h, $mi, $s) = ($issued // '') =~ /renewal at (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/;
my $in = defined $y ? Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) - AcmeTest::log_time($issued) : -1;
ok $in >= 85 && $in <= 95, "the next renewal in about 90 s, as for the first certificate ($in s)";

# Watch: the renewed certificate's renewal point is 90 s after its notBefore
# by the CA's clock, already past by nginx's; it must not be renewed at once.
my $watch = 25;
sleep 0.5 while time < $jumped_at + $watch;
is $t->pebble_orders, 2, "one renewal in the $watch s after the jump, not a burst";
my @issued = $t->error_log($mark) =~ /acme: certificate "clock\.test" issued by "pebble"/g;
is scalar(@issued), 1, 'one issuance logged';
like $t->error_log($mark), qr/\[warn\].*acme: certificate "clock\.test" issued by "pebble" is due for renewal at once by this host's clock \(its notBefore was \d+ s ago/,
    'the clock difference is reported';
my $cpu = cpu($helper) - $cpu0;
cmp_ok $cpu, '<', 1, sprintf('the helper used %.2f s of CPU meanwhile', $cpu);
is $t->helper_pid, $helper, 'same helper process';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'nothing worse than an error logged';

done_testing;

sub cpu {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;
}
