#!/usr/bin/perl
# Benchmark (not a test) for ngx_http_acme_module at scale, on loopback.
#
#   make bench-scale
#   ACME_MODULE=$PWD/build/ngx_http_acme_module.so perl -I t/lib scripts/bench-scale.pl [N]
#
# N (default 10,000) server blocks, one name each (site1.scale.test ...),
# whose certificates are already in the store: build/bench-make-store
# writes them in the file store's format in a few seconds (one CA, a key
# and a leaf per name). The same N names are also served as static
# ssl_certificate files (the very same files) by nginx without the module,
# in the same run. Measured, BENCH_REPS (2) times each, alternating:
#
# 1. `nginx -t`.
# 2. Start: from just before start_nginx until a sample of BENCH_SAMPLE
#    (100) names, the first and the last included, serves its stored
#    certificate (the serial the store holds). Once, every name is checked
#    afterwards (not timed; BENCH_CHECK_ALL=0 skips it).
# 3. Reload: from HUP until every worker is a new one and the sample
#    serves its certificate.
# 4. Memory: RSS and PSS of the workers (from /proc), per certificate.
# Then, managed only:
# 5. Renewals: BENCH_RENEWALS (100) renew-now requests against a local
#    Pebble; the CPU each worker used from the first request until every
#    worker logged every install (before the benchmark's own handshakes:
#    the CA's http-01 requests are included), less the same worker's CPU
#    over an idle period as long, per renewal; then until every renewed
#    name serves Pebble's certificate. BENCH_RENEWALS=0 skips it.
# 6. Idle helper: its CPU over BENCH_IDLE (120) s after start-up settled
#    (BENCH_SETTLE, 30 s, also reported), and the requests the CA saw.
#    BENCH_IDLE=0 skips it; BENCH_COMPARE=0 skips 1 to 4.
#
# Progress goes to stderr, the Markdown report to stdout. Exit status 1 if
# any run failed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Cwd ();
use File::Copy qw(copy);
use File::Find ();
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX qw(strftime);
use Test::More ();    # AcmeTest reports through Test::Builder
use Time::HiRes qw(time sleep);

use AcmeTest;

$| = 1;
my $N        = shift // 10000;
my $REPS     = $ENV{BENCH_REPS}     // 2;
my $SAMPLE   = $ENV{BENCH_SAMPLE}   // 100;
my $RENEWALS = $ENV{BENCH_RENEWALS} // 100;
my $IDLE     = $ENV{BENCH_IDLE}     // 120;
my $SETTLE   = $ENV{BENCH_SETTLE}   // 30;
my $WAIT     = $ENV{BENCH_WAIT}     // 300;
my $CHECK_ALL = $ENV{BENCH_CHECK_ALL} // 1;    # every name once (minutes at 10,000)
my $COMPARE  = $ENV{BENCH_COMPARE}  // 1;    # 0: only renewals and the idle helper
my $MAKE_STORE = $ENV{BENCH_MAKE_STORE} // "$FindBin::Bin/../build/bench-make-store";

die "usage: $0 [N]   (N: number of server blocks)\n" unless $N =~ /^\d+$/ && $N >= 1;
die "bench-scale.pl must run as root (nginx workers run as nobody)\n" if $> != 0;
die "ACME_MODULE must name the built module (make bench-scale sets it)\n" unless AcmeTest->module_path;
die "no pebble found (run make deps)\n" unless defined AcmeTest->pebble_version;
die "no $MAKE_STORE (make bench-scale builds it)\n" unless -x $MAKE_STORE;

