# Two nginx nodes sharing one Redis with acme_storage encrypt_key_file=:
# the private keys in Redis (account key, certificate keys) are sealed
# with AES-256-GCM, never PEM; both nodes serve both names with verified
# certificates (node 2 opened the keys node 1 sealed, or the other way
# round); each node's state directory keeps the keys as plain 0600 files.
# Then node 2 comes back with another key: the sealed keys do not open,
# which its log says; it orders nothing, even with an account key of its
# own, and Redis keeps the keys as they were. Last, a plain
# key in Redis (stored before encrypt_key_file=) is used and sealed.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use Time::HiRes qw(sleep);

AcmeTest->requires(root => 1, module => 1);
plan skip_all => 'redis-server is not installed' unless -x '/usr/bin/redis-server';

my $t = AcmeTest->new(timeout => 180, log_level => 'info');
$t->start_redis;
# Pebble validates through node 1 (behind the gate): node 2 orders, node 1
# answers from Redis and takes in the certificates node 2 sealed.
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { httpPort => $t->port('gate') });
my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('http'));
my @nodes = ($t, $t->new_node);

my $hex = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
my @names = map { "e$_.cluster.test" } 1 .. 2;
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
    acme_storage redis://127.0.0.1:%%PORT_REDIS%% prefix=t99 encrypt_key_file=%%TESTDIR%%/storage.key;
    %%PEBBLE_ISSUER%%
    resolver 127.0.0.1:%%DNS_PORT%%;
$servers}
EOF2
for my $n (@nodes) {
    $n->write_file('storage.key', "$hex\n");
    $n->write_nginx_conf($conf);
    my ($rc, $out) = $n->run_nginx_t;
    is $rc, 0, 'nginx -t accepts encrypt_key_file' or diag $out;
}
$nodes[1]->start_nginx;
ok $t->wait_for(sub { $gate->hit }, timeout => 20), 'node 2 ordered: Pebble validates at node 1';
$nodes[0]->start_nginx;
ok $nodes[0]->wait_log(qr/acme: engine started/, 10), 'node 1 started';
sleep 1;    # its watcher subscribes and takes in the pending answers
$gate->open;

my $root = $t->pebble_root;
my %serial;
my $all = $t->wait_for(sub {
        for my $n (@nodes) {
            for my $name (@names) {
                my $r = $n->tls_get(name => $name, ca => $root, timeout => 3);
                return 0 unless $r->{verified};
                $serial{$name}{ $r->{serial} } = 1;
            }
        }
        1;
    }, timeout => 120, interval => 1);
ok $all, 'both nodes serve both names, verified against Pebble';
is scalar(grep { keys %{ $serial{$_} } == 1 } @names), 2, 'both nodes serve the same certificates';
is $t->pebble_orders, 2, 'two orders for 2 nodes x 2 names';

my @keys = grep { length } split /\n/, $t->redis_cli('--scan', '--pattern', 't99:pebble:*.key');
is scalar(@keys), 3, 'account key and two certificate keys in Redis' or diag "@keys";
for my $k (@keys) {
    my $v = $t->redis_cli('GET', $k);
    unlike $v, qr/PRIVATE KEY/, "$k holds no PEM";
    like $v, qr/^acme-sealed-v1:[A-Za-z0-9_-]{100,}$/, "$k is sealed";
}
my ($cert_key) = grep { !/account\.key$/ } @keys;
like $t->redis_cli('GET', ($cert_key // '') =~ s/\.key$/.crt/r), qr/BEGIN CERTIFICATE/,
    'certificate chains are stored as they are';

for my $n (@nodes) {
    my @files = glob($n->dir . '/acme/*.key');
    is scalar(@files), 3, 'the state directory has the three keys' or diag "@files";
    for my $f (@files) {
        like AcmeTest::_slurp($f), qr/BEGIN [A-Z ]*PRIVATE KEY/, "$f is PEM in the local cache";
        is sprintf('%04o', (stat $f)[2] & 07777), '0600', "$f is 0600";
    }
}

# Another key on node 2: what Redis holds does not open. First with an
# account key of its own (a file), so that its issuer could order: it must
# not, or the other nodes' keys would be replaced by ones they cannot open.
my %before = map { $_ => $t->redis_cli('GET', $_) } @keys;
$nodes[1]->stop_nginx;
my $other = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
$nodes[1]->write_file('storage.key', "$other\n");
my $account = $nodes[1]->dir . '/account.pem';
system('openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-out', $account) == 0 or die 'openssl genpkey failed';
chmod 0644, $account;
(my $own_account = $conf) =~ s{^[ \t]*%%PEBBLE_ISSUER%%[ \t]*\n}{<<"EOI"}me;
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        account_key $account;
    }
EOI
$nodes[1]->write_nginx_conf($own_account);
my $restart = $nodes[1]->log_mark;
$nodes[1]->start_nginx;
my $sealed_cert_key = qr/\[error\].*acme: certificate "e1\.cluster\.test": redis key t99:pebble:e1\.cluster\.test-[0-9a-f]{8}\.key: does not open with the configured encrypt_key_file .*; not renewed until it opens/;
ok $nodes[1]->wait_log($sealed_cert_key, 30, $restart),
    'node 2 logs that the certificate key does not open with its key'
    or diag $nodes[1]->error_log($restart);
sleep 3;    # an order would be done by now: node 1 answers its challenges
unlike $nodes[1]->error_log($restart), qr/needs to be ordered|acme: certificate "[^"]+" issued/,
    'it is not taken as missing: nothing is ordered';
