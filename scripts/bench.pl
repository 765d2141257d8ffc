#!/usr/bin/perl
# Benchmark (not a test) for ngx_http_acme_module, on loopback with Pebble.
#
#   make bench
#   ACME_MODULE=$PWD/build/ngx_http_acme_module.so perl -I t/lib scripts/bench.pl [N ...]
#
# 1. Time to certificates: for each N (default 1 20 100), a fresh Pebble
#    (PEBBLE_WFE_NONCEREJECT=0, PEBBLE_AUTHZREUSE=0) and nginx with N
#    `listen ... ssl` server blocks on one port, each with its own name
#    (site1.bench.test ... siteN.bench.test) and `acme_certificate pebble;`,
#    plus a plain-HTTP server for http-01. The store starts empty. Measured:
#    from just before start_nginx until every name serves a certificate that
#    verifies against Pebble's root (every name polled, each until verified).
#    Repeated BENCH_REPS (3) times; min and median are reported.
# 2. Floor: the same configuration with static ssl_certificate files (made by
#    the harness CA) and without the module; time from start until every name
#    answers a handshake with its certificate, polled the same way.
# 3. Handshakes: full TLS handshakes per second from one client process
#    (Net::SSLeay, no session reuse, verified with SSL_session_reused), over
#    BENCH_HS_SECONDS (5) s, against the N=1 managed configuration after
#    issuance and against the static configuration without the module,
#    alternating, BENCH_HS_ROUNDS (3) rounds; medians and their ratio.
#
# Progress goes to stderr; the Markdown report to stdout. Everything runs on
# 127.0.0.1 and every wait is bounded (BENCH_WAIT, 120 s per run). Exit
# status 1 if any run failed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Cwd ();
use Digest::SHA;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Net::SSLeay;
use POSIX qw(strftime);
use Socket qw(SOL_SOCKET SO_RCVTIMEO SO_SNDTIMEO);
use Test::More ();    # AcmeTest reports through Test::Builder
use Time::HiRes qw(time sleep);

use AcmeTest;

$| = 1;
my @NS = @ARGV ? @ARGV : (1, 20, 100);
my $REPS       = $ENV{BENCH_REPS}       // 3;
my $WAIT       = $ENV{BENCH_WAIT}       // 120;
my $HS_SECONDS = $ENV{BENCH_HS_SECONDS} // 5;
my $HS_ROUNDS  = $ENV{BENCH_HS_ROUNDS}  // 3;
my %PEBBLE_ENV = (PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0);

for my $n (@NS) {
    die "usage: $0 [N ...]   (N: number of server blocks, 1..1000)\n"
        unless $n =~ /^\d+$/ && $n >= 1 && $n <= 1000;
}
die "bench.pl must run as root (nginx workers run as nobody)\n" if $> != 0;
die "ACME_MODULE must name the built module (make bench sets it)\n" unless AcmeTest->module_path;
die "no pebble found (run make deps)\n" unless defined AcmeTest->pebble_version;