# A rebuild while nginx has the module mapped crashes it: run a copy.
my $MODULE_SRC = AcmeTest->module_path;
my $REPO = Cwd::abs_path("$FindBin::Bin/..");
{
    my $dir = tempdir('acme-bench-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $dir;
    copy($MODULE_SRC, "$dir/ngx_http_acme_module.so") or die "copy $MODULE_SRC: $!\n";
    $ENV{ACME_MODULE} = "$dir/ngx_http_acme_module.so";
}

sub progress { print STDERR "[bench-scale] ", @_, "\n" }
sub loadavg { open my $fh, '<', '/proc/loadavg' or return '?'; my ($l) = split ' ', <$fh>; $l }
my $LOAD_START = loadavg();
my $started_at = time;
my $FAILED = 0;

my $CLK_TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub cpu_seconds {
    my $ticks = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my @f = split ' ', (<$fh> // '') =~ s/^.*\)\s+//sr;
        $ticks += $f[11] + $f[12];
    }
    return $ticks / $CLK_TCK;
}

# kB of RSS and PSS of one process.
sub memory {
    my ($pid) = @_;
    my %m = (rss => 0, pss => 0);
    open my $fh, '<', "/proc/$pid/smaps_rollup" or return \%m;
    while (<$fh>) {
        $m{rss} = $1 if /^Rss:\s+(\d+)/;
        $m{pss} = $1 if /^Pss:\s+(\d+)/;
    }
    return \%m;
}

sub median {
    my @s = sort { $a <=> $b } grep { defined } @_;
    return undef unless @s;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

# ---------------------------------------------------------------- the store

my $t = AcmeTest->new(timeout => 3 * $WAIT + $IDLE + 600);    # managed, with Pebble
my $st = AcmeTest->new(timeout => 3 * $WAIT + 600);           # static, no module
my $store = $t->worker_dir('acme');
progress("making $N certificates in $store ...");
my $t0 = time;
my %serial;    # name => serial (upper-case hex) the store holds
my %base;
{
    open my $gen, '-|', $MAKE_STORE, $store, $N or die "$MAKE_STORE: $!\n";
    while (<$gen>) {
        my ($name, $basename, $serial) = split ' ' or next;
        $serial{$name} = $serial;
        $base{$name} = $basename;
    }
    close $gen or die "$MAKE_STORE failed\n";
}
my $uid = getpwnam('nobody') // die "no user nobody\n";
File::Find::find(sub { chown $uid, -1, $_ }, $store);
my $store_ca = "$store/ca.pem";
progress(sprintf('  made in %.1f s', time - $t0));
my @NAMES = map { "site$_.scale.test" } 1 .. $N;

my @sample = do {
    my %pick = (0 => 1, $N - 1 => 1);
    my $step = $SAMPLE > 2 ? ($N - 1) / ($SAMPLE - 1) : $N;
    $pick{ int($_ * $step) } = 1 for 0 .. $SAMPLE - 1;
    map { $NAMES[$_] } sort { $a <=> $b } grep { $_ < $N } keys %pick;
};

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 });

sub config {
    my ($static) = @_;
    my $conf = "http {\n    server_names_hash_bucket_size 128;\n    server_names_hash_max_size 65536;\n";
    $conf .= <<'EOF' unless $static;
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%PORT_STATUS%%;
        location = /acme { acme_status renew; }
    }
EOF
    $conf .= <<'EOF';
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name _;
        return 301 https://$host$request_uri;
    }
EOF
    for my $name (@NAMES) {
        my $tls = $static
            ? "ssl_certificate $store/$base{$name}.crt;\n        ssl_certificate_key $store/$base{$name}.key;"
            : 'acme_certificate pebble;';
        $conf .= <<"EOF";
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $name;
        $tls
    }
EOF
    }
    return $conf . "}\n";
}

$t->write_nginx_conf(config(0));
$st->write_nginx_conf(config(1), module => 0);
my %kind = (managed => $t, static => $st);

