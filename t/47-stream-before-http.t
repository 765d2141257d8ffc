# A stream block without ACME directives before an http block that has
# acme_certificate, with ngx_stream_acme_module loaded (as Debian's
# packages load it for every configuration): the http server still gets,
# serves and hot-swaps its certificate, and the stream server proxies as
# before.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, stream => 1);

my $t = AcmeTest->new(timeout => 90);
$t->start_backend('backend');
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2', stream => 1);
stream {
    server {
        listen 127.0.0.1:%%PORT_PLAIN%%;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
}
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name web.test;
        acme_certificate pebble;
        location / { return 200 "web\n"; }
    }
}
EOF2
my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t passes' or diag $out;
$t->start_nginx;
my $root = $t->pebble_root;
my $r = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'web.test', ca => $root, request => '/');
    $r->{verified} ? $r : undef
}, timeout => 60);
ok $r, 'the http server gets and serves its certificate' or diag $t->error_log;
is $r && $r->{body}, "web\n", 'and answers over it';
my $plain = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('plain'));
print $plain "GET / HTTP/1.0\r\n\r\n" if $plain;
my $reply = $plain ? do { local $/; <$plain> } : '';
like $reply // '', qr/\r\n\r\nbackend\n\z/, 'the stream server proxies to its backend';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