is $t->pebble_orders, 2, 'no order reached the CA';
is_deeply { map { $_ => $t->redis_cli('GET', $_) } @keys }, \%before,
    'the keys in Redis are still the cluster\'s';

# Then with the cluster's account key, which does not open either.
$nodes[1]->stop_nginx;
$nodes[1]->write_nginx_conf($conf);
$restart = $nodes[1]->log_mark;
$nodes[1]->start_nginx;
ok $nodes[1]->wait_log(qr/\[error\].*acme: issuer "pebble": redis key t99:pebble:account\.key: does not open with the configured encrypt_key_file/, 30),
    'node 2 logs that the account key does not open with its key'
    or diag $nodes[1]->error_log($restart);
ok $nodes[1]->wait_log($sealed_cert_key, 10, $restart), 'and that the certificate key does not open';
unlike $nodes[1]->error_log($restart), qr/needs to be ordered/, 'it is not taken as missing';
# (The watcher's "not taken in" comes with its periodic resync, which may
# come after the test; a key that does not open must not stop it.)
unlike $nodes[1]->error_log, qr/serving what this node has/, 'the watcher keeps watching';
for my $name (@names) {
    ok $nodes[1]->tls_get(name => $name, ca => $root)->{verified},
        "node 2 still serves $name from its cache";
}
is_deeply { map { $_ => $t->redis_cli('GET', $_) } @keys }, \%before,
    'the keys in Redis were not overwritten';

# A key stored before encrypt_key_file= was set (PEM in Redis): node 2,
# back with the right key, uses it and writes it back sealed.
my $plain = AcmeTest::_slurp($t->dir . '/acme/' . ($cert_key =~ s/^t99:pebble://r));
$t->redis_cli('SET', $cert_key, $plain);
like $t->redis_cli('GET', $cert_key), qr/PRIVATE KEY/, 'a plain key is put into Redis';
$nodes[1]->stop_nginx;
$nodes[1]->write_file('storage.key', "$hex\n");
$nodes[1]->start_nginx;
ok $nodes[1]->wait_log(qr/\Qredis key $cert_key was stored unencrypted: encrypted it\E/, 30),
    'node 2 says it encrypted the plain key' or diag $nodes[1]->error_log;
like $t->redis_cli('GET', $cert_key), qr/^acme-sealed-v1:/, 'the key in Redis is sealed again';
ok $nodes[1]->tls_get(name => $_, ca => $root)->{verified}, "node 2 serves $_" for @names;
is $t->pebble_orders, 2, 'nothing was ordered again';

# A node joining the cluster once its certificates exist: its cache is
# empty, it orders nothing and its workers serve what Redis has.
my $joiner = $t->new_node;
$joiner->write_file('storage.key', "$hex\n");
$joiner->write_nginx_conf($conf);
$joiner->start_nginx;
ok $t->wait_for(sub {
        !grep { !$joiner->tls_get(name => $_, ca => $root, timeout => 3)->{verified} } @names;
    }, timeout => 20, interval => 0.5), 'a node joining later serves both names'
    or diag $joiner->error_log;
is $t->pebble_orders, 2, 'the joining node ordered nothing';

done_testing;
