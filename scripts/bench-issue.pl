#!/usr/bin/perl
# Benchmark (not a test): issuing N certificates from an empty store with
# several issuers, each on its own Pebble instance, on loopback.
#
#   ACME_MODULE=$PWD/build/ngx_http_acme_module.so PEBBLE_DIR=.deps/pebble \
#       perl -I t/lib scripts/bench-issue.pl [N [PEBBLES [ORDERS]]]
#
# N (1,000) server blocks, one name each (site1.issue.test ...), spread
# round-robin over PEBBLES (4) issuers, each with its own Pebble
# (PEBBLE_VA_NOSLEEP, nonces never rejected, no authorization reuse) and
# `max_concurrent_orders ORDERS` (4): one Pebble 2.10 deadlocks under 16
# concurrent orders of one account (docs/performance.md), several with few
# orders each do not, so far. Measured from just before nginx starts: until
# the error log shows all N "issued by" lines, then until every name serves
# a certificate that verifies against its own issuer's root (every name is
# polled, in order). CPU seconds of the helper, the workers and every Pebble
# at the end. BENCH_MOD_MD=1 then does the same with Apache mod_md (below).
# The Markdown report goes to stdout; exit status 1 on failure.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use POSIX qw(strftime);
use Test::More ();    # AcmeTest reports through Test::Builder
use Time::HiRes qw(time sleep);

use AcmeTest;

$| = 1;
my ($N, $P, $ORDERS) = (shift // 1000, shift // 4, shift // 4);
my $WAIT = $ENV{BENCH_WAIT} // 600;
die "bench-issue.pl must run as root\n" if $> != 0;
die "ACME_MODULE must name the built module\n" unless AcmeTest->module_path;

sub progress { print STDERR "[bench-issue] ", @_, "\n" }
sub loadavg { open my $fh, '<', '/proc/loadavg' or return '?'; my ($l) = split ' ', <$fh>; $l }
sub cpu_seconds {
    my $sum = 0;
    for my $pid (grep { defined } @_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my @f = split ' ', (<$fh> =~ s/^.*\) //r);
        $sum += ($f[11] + $f[12]) / 100;    # utime + stime, in clock ticks
    }
    return $sum;
}

my $load_start = loadavg();
my $t = AcmeTest->new(timeout => $WAIT + 300);
my @cas = ($t, map { AcmeTest->new(timeout => $WAIT + 300) } 2 .. $P);
my %env = (PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0);
$t->start_pebble(env => \%env);
# Every CA validates http-01 at the one nginx, which runs under $t.
$_->start_pebble(env => \%env, config => { httpPort => $t->port('http'), tlsPort => $t->port('https') })
    for @cas[1 .. $#cas];

my $conf = "http {\n    server_names_hash_bucket_size 128;\n    server_names_hash_max_size 65536;\n";
for my $i (0 .. $#cas) {
    my ($uri, $ca) = ($cas[$i]->acme_uri, $cas[$i]->pebble_ca_file);
    $conf .= <<"EOF";
    acme_issuer ca$i {
        uri $uri;
        ssl_trusted_certificate $ca;
        state_path %%TESTDIR%%/acme-$i;
        accept_terms_of_service;
        max_concurrent_orders $ORDERS;
    }
EOF
}
$conf .= "    server {\n        listen 127.0.0.1:%%HTTP_PORT%%;\n    }\n";
my @names = map { "site$_.issue.test" } 1 .. $N;
for my $k (0 .. $#names) {
    my $issuer = 'ca' . ($k % $P);
    $conf .= <<"EOF";
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $names[$k];
        acme_certificate $issuer;
    }
EOF
}
$t->write_nginx_conf($conf . "}\n");
my @roots = map { $_->pebble_root } @cas;

my $failed = 0;
my $t0 = time;
$t->start_nginx(timeout => 120);
my $issued;
$t->wait_for(sub {
    my $n = () = $t->error_log =~ /acme: certificate "[^"]+" issued by/g;
    $issued = time - $t0 if $n >= $N;
    defined $issued
}, timeout => $WAIT, interval => 0.1) or do { $failed = 1; progress('not every certificate was issued') };
my %cpu = (helper => cpu_seconds($t->helper_pid), workers => cpu_seconds($t->worker_pids),
    pebble => [ map { cpu_seconds($_->{procs}{pebble}{pid}) } @cas ]);
