# Three nginx nodes sharing one Redis (acme_storage): 20 names configured on
# every node are ordered once each in the whole cluster, and every node
# serves all 20, verified against Pebble's root. Pebble validates through
# node 1 only (its httpPort, behind the harness's gate), and nodes 2 and 3
# start first: their orders are answered by node 1 from what they put into
# Redis, node 1 having learned the answers when it came up.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use Time::HiRes qw(sleep);

AcmeTest->requires(root => 1, module => 1);
plan skip_all => 'redis-server is not installed' unless -x '/usr/bin/redis-server';

my $t = AcmeTest->new(timeout => 240, log_level => 'info');
$t->start_redis;
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { httpPort => $t->port('gate') });
my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('http'));
my @nodes = ($t, $t->new_node, $t->new_node);

my @names = map { "n$_.cluster.test" } 1 .. 20;
my $servers = join '', map { <<"EOS" } @names;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate pebble;
    }
EOS
my $conf = <<"EOF2";
http {
    acme_storage redis://127.0.0.1:%%PORT_REDIS%% prefix=t90;
    %%PEBBLE_ISSUER%%
    resolver 127.0.0.1:%%DNS_PORT%%;
$servers}
EOF2
for my $n (@nodes) {
    $n->write_nginx_conf($conf);
    my ($rc, $out) = $n->run_nginx_t;
    is $rc, 0, 'nginx -t accepts acme_storage' or diag $out;
}
$nodes[1]->start_nginx;
$nodes[2]->start_nginx;
ok $t->wait_for(sub { $gate->hit }, timeout => 20), 'nodes 2 and 3 ordered: Pebble validates at node 1';
$nodes[0]->start_nginx;
ok $nodes[0]->wait_log(qr/acme: engine started/, 10), 'node 1 started';
sleep 1;    # its watcher subscribes and takes in the pending answers
$gate->open;

my $root = $t->pebble_root;
my %serial;
my $all = $t->wait_for(sub {
        for my $i (0 .. $#nodes) {
            for my $name (@names) {
                my $r = $nodes[$i]->tls_get(name => $name, ca => $root, timeout => 3);
                return 0 unless $r->{verified};
                $serial{$name}{ $r->{serial} } = 1;
            }
        }
        1;
    }, timeout => 150, interval => 1);
ok $all, 'every node serves all 20 names with certificates verified against Pebble';
is scalar(grep { keys %{ $serial{$_} } == 1 } @names), 20,
    'all three nodes serve the same certificate for each name';
is $t->pebble_orders, 20, 'exactly 20 orders at Pebble for 3 nodes x 20 names';

my @issued = map { scalar(() = $_->error_log =~ /acme: certificate "[^"]+" issued by/g) } @nodes;
is $issued[0] + $issued[1] + $issued[2], 20, 'the nodes together issued 20 certificates'
    or diag "issued per node: @issued";
is $issued[0], 0, 'node 1 ordered none: it found every lease taken, then the certificates';
ok $issued[1] > 0, 'node 2 ordered, validated by Pebble through node 1'
    or diag "issued per node: @issued";

# What the cluster keeps in Redis: items under <prefix>:<issuer>:, no
# leases left once nothing is ordered.
my @crt = split /\n/, $t->redis_cli('--scan', '--pattern', 't90:pebble:*.crt');
is scalar(@crt), 20, '20 certificate chains in Redis under t90:pebble:';
is $t->redis_cli('--scan', '--pattern', 't90:pebble:lease:*'), '', 'no lease is held afterwards';

done_testing;
