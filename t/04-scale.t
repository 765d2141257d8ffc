# Correctness at scale (not timings; `make bench-scale` measures those):
# 2,000 acme_certificate servers start with their certificates already in
# the store (written by bench-make-store, signed by its own CA) and every
# name serves its own; a reload orders nothing and keeps them all; one
# renewal among the 2,000 (from Pebble) is installed once in every worker,
# and no other certificate is touched.
#
# The store is made, not issued: 2,000 orders took minutes and Pebble 2.10
# locks up now and then under concurrent orders (docs/performance.md),
# after which every order of the run timed out. Issuing many certificates
# at once is t/95's and `make bench`'s.
use strict;
use warnings;
use Test::More;
use File::Find ();
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');
my $make_store = $ENV{ACME_MAKE_STORE};
plan skip_all => 'ACME_MAKE_STORE does not name bench-make-store (make integration sets it)'
    unless $make_store && -x $make_store;

my $n = $ENV{ACME_TEST_SCALE_N} // 2000;
my $t = AcmeTest->new(timeout => 600);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 });

my $state = $t->worker_dir('acme');
my %stored;    # name => serial (upper-case hex, no leading zeros)
open my $gen, '-|', $make_store, $state, $n or die "$make_store: $!";
while (<$gen>) {
    my ($name, undef, $serial) = split ' ' or next;
    $stored{$name} = uc($serial) =~ s/^0+//r;
}
close $gen or die "$make_store failed";
my $uid = getpwnam('nobody') // 65534;
File::Find::find(sub { chown $uid, -1, $_ }, $state);
my $store_ca = "$state/ca.pem";
my @names = map { "site$_.scale.test" } 1 .. $n;
is scalar(grep { $stored{$_} } @names), $n, "$n certificates in the store";

my $servers = join '', map { <<"EOF" } @names;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate pebble;
    }
EOF
$t->write_nginx_conf(<<"EOF", log_level => 'info');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path $state;
        accept_terms_of_service;
    }
    server_names_hash_bucket_size 128;
    server_names_hash_max_size 16384;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location = /acme { acme_status renew; }
    }
$servers}
EOF
my $mark = $t->log_mark;
$t->start_nginx(timeout => 120);
ok $t->wait_log(qr/acme: engine started for $n certificate/, 60, $mark), 'engine started';

sub hex_serial { uc($_[0] // '') =~ s/^0+//r }

# Every name serves its own stored certificate, verified against the
# store's CA.
my @bad;
for my $name (@names) {
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, ca => $store_ca);
        $r->{verified} ? $r : undef
    }, timeout => 30);
    push @bad, $name
        unless $r && grep({ $_ eq $name } @{ $r->{sans} || [] }) && hex_serial($r->{serial}) eq $stored{$name};
}
is scalar(@bad), 0, "every one of the $n names serves its stored certificate, verified"
    or diag "not so: @bad[0 .. ($#bad < 9 ? $#bad : 9)]";
is $t->pebble_orders, 0, 'nothing ordered';

# A reload: nothing is ordered, every name keeps its certificate.
$mark = $t->log_mark;
$t->reload_nginx(timeout => 120);
ok $t->wait_log(qr/acme: engine started for $n certificate/, 60, $mark), 'new engine started';
my @changed = grep {
    my $r = $t->tls_get(name => $_, ca => $store_ca);
    !$r->{verified} || hex_serial($r->{serial}) ne $stored{$_}
} @names[map { int($_ * ($n - 1) / 99) } 0 .. 99];
is scalar(@changed), 0, 'after the reload 100 names across the configuration serve the same certificates'
    or diag "@changed";
is $t->pebble_orders, 0, 'the reload ordered nothing';

# One renewal among them: installed once in every worker, and nothing else.
my $renewed = $names[int($n / 2)];
my $root = $t->pebble_root;
my @workers = sort { $a <=> $b } $t->worker_pids;
$mark = $t->log_mark;
my $res = $t->http_get("/acme?renew=$renewed", method => 'POST');
is $res->{status}, 202, "renew-now for $renewed accepted" or diag $res->{content};
my $new = $t->wait_for(sub {
    my $r = $t->tls_get(name => $renewed, ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 60);
ok $new, "$renewed serves a new certificate, from Pebble" or diag $t->error_log($mark);
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
    my $r = $t->tls_get(name => $_, ca => $store_ca);
    $_ ne $renewed && (!$r->{verified} || hex_serial($r->{serial}) ne $stored{$_})
} @names[0 .. 49], @names[-50 .. -1];
is scalar(@changed), 0, 'the other names keep their certificates' or diag "@changed";
is $t->pebble_orders, 1, 'one order';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
