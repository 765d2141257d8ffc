# First light: two managed servers (one with two names) behind a port-80
# server that redirects everything get Pebble certificates by http-01, hot
# swapped into the running workers; the store holds what it should.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        contact admin@example.test;
        accept_terms_of_service;
    }
    # An issuer nobody answers for: its certificate stays the fallback.
    acme_issuer nowhere {
        uri https://127.0.0.1:%%PORT_CLOSED%%/dir;
        state_path %%TESTDIR%%/nowhere;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name _;
        location / { return 301 https://$host$request_uri; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test www.example.test;
        acme_certificate pebble;
        location / { return 200 "example\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name second.test;
        acme_certificate pebble;
        location / { return 200 "second\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name pending.test;
        acme_certificate nowhere;
    }
}
EOF2

$t->start_nginx;
my $https = $t->port('https');
my @workers = sort $t->worker_pids;
is scalar @workers, 2, 'two workers';

# Before any issuance (and for as long as the CA cannot be reached) the
# handshake succeeds with the in-memory fallback.
my $fallback = $t->tls_get(name => 'pending.test', port => $https, request => '/');
ok $fallback->{ok}, 'handshake succeeds before issuance' or diag $fallback->{error};
is $fallback->{subject_cn}, 'acme fallback', 'fallback certificate served';

my $root = $t->pebble_root;
my %want = ('example.test' => [qw(example.test www.example.test)],
            'www.example.test' => [qw(example.test www.example.test)],
            'second.test' => ['second.test']);
for my $name (sort keys %want) {
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, port => $https, ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 30);
    ok $r, "$name: chain verifies against Pebble's root" or next;
    is_deeply [sort @{ $r->{sans} }], $want{$name}, "$name: exactly the configured names";
    is $r->{status}, 200, "$name: request served over the new certificate";
    is $r->{key_type}, 'ec', "$name: ECDSA key by default";
    is $r->{key_bits}, 256, "$name: P-256";
    cmp_ok $r->{not_after}, '>', time + 86400, "$name: valid for more than a day";
}

is_deeply [sort $t->worker_pids], \@workers, 'same worker processes: hot swap, no reload';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts in the error log';
like $t->error_log, qr/acme: certificate "example\.test" issued by "pebble", valid until \d{4}-\d\d-\d\d [\d:]+ UTC, renewal at /,
    'issuance logged for the operator';
is $t->pebble_orders, 2, 'one order per certificate';

# http-01 is answered before the redirect; anything else is not ours.
my $r = $t->http_get('/.well-known/acme-challenge/unknown-token_1', host => 'example.test');
is $r->{status}, 404, 'unknown token: 404, not the redirect';
$r = $t->http_get('/.well-known/acme-challenge/bad.token', host => 'example.test');
is $r->{status}, 301, 'malformed token is left to the server (redirect)';
$r = $t->http_get('/index.html', host => 'example.test');
is $r->{status}, 301, 'other requests redirect as configured';

# The store.
my $state = $t->dir . '/acme';
my @st = stat $state;
is sprintf('%o', $st[2] & 07777), '700', 'state directory 0700';
is scalar getpwuid($st[4]), 'nobody', 'state directory owned by the worker user';
for my $f ('account.key', 'account.json') {
    ok -s "$state/$f", "$f stored";
}
is sprintf('%o', (stat "$state/account.key")[2] & 07777), '600', 'account.key 0600';

opendir my $dh, $state or die;
my @files = sort grep { !/^\./ } readdir $dh;
my @crt = grep { /\.crt$/ } @files;
is scalar @crt, 2, 'two certificates stored' or diag "@files";
like $_, qr/^(?:example\.test|second\.test)-[0-9a-f]{8}\.crt$/, "file name $_" for @crt;
for my $crt (@crt) {
    (my $base = $crt) =~ s/\.crt$//;
    is sprintf('%o', (stat "$state/$base.key")[2] & 07777), '600', "$base.key 0600";
    my $pem = do { local (@ARGV, $/) = "$state/$crt"; <> };
    my $n = () = $pem =~ /BEGIN CERTIFICATE/g;
    cmp_ok $n, '>=', 2, "$crt holds the full chain";
    my $json = do { local (@ARGV, $/) = "$state/$base.json"; <> };
    my $meta = JSON::PP::decode_json($json);
    ok $meta->{not_after} > time && $meta->{renewal_at} < $meta->{not_after}, "$base.json: validity and renewal time";
    is $meta->{key_type}, 'ecdsa:256', "$base.json: key type";
    ok grep({ $_ eq ($base =~ /^example/ ? 'www.example.test' : 'second.test') } @{ $meta->{names} }),
        "$base.json: names";
}
ok !grep({ /\.tmp/ } @files), 'no temporary files left';
my $account = JSON::PP::decode_json(do { local (@ARGV, $/) = "$state/account.json"; <> });
like $account->{url}, qr{^https://127\.0\.0\.1:\d+/my-account/}, 'account.json: account URL';

done_testing;
