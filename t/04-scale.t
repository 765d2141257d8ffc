# Correctness at scale (not timings; `make bench-scale` and `make
# bench-issue` measure those): 2,000 acme_certificate servers start from an
# empty store and every name gets and serves its own certificate; a reload
# orders nothing and keeps them all; one renewal among the 2,000 is
# installed once in every worker, and no other certificate is touched.
#
# The names are spread over several issuers, each on its own Pebble, with
# one order at a time each: Pebble 2.10 deadlocks when an account creates
# an order while another of its orders fetches an authorization
# (docs/performance.md), which one order at a time per account rules out.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $n = $ENV{ACME_TEST_SCALE_N} // 2000;
my $p = $ENV{ACME_TEST_SCALE_PEBBLES} // 8;
my $t = AcmeTest->new(timeout => 900);
my @cas = ($t, map { AcmeTest->new(timeout => 900) } 2 .. $p);
my %env = (PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0);
$t->start_pebble(env => \%env);
# Every CA validates http-01 at the one nginx, which runs under $t.
$_->start_pebble(env => \%env, config => { httpPort => $t->port('http'), tlsPort => $t->port('https') })
    for @cas[1 .. $#cas];
my @roots = map { $_->pebble_root } @cas;

my @names = map { "site$_.scale.test" } 1 .. $n;
sub issuer_of { $_[0] =~ /^site(\d+)\./ ? ($1 - 1) % $p : die "not a test name: $_[0]" }

my $issuers = join '', map { <<"EOF" } 0 .. $#cas;
    acme_issuer ca$_ {
        uri @{[ $cas[$_]->acme_uri ]};
        ssl_trusted_certificate @{[ $cas[$_]->pebble_ca_file ]};
        state_path %%TESTDIR%%/acme-$_;
        accept_terms_of_service;
        max_concurrent_orders 1;
    }
EOF
my $servers = join '', map { <<"EOF" } @names;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate ca@{[ issuer_of($_) ]};
    }
EOF
$t->write_nginx_conf(<<"EOF", log_level => 'info');
http {
$issuers
    server_names_hash_bucket_size 128;
    server_names_hash_max_size 16384;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location = /acme { acme_status renew; }
    }
$servers}
EOF

sub orders { my $sum = 0; $sum += $_->pebble_orders for @cas; $sum }
sub issued_lines { scalar(() = $t->error_log($_[0] // 0) =~ /acme: certificate "[^"]+" issued by/g) }

my $mark = $t->log_mark;
$t->start_nginx(timeout => 120);
ok $t->wait_log(qr/acme: engine started for $n certificate/, 60, $mark), 'engine started';
ok $t->wait_for(sub { issued_lines($mark) >= $n }, timeout => 600, interval => 1),
    "all $n certificates issued" or diag issued_lines($mark) . ' issued';
is orders(), $n, "$n orders, one per certificate";

# Every name serves its own certificate, verified against its issuer's
# root.
my (%serial, @bad);
for my $name (@names) {
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, ca => $roots[issuer_of($name)]);
        $r->{verified} ? $r : undef
    }, timeout => 30);
    if ($r && join(',', @{ $r->{sans} || [] }) eq $name) {
        $serial{$name} = $r->{serial};
    } else {
        push @bad, $name;
    }
}
is scalar(@bad), 0, "every one of the $n names serves a certificate for itself, verified"
    or diag "not so: @bad[0 .. ($#bad < 9 ? $#bad : 9)]";

# The store: a chain and a private key per name, nothing half-done.
my (@crt, @key, @left);
for my $i (0 .. $#cas) {
    my $dir = $t->dir . "/acme-$i";
    push @crt, glob("$dir/site*.crt");
    push @key, glob("$dir/site*.key");
    push @left, glob("$dir/*.order.json"), glob("$dir/*.tmp.*");
}
is scalar(@crt), $n, "$n chains stored";
is scalar(@key), $n, "$n keys stored";
is scalar(grep { ((stat $_)[2] & 07777) != 0600 } @key), 0, 'every key is 0600';
is_deeply \@left, [], 'no saved order or temporary file is left';

# A reload: nothing is ordered, every name keeps its certificate.
my @sample = @names[map { int($_ * ($n - 1) / 99) } 0 .. 99];
sub changed {
    my ($skip, @which) = @_;
    grep {
        my $r = $t->tls_get(name => $_, ca => $roots[issuer_of($_)]);
        $_ ne $skip && (!$r->{verified} || ($r->{serial} // '') ne $serial{$_})
    } @which;
}
$mark = $t->log_mark;
$t->reload_nginx(timeout => 120);
ok $t->wait_log(qr/acme: engine started for $n certificate/, 60, $mark), 'new engine started';
my @changed = changed('', @sample);
is scalar(@changed), 0, 'after the reload 100 names across the configuration serve the same certificates'
    or diag "@changed";
is orders(), $n, 'the reload ordered nothing';

# One renewal among them: installed once in every worker, and nothing else.
my $renewed = $names[int($n / 2)];
my @workers = sort { $a <=> $b } $t->worker_pids;
$mark = $t->log_mark;
my $res = $t->http_get("/acme?renew=$renewed", method => 'POST');
is $res->{status}, 202, "renew-now for $renewed accepted" or diag $res->{content};
my $new = $t->wait_for(sub {
    my $r = $t->tls_get(name => $renewed, ca => $roots[issuer_of($renewed)]);
    $r->{verified} && $r->{serial} ne $serial{$renewed} ? $r : undef
}, timeout => 60);
ok $new, "$renewed serves a new certificate" or diag $t->error_log($mark);
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
@changed = changed($renewed, @names[0 .. 49], @names[-50 .. -1]);
is scalar(@changed), 0, 'the other names keep their certificates' or diag "@changed";
is orders(), $n + 1, 'one more order';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