# nginx maps the module: a rebuild that rewrites the file in place while a
# run is under way crashes its workers (SIGBUS). Run from a private copy.
my $MODULE_SRC = AcmeTest->module_path;
my $REPO = Cwd::abs_path("$FindBin::Bin/..");
{
    my $dir = tempdir('acme-bench-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $dir;
    copy($MODULE_SRC, "$dir/ngx_http_acme_module.so") or die "copy $MODULE_SRC: $!\n";
    $ENV{ACME_MODULE} = "$dir/ngx_http_acme_module.so";
}
my $MODULE_SHA = Digest::SHA->new(256)->addfile($ENV{ACME_MODULE})->hexdigest;

sub loadavg { open my $fh, '<', '/proc/loadavg' or return '?'; my ($l) = split ' ', <$fh>; $l }
my $LOAD_START = loadavg();

Net::SSLeay::load_error_strings();
Net::SSLeay::SSLeay_add_ssl_algorithms();
Net::SSLeay::randomize();

my $FAILED = 0;

sub progress { print STDERR "[bench] ", @_, "\n" }

sub median {
    my @s = sort { $a <=> $b } @_;
    return undef unless @s;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

sub names { map { "site$_.bench.test" } 1 .. $_[0] }

# The configuration: N ssl server blocks plus the plain-HTTP server. With
# $static (a hash name => [crt, key]) the servers get static certificates.
sub config {
    my ($n, $static) = @_;
    my $conf = "http {\n";
    $conf .= <<'EOF' unless $static;
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        contact admin@bench.test;
        accept_terms_of_service;
    }
EOF
    $conf .= <<'EOF';
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name _;
        return 301 https://$host$request_uri;
    }
EOF
    for my $name (names($n)) {
        my $tls = $static
            ? "ssl_certificate $static->{$name}[0];\n        ssl_certificate_key $static->{$name}[1];"
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

# Waits until every name serves a certificate verifying against $ca, one
# name at a time in order: each is polled until it verifies, then the next
# (one that verified meanwhile takes one handshake). The client keeps one
# handshake in flight, so it takes little CPU from nginx and Pebble; passes
# over all pending names made the measurement slow down what it measured.
# Returns (seconds until the last name verified, seconds until the first
# name in order verified, how many names in order verified before the
# deadline); times from $t0.
sub wait_all_verified {
    my ($t, $n, $ca, $t0) = @_;
    my $deadline = $t0 + $WAIT;
    my ($first, $last, $done) = (undef, undef, 0);
    for my $name (names($n)) {
        while (1) {
            my $r = $t->tls_get(name => $name, ca => $ca, timeout => 2);
            last if $r->{verified};
            return (undef, $first, $done) if time >= $deadline;
            sleep 0.01;
        }
        $last = time - $t0;
        $first //= $last;
        $done++;
    }
    return ($last, $first, $done);
}

sub fail_run {
    my ($t, $what, $why) = @_;
    $FAILED = 1;
    $why =~ s/\s+$//;
    progress("FAILED: $what: $why");
    if ($t) {
        my @lines = split /\n/, $t->error_log;
        my $k = @lines > 30 ? 30 : scalar @lines;
        print STDERR "--- last $k lines of error.log ---\n", join("\n", @lines[-$k .. -1]), "\n";
        local $ENV{ACME_TEST_KEEP} = 1;
        $t->cleanup;
    }
}

# One managed run: fresh instance, fresh Pebble, empty store. Returns a
# hash of figures, or undef. With $keep, returns the live instance as well.
sub managed_run {
    my ($n, $keep) = @_;
    my $t;
    my %r;
    my $ok = eval {
        $t = AcmeTest->new(timeout => $WAIT + 120);
        $t->start_pebble(env => \%PEBBLE_ENV);
        my $root = $t->pebble_root;
        $t->write_nginx_conf(config($n));
        my $t0 = time;
        $t->start_nginx;
        $r{up} = time - $t0;
        my ($all, $first, $done) = wait_all_verified($t, $n, $root, $t0);
        die "only the first $done of $n names verified after ${WAIT}s\n" unless defined $all;
        @r{qw(all first)} = ($all, $first);
        my ($crash) = $t->error_log =~ /^(.*(?:exited on signal|\[alert\]).*)$/m;
        die "$crash\n" if $crash;
        # Where the CPU went (the run is CPU-bound on two cores).
        my $pids = $t->nginx_pids;
        $r{cpu_helper} = cpu_seconds($pids->{helper});
        $r{cpu_workers} = cpu_seconds(@{ $pids->{workers} });
        $r{cpu_pebble} = cpu_seconds($t->{procs}{pebble}{pid});
        $r{orders} = $t->pebble_orders;
        my @took = $t->error_log =~ /\(order took ([\d.]+) s\)/g;
        $r{issued} = @took;
        $r{order_median} = median(@took);
        1;
    };
    if (!$ok) {
        fail_run($t, "managed N=$n", $@ || 'unknown error');
        return;
    }
    if ($keep) {
        $r{t} = $t;
    } else {
        $t->cleanup;
    }
    return \%r;
}

# Static-certificate instance: certificates (leaf + harness CA, a chain of
# two like the managed one) for N names, nginx without the module.
sub static_instance {
    my ($n) = @_;
    my $t = AcmeTest->new(timeout => 300 + 3 * $n);
    my %files;
    for my $name (names($n)) {
        my ($crt, $key) = $t->make_cert(name => $name);
        my $pem = join '', map { local (@ARGV, $/) = ($_); scalar <> } $crt, $t->ca_file;
        $files{$name} = [ $t->write_file("$name.chain.pem", $pem), $key ];
    }
    $t->write_nginx_conf(config($n, \%files), module => 0);
    return $t;
}

sub static_run {
    my ($t, $n) = @_;
    my %r;
    my $ok = eval {
        my $t0 = time;
        $t->start_nginx;
        $r{up} = time - $t0;
        my ($all, $first, $done) = wait_all_verified($t, $n, $t->ca_file, $t0);
        die "only $done of $n names answered after ${WAIT}s\n" unless defined $all;
        $r{all} = $all;
        $t->stop_nginx;
        1;
    };
    if (!$ok) {
        fail_run($t, "static N=$n", $@ || 'unknown error');
        return;
    }
    return \%r;
}

# CPU seconds (user + system) the given processes used so far.
my $CLK_TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub cpu_seconds {
    my $ticks = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // '';
        $stat =~ s/^.*\)\s+//s;    # fields after "pid (comm)"
        my @f = split ' ', $stat;
        $ticks += $f[11] + $f[12];    # utime, stime
    }
    return $ticks / $CLK_TCK;
}

