# Hot swap under load: while wrk keeps opening new TLS connections
# (Connection: close, so every request is a new handshake), the certificate
# is renewed. No request fails, the worker processes stay the same, and the
# new serial is served within a second of the new file being written.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');
my $wrk = -x '/usr/bin/wrk' ? '/usr/bin/wrk' : undef;
plan skip_all => 'wrk is not installed (scripts/setup-deps.sh installs it)' unless $wrk;

my $lifetime = 30;
my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name swap.test;
        acme_certificate pebble;
        location / { return 200 "ok\n"; }
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
my $https = $t->port('https');

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'swap.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'first certificate served' or die('no certificate');
# Renewal at the ratio rule's time, known in advance from the .json file.
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400,
    $first->{not_after} + 2 * 86400);
my ($json) = glob($t->dir . '/acme/swap.test-*.json');
my ($crt) = glob($t->dir . '/acme/swap.test-*.crt');
my $renewal_at = JSON::PP::decode_json(do { local (@ARGV, $/) = $json; <> })->{renewal_at};
my @workers = sort $t->worker_pids;

# Load from 3 s before the renewal time for 8 s.
sleep 0.1 while time < $renewal_at - 3;
my $out = $t->dir . '/wrk.out';
my $wrk_pid = fork // die "fork: $!";
if (!$wrk_pid) {
    open STDOUT, '>', $out;
    open STDERR, '>&', \*STDOUT;
    exec($wrk, '-t1', '-c4', '-d8s', '--timeout', '5s', '-H', 'Connection: close',
        '-H', 'Host: swap.test', "https://127.0.0.1:$https/") or POSIX::_exit(127);
}

# Meanwhile a verifying client watches for the new serial, and the store
# for the first write of the certificate file (later renewals rewrite it:
# Pebble's ARI window makes the new 30-second certificate due at once).
my ($failed, $seen_at, $renewed, $written) = (0);
my $mtime0 = (Time::HiRes::stat($crt))[9];
while (waitpid($wrk_pid, POSIX::WNOHANG()) == 0) {
    my $m = (Time::HiRes::stat($crt))[9];
    $written //= $m if $m != $mtime0;
    my $r = $t->tls_get(name => 'swap.test', port => $https, ca => $root);
    $failed++ unless $r->{verified};
    ($seen_at, $renewed) = (time, $r) if !$seen_at && $r->{serial} && $r->{serial} ne $first->{serial};
    sleep 0.02;
}
my $wrk_out = do { local (@ARGV, $/) = $out; <> } // '';
diag $wrk_out;
my ($requests) = $wrk_out =~ /(\d+) requests in/;
ok $requests, "wrk completed $requests requests, each a new TLS connection";
unlike $wrk_out, qr/Socket errors/, 'no connect, read, write or timeout errors';
unlike $wrk_out, qr/Non-2xx/, 'no failed responses';
ok $renewed, 'the certificate was renewed during the load' or die('no renewal');
is $failed, 0, 'no failed verified handshake either';
is_deeply [sort $t->worker_pids], \@workers, 'same worker processes';
my $delay = $seen_at - $written;
diag sprintf 'new serial served %.2f s after the store write', $delay;
cmp_ok $delay, '<', 1, 'new serial served within 1 s of the store write';
cmp_ok $delay, '>=', -0.05, 'and not before it (sanity of the two clocks)';

done_testing;
