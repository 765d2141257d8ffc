# renew_before_expiry (acme_issuer) and renew= (acme_certificate): bad
# values are rejected by nginx -t with file and line; good ones move the
# planned renewal time (90-day Pebble certificates: the default renews with
# 30 days left, renew_before_expiry 20% with 18, renew=10d with 10).
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 120);
my $day = 86400;

sub conf {
    my (%o) = @_;
    my $issuer = $o{issuer} // '';
    my $cert = $o{cert} // '';
    return <<"EOF2";
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        $issuer
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name default.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name own.test;
        acme_certificate pebble $cert;
    }
}
EOF2
}

my @bad = (
    [issuer => 'renew_before_expiry 0%;', qr/invalid renew_before_expiry "0%": a time \(such as 30d\) or a percentage of the lifetime \(1% to 99%\) is expected/],
    [issuer => 'renew_before_expiry 100%;', qr/invalid renew_before_expiry "100%"/],
    [issuer => 'renew_before_expiry soon;', qr/invalid renew_before_expiry "soon"/],
    [issuer => 'renew_before_expiry 0;', qr/invalid renew_before_expiry "0"/],
    [issuer => "renew_before_expiry 10d;\n        renew_before_expiry 20d;", qr/"renew_before_expiry" is duplicate/],
    [issuer => 'renew_before_expiry 10d 20d;', qr/invalid number of arguments in "renew_before_expiry" directive/],
    [cert => 'renew=', qr/invalid "renew=" in "acme_certificate": a time \(such as 30d\)/],
    [cert => 'renew=12x', qr/invalid "renew=12x" in "acme_certificate"/],
    [cert => 'renew=5% renew=6%', qr/"renew=" is duplicate in "acme_certificate"/],
);
my $conf_file;
for my $case (@bad) {
    my ($where, $text, $msg) = @$case;
    $conf_file = $t->write_nginx_conf(conf($where => $text));
    my ($rc, $out) = $t->run_nginx_t;
    isnt $rc, 0, "nginx -t rejects $text";
    like $out, qr/\[emerg\] .*$msg.* in \Q$conf_file\E:\d+/, "with a clear message: $text";
}

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => '90 days', validityPeriod => 90 * $day },
                              shortlived => undef } });
for my $ok ('renew_before_expiry 80%;', 'renew_before_expiry 1d12h;') {
    $t->write_nginx_conf(conf(issuer => $ok, cert => 'renew=10d'));
    my ($rc, $out) = $t->run_nginx_t;
    is $rc, 0, "nginx -t accepts $ok with renew=10d" or diag $out;
}

$t->write_nginx_conf(conf(issuer => 'renew_before_expiry 20%;', cert => 'renew=10d'));
$t->start_nginx;
my $root = $t->pebble_root;
for my $name (qw(default.test own.test)) {
    ok $t->wait_for(sub { $t->tls_get(name => $name, ca => $root)->{verified} }, timeout => 30),
        "$name issued";
}
my %meta;
for my $name (qw(default.test own.test)) {
    my ($json) = glob($t->dir . "/acme/$name-*.json");
    $meta{$name} = JSON::PP::decode_json(do { local (@ARGV, $/) = $json; <> });
}
my $m = $meta{'default.test'};
my $life = $m->{not_after} - $m->{not_before};
# Windows: +-2% of the lifetime (1.8 days), at most a tenth of the margin.
cmp_ok abs($m->{not_after} - $life * 0.2 - $m->{renewal_at}), '<=', 1.8 * $day,
    'issuer: renewal when 20% of the lifetime remains';
$m = $meta{'own.test'};
cmp_ok abs($m->{not_after} - 10 * $day - $m->{renewal_at}), '<=', $day,
    'certificate: renew=10d overrides the issuer';

done_testing;