progress(sprintf('all %d issued after %.2f s', $N, $issued // -1)) if defined $issued;

my $served;
if (defined $issued) {
    my $k = 0;
    $t->wait_for(sub {
        while ($k < @names) {
            last unless $t->tls_get(name => $names[$k], ca => $roots[$k % $P])->{verified};
            $k++;
        }
        $k == @names
    }, timeout => 120, interval => 0.05) or do { $failed = 1; progress("only $k names verified") };
    $served = time - $t0 unless $failed;
}
my $orders = 0;
$orders += $_->pebble_orders for @cas;
my $errors = () = $t->error_log =~ /\[error\]/g;

my $out = sprintf "### bench-issue, %d certificates, %d issuers on %d Pebbles, %d orders at a time each, %s\n\n",
    $N, $P, $P, $ORDERS, strftime('%Y-%m-%d %H:%M UTC', gmtime $t0);
$out .= sprintf "load average %s at start, %s at end; %d orders in Pebbles' logs, %d error lines.\n\n",
    $load_start, loadavg(), $orders, $errors;
$out .= sprintf "| All issued (log) | All served and verified | CPU helper | CPU workers | CPU Pebbles |\n|---:|---:|---:|---:|---:|\n";
$out .= sprintf "| %s | %s | %.2f s (%.1f ms per order) | %.2f s | %s |\n",
    seconds($issued), seconds($served),
    $cpu{helper}, $cpu{helper} / $N * 1000, $cpu{workers}, join(' + ', map { sprintf '%.2f', $_ } @{ $cpu{pebble} });
$t->stop_nginx;
$_->stop_pebble for @cas;
$out .= mod_md_report() if $ENV{BENCH_MOD_MD};
print $out;
$_->cleanup for reverse @cas;
exit $failed;

sub seconds { defined $_[0] ? sprintf('%.2f s', $_[0]) : 'failed' }

# BENCH_MOD_MD=1: Apache's mod_md (apache2 from Debian) for the same names,
# after nginx is stopped, against fresh Pebbles set up the same way (each
# MDomainSet gets its issuer's Pebble). mod_md issues into its staging
# area and serves the certificates only after a graceful restart: "all
# issued" counts its "has been setup" lines, "all served" follows a
# graceful restart sent at once. CPU: Apache's processes before the
# restart (its certificates are made in a child's watchdog thread).
sub mod_md_report {
    my $apache = '/usr/sbin/apache2';
    -x $apache or die "BENCH_MOD_MD needs $apache (apt-get install apache2)\n";
    my $a = AcmeTest->new(timeout => $WAIT + 300);
    my @mcas = ($a, map { AcmeTest->new(timeout => $WAIT + 300) } 2 .. $P);
    $a->start_pebble(env => \%env);
    $_->start_pebble(env => \%env, config => { httpPort => $a->port('http'), tlsPort => $a->port('https') })
        for @mcas[1 .. $#mcas];
    my $dir = $a->dir;
    my $bundle = $a->write_file('pebble-cas.pem', join '', map { AcmeTest::_slurp($_->pebble_ca_file) } @mcas);
    my $mods = '/usr/lib/apache2/modules';
    my ($http, $https) = ($a->port('http'), $a->port('https'));
    mkdir "$dir/run";
    my $conf = join "\n",
        "ServerRoot $dir", 'ServerName localhost', "PidFile $dir/run/apache.pid",
        "DefaultRuntimeDir $dir/run", "Mutex file:$dir/run default", "ErrorLog $dir/apache-error.log",
        'LogLevel warn md:notice',
        (map { "LoadModule ${_}_module $mods/mod_$_.so" } qw(mpm_event authz_core ssl md)),
        'User nobody', 'Group nogroup', "Listen 127.0.0.1:$http", "Listen 127.0.0.1:$https https",
        "MDStoreDir $dir/md", 'MDCertificateAgreement accepted', "MDCACertificateFile $bundle",
        'MDContactEmail admin@issue.test', 'MDCAChallenges http-01', "MDPortMap http:$http https:$https", 'MDPrivateKeys secp256r1', '';
    for my $k (0 .. $#names) {
        my $uri = $mcas[$k % $P]->acme_uri;
        $conf .= "<MDomainSet $names[$k]>\n    MDCertificateAuthority $uri\n</MDomainSet>\n"
            . "<VirtualHost 127.0.0.1:$https>\n    ServerName $names[$k]\n    SSLEngine on\n</VirtualHost>\n";
    }
    $a->write_file('apache.conf', $conf);
    my $elog = "$dir/apache-error.log";
    my $setup = sub {
        my $l = -e $elog ? AcmeTest::_slurp($elog) : '';
        scalar(() = $l =~ /has been setup and changes will be activated/g)
    };
    progress("mod_md: $N names");
    my $m0 = time;
    my $pid = $a->_spawn('apache', [$apache, '-DFOREGROUND', '-d', $dir, '-f', "$dir/apache.conf"]);
    my ($missued, $mserved);
    $a->wait_for(sub { $missued = time - $m0 if $setup->() >= $N; defined $missued },
        timeout => $WAIT, interval => 0.2) or progress('mod_md: only ' . $setup->() . " issued; $elog ends:\n"
            . join '', (split /^/, AcmeTest::_slurp($elog))[-10 .. -1]);
    my @group = grep { (getpgrp($_) // 0) == $pid } map { m{/proc/(\d+)$} ? $1 : () } glob('/proc/[0-9]*');
    my $mcpu = cpu_seconds(@group);
    if (defined $missued) {
        progress(sprintf('mod_md: all %d issued after %.2f s', $N, $missued));
        kill 'USR1', $pid;    # graceful restart: only now are they served
        my @mroots = map { $_->pebble_root } @mcas;
        my $k = 0;
        $a->wait_for(sub {
            while ($k < @names) {
                last unless $a->tls_get(name => $names[$k], ca => $mroots[$k % $P])->{verified};
                $k++;
            }
            $k == @names
        }, timeout => 120, interval => 0.05) or progress("mod_md: only $k names verified");
        $mserved = time - $m0 if $k == @names;
    }
    my $morders = 0;
    $morders += $_->pebble_orders for @mcas;
    $a->_stop('apache');
    $_->cleanup for reverse @mcas;
    my $out = sprintf "\n%s with mod_md, the same names, fresh Pebbles: %d orders.\n\n",
        apache_version($apache), $morders;
    $out .= "| | All issued | All served and verified | CPU |\n|---|---:|---:|---:|\n";
    $out .= sprintf "| nginx + module | %s | %s | %.2f s (helper and workers) |\n",
        seconds($issued), seconds($served), $cpu{helper} + $cpu{workers};
    $out .= sprintf "| Apache mod_md | %s | %s | %.2f s (Apache's processes) |\n",
        seconds($missued), seconds($mserved), $mcpu;
    $out .= sprintf "| ratio | %s | %s | |\n", ratio($issued, $missued), ratio($served, $mserved);
    return $out;
}

sub ratio { defined $_[0] && defined $_[1] ? sprintf('%.3f', $_[0] / $_[1]) : '' }

sub apache_version {
    my ($bin) = @_;
    my $v = `$bin -v 2>/dev/null` // '';
    return $v =~ m{Apache/(\S+)} ? "Apache $1" : 'Apache';
}
