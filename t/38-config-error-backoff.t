# Failures that mean "the configuration is wrong" go straight to the long
# retry interval (6 hours, plus up to 20%) instead of the 1-minute first
# step: here Pebble refuses a blocklisted name (rejectedIdentifier), while a
# transient failure of another certificate (its name resolves to an address
# where nothing listens, so validation cannot connect) gets the first step.
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

my $line = $t->wait_log(qr/acme: certificate "blocked\.test" from "pebble" failed: /, 30);
ok $line, 'the order failed';
like $line, qr/failed: urn:ietf:params:acme:error:rejectedIdentifier: /, 'rejectedIdentifier logged';
my $next = next_attempt($line);
my $delay = $next - time;
cmp_ok $delay, '>=', 6 * 3600 - 30, 'next attempt in 6 hours, not 1 minute';
cmp_ok $delay, '<=', 6 * 3600 * 1.2 + 30, 'with at most 20% jitter';

my $down = $t->wait_log(qr/acme: certificate "down\.test" from "pebble" failed: /, 30);
like $down, qr/failed: authorization for "down\.test" by http-01 failed: urn:ietf:params:acme:error:connection: /,
    'a connection failure for the other certificate';
my $down_delay = next_attempt($down) - time;
cmp_ok $down_delay, '>=', 55, 'next attempt in about a minute';
cmp_ok $down_delay, '<=', 72 + 1, 'with at most 20% jitter';
my ($json) = glob($t->dir . '/acme/blocked.test-*.json');
my $meta = JSON::PP::decode_json(do { local (@ARGV, $/) = $json; <> });
is $meta->{failures}, 1, '.json: one failure';
is $meta->{last_error}{type}, 'urn:ietf:params:acme:error:rejectedIdentifier', '.json: the error type';
cmp_ok abs($meta->{next_attempt} - $next), '<=', 1, '.json: the next attempt';

done_testing;

sub next_attempt {
    my @n = $_[0] =~ /next attempt at (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/ or return 0;
    return timegm($n[5], $n[4], $n[3], $n[2], $n[1] - 1, $n[0]);
}