# Waits until every name of @$names serves its stored certificate (or, with
# $issuer_re, one whose issuer matches); returns the seconds since $t0 or
# undef after the deadline.
sub wait_served {
    my ($x, $names, $t0, %opt) = @_;
    my $deadline = $t0 + ($opt{wait} // $WAIT);
    for my $name (@$names) {
        while (1) {
            my $r = $x->tls_get(name => $name, timeout => 5);
            last if $opt{issuer_re}
                ? ($r->{issuer_cn} // '') =~ $opt{issuer_re}
                : (($r->{serial} // '') =~ s/^0+//r) eq $serial{$name};
            return undef if time >= $deadline;
            sleep 0.01;
        }
    }
    return time - $t0;
}

# HUP, then until no old worker is among the workers.
sub reload {
    my ($x) = @_;
    my %old = map { $_ => 1 } $x->worker_pids;
    $x->signal_nginx('HUP');
    my $deadline = time + $WAIT;
    while (time < $deadline) {
        my @w = $x->worker_pids;
        return 1 if @w >= 2 && !grep { $old{$_} } @w;
        sleep 0.02;
    }
    return 0;
}

sub fail {
    my ($what) = @_;
    $FAILED = 1;
    progress("FAILED: $what");
    return undef;
}

my %r;    # kind => figure => [values]
for my $rep (1 .. ($COMPARE ? $REPS : 0)) {
    for my $kind (qw(managed static)) {
        my $x = $kind{$kind};
        progress("$kind run $rep/$REPS: nginx -t ...");
        my $t0 = time;
        my ($rc, $out) = $x->run_nginx_t;
        push @{ $r{$kind}{test} }, time - $t0;
        fail("$kind nginx -t: $out") if $rc != 0;

        progress("  start ...");
        $t0 = time;
        $x->start_nginx(timeout => $WAIT);
        my $up = wait_served($x, \@sample, $t0);
        push @{ $r{$kind}{start} }, $up // fail("$kind: sample not served after start");
        my $m = 0;
        my $p = 0;
        for my $w ($x->worker_pids) { my $mm = memory($w); $m += $mm->{rss}; $p += $mm->{pss} }
        my @w = $x->worker_pids;
        push @{ $r{$kind}{rss} }, $m / @w;
        push @{ $r{$kind}{pss} }, $p / @w;
        push @{ $r{$kind}{master_rss} }, memory($x->nginx_pids->{master})->{rss};

        if ($rep == 1 && $CHECK_ALL) {
            progress("  every name ...");
            my $t1 = time;
            defined wait_served($x, \@NAMES, $t1, wait => $WAIT)
                or fail("$kind: not every name serves its stored certificate");
            progress(sprintf('  all %d names checked in %.1f s', $N, time - $t1));
        }

        progress("  reload ...");
        $t0 = time;
        my $ok = reload($x);
        my $re = $ok ? wait_served($x, \@sample, $t0) : undef;
        push @{ $r{$kind}{reload} }, $re // fail("$kind: reload did not finish");
        progress(sprintf('  nginx -t %.2f s, start %.2f s, reload %s s, worker RSS %.0f MB',
            $r{$kind}{test}[-1], $r{$kind}{start}[-1] // -1, $r{$kind}{reload}[-1] // -1,
            $r{$kind}{rss}[-1] / 1024));

        $x->stop_nginx;
    }
}

# Renewals change the store: they come after the comparisons.
# BENCH_RENEWALS=0 and BENCH_IDLE=0 skip them (the comparison alone).
if ($RENEWALS > 0 || $IDLE > 0) {
    progress('managed: start for renewals and the idle helper ...');
    # The workers log each install at info.
    $t->write_nginx_conf(config(0), log_level => 'info');
    $t->start_nginx(timeout => $WAIT);
    if (defined wait_served($t, \@sample, time)) {
        renewals($t) if $RENEWALS > 0;
        idle($t) if $IDLE > 0;
    } else {
        fail('managed: sample not served for renewals');
    }
    $t->stop_nginx;
}

sub renewals {
    my ($x) = @_;
    my @names = @NAMES[0 .. ($RENEWALS < $N ? $RENEWALS : $N) - 1];
    my $http = HTTP::Tiny->new(timeout => 10);
    my $port = $x->port('status');
    my @workers = $x->worker_pids;
    # Idle baseline first, as long as the renewals take (measured after).
    my %c0 = map { $_ => cpu_seconds($_) } @workers;
    my $b0 = time;
    sleep 10;
    my %idle = map { $_ => (cpu_seconds($_) - $c0{$_}) / (time - $b0) } @workers;

    progress("renewals: $RENEWALS renew-now requests ...");
    my $mark = $x->log_mark;
    %c0 = map { $_ => cpu_seconds($_) } @workers;
    my $h0 = cpu_seconds($x->helper_pid);
    my $t0 = time;
    for my $name (@names) {
        my $res = $http->post("http://127.0.0.1:$port/acme?renew=$name");
        fail("renew $name: $res->{status} $res->{content}") unless $res->{success};
    }
    # Worker CPU once every worker has logged every install, before any
    # handshake of ours: what the workers did is the swaps and the CA's
    # http-01 requests, not the benchmark's polling.
    my $installs = 0;
    $x->wait_for(sub {
        $installs = () = $x->error_log($mark) =~ /acme: installed certificate/g;
        $installs >= @names * @workers
    }, timeout => $WAIT, interval => 0.2);
    my $elapsed = time - $t0;
    for my $w (@workers) {
        my $used = cpu_seconds($w) - $c0{$w} - $idle{$w} * $elapsed;
        push @{ $r{renewals}{worker_ms} }, $used / @names * 1000;
    }
    $r{renewals}{helper_cpu} = cpu_seconds($x->helper_pid) - $h0;
    $r{renewals}{installed} = $elapsed;
    fail("renewals: $installs of " . @names * @workers . ' installs logged')
        if $installs < @names * @workers;
    my $took = wait_served($x, \@names, $t0, issuer_re => qr/Pebble/i);
    fail("renewals: not every renewed name serves Pebble's certificate") unless defined $took;
    $r{renewals}{seconds} = $took;
    # Only those names changed: the others still serve the stored one.
    my @others = grep { defined } @sample[1 .. $#sample];
    @others = grep { my $n = $_; !grep { $_ eq $n } @names } @others;
    defined wait_served($x, \@others, time, wait => 5)
        or fail('renewals: a name that was not renewed changed its certificate');
    # Each worker logs what each swap cost it (thread CPU time).
    my @swap_ms = sort { $a <=> $b } $x->error_log($mark) =~ /acme: installed certificate "[^"]+" \(([\d.]+) ms of CPU\)/g;
    $r{renewals}{installs} = scalar @swap_ms;
    $r{renewals}{swap_ms} = @swap_ms
        ? [ $swap_ms[ $#swap_ms / 2 ], $swap_ms[ int($#swap_ms * 0.95) ], $swap_ms[-1] ] : [];
    progress(sprintf('  %d renewals installed after %.1f s, served %.1f s; worker CPU per renewal %s ms; helper %.2f s',
        scalar @names, $elapsed, $took // -1,
        join('/', map { sprintf '%.2f', $_ } @{ $r{renewals}{worker_ms} }), $r{renewals}{helper_cpu}));
}

sub idle {
    my ($x) = @_;
    # A new helper after a reload: it reads the store and plans ARI.
    my $mark = $x->log_mark;
    my $before = $x->pebble_log_count(qr/renewal-?info/i);
    reload($x) or return fail('idle: reload');
    sleep 1;
    my $helper = $x->helper_pid // return fail('idle: no helper');
    my $c0 = cpu_seconds($helper);
    progress("idle helper: settling $SETTLE s, then $IDLE s ...");
    sleep $SETTLE;
    my $c1 = cpu_seconds($helper);
    my $ari_settle = $x->pebble_log_count(qr/renewal-?info/i) - $before;
    sleep $IDLE;
    my $c2 = cpu_seconds($helper);
    $r{idle} = {
        settle => $c1 - $c0, idle => $c2 - $c1,
        ari_settle => $ari_settle,
        ari_total => $x->pebble_log_count(qr/renewal-?info/i) - $before,
        orders => scalar(() = $x->error_log($mark) =~ /order took/g),
    };
    progress(sprintf('  helper CPU: %.2f s in the first %d s, %.2f s in the next %d s; '
        . 'ARI requests %d then %d in all', $r{idle}{settle}, $SETTLE, $r{idle}{idle}, $IDLE,
        $ari_settle, $r{idle}{ari_total}));
}

# ------------------------------------------------------------------ report

sub slurp_cmd { my $o = `$_[0] 2>&1` // ''; $o =~ s/\s+$//; $o }
my $cpu = '?';
if (open my $fh, '<', '/proc/cpuinfo') {
    while (<$fh>) { if (/^model name\s*:\s*(.+?)\s*$/) { $cpu = $1; last } }
}
my $nginx_v = slurp_cmd('/usr/sbin/nginx -v') =~ s/^nginx version:\s*//r;
sub f2 { defined $_[0] ? sprintf('%.2f s', $_[0]) : 'failed' }
sub ratio { defined $_[0] && defined $_[1] && $_[1] > 0 ? sprintf('%.2f', $_[0] / $_[1]) : '-' }

my $out = sprintf "### bench-scale, %d certificates, %s\n\n", $N,
    strftime('%Y-%m-%d %H:%M UTC', gmtime $started_at);
$out .= sprintf "%s CPUs (%s), Linux %s, nginx %s, %d runs, load average %s at start and %s at end, %.0f s in all.\n\n",
    slurp_cmd('nproc'), $cpu, slurp_cmd('uname -r'), $nginx_v, $REPS, $LOAD_START, loadavg(),
    time - $started_at;
if ($COMPARE) {
    $out .= "| | Managed (median) | Static (median) | Managed/static |\n|---|---:|---:|---:|\n";
    for my $f ([test => '`nginx -t`'], [start => 'Start until served'], [reload => 'Reload until served']) {
        my ($m, $s) = (median(@{ $r{managed}{ $f->[0] } }), median(@{ $r{static}{ $f->[0] } }));
        $out .= sprintf "| %s | %s | %s | %s |\n", $f->[1], f2($m), f2($s), ratio($m, $s);
    }
    for my $f ([rss => 'Worker RSS per certificate'], [pss => 'Worker PSS per certificate'],
        [master_rss => 'Master RSS per certificate']) {
        my ($m, $s) = (median(@{ $r{managed}{ $f->[0] } }), median(@{ $r{static}{ $f->[0] } }));
        $out .= sprintf "| %s | %.1f kB | %.1f kB | %s |\n", $f->[1], $m / $N, $s / $N, ratio($m, $s);
    }
}
if ($r{renewals}) {
    $out .= sprintf "\n%d renewals (renew-now against Pebble): installed in every worker after %s, served after %s; "
        . "worker CPU per renewal until installed %s ms (less idle; the CA's http-01 requests included); helper %.2f s.\n",
        $RENEWALS, f2($r{renewals}{installed}), f2($r{renewals}{seconds}),
        join(' and ', map { sprintf '%.2f', $_ } @{ $r{renewals}{worker_ms} || [] }),
        $r{renewals}{helper_cpu};
    $out .= sprintf "Each swap, as the workers log it (%d installs): median %.2f ms of CPU, 95th percentile %.2f ms, max %.2f ms.\n",
        $r{renewals}{installs}, @{ $r{renewals}{swap_ms} } if @{ $r{renewals}{swap_ms} || [] };
}
if ($r{idle}) {
    $out .= sprintf "Helper after a reload: %.2f s CPU in the first %d s (store read), %.2f s in the next %d s; "
        . "%d ARI requests in the first %d s, %d in all; %d orders.\n",
        $r{idle}{settle}, $SETTLE, $r{idle}{idle}, $IDLE, $r{idle}{ari_settle}, $SETTLE,
        $r{idle}{ari_total}, $r{idle}{orders};
}
print $out;
$t->cleanup;
$st->cleanup;
exit $FAILED;
