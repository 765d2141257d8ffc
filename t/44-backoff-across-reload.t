# A reload or a restart keeps the backoff of failing certificates: each
# attempt may count against the CA's limits (Let's Encrypt: 5 failed
# validations per name per hour), and operators reload often. Here one
# name is refused by the CA (6 h backoff) and one cannot be validated
# (1 min backoff); neither is ordered again by a reload or a restart, and
# the log says until when they wait.
use strict;
use warnings;
use Test::More;
use Time::Local qw(timegm);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { domainBlocklist => ['blocked.test'] });
$t->challtest('/add-a', { host => 'down.test.', addresses => ['127.0.0.2'] });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name blocked.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name down.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;

my %next;
for my $name ('blocked.test', 'down.test') {
    my $line = $t->wait_log(qr/acme: certificate "\Q$name\E" from "pebble" failed: /, 30);
    ok $line, "$name: the first order failed";
    $next{$name} = next_attempt($line);
}
my $orders = $t->pebble_orders;

sub failures { my $n = () = $t->error_log =~ /acme: certificate "\Q$_[0]\E" from "pebble" failed: /g; $n }

for my $how ('reload', 'restart') {
    my $mark = $t->log_mark;
    if ($how eq 'reload') {
        $t->reload_nginx;
    } else {
        $t->stop_nginx;
        $t->start_nginx;
    }
    for my $name ('blocked.test', 'down.test') {
        my $line = $t->wait_log(
            qr/acme: certificate "\Q$name\E" needs to be ordered \(missing\), not before /, 15, $mark);
        ok $line, "$how: $name waits";
        like $line, qr/\(after 1 failed attempt\)/, "$how: $name: the backoff is named";
        cmp_ok abs(next_attempt($line, 'not before') - $next{$name}), '<=', 1,
            "$how: $name: the same next attempt as before";
    }
    # Give a wrong engine time to order again (an order against Pebble
    # fails within a second here).
    sleep 3;
    is failures('blocked.test'), 1, "$how: blocked.test was not ordered again";
    is failures('down.test'), 1, "$how: down.test was not ordered again";
    is $t->pebble_orders, $orders, "$how: no new order at the CA";
}

done_testing;

sub next_attempt {
    my ($line, $what) = @_;
    $what //= 'next attempt at';
    my @n = $line =~ /\Q$what\E (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/ or return 0;
    return timegm($n[5], $n[4], $n[3], $n[2], $n[1] - 1, $n[0]);
}
