# Prometheus metrics from the status location: ?format=prometheus and
# Accept: text/plain; version=0.0.4 answer the text format, which promtool
# accepts, with absolute timestamps matching what is served; the alert
# rule of docs/operations.md passes `promtool check rules`.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use JSON::PP;

AcmeTest->requires(root => 1, module => 1);
my $promtool = -x '/usr/bin/promtool' ? '/usr/bin/promtool' : undef;

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
        location = /metrics { acme_status; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name "example.test";
        acme_certificate pebble;
        acme_certificate pebble key=rsa:2048;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name pending.test;
        acme_certificate nowhere;
    }
}
EOF2
$t->start_nginx;

sub metrics {
    my (%h) = @_;
    my $path = %h ? '/metrics' : '/metrics?format=prometheus';
    my $r = $t->http_get($path, host => 'status.test', headers => \%h);
    return $r;
}
sub samples {
    my ($text) = @_;
    my @s;
    for (split /\n/, $text) {
        next if /^#/;
        my ($name, $labels, $value) = /^(\w+)\{(.*)\} (\S+)$/ or next;
        my %l = $labels =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
        push @s, { name => $name, labels => \%l, value => $value };
    }
    return @s;
}

my $r = $t->wait_for(sub {
    my $r = metrics();
    my @ready = grep { $_->{name} eq 'nginx_acme_certificate_ready' && $_->{value} == 1 }
        samples($r->{content} // '');
    @ready == 2 ? $r : undef
}, timeout => 60);
ok $r, 'both keys of example.test ready' or die('no metrics');
like $r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'Prometheus content type';

my $accept = metrics(Accept => 'text/plain; version=0.0.4');
like $accept->{headers}{'content-type'}, qr{^text/plain}, 'Accept: text/plain gives the text format';
my $json = metrics(Accept => 'application/json');
like $json->{headers}{'content-type'}, qr{^application/json}, 'Accept: application/json gives JSON';

my @s = samples($r->{content});
my @na = grep { $_->{name} eq 'nginx_acme_certificate_not_after_timestamp_seconds' } @s;
is scalar @na, 2, 'not_after: one sample per issued certificate';
my %by_key = map { $_->{labels}{key} => $_ } @na;
ok $by_key{'ecdsa:256'} && $by_key{'rsa:2048'}, 'labelled by key';
my $ec = $by_key{'ecdsa:256'};
is $ec->{labels}{name}, 'example.test', 'name label';
is $ec->{labels}{issuer}, 'pebble', 'issuer label';
like $ec->{labels}{certificate}, qr/^example\.test-[0-9a-f]{8}$/, 'certificate label: the id';
like $ec->{labels}{serial}, qr/^[0-9a-f]+$/, 'serial label';
my $served = $t->tls_get(name => 'example.test', port => $t->port('https'), request => '/');
my @nb = grep { $_->{name} eq 'nginx_acme_certificate_not_before_timestamp_seconds' } @s;
is scalar @nb, 2, 'not_before for both';
my ($renewal) = grep { $_->{name} eq 'nginx_acme_certificate_renewal_timestamp_seconds'
    && $_->{labels}{key} eq 'ecdsa:256' } @s;
ok $renewal && $renewal->{value} > time && $renewal->{value} < $ec->{value},
    'renewal timestamp between now and expiry';
my ($pending) = grep { $_->{name} eq 'nginx_acme_certificate_ready' && $_->{labels}{name} eq 'pending.test' } @s;
is $pending && $pending->{value}, 0, 'the certificate without a CA is not ready';
my ($issued) = grep { $_->{name} eq 'nginx_acme_orders_total' && $_->{labels}{issuer} eq 'pebble'
    && $_->{labels}{result} eq 'issued' } @s;
is $issued && $issued->{value}, 2, 'two orders issued';
my ($http01) = grep { $_->{name} eq 'nginx_acme_challenges_answered_total' && $_->{labels}{issuer} eq 'pebble'
    && $_->{labels}{type} eq 'http-01' } @s;
cmp_ok $http01 && $http01->{value}, '>=', 1, 'http-01 challenges counted';
my $failed = $t->wait_for(sub {
    my ($f) = grep { $_->{name} eq 'nginx_acme_certificate_attempts' && $_->{labels}{name} eq 'pending.test' }
        samples(metrics()->{content} // '');
    $f && $f->{value} >= 1 ? $f : undef
}, timeout => 30);
ok $failed, 'failed attempts counted';

SKIP: {
    skip 'promtool is not installed (prometheus package)', 2 unless $promtool;
    my $file = $t->dir . '/metrics.txt';
    $t->write_file($file, metrics()->{content});
    my $out = `$promtool check metrics < $file 2>&1`;
    is $?, 0, 'promtool check metrics accepts the output' or diag $out;

    # The alert of docs/operations.md, as it is written there.
    my $doc = do { local (@ARGV, $/) = 'docs/operations.md'; <> } // '';
    my ($rules) = $doc =~ /```yaml\n(groups:.*?)```/s;
    ok $rules, 'docs/operations.md has an alert rule' or last;
    $t->write_file($t->dir . '/rules.yml', $rules);
    $out = `$promtool check rules @{[ $t->dir ]}/rules.yml 2>&1`;
    is $?, 0, 'promtool check rules accepts it' or diag $out;
}

done_testing;
