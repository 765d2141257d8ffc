# The node that holds a certificate's lease is killed (kill -9, every
# process of it) in the middle of the order, while Pebble's validation
# waits at the gate: its lease expires, another node takes it over,
# resumes the saved order from Redis and finishes it. One certificate, at
# most one extra order, served by the surviving nodes.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use Time::HiRes qw(sleep time);

AcmeTest->requires(root => 1, module => 1);
plan skip_all => 'redis-server is not installed' unless -x '/usr/bin/redis-server';

my $t = AcmeTest->new(timeout => 200, log_level => 'info');
$t->start_redis;
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { httpPort => $t->port('gate') });
my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('http'));
my @nodes = ($t, $t->new_node, $t->new_node);

my $conf = <<'EOF2';
http {
    acme_storage redis://127.0.0.1:%%PORT_REDIS%% prefix=t92;
    %%PEBBLE_ISSUER%%
    resolver 127.0.0.1:%%DNS_PORT%%;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name killed.cluster.test;
        acme_certificate pebble;
    }
}
EOF2
$_->write_nginx_conf($conf) for @nodes;

# Node 2 alone: it takes the lease and orders; Pebble's validation (through
# node 1's port) waits at the gate.
$nodes[1]->start_nginx;
ok $t->wait_for(sub { $gate->hit }, timeout => 30), 'node 2 is ordering';
is $t->redis_cli('--scan', '--pattern', 't92:pebble:lease:*') =~ tr/\n// + 1, 1,
    'one lease is held';
$nodes[0]->start_nginx;
$nodes[2]->start_nginx;
ok $nodes[0]->wait_log(qr/acme: engine started/, 10), 'node 1 started';
ok $nodes[2]->wait_log(qr/acme: engine started/, 10), 'node 3 started';
sleep 1;

my $pids = $nodes[1]->nginx_pids;
my @all = grep { $_ } ($pids->{master}, $pids->{helper}, @{ $pids->{workers} || [] });
ok $pids->{helper}, 'node 2 has a helper';
kill 'KILL', @all;
my $killed = time;
$gate->open;    # node 1 answers node 2's challenge from Redis

my $root = $t->pebble_root;
my %serial;
ok $t->wait_for(sub {
        for my $i (0, 2) {
            my $r = $nodes[$i]->tls_get(name => 'killed.cluster.test', ca => $root, timeout => 3);
            return 0 unless $r->{verified};
            $serial{ $r->{serial} } = 1;
        }
        1;
    }, timeout => 90, interval => 0.5), 'nodes 1 and 3 serve a verified certificate';
my $took = time - $killed;
diag sprintf 'issued %.1f s after node 2 was killed', $took;
cmp_ok $took, '>=', 10, 'only after the lease of the dead node expired';
is scalar(keys %serial), 1, 'one certificate, served by both';
cmp_ok $t->pebble_orders, '<=', 2, 'at most one extra order';
my @logs = map { $_->error_log } @nodes[0, 2];
my $issued = grep { /acme: certificate "killed\.cluster\.test" issued by/ } map { split /\n/ } @logs;
is $issued, 1, 'one of the surviving nodes finished it';
my $resumed = grep { /acme: resuming order .* for certificate "killed\.cluster\.test"/ }
    map { split /\n/ } @logs;
ok $resumed == 1 ? $t->pebble_orders == 1 : $t->pebble_orders == 2,
    'it resumed the dead node\'s order from Redis, or made the one extra order'
    or diag "resumed: $resumed, orders: " . $t->pebble_orders;

done_testing;
