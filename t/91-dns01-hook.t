# dns-01 through dns_hook: a script in mod_md's MDChallengeDns01 v2 form that
# publishes through pebble-challtestsrv's /set-txt and /clear-txt (Pebble
# resolves through challtestsrv). Its arguments are recorded and checked; a
# record that appears only later is waited for; one that never appears times
# out with a clear error; a failing hook fails the certificate with its
# output in the log.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 });
my $calls = $t->worker_dir('calls') . '/calls.txt';
my $api = 'http://127.0.0.1:' . $t->port('challtest');
my $hook = $t->write_file('hook.sh', <<"EOF");
#!/bin/sh
# ARG action domain value
echo "\$*" >> $calls
tag=\$1 action=\$2 domain=\$3 value=\$4
case "\$domain" in
fail.test) echo "no zone for \$domain" >&2; exit 3 ;;
never.test) exit 0 ;;
esac
host="_acme-challenge.\$domain."
if [ "\$action" = setup ]; then
    body="{\\"host\\":\\"\$host\\",\\"value\\":\\"\$value\\"}"
    if [ "\$domain" = late.test ]; then
        # published two seconds after the hook said it was done
        (sleep 2; curl -sf -d "\$body" $api/set-txt) >/dev/null 2>&1 3>&- &
        exit 0
    fi
    exec curl -sf -d "\$body" $api/set-txt
fi
exec curl -sf -d "{\\"host\\":\\"\$host\\"}" $api/clear-txt
EOF
chmod 0755, $hook;

$t->write_nginx_conf(<<"EOF2");
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge dns-01;
        dns_hook $hook tag;
        dns_resolver 127.0.0.1:%%DNS_PORT%%;
        dns_propagation_timeout 6s;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test *.example.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name late.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name never.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name fail.test;
        acme_certificate pebble;
    }
}
EOF2

$t->start_nginx;
my $root = $t->pebble_root;
for my $name (qw(www.example.test example.test late.test)) {
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, ca => $root);
        $r->{verified} ? $r : undef
    }, timeout => 40);
    ok $r, "$name: certificate verifies against Pebble's root" or diag $t->error_log;
}

like $t->error_log, qr/waiting up to 6 s for the TXT record "_acme-challenge\.late\.test" \(127\.0\.0\.1:\d+: NOERROR, no TXT record\)/,
    'late.test: the record that appeared late was waited for';

my $never = $t->wait_log(qr/certificate "never\.test".* failed/, 30);
like $never, qr/TXT record "_acme-challenge\.never\.test" was not seen after 6 s \(dns_propagation_timeout\)/,
    'a record that never appears: timeout error';
my $fail = $t->wait_log(qr/certificate "fail\.test".* failed/, 30);
like $fail, qr/dns_hook "\Q$hook\E" setup "fail\.test" exited with 3, output: no zone for fail\.test/,
    'a failing hook: its exit status and output in the log';

# The calls: setup before teardown, the same value both times, for the
# wildcard's and the apex's value under one domain.
ok $t->wait_for(sub { (() = AcmeTest::_slurp($calls) =~ /^tag teardown (?:late|never)\.test /mg) == 2 },
    timeout => 20), 'teardowns done';
is +(stat $calls)[4], scalar getpwnam('nobody'), 'the hook ran as the worker user';
my @calls = map { [split / /] } split /\n/, AcmeTest::_slurp($calls);
my %setup;
for my $c (@calls) {
    is $c->[0], 'tag', "the hook's own argument comes first ($c->[1] $c->[2])";
    is scalar @$c, 4, 'then action, domain, value';
    push @{ $setup{"$c->[2] $c->[3]"} }, $c->[1];
}
my @example = grep { /^example\.test / } keys %setup;
is scalar @example, 2, 'two values for example.test (the apex and the wildcard)';
for my $k (sort keys %setup) {
    my $want = $k =~ /^fail/ ? ['setup'] : ['setup', 'teardown'];
    is_deeply $setup{$k}, $want, "$k: " . join(', ', @$want);
    like $k, qr/ [A-Za-z0-9_-]{43}$/, "$k: the value is a base64url SHA-256";
}
ok !grep({ $_->[2] =~ /^\*/ } @calls), 'domains are given without "*."';

done_testing;
