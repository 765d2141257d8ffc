# kill -9 of the helper while an http-01 answer is published: nothing in
# the dead helper withdraws it, and the workers would serve it for as long
# as the zone lives. The respawned engine withdraws every answer left over
# the first time it has nothing running (not before: a resumed order needs
# its answer served until it has published it again).
#
# The saved order is deleted before the kill: a resumed order publishes its
# own token again, which would hide the stale one. The gate holds Pebble's
# validations, so that the kill happens while the answer is published.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 120);
my $dir = $t->dir;
my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('http'));

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { httpPort => $t->port('gate') });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name stale.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;

ok $t->wait_for(sub { $gate->hit }, timeout => 30), 'the CA is validating order 1';
my $old = $t->wait_for(sub { token(1) }, timeout => 10);
ok $old, 'its token found in the CA log';
my $r = challenge($old);
is $r->{status}, 200, 'nginx serves its answer';
my ($thumbprint) = ($r->{content} // '') =~ /^\Q$old\E\.([A-Za-z0-9_-]{43})$/;
ok $thumbprint, 'the key authorization' or diag explain $r;

my @saved = glob("$dir/acme/stale.test-*.order.json");
is scalar @saved, 1, 'order 1 saved';
unlink @saved;
my $helper = $t->helper_pid;
my $mark = $t->log_mark;
kill 'KILL', $helper;
ok $t->wait_for(sub { my $p = $t->helper_pid; $p && $p != $helper }, timeout => 10),
    'helper respawned';

# Order 2's validation waits at the gate too, so its answer can be checked
# while published.
my $new = $t->wait_for(sub { token(2) }, timeout => 30);
ok $new, 'the CA is validating order 2';
isnt $new, $old, 'with a token of its own';
my $r2 = challenge($new);
is $r2->{status}, 200, 'nginx serves the new answer';
is $r2->{content}, "$new." . ($thumbprint // ''), 'with the same account thumbprint';
is challenge($old)->{status}, 200, 'the zone is left alone while an order runs';

$gate->open;
my $cert = $t->wait_for(sub {
    my $c = $t->tls_get(name => 'stale.test', ca => $root);
    $c->{verified} ? $c : undef
}, timeout => 30);
ok $cert, 'certificate issued from order 2';
is_deeply $cert && $cert->{sans}, ['stale.test'], 'for stale.test';
my $line = $t->wait_log(qr/acme: withdrew \d+ challenge answer\(s\) left by a previous helper process/,
    10, $mark);
ok $line, 'then the engine withdraws what the killed one left';
my ($withdrawn) = ($line // '') =~ /withdrew (\d+)/;
is $withdrawn, 1, 'the answer of order 1';
is challenge($old)->{status}, 404, 'which is no longer served';
is $t->pebble_orders, 2, 'two orders: the killed one and the new one';

done_testing;

# The first http-01 token Pebble tried after it added order $n.
sub token {
    my ($n) = @_;
    my @orders = split /^.*Added order "[^"]+" to the db.*$/m, $t->pebble_log;
    my ($token) = ($orders[$n] // '')
        =~ m{Attempting to validate w/ HTTP: http://stale\.test:\d+/\.well-known/acme-challenge/([A-Za-z0-9_-]+)};
    return $token;
}

sub challenge {
    my ($token) = @_;
    return $t->http_get("/.well-known/acme-challenge/$token", host => 'stale.test');
}
