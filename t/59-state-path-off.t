# `state_path off` (nginx-acme: no persistent state) keeps the issuer's
# files in a runtime directory, /run/nginx-acme/<id of nginx.conf>/<issuer>,
# rather than a directory called "off": certificates are issued and
# survive a reload, and nothing goes to persistent storage.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use Digest::SHA qw(sha256_hex);
use File::Path qw(remove_tree);

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my $conf = $t->write_nginx_conf(<<'EOF');
http {
    acme_issuer volatile {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path off;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name volatile.test;
        acme_certificate volatile;
    }
}
EOF
my $run = '/run/nginx-acme/' . substr(sha256_hex($conf), 0, 8);
my $state = "$run/volatile";
END { remove_tree($run) if $run }

$t->start_nginx;
my $root = $t->pebble_root;
my $r = $t->wait_for(sub { my $r = $t->tls_get(name => 'volatile.test', ca => $root); $r->{verified} ? $r : undef },
    timeout => 30);
ok $r, 'certificate issued';
opendir(my $dh, $state);
my @crt = $dh ? grep { /^volatile\.test-.*\.crt$/ } readdir $dh : ();
is scalar @crt, 1, "stored in $state";
ok !-e $t->dir . '/off', 'no directory called "off"';

$t->reload_nginx;
is $t->tls_get(name => 'volatile.test', ca => $root)->{serial}, $r->{serial}, 'same certificate after a reload';
ok $t->wait_log(qr/acme: certificate "volatile\.test" is valid until/, 10), 'the new engine found it';
is $t->pebble_orders, 1, 'no new order';

done_testing;