# Full handshakes to 127.0.0.1:$port with SNI $name for $secs seconds, with
# the CPU time @$pids used meanwhile. Returns (handshakes per second,
# handshakes, resumed, errors, protocol, CPU seconds).
sub handshake_rate {
    my ($port, $name, $secs, $pids) = @_;
    my $ctx = Net::SSLeay::CTX_new() or die "CTX_new failed";
    Net::SSLeay::CTX_set_verify($ctx, &Net::SSLeay::VERIFY_NONE, undef);
    Net::SSLeay::CTX_set_session_cache_mode($ctx, &Net::SSLeay::SESS_CACHE_OFF);
    my ($count, $resumed, $errors, $proto) = (0, 0, 0, '');
    my $one = sub {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
            Proto => 'tcp', Timeout => 2) or return 0;
        # the handshake blocks: bound every read and write
        setsockopt($sock, SOL_SOCKET, $_, pack('l!l!', 2, 0)) for SO_RCVTIMEO, SO_SNDTIMEO;
        my $ssl = Net::SSLeay::new($ctx);
        Net::SSLeay::set_fd($ssl, fileno $sock);
        Net::SSLeay::set_tlsext_host_name($ssl, $name);
        my $rc = Net::SSLeay::connect($ssl);
        my $ok = defined $rc && $rc == 1;
        if ($ok) {
            $resumed++ if Net::SSLeay::session_reused($ssl);
            $proto ||= Net::SSLeay::get_version($ssl);
        }
        Net::SSLeay::free($ssl);
        close $sock;
        return $ok;
    };
    my $warm = time + 0.5;
    $one->() while time < $warm;
    $resumed = 0;
    my $cpu0 = cpu_seconds(@$pids);
    my $start = time;
    my $end = $start + $secs;
    while (time < $end) {
        if ($one->()) { $count++ } else { $errors++ }
    }
    my $elapsed = time - $start;
    my $cpu = cpu_seconds(@$pids) - $cpu0;
    Net::SSLeay::CTX_free($ctx);
    return ($count / $elapsed, $count, $resumed, $errors, $proto, $cpu);
}

sub fmt_s { defined $_[0] ? sprintf('%.2f s', $_[0]) : 'failed' }

# ---------------------------------------------------------------------------

my $started_at = time;
my (%managed, %static);

for my $n (@NS) {
    for my $rep (1 .. $REPS) {
        progress("managed N=$n run $rep/$REPS ...");
        my $r = managed_run($n) or next;
        push @{ $managed{$n} }, $r;
        progress(sprintf('  all %d names verified after %.2f s (first %.2f s, nginx up %.2f s, '
            . '%d orders, median order %.2f s; CPU: helper %.2f s, workers %.2f s, Pebble %.2f s)',
            $n, $r->{all}, $r->{first}, $r->{up}, $r->{orders}, $r->{order_median} // 0,
            $r->{cpu_helper}, $r->{cpu_workers}, $r->{cpu_pebble}));
    }
    progress("static N=$n: making $n certificates ...");
    my $st = eval { static_instance($n) };
    if (!$st) {
        fail_run(undef, "static N=$n", $@ || 'unknown error');
        next;
    }
    for my $rep (1 .. $REPS) {
        progress("static N=$n run $rep/$REPS ...");
        my $r = static_run($st, $n) or last;
        push @{ $static{$n} }, $r;
        progress(sprintf('  all %d names answered after %.2f s (nginx up %.2f s)',
            $n, $r->{all}, $r->{up}));
    }
    $st->cleanup;
}

