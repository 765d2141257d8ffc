# master_process off: no helper process exists, the engine runs in the
# single nginx process and the certificate is still issued and served.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2', master_process => 0);
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name single.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
ok $t->wait_for(sub {
    $t->tls_get(name => 'single.test', port => $t->port('https'), ca => $root)->{verified}
}, timeout => 30), 'certificate issued and served by the single process';
like $t->error_log, qr/acme: engine started/, 'engine ran in the single process';
ok !$t->helper_pid, 'no helper process';
$t->stop_nginx;
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]|signal 11|core dumped/, 'clean exit';

done_testing;
