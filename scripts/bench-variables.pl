#!/usr/bin/perl
# Handshake rate of a server using `ssl_certificate $acme_certificate`
# (nginx-acme's configuration, which this module takes over into its
# hot-swapped SSL context) against the same nginx serving a static
# certificate file, and against nginx's own per-handshake loading of a
# variable certificate ("data:" PEM from a map, as nginx-acme does on nginx
# before 1.27.4). All three use ECDSA P-256, one worker, same run.
#   ACME_MODULE=build/ngx_http_acme_module.so PEBBLE_DIR=.deps/pebble \
#       perl -I t/lib scripts/bench-variables.pl [seconds] [rounds]
use strict;
use warnings;
use AcmeTest;
use POSIX ();

my $seconds = shift // 5;
my $rounds = shift // 3;
my $clients = 2;

my $t = AcmeTest->new(timeout => 60 + 3 * $rounds * ($seconds + 2) * 2, worker_processes => 1);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my ($crt, $key) = $t->make_cert(name => 'static.test', key => 'ec');
my $chain = do { local (@ARGV, $/) = $crt; <> } . do { local (@ARGV, $/) = $t->ca_file; <> };
my $key_pem = do { local (@ARGV, $/) = $key; <> };
my $chain_file = $t->write_file('static-chain.pem', $chain);

$t->write_nginx_conf(<<"EOF", log_level => 'warn');
http {
    access_log off;
    map \$ssl_server_name \$pem_cert {
        default "data:$chain";
    }
    map \$ssl_server_name \$pem_key {
        default "data:$key_pem";
    }
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%PORT_BENCH_STATIC%% ssl;
        ssl_certificate $chain_file;
        ssl_certificate_key $key;
    }
    server {
        listen 127.0.0.1:%%PORT_BENCH_ACME%% ssl;
        server_name bench.test;
        acme_certificate pebble;
        ssl_certificate \$acme_certificate;
        ssl_certificate_key \$acme_certificate_key;
    }
    server {
        listen 127.0.0.1:%%PORT_BENCH_VARIABLE%% ssl;
        ssl_certificate \$pem_cert;
        ssl_certificate_key \$pem_key;
    }
}
EOF
$t->start_nginx;
my $root = $t->pebble_root;
$t->wait_for(sub { $t->tls_get(name => 'bench.test', port => $t->port("bench_acme"), ca => $root)->{verified} },
    timeout => 30) or die "no certificate issued\n";

# CPU time (seconds) the worker has used so far: on a shared machine the
# worker's CPU per handshake is steadier than the wall-clock rate.
my ($worker) = $t->worker_pids;
sub worker_cpu {
    open my $fh, '<', "/proc/$worker/stat" or die "$worker: $!";
    my @f = split ' ', (split /\) /, scalar <$fh>)[1];
    return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

# Full handshakes with $clients parallel `openssl s_time -new`: the count,
# the wall-clock rate and the handshakes per second of worker CPU.
sub run {
    my ($port) = @_;
    my $cpu = worker_cpu();
    my @pids;
    for my $i (1 .. $clients) {
        my $pid = open(my $fh, '-|') // die "fork: $!";
        if (!$pid) {
            open STDERR, '>&', \*STDOUT;
            exec 'openssl', 's_time', -connect => "127.0.0.1:$port", '-new', -time => $seconds;
            exit 127;
        }
        push @pids, $fh;
    }
    my ($count, $rate) = (0, 0);
    for my $fh (@pids) {
        local $/;
        my $out = <$fh> // '';
        close $fh;
        my ($n, $real) = $out =~ /(\d+) connections in (\d+) real seconds/ or die "s_time: $out";
        $count += $n;
        $rate += $n / $real;
    }
    my $used = worker_cpu() - $cpu;
    return { rate => $rate, per_cpu => $used > 0 ? $count / $used : 0 };
}

my %r;
for my $round (1 .. $rounds) {
    for my $name (qw(static acme variable)) {
        push @{ $r{$name} }, run($t->port("bench_$name"));
    }
}
my %label = (
    static   => 'static ssl_certificate file',
    acme     => 'ssl_certificate $acme_certificate (taken over)',
    variable => 'ssl_certificate $var ("data:" PEM, per handshake)',
);
sub median { my @v = sort { $a <=> $b } @_; return $v[int(@v / 2)] }
my $base = median(map { $_->{per_cpu} } @{ $r{static} });
printf "%-52s %14s %8s %12s\n", 'configuration', 'per CPU s', 'ratio', 'wall /s';
for my $name (qw(static acme variable)) {
    my $per_cpu = median(map { $_->{per_cpu} } @{ $r{$name} });
    printf "%-52s %14.0f %8.2f %12.0f\n", $label{$name}, $per_cpu, $per_cpu / $base,
        median(map { $_->{rate} } @{ $r{$name} });
}
printf "(medians of %d rounds of %d s, %d clients, one worker)\n", $rounds, $seconds, $clients;