# handshake throughput: N=1 managed (after issuance) versus static, no module
my %hs;
{
    progress('handshakes: setting up N=1 managed and static instances ...');
    my $m = managed_run(1, 1);
    my $st = eval { static_instance(1) };
    fail_run(undef, 'static N=1 for handshakes', $@ || 'unknown error') unless $st;
    if ($m && $st) {
        my $ok = eval {
            $st->start_nginx;
            $st->wait_for(sub { $st->tls_get(name => 'site1.bench.test', ca => $st->ca_file)->{verified} },
                timeout => 10) or die "static nginx does not answer\n";
            my %target = (
                managed => [ $m->{t}, $m->{t}->port('https') ],
                static  => [ $st, $st->port('https') ],
            );
            for my $round (1 .. $HS_ROUNDS) {
                for my $kind (qw(managed static)) {
                    my @workers = $target{$kind}[0]->worker_pids;
                    my ($rate, $count, $resumed, $errors, $proto, $cpu) = handshake_rate(
                        $target{$kind}[1], 'site1.bench.test', $HS_SECONDS, \@workers);
                    my ($crash) = $target{$kind}[0]->error_log =~ /^(.*(?:exited on signal|\[alert\]).*)$/m;
                    die "$kind nginx: $crash\n" if $crash;
                    die "$kind: $resumed resumed handshakes\n" if $resumed;
                    push @{ $hs{$kind} }, $rate;
                    push @{ $hs{"${kind}_cpu"} }, $count ? $cpu / $count * 1e6 : 0;
                    $hs{"${kind}_errors"} += $errors;
                    $hs{"${kind}_proto"} = $proto;
                    progress(sprintf('  round %d %-7s %7.1f handshakes/s (%d in %ds, %d errors, %s), '
                        . 'workers %.0f us CPU per handshake', $round, $kind, $rate, $count, $HS_SECONDS,
                        $errors, $proto, $hs{"${kind}_cpu"}[-1]));
                }
            }
            # what the managed server presents, for the record
            my $info = $m->{t}->tls_get(name => 'site1.bench.test', ca => $m->{t}->pebble_root);
            $hs{managed_cert} = sprintf('%s %s, chain of %d', $info->{key_type} // '?',
                $info->{key_bits} // '?', $info->{chain_len} // 0);
            $info = $st->tls_get(name => 'site1.bench.test', ca => $st->ca_file);
            $hs{static_cert} = sprintf('%s %s, chain of %d', $info->{key_type} // '?',
                $info->{key_bits} // '?', $info->{chain_len} // 0);
            1;
        };
        fail_run($m->{t}, 'handshakes', $@ || 'unknown error') unless $ok;
    }
    $m->{t}->cleanup if $m && $m->{t};
    $st->cleanup if $st;
}

# ---------------------------------------------------------------------------
# report

sub slurp_cmd { my $o = `$_[0] 2>&1` // ''; $o =~ s/\s+$//; $o }

my $cpu = '?';
if (open my $fh, '<', '/proc/cpuinfo') {
    while (<$fh>) {
        if (/^(?:model name|Model|Hardware)\s*:\s*(.+?)\s*$/) { $cpu = $1; last }
    }
}
my $mem = '';
if (open my $fh, '<', '/proc/meminfo') {
    while (<$fh>) { $mem = sprintf(', %.1f GiB RAM', $1 / 1048576) if /^MemTotal:\s+(\d+)/ }
}
my $nginx_v = slurp_cmd(($ENV{NGINX_BINARY} || '/usr/sbin/nginx') . ' -v');
$nginx_v =~ s/^nginx version:\s*//;

my $out = '';
$out .= sprintf "### Measurements of %s\n\n", strftime('%Y-%m-%d %H:%M UTC', gmtime $started_at);
$out .= "| | |\n|---|---|\n";
$out .= sprintf "| Date | %s |\n", strftime('%Y-%m-%d %H:%M UTC', gmtime $started_at);
$out .= sprintf "| Machine | %s CPUs (`nproc`), %s%s, Linux %s |\n", slurp_cmd('nproc'), $cpu, $mem,
    slurp_cmd('uname -r');
$out .= sprintf "| nginx | %s, `worker_processes 2` |\n", $nginx_v;
$out .= sprintf "| OpenSSL | %s |\n", Net::SSLeay::SSLeay_version(0);
$out .= sprintf "| Pebble | %s, `PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0` |\n",
    AcmeTest->pebble_version;
$out .= sprintf "| Module | `%s` (sha256 %s) |\n", $MODULE_SRC =~ s{^\Q$REPO\E/}{}r,
    substr($MODULE_SHA, 0, 12);
$out .= sprintf "| Runs | %d per configuration; total run time %.0f s; load average %s at start, %s at end |\n\n",
    $REPS, time - $started_at, $LOAD_START, loadavg();

$out .= "Time from starting nginx (empty store) until every name serves a certificate\n"
    . "that verifies against Pebble's root; the floor is the same configuration with\n"
    . "static certificates and no module (time until every name answers a handshake).\n\n";
$out .= "| Server blocks (names) | Managed min | Managed median | First name (median) | Static floor min | Static floor median | Orders per run | Engine order time (median) |\n";
$out .= "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
for my $n (@NS) {
    my @m = @{ $managed{$n} || [] };
    my @s = @{ $static{$n} || [] };
    my @all = map { $_->{all} } @m;
    my @fl  = map { $_->{all} } @s;
    my %orders = map { $_->{orders} => 1 } @m;
    my $failed = $REPS - @m;
    $out .= sprintf "| %d | %s | %s%s | %s | %s | %s | %s | %s |\n", $n,
        @all ? fmt_s((sort { $a <=> $b } @all)[0]) : 'failed',
        @all ? fmt_s(median(@all)) : 'failed',
        $failed ? " ($failed of $REPS failed)" : '',
        @m ? fmt_s(median(map { $_->{first} } @m)) : '-',
        @fl ? fmt_s((sort { $a <=> $b } @fl)[0]) : 'failed',
        @fl ? fmt_s(median(@fl)) : 'failed',
        @m ? join('/', sort { $a <=> $b } keys %orders) : '-',
        @m ? fmt_s(median(map { $_->{order_median} // () } @m)) : '-';
}
$out .= "\nTimes include the harness's polling: start_nginx checks for the workers every\n"
    . "0.1 s; then the names are polled one at a time, in order, each every 10 ms until\n"
    . "it verifies. First name is the first in order (site1).\n"
    . "Orders per run is what Pebble accepted (one certificate per server block).\n\n";

if ($hs{managed} && $hs{static} && @{ $hs{managed} } && @{ $hs{static} }) {
    my ($mm, $sm) = (median(@{ $hs{managed} }), median(@{ $hs{static} }));
    my ($mc, $sc) = (median(@{ $hs{managed_cpu} }), median(@{ $hs{static_cpu} }));
    # rounds alternate, so a ratio per round cancels slow changes of the load
    my @pairs = grep { $hs{static}[$_] && $hs{static_cpu}[$_] } 0 .. $#{ $hs{managed} };
    my $rate_ratio = median(map { $hs{managed}[$_] / $hs{static}[$_] } @pairs) // 0;
    my $cpu_ratio = median(map { $hs{managed_cpu}[$_] / $hs{static_cpu}[$_] } @pairs) // 0;
    $out .= sprintf "Full TLS handshakes per second, one client process (Net::SSLeay, no session\n"
        . "reuse, SNI site1.bench.test), %d s per run, %d alternating runs, median:\n\n",
        $HS_SECONDS, $HS_ROUNDS;
    $out .= "| Configuration | Handshakes/s (median) | Runs | Worker CPU per handshake (median) | Protocol | Certificate |\n";
    $out .= "|---|---:|---|---:|---|---|\n";
    $out .= sprintf "| Managed (`acme_certificate`, N=1, after issuance) | %.0f | %s | %.0f µs | %s | %s |\n",
        $mm, join(', ', map { sprintf '%.0f', $_ } @{ $hs{managed} }), $mc, $hs{managed_proto},
        $hs{managed_cert} // '?';
    $out .= sprintf "| Static (`ssl_certificate`, no module) | %.0f | %s | %.0f µs | %s | %s |\n",
        $sm, join(', ', map { sprintf '%.0f', $_ } @{ $hs{static} }), $sc, $hs{static_proto},
        $hs{static_cert} // '?';
    $out .= sprintf "| **Ratio managed/static** (median of the per-run ratios) | **%.2f** | %s | **%.2f** | | |\n",
        $rate_ratio, join(', ', map { sprintf '%.2f', $hs{managed}[$_] / $hs{static}[$_] } @pairs),
        $cpu_ratio;
    $out .= sprintf "\nFailed handshakes: managed %d, static %d. The client and both nginx\n"
        . "instances share the machine's CPUs, so handshakes/s is a lower bound and moves\n"
        . "with the machine's load; the CPU the workers spent per handshake\n"
        . "(utime + stime from /proc, %d Hz ticks) depends less on it.\n",
        $hs{managed_errors} // 0, $hs{static_errors} // 0, $CLK_TCK;
} else {
    $out .= "Handshake throughput: not measured (setup failed, see stderr).\n";
}

print "\n$out";
exit($FAILED ? 1 : 0);
