# What is stored is served again after a reload and after a full restart,
# from the first handshake, and no new order is placed for it.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my $conf = <<'EOF2';
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        return 301 https://$host$request_uri;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name reload.test;
        acme_certificate pebble;
    }
}
EOF2
$t->write_nginx_conf($conf);
$t->start_nginx;
my $https = $t->port('https');
my $root = $t->pebble_root;

sub served { $t->tls_get(name => 'reload.test', port => $https, ca => $root) }

my $first = $t->wait_for(sub { my $r = served(); $r->{verified} ? $r : undef }, timeout => 30);
ok $first, 'certificate issued' or die('no certificate: ' . $t->error_log);
is $t->pebble_orders, 1, 'one order';

# Reload: new workers, new helper; the master reads the store again.
my $mark = $t->log_mark;
my @old = sort $t->worker_pids;
$t->reload_nginx;
my @new = sort $t->worker_pids;
ok !grep({ my $o = $_; grep { $_ == $o } @new } @old), 'reload replaced the workers';
my $r = served();
ok $r->{verified}, 'first handshake after reload verifies';
is $r->{serial}, $first->{serial}, 'same certificate after reload';
ok $t->wait_log(qr/acme: certificate "reload\.test" is valid until/, 10, $mark),
    'new engine found the stored certificate';
sleep 1;
is $t->pebble_orders, 1, 'no new order after reload';

# Full restart with the store in place.
$t->stop_nginx;
$mark = $t->log_mark;
$t->start_nginx;
$r = served();
ok $r->{verified}, 'first handshake after restart verifies';
is $r->{serial}, $first->{serial}, 'same certificate after restart';
ok $t->wait_log(qr/acme: certificate "reload\.test" is valid until/, 10, $mark),
    'engine found the stored certificate after restart';
sleep 1;
is $t->pebble_orders, 1, 'no new order after restart';

# A reload that changes the names orders a certificate for the new names.
(my $changed = $conf) =~ s/server_name reload\.test;/server_name reload.test new.reload.test;/;
$t->write_nginx_conf($changed);
$t->reload_nginx;
my $n = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'new.reload.test', port => $https, ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $n, 'changed server_name: certificate for the new names';
is_deeply [sort @{ $n->{sans} || [] }], [qw(new.reload.test reload.test)], 'both names in it';
is $t->pebble_orders, 2, 'exactly one more order';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts in the error log';

done_testing;
