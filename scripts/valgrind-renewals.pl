#!/usr/bin/perl
# Leak check of the engine over many renewals: nginx with master_process off
# (the engine then runs in the one nginx process) under valgrind, against
# Pebble with 20-second certificates, is stopped after 10 and, in a second
# run, after 100 renewals. The bytes valgrind finds "definitely" and
# "indirectly" lost must not grow with the number of renewals: what is lost
# once (at start or exit, nginx's or ours) is the same in both runs.
#
#   make valgrind-renewals
#   ACME_MODULE=$PWD/build/ngx_http_acme_module.so perl -I t/lib scripts/valgrind-renewals.pl [10 100]
#
# Runs as root, on 127.0.0.1 only; takes about ten minutes.
# Exit status: 0 when the losses did not grow, 1 otherwise.
use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use POSIX qw(strftime);
use Test::More ();    # AcmeTest reports through Test::Builder
use Time::HiRes qw(time sleep);

# AcmeTest starts $NGINX_BINARY: a wrapper that runs nginx under valgrind,
# writing to the file the current run names in VALGRIND_LOG.
my $wrapper;
BEGIN {
    my $dir = tempdir('valgrind-renewals-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $wrapper = "$dir/nginx";
    my $nginx = $ENV{NGINX_BINARY} || '/usr/sbin/nginx';
    open my $fh, '>', $wrapper or die "$wrapper: $!";
    print $fh <<"EOF2";
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \\
    --errors-for-leak-kinds=definite,indirect --num-callers=40 \\
    --log-file="\$VALGRIND_LOG" $nginx "\$@"
EOF2
    close $fh;
    chmod 0755, $wrapper;
    $ENV{NGINX_BINARY} = $wrapper;
}
use AcmeTest;

$| = 1;
my @COUNTS   = @ARGV ? @ARGV : (10, 100);
my $LIFETIME = 20;    # seconds: Pebble's ARI window then says "renew now"
my @NAMES    = map { "renew$_.test" } 1 .. 4;

die "valgrind-renewals.pl must run as root\n" if $> != 0;
die "ACME_MODULE must name the built module\n" unless AcmeTest->module_path;
die "no pebble 2.10 (run make deps)\n" unless AcmeTest->pebble_at_least('2.10');

sub lost {
    my ($log, $kind) = @_;
    return $log =~ /\Q$kind\E lost: ([\d,]+) bytes in ([\d,]+) blocks/
        ? (map { tr/,//dr } $1, $2) : (0, 0);
}

sub run {
    my ($renewals) = @_;
    my $t = AcmeTest->new(timeout => 3600);
    my $vlog = $t->dir . '/valgrind.log';
    local $ENV{VALGRIND_LOG} = $vlog;
    $t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
        config => { profiles => { default => { description => 'short', validityPeriod => $LIFETIME },
                                  shortlived => undef } });
    my $servers = join '', map { <<"EOF2" } @NAMES;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate pebble;
    }
EOF2
    $t->write_nginx_conf(<<"EOF2", master_process => 0, worker_processes => 1);
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
$servers}
EOF2
    my $started = time;
    $t->start_nginx;
    my $want = @NAMES + $renewals;    # first certificates, then renewals
    my $issued = 0;
    my $ok = $t->wait_for(sub {
            $issued = () = $t->error_log =~ /acme: certificate "[^"]+" issued by/g;
            $issued >= $want;
        }, timeout => 30 + 15 * $renewals, interval => 1);
    my $took = time - $started;
    $t->stop_nginx(graceful => 1, timeout => 300);
    my $log = do { local (@ARGV, $/) = $vlog; <> } // '';
    my @definite = lost($log, 'definitely');
    my @indirect = lost($log, 'indirectly');
    my @possible = lost($log, 'possibly');
    my ($in_use) = $log =~ /in use at exit: ([\d,]+) bytes/;
    # Memory errors, and the definite and indirect leaks (not the "possibly
    # lost" ones: thread stacks and the like, reported on their own line).
    my ($errors) = $log =~ /ERROR SUMMARY: ([\d,]+) errors/;
    my $r = {
        renewals => $issued - @NAMES, seconds => int($took), definite => $definite[0],
        definite_blocks => $definite[1], indirect => $indirect[0], indirect_blocks => $indirect[1],
        possible => $possible[0], in_use => ($in_use // '?') =~ tr/,//dr,
        errors => ($errors // '?') =~ tr/,//dr, summary => $log =~ /HEAP SUMMARY/ ? 1 : 0,
    };
    printf "%d renewals (asked %d) in %d s: definitely lost %d bytes in %d blocks, "
        . "indirectly lost %d bytes in %d blocks, possibly lost %d bytes, in use at exit %s bytes, "
        . "%s valgrind errors\n",
        @{$r}{qw(renewals)}, $renewals,
        @{$r}{qw(seconds definite definite_blocks indirect indirect_blocks possible in_use errors)};
    if (!$ok || !$r->{summary}) {
        print STDERR "run of $renewals renewals failed (" . ($ok ? 'no valgrind summary' : 'too few renewals') . ")\n";
        local $ENV{ACME_TEST_KEEP} = 1;
        $t->cleanup(1);
        exit 1;
    }
    if ($ENV{ACME_TEST_KEEP}) {
        print "valgrind log: $vlog\n";
    }
    return $r;
}

print "valgrind-renewals: ", strftime('%Y-%m-%d', gmtime), ", $LIFETIME s certificates, ",
    scalar(@NAMES), " names\n";
my @results = map { run($_) } @COUNTS;
my ($few, $many) = @results[0, -1];
my $grew = ($many->{definite} + $many->{indirect}) - ($few->{definite} + $few->{indirect});
printf "lost bytes, %d renewals against %d: %+d\n", $many->{renewals}, $few->{renewals}, $grew;
my $errors = $many->{errors} =~ /^\d+$/ ? $many->{errors} : 1;
print "valgrind errors (invalid accesses, definite or indirect leaks) in the long run\n" if $errors;
exit($grew > 0 || $errors ? 1 : 0);
