# stream{} beside an http block: the stream servers use the http block's
# issuer; a stream server and an http server that name the same identifier
# share one certificate (one order, one file, the same serial on both
# listeners); a name only a stream server has is validated by http-01,
# answered by the http block's port-80 server. From nginx 1.25.5 (which has
# server_name in stream) an acme_certificate without identifiers takes
# them from the stream server's server_name.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, stream => 1);

my $t = AcmeTest->new(timeout => 120, log_level => 'info');
my $backend_log = $t->start_backend('backend');
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });

my $named = AcmeTest->nginx_at_least('1.25.5');
my $conf = <<'EOF2';
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge http-01;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        location = /status { acme_status; }
        location / { return 404; }
    }
    server {
        listen 127.0.0.1:%%PORT_WEB%% ssl;
        server_name shared.test;
        acme_certificate pebble;
        location / { return 200 "http\n"; }
    }
}
stream {
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        acme_certificate pebble shared.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
    server {
        listen 127.0.0.1:%%PORT_ONLY%% ssl;
        acme_certificate pebble only.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
    #NAMED#
}
EOF2
my $named_server = <<'EOF2';
server {
        listen 127.0.0.1:%%PORT_NAMED%% ssl;
        server_name named.test www.named.test;
        acme_certificate pebble;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
EOF2
$conf =~ s/#NAMED#/$named ? $named_server : ''/e;
$t->write_nginx_conf($conf, stream => 1);
$t->start_nginx;
my $root = $t->pebble_root;

my %got;
ok $t->wait_for(sub {
    for ([web => 'shared.test'], [https => 'shared.test'], [only => 'only.test'],
         $named ? [named => 'named.test'] : ()) {
        my ($port, $name) = @$_;
        next if $got{$port};
        my $r = $t->tls_get(name => $name, port => $t->port($port), ca => $root, request => '/');
        $got{$port} = $r if $r->{verified};
    }
    keys %got == ($named ? 4 : 3)
}, timeout => 60), 'all listeners serve a certificate that verifies against the CA root'
    or die('not issued: ' . $t->error_log);

is $got{web}{serial}, $got{https}{serial},
    'the http and the stream server for shared.test serve the same certificate';
is "@{ $got{https}{sans} }", 'shared.test', 'for shared.test';
is $got{web}{body}, "http\n", 'the http server answers itself';
is $got{https}{body}, "backend\n", 'the stream server proxies to the backend';
is "@{ $got{only}{sans} }", 'only.test', 'the stream-only name has its own certificate';
isnt $got{only}{serial}, $got{https}{serial}, 'a different one';

my @shared = glob($t->dir . '/acme/shared.test-*.crt');
is scalar(@shared), 1, 'one stored certificate for shared.test';
is $t->pebble_orders, $named ? 3 : 2,
    'one order per certificate, none for the second server of shared.test';
SKIP: {
    skip 'nginx ' . AcmeTest->nginx_version . ' has no server_name in stream', 1 unless $named;
    is "@{ [sort @{ $got{named}{sans} }] }", 'named.test www.named.test',
        'a stream acme_certificate without identifiers takes the server_name';
}
like $t->error_log, qr/answered http-01 challenge/, 'http-01 answered by the http block';
unlike $t->error_log, qr/answering tls-alpn-01/, 'no tls-alpn-01 (the issuer uses http-01)';

# The status page (in the http block) lists the stream certificates too:
# the board is sized for them, though the http block made it first.
use JSON::PP ();
my $status = $t->wait_for(sub {
    my $r = $t->http_get('/status', host => 'status.test');
    my $s = ($r->{status} // 0) == 200 && eval { JSON::PP::decode_json($r->{content}) } or return;
    my %state = map { $_->{names}[0] => $_->{state} } @{ $s->{certificates} };
    (grep { ($state{$_} // '') eq 'valid' } keys %state) == ($named ? 3 : 2) ? \%state : undef
}, timeout => 20);
is_deeply [sort keys %{ $status || {} }], [sort 'shared.test', 'only.test', $named ? 'named.test' : ()],
    'acme_status lists the shared and the stream-only certificates, valid'
    or diag $t->http_get('/status', host => 'status.test')->{content};
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
