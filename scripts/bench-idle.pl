#!/usr/bin/perl
# Benchmark (not a test): CPU time of the helper process ("cache manager",
# where the ACME engine runs) while it manages many certificates and has
# nothing to do. Issues N certificates from a local Pebble (90-day
# certificates, validation without sleep), waits for the engine to settle,
# then reads utime + stime of the helper from /proc over an idle period. The
# same again after a reload, whose new engine reads the store and asks ARI
# for every certificate.
#
#   ACME_MODULE=build/ngx_http_acme_module.so perl scripts/bench-idle.pl [N] [IDLE_SECONDS]
#
# Do not rebuild the module while this runs with ACME_MODULE pointing into
# build/: cp rewrites the mapped file in place and crashes the running nginx.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Time::HiRes qw(time sleep);
use AcmeTest;

my $n = shift // 1000;
my $idle = shift // 120;
$| = 1;

my $t = AcmeTest->new(timeout => 3600);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => '90 days', validityPeriod => 90 * 86400 },
                              shortlived => undef } });
my $servers = join '', map { <<"EOF" } 1 .. $n;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name c$_.bench.test;
        acme_certificate pebble;
    }
EOF
$t->write_nginx_conf(<<"EOF");
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    server_names_hash_bucket_size 128;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
$servers
}
EOF

my $state = $t->dir . '/acme';
my $started = time;
$t->start_nginx;
my $issued = sub { my @c = glob("$state/*.crt"); scalar @c };
$t->wait_for(sub { $issued->() >= $n }, timeout => 1800, interval => 1)
    or die "only " . $issued->() . " of $n certificates issued\n";
printf "%d certificates issued in %.1f s\n", $n, time - $started;
measure('after issuance');

my $mark = $t->log_mark;
my $t0 = time;
$t->reload_nginx;
# Settled: every certificate inspected and its ARI window fetched.
$t->wait_for(sub {
    my $log = $t->error_log($mark);
    my $valid = () = $log =~ /acme: certificate "[^"]+" is valid until/g;
    $valid >= $n
}, timeout => 600, interval => 0.5) or die "the new engine did not inspect every certificate\n";
my $helper = $t->helper_pid;
sleep 10;    # ARI checks of every certificate go through 16 threads
printf "after reload: helper CPU %.2f s for start-up (inspect %d certificates, ARI for each)\n",
    cpu($helper), $n;
measure('after reload');
my $errors = () = $t->error_log($mark) =~ /\[(?:error|crit|alert|emerg)\]/g;
print "errors logged after the reload: $errors\n";

sub measure {
    my ($what) = @_;
    sleep 5;
    my $pid = $t->helper_pid;
    my $c0 = cpu($pid);
    my $w0 = time;
    sleep $idle;
    printf "%s: helper pid %d used %.2f s CPU in %.0f s idle with %d certificates\n",
        $what, $pid, cpu($pid) - $c0, time - $w0, $n;
}

sub cpu {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or die "/proc/$pid/stat: $!";
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;    # utime + stime in ticks (USER_HZ = 100)
}
