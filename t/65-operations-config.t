# nginx -t for the operations directives: named CAs expand quietly (nothing
# at info level), ZeroSSL and Google without external_account_key, bad
# event commands, warn windows and acme_status parameters are rejected with
# the reason and the file:line.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $d = $t->dir;
$t->write_file("$d/hook.sh", "#!/bin/sh\nexit 0\n");
chmod 0755, "$d/hook.sh";
$t->write_file("$d/not-executable.sh", "#!/bin/sh\n");
chmod 0644, "$d/not-executable.sh";

sub conf {
    my ($http, $issuer, $location) = @_;
    $issuer //= 'uri letsencrypt;';
    $location //= 'acme_status;';
    return <<"EOF2";
http {
    $http
    acme_issuer ca {
        $issuer
        state_path %%TESTDIR%%/state/ca;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test;
        acme_certificate ca;
        location = /status { $location }
    }
}
EOF2
}

sub check {
    my ($name, $conf, $want) = @_;
    my $file = $t->write_nginx_conf($conf, log_level => 'info');
    my ($rc, $out) = $t->run_nginx_t;
    if (!defined $want) {
        is $rc, 0, "$name: accepted" or diag $out;
        my @extra = grep { !/syntax is ok|test is successful/ } split /\n/, $out;
        is_deeply \@extra, [], "$name: nothing else printed at info level";
        return;
    }
    isnt $rc, 0, "$name: rejected";
    like $out, qr/\[emerg\].*(?:$want.*\Q$file\E:\d+|\Q$file\E:\d+.*$want)/, "$name: says why and where"
        or diag $out;
}

for my $ca (qw(letsencrypt letsencrypt-staging)) {
    check("uri $ca", conf('', "uri $ca;"));
}
$t->write_file("$d/eab.key", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\n");
for my $ca (qw(zerossl google google-staging)) {
    check("uri $ca with external_account_key", conf('', "uri $ca; external_account_key kid-1 $d/eab.key;"));
    check("uri $ca without external_account_key", conf('', "uri $ca;"),
        qr/uri \Q$ca\E needs "external_account_key"/);
}
check('unknown CA name', conf('', 'uri letsencrypt-prod;'),
    qr/invalid uri "letsencrypt-prod": an http:\/\/ or https:\/\/ URL, or letsencrypt/);

check('acme_event_command', conf("acme_event_command $d/hook.sh one two; acme_event_timeout 5s; acme_warn_window 7d;"));
check('event_command in acme_issuer', conf('', "uri letsencrypt; event_command $d/hook.sh;"));
check('relative event command', conf('acme_event_command hook.sh;'),
    qr/invalid "acme_event_command" "hook\.sh": an absolute path is expected/);
check('event command that cannot run', conf("acme_event_command $d/not-executable.sh;"),
    qr/"acme_event_command" "\Q$d\E\/not-executable\.sh" cannot be executed/);
check('duplicate acme_event_command', conf("acme_event_command $d/hook.sh; acme_event_command $d/hook.sh;"),
    qr/duplicate "acme_event_command"/);
check('bad acme_warn_window', conf('acme_warn_window 120%;'), qr/invalid acme_warn_window "120%"/);
check('bad acme_event_timeout', conf('acme_event_timeout soon;'), qr/"acme_event_timeout" directive invalid value/);
check('acme_status renew', conf('', undef, 'acme_status renew; allow 127.0.0.1; deny all;'));
check('bad acme_status parameter', conf('', undef, 'acme_status write;'),
    qr/invalid parameter "write": "renew" is expected/);

done_testing;
