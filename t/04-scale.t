# Correctness at scale (not timings; `make bench-scale` measures those):
# 2,000 acme_certificate servers get their certificates from Pebble and
# every name verifies; a reload with the 2,000 stored certificates orders
# nothing; one renewal among the 2,000 is installed in every worker, and
# no other certificate is touched.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $n = $ENV{ACME_TEST_SCALE_N} // 2000;
my $t = AcmeTest->new(timeout => 900);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 });
my @names = map { "s$_.scale.test" } 1 .. $n;
my $servers = join '', map { <<"EOF" } @names;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate pebble;
    }
EOF
# Pebble 2.10 stops answering now and then under 16 concurrent orders
# (docs/performance.md); 4 at a time also exercises max_concurrent_orders.
$t->write_nginx_conf(<<"EOF", log_level => 'info');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        max_concurrent_orders 4;
    }
    server_names_hash_bucket_size 128;
    server_names_hash_max_size 16384;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location = /acme { acme_status renew; }
    }
$servers}
EOF
$t->start_nginx(timeout => 120);
my $root = $t->pebble_root;
my $state = $t->dir . '/acme';

my $stored = sub { my @c = glob("$state/*.crt"); scalar @c };
ok $t->wait_for(sub { $stored->() >= $n }, timeout => 540, interval => 0.5),
    "$n certificates stored" or diag $stored->() . " stored";

# Every name serves its own certificate, verified against Pebble's root.
my (%serial, @bad);
for my $name (@names) {
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, ca => $root);
        $r->{verified} ? $r : undef
    }, timeout => 30);
    if (!$r || !grep { $_ eq $name } @{ $r->{sans} || [] }) {
        push @bad, $name;
        next;
    }
    $serial{$name} = $r->{serial};
}
is scalar(@bad), 0, "every one of the $n names verifies with its own certificate"
    or diag "not verified: @bad[0 .. ($#bad < 9 ? $#bad : 9)]";
my %distinct = reverse %serial;
is scalar(keys %distinct), $n, "$n distinct certificates";
my $orders = $t->pebble_orders;
is $orders, $n, "$n orders";

# A reload with every certificate stored: nothing is ordered, every name
# keeps its certificate.
my $mark = $t->log_mark;
$t->reload_nginx(timeout => 120);
ok $t->wait_log(qr/acme: engine started for $n certificate/, 60, $mark), 'new engine started';
# The engine logs each certificate it finds valid; the outcomes that
# matter (nothing ordered, the same certificates served) are checked after
# this wait. Not asserted: on sid the last lines came after 120 s once.
my $all_valid = $t->wait_for(sub {
    my $valid = () = $t->error_log($mark) =~ /acme: certificate "[^"]+" is valid until/g;
    $valid >= $n
}, timeout => 120, interval => 0.5);
note $all_valid ? "the new engine found all $n certificates valid" : "not all $n valid lines logged in 120 s";
my @changed = grep {
    my $r = $t->tls_get(name => $_, ca => $root);
    !$r->{verified} || $r->{serial} ne $serial{$_}
} @names[map { int($_ * ($n - 1) / 99) } 0 .. 99];
is scalar(@changed), 0, 'after the reload 100 names across the configuration serve the same certificates'
    or diag "@changed";
is $t->pebble_orders, $orders, 'the reload ordered nothing';

# One renewal among them: installed once in every worker, and nothing else.
my $renewed = $names[int($n / 2)];
my @workers = sort { $a <=> $b } $t->worker_pids;
$mark = $t->log_mark;
my $res = $t->http_get("/acme?renew=$renewed", method => 'POST');
is $res->{status}, 202, "renew-now for $renewed accepted" or diag $res->{content};
my $new = $t->wait_for(sub {
    my $r = $t->tls_get(name => $renewed, ca => $root);
    $r->{verified} && $r->{serial} ne $serial{$renewed} ? $r : undef
}, timeout => 60);
ok $new, "$renewed serves a new certificate";
ok $t->wait_for(sub {
    my %by = map { $_ => 1 } $t->error_log($mark) =~ /\[info\] (\d+)#\d+: acme: installed certificate/g;
    keys %by >= @workers
}, timeout => 10), 'every worker installed it';
my @installs = $t->error_log($mark) =~ /\[info\] (\d+)#\d+: acme: installed certificate "([^"]+)"/g;
my %per_worker;
while (my ($pid, $file) = splice @installs, 0, 2) { push @{ $per_worker{$pid} }, $file }
is_deeply [sort { $a <=> $b } keys %per_worker], \@workers, 'installed by exactly the workers';
for my $pid (@workers) {
    my @files = @{ $per_worker{$pid} || [] };
    is scalar(@files), 1, "worker $pid installed one certificate";
    like $files[0] // '', qr{/\Q$renewed\E-[0-9a-f]{8}\.crt$}, "worker $pid installed ${renewed}'s";
}
@changed = grep {
    my $r = $t->tls_get(name => $_, ca => $root);
    $_ ne $renewed && (!$r->{verified} || $r->{serial} ne $serial{$_})
} @names[0 .. 49], @names[-50 .. -1];
is scalar(@changed), 0, 'the other names keep their certificates' or diag "@changed";
is $t->pebble_orders, $orders + 1, 'one order';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
