# The CA goes away for a while: the current certificate keeps being served
# (even past its expiry), renewal attempts back off as announced in the log
# with an expiry warning, the helper burns no CPU in between, and the
# certificate is renewed once the CA is back (a new Pebble, which has
# forgotten the account: the engine registers again).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm timelocal);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $lifetime = 40;
my %pebble = (env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
my $t = AcmeTest->new(timeout => 240, log_level => 'info');
$t->start_pebble(%pebble);
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name outage.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'outage.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'certificate issued' or die('no certificate');
# Until every worker has it, another one still answers with the placeholder.
$t->wait_installed('outage.test') or die('not installed by every worker');
# Only the ratio rule, not Pebble's +-24 h ARI window, decides here.
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400,
    $first->{not_after} + 2 * 86400);
my $mark = $t->log_mark;
$t->stop_pebble;
my $stopped = time;

# Until a while after expiry: the old certificate is served throughout.
my $until = $first->{not_after} + 6;
my $helper = $t->helper_pid;
my ($cpu_from, $cpu_at);
my $served_ok = 1;
while (time < $until) {
    my $r = $t->tls_get(name => 'outage.test');
    $served_ok = 0 unless $r->{ok} && $r->{serial} eq $first->{serial};
    ($cpu_from, $cpu_at) = (cpu($helper), time) if !defined $cpu_from && time > $stopped + 25;
    sleep 0.5;
}
my $cpu = cpu($helper) - $cpu_from;
ok $served_ok, 'old certificate served all along, also after it expired';
is $t->helper_pid, $helper, 'same helper process';
cmp_ok $cpu, '<', 0.3, sprintf('helper used %.2f s of CPU in %.0f s of outage', $cpu, time - $cpu_at);

my @failures = grep { /acme: certificate "outage\.test" from "pebble" failed: .*, next attempt at / }
    split /\n/, $t->error_log($mark);
cmp_ok scalar @failures, '>=', 2, scalar(@failures) . ' failed attempts logged';
cmp_ok scalar @failures, '<=', 6, 'and not more: attempts are spaced out';
# Each attempt starts no earlier than the time the previous one announced
# (and takes about 4 s of in-place retries before it fails).
for my $i (1 .. $#failures) {
    my @n = $failures[$i - 1] =~ /next attempt at (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/;
    my $announced = timegm($n[5], $n[4], $n[3], $n[2], $n[1] - 1, $n[0]);
    my $logged = log_time($failures[$i]);
    cmp_ok $logged, '>=', $announced + 3, "attempt $i started at or after the announced time";
}
like $t->error_log($mark), qr/\[warn\].*acme: certificate "outage\.test" expired at .* and could not be renewed yet/,
    'expiry warning logged';

# The CA comes back (a new Pebble with a new root and no accounts).
$t->start_pebble(%pebble);
my $new_root = $t->pebble_root;
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'outage.test', ca => $new_root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $renewed, 'renewed after the CA came back';
like $t->error_log($mark), qr/registering the account again/, 'account registered again';

done_testing;

sub cpu {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;    # utime + stime, in clock ticks of 1/100 s
}

sub log_time {
    my ($line) = @_;
    my @d = $line =~ m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+)} or return 0;
    return timelocal($d[5], $d[4], $d[3], $d[2], $d[1] - 1, $d[0]);
}
