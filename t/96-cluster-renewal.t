# Three nodes sharing one Redis, tls-alpn-01 only: Pebble validates through
# node 1 (its tlsPort, behind the gate) while nodes 2 and 3 order. Then a
# renewal on one node (renew-now on node 2) is served by all three within
# 2 s of being issued. Then Redis is stopped for 30 s: every node keeps
# serving; a renewal requested on node 3 in that window waits and is done,
# once, after Redis is back (a Redis without persistence: the nodes put
# back what it lost from their caches, and nothing else is ordered).
use strict;
use warnings;
use Test::More;
use AcmeTest;
use Time::HiRes qw(sleep time);
use JSON::PP qw(decode_json);

AcmeTest->requires(root => 1, module => 1);
plan skip_all => 'redis-server is not installed' unless -x '/usr/bin/redis-server';

my $t = AcmeTest->new(timeout => 280, log_level => 'info');
$t->start_redis;
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { tlsPort => $t->port('gate') });
my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('https'));
my @nodes = ($t, $t->new_node, $t->new_node);

my @names = map { "a$_.cluster.test" } 1 .. 3;
my $servers = join '', map { <<"EOS" } @names;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate pebble;
    }
EOS
my $conf = <<"EOF2";
http {
    acme_storage redis://127.0.0.1:%%PORT_REDIS%%/3 prefix=t91;
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge tls-alpn-01;
    }
    resolver 127.0.0.1:%%DNS_PORT%%;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /acme { acme_status renew; }
    }
$servers}
EOF2
$_->write_nginx_conf($conf) for @nodes;

$nodes[1]->start_nginx;
$nodes[2]->start_nginx;
ok $t->wait_for(sub { $gate->hit }, timeout => 20), 'an order waits for validation at node 1';
$nodes[0]->start_nginx;
ok $nodes[0]->wait_log(qr/acme: engine started/, 10), 'node 1 started';
sleep 1;
$gate->open;

my $root = $t->pebble_root;
sub serials {
    my ($name) = @_;
    return map { $_->tls_get(name => $name, ca => $root, timeout => 3)->{serial} // '' } @nodes;
}
sub all_verified {
    for my $n (@nodes) {
        for my $name (@names) {
            return 0 unless $n->tls_get(name => $name, ca => $root, timeout => 3)->{verified};
        }
    }
    return 1;
}
ok $t->wait_for(\&all_verified, timeout => 90, interval => 0.5),
    'tls-alpn-01: every node serves the three names, verified';
is $t->pebble_orders, 3, 'three orders for three names on three nodes';
my @issued = map { scalar(() = $_->error_log =~ /acme: certificate "[^"]+" issued by/g) } @nodes;
is $issued[0], 0, 'node 1 ordered none';
ok $issued[1] + $issued[2] == 3, 'nodes 2 and 3 ordered, validated through node 1'
    or diag "issued per node: @issued";
is $t->redis_cli('-n', 3, 'EXISTS', 't91:pebble:account.key'), '1',
    'the cluster keeps one account key, in the database of the URL';

# A renewal on node 2 reaches every node within 2 s of its issuance. $old
# is node 1's: until both its workers have the certificate, one may still
# answer with the placeholder.
$nodes[0]->wait_installed($names[0]) or die('not installed by every worker of node 1');
my ($old) = serials($names[0]);
my $mark = $nodes[1]->log_mark;
my $r = $nodes[1]->http_get("/acme?renew=$names[0]", host => 'status.test', method => 'POST');
is $r->{status}, 202, 'renew-now on node 2' or diag explain $r;
my $line = $nodes[1]->wait_log(qr/acme: certificate "\Q$names[0]\E" issued by/, 60, $mark);
ok $line, 'node 2 renewed it';
my $issued_at = time;
my $spread = $t->wait_for(sub {
        my @s = serials($names[0]);
        return 0 if grep { $_ eq '' || $_ eq $old } @s;
        return 0 unless $s[0] eq $s[1] && $s[1] eq $s[2];
        (time - $issued_at) || 0.001;
    }, timeout => 10, interval => 0.05);
diag sprintf 'renewal served by all three nodes %.2f s after node 2 logged it', $spread // -1;
ok defined $spread && $spread <= 2, 'all three nodes serve the renewed certificate within 2 s'
    or diag "took " . ($spread // 'more than 10') . ' s';
is $t->pebble_orders, 4, 'the renewal was one order';
# The other nodes' engines take it in too: their status pages show it.
my ($new) = serials($names[0]);
sub status_serial {
    my ($n, $name) = @_;
    my $r = $n->http_get('/acme', host => 'status.test');
    my $j = eval { decode_json($r->{content}) } or return '';
    my ($c) = grep { $_->{names}[0] eq $name } @{ $j->{certificates} || [] };
    return $c && $c->{keys}[0] ? uc($c->{keys}[0]{serial} // '') : '';
}
# The status page drops the leading zero nibble that a client's hex shows.
my $new_hex = uc($new // '') =~ s/^0+//r;
ok $t->wait_for(sub { status_serial($nodes[0], $names[0]) eq $new_hex
            && status_serial($nodes[2], $names[0]) eq $new_hex }, timeout => 10),
    'nodes 1 and 3 report the renewed certificate on their status pages'
    or diag 'node 1: ' . status_serial($nodes[0], $names[0]) . ", served $new";

# The status page shows the storage and its state.
sub storage_state {
    my ($n) = @_;
    my $r = $n->http_get('/acme', host => 'status.test');
    my $j = eval { decode_json($r->{content}) } or return '';
    my ($is) = grep { $_->{name} eq 'pebble' } @{ $j->{issuers} || [] };
    return $is && $is->{storage} ? "$is->{storage}{type}/$is->{storage}{state}" : '';
}
ok $t->wait_for(sub { storage_state($nodes[2]) eq 'redis/connected' }, timeout => 6),
    'status page: storage redis, connected'
    or diag 'status page: ' . storage_state($nodes[2]);

# Redis stopped for 30 s.
my $orders = $t->pebble_orders;
my ($before) = serials($names[1]);
$t->stop_redis;
my $m3 = $nodes[2]->log_mark;
$r = $nodes[2]->http_get("/acme?renew=$names[1]", host => 'status.test', method => 'POST');
is $r->{status}, 202, 'renew-now on node 3 while Redis is down';
my $down_until = time + 30;
my $serving = 1;
while (time < $down_until) {
    $serving = 0 unless all_verified();
    sleep 2;
}
ok $serving, 'every node served every name throughout the 30 s without Redis';
is storage_state($nodes[2]), 'redis/unreachable', 'status page: storage unreachable';
is $t->pebble_orders, $orders, 'no order while Redis is down';
ok $nodes[2]->wait_log(qr/redis|storage/i, 1, $m3), 'node 3 logs that the store is out of reach';
$t->start_redis;
ok $nodes[2]->wait_log(qr/acme: certificate "\Q$names[1]\E" issued by/, 60, $m3),
    'the renewal requested in the window happens once Redis is back';
ok $t->wait_for(sub {
        my @s = serials($names[1]);
        !grep { $_ eq '' || $_ eq $before || $_ ne $s[0] } @s;
    }, timeout => 10, interval => 0.1), 'and is served by all three';
ok $t->wait_for(sub { storage_state($nodes[2]) eq 'redis/connected' }, timeout => 10),
    'status page: connected again';
sleep 6;    # a look at the leases of the others (every 5 s) orders nothing
is $t->pebble_orders, $orders + 1, 'one order after the outage, nothing ordered twice';
ok all_verified(), 'every node still serves every name';

done_testing;
