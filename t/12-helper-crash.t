# kill -9 of the helper process: the master respawns it and the engine
# resumes from the store (and can still order what is missing).
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name crash.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $https = $t->port('https');
my $root = $t->pebble_root;

# Every worker swaps on its own timer: wait until several handshakes in a
# row (spread over the workers) get the same issued certificate.
my $serial;
ok $t->wait_for(sub {
        my @s = map { my $r = $t->tls_get(name => 'crash.test', port => $https, ca => $root);
                      $r->{verified} ? $r->{serial} : '' } 1 .. 6;
        return 0 if grep { $_ ne $s[0] || $_ eq '' } @s;
        $serial = $s[0];
    }, timeout => 30), 'certificate issued and served by every worker';
my @workers = sort $t->worker_pids;

my $helper = $t->helper_pid;
ok $helper, "helper process running ($helper)";
# What a helper killed in the middle of a store write leaves: the
# temporary file of a write that was never renamed.
my $unfinished = $t->dir . "/acme/crash.test-0000.key.tmp.$helper.$helper";
$t->write_file($unfinished, "half a key\n");
my $mark = $t->log_mark;
kill 'KILL', $helper;
my $respawned = $t->wait_for(sub { my $p = $t->helper_pid; $p && $p != $helper ? $p : undef },
                             timeout => 10);
ok $respawned, 'master respawned the helper';
ok $t->wait_log(qr/acme: engine started/, 10, $mark), 'engine started again';
ok $t->wait_log(qr/acme: certificate "crash\.test" is valid until/, 10, $mark),
    'engine resumed from the store';
ok !-e $unfinished, 'the unfinished write is removed';
like $t->error_log($mark),
    qr/acme: removed 1 unfinished file\(s\) a killed helper left in "\Q${\ $t->dir}\E\/acme"/,
    'and that is logged';
is_deeply [sort $t->worker_pids], \@workers, 'workers untouched';
is $t->tls_get(name => 'crash.test', port => $https, ca => $root)->{serial}, $serial,
    'still serving the same certificate';
sleep 1;
is $t->pebble_orders, 1, 'no new order';

# Remove the stored certificate and kill the helper again: the new engine
# orders it again and the workers pick it up.
unlink glob($t->dir . '/acme/crash.test-*.crt');
$mark = $t->log_mark;
$helper = $t->helper_pid;
kill 'KILL', $helper;
ok $t->wait_log(qr/acme: certificate "crash\.test" issued by "pebble"/, 30, $mark),
    'missing certificate ordered by the respawned engine';
ok $t->wait_for(sub {
    my $r = $t->tls_get(name => 'crash.test', port => $https, ca => $root);
    $r->{verified} && $r->{serial} ne $serial
}, timeout => 10), 'workers serve the new certificate';
is $t->pebble_orders, 2, 'exactly one more order';

done_testing;
