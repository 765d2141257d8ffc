# The status page: acme_status answers JSON from the status zone on any
# worker, right after issuance, a failure, a helper crash and a reload;
# `acme_status renew` renews a certificate now (new key, new serial) and a
# read-only status location refuses POST with 405.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use JSON::PP;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    acme_issuer nowhere {
        uri https://127.0.0.1:%%PORT_CLOSED%%/dir;
        state_path %%TESTDIR%%/nowhere;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /status { acme_status; }
        location = /manage {
            acme_status renew;
            allow 127.0.0.1;
            deny all;
        }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test www.example.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name pending.test;
        acme_certificate nowhere;
    }
}
EOF2

$t->start_nginx;

sub status {
    my (%opt) = @_;
    my $r = $t->http_get($opt{path} // '/status', host => 'status.test');
    return undef unless ($r->{status} // 0) == 200;
    my $s = eval { decode_json($r->{content}) } or diag "not JSON: $@ $r->{content}";
    return $s;
}
sub cert_of {
    my ($s, $name) = @_;
    (grep { $_->{names}[0] eq $name } @{ $s->{certificates} })[0];
}

my $s = $t->wait_for(sub {
    my $s = status() or return;
    my $c = cert_of($s, 'example.test');
    $c && $c->{state} eq 'valid' && $c->{keys}[0]{serial} ? $s : undef
}, timeout => 60);
ok $s, 'status shows the issued certificate as valid' or die('no status');
my $r = $t->http_get('/status', host => 'status.test');
like $r->{headers}{'content-type'}, qr{^application/json}, 'served as application/json';
is $s->{version}, '0.1.0', 'module version';
cmp_ok abs($s->{generated} - time), '<', 5, 'generated: now, in Unix seconds';
is scalar @{ $s->{certificates} }, 2, 'both certificates listed';

my $c = cert_of($s, 'example.test');
is_deeply $c->{names}, [qw(example.test www.example.test)], 'names';
is $c->{issuer}, 'pebble', 'issuer';
like $c->{id}, qr/^example\.test-[0-9a-f]{8}$/, 'id is the store basename';
is $c->{keys}[0]{type}, 'ecdsa:256', 'key type';
like $c->{keys}[0]{sha256}, qr/^[0-9a-f]{64}$/, 'sha256 fingerprint';
# Workers swap within 100 ms of the status showing it.
my $served = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'example.test', port => $t->port('https'), request => '/');
    ($r->{not_after} // 0) == $c->{keys}[0]{not_after} ? $r : undef
}, timeout => 5);
ok $served, 'not_after is what is served';
cmp_ok $c->{renew_at}, '>', time, 'renew_at ahead';
cmp_ok $c->{renew_at}, '<', $c->{keys}[0]{not_after}, 'renew_at before expiry';
is $c->{renew_reason}, 'lifetime', 'renew_reason';
is $c->{attempts}, 0, 'no failed attempts';
is $c->{error}, undef, 'no error';
cmp_ok $c->{last_attempt}, '<=', time, 'last_attempt';

my $p = $t->wait_for(sub {
    my $s = status() or return;
    my $p = cert_of($s, 'pending.test');
    $p && $p->{state} eq 'failed' ? $p : undef
}, timeout => 30);
ok $p, 'the unreachable issuer\'s certificate is failed';
is_deeply $p->{keys}, [], 'no key served from a CA';
cmp_ok $p->{attempts}, '>=', 1, 'attempts counted';
ok $p->{error} && length $p->{error}{detail}, 'error detail' or diag explain $p;
cmp_ok $p->{next_attempt}, '>', time, 'next attempt ahead';

my ($pebble) = grep { $_->{name} eq 'pebble' } @{ status()->{issuers} };
like $pebble->{account}, qr{^https://127\.0\.0\.1:\d+/my-account/}, 'issuer account URL';
is $pebble->{directory}, $t->acme_uri, 'issuer directory';
is $pebble->{state}, 'ready', 'issuer ready';

# Every worker answers from shared memory (two workers by default).
my %seen;
for (1 .. 20) {
    my $s = status() or next;
    $seen{ cert_of($s, 'example.test')->{keys}[0]{serial} }++;
}
is_deeply [keys %seen], [$c->{keys}[0]{serial}], 'the same answer every time';

# Read-only status: POST is refused.
$r = $t->http_get('/status?renew=example.test', host => 'status.test', method => 'POST');
is $r->{status}, 405, 'POST without "renew": 405';
$r = $t->http_get('/manage?renew=unknown.test', host => 'status.test', method => 'POST');
is $r->{status}, 404, 'renew of an unknown certificate: 404';

# Helper crash: the new engine rebuilds the status from the store.
my $helper = $t->helper_pid;
kill 'KILL', $helper;
$t->wait_for(sub { my $h = $t->helper_pid; $h && $h != $helper }, timeout => 20);
my $after = $t->wait_for(sub {
    my $s = status() or return;
    my $c2 = cert_of($s, 'example.test');
    $c2 && $c2->{keys}[0] && $c2->{state} eq 'valid' ? $c2 : undef
}, timeout => 20);
is $after && $after->{keys}[0]{serial}, $c->{keys}[0]{serial}, 'after a helper crash: same certificate';

# Reload: a new epoch, rebuilt as well.
$t->reload_nginx;
$after = $t->wait_for(sub {
    my $s = status() or return;
    my $c2 = cert_of($s, 'example.test');
    $c2 && $c2->{keys}[0] ? $c2 : undef
}, timeout => 20);
is $after && $after->{keys}[0]{serial}, $c->{keys}[0]{serial}, 'after a reload: same certificate';
is $after && $after->{state}, 'valid', 'after a reload: valid';

# Renew now.
my $mark = $t->log_mark;
$r = $t->http_get('/manage?renew=www.example.test', host => 'status.test', method => 'POST');
is $r->{status}, 202, 'renew: 202 Accepted';
my $answer = eval { decode_json($r->{content}) } // {};
is_deeply $answer->{renew}, [$c->{id}], 'renew answers the certificate id';
cmp_ok $answer->{scheduled}, '>=', time - 2, 'and when it is scheduled';
my $renewed = $t->wait_for(sub {
    my $s = status() or return;
    my $c2 = cert_of($s, 'example.test');
    $c2 && $c2->{keys}[0] && $c2->{keys}[0]{serial} ne $c->{keys}[0]{serial}
        && $c2->{state} eq 'valid' ? $c2 : undef
}, timeout => 40);
ok $renewed, 'renewed: a new serial in the status';
like $t->error_log($mark), qr/acme: certificate "example\.test": renewal requested, ordering now/,
    'the request is logged';
my $new = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'example.test', port => $t->port('https'), request => '/');
    $r->{serial} && $renewed && (lc($r->{serial}) =~ s/^0+//r) eq $renewed->{keys}[0]{serial} ? $r : undef
}, timeout => 10);
ok $new, 'the renewed certificate is served';
isnt $renewed && $renewed->{keys}[0]{sha256}, $c->{keys}[0]{sha256}, 'another certificate';

unlike join('', grep { !/exited on signal 9/ } split /^/, $t->error_log),
    qr/\[(?:alert|crit|emerg)\]/, 'no alerts but the killed helper';
done_testing;
