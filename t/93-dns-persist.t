# dns-persist-01 against Pebble 2.10: the engine logs the standing record
# _validation-persist.<name> it needs (from the CA's issuer-domain-names and
# the account URL); the test sets it once through pebble-challtestsrv; the
# first order and the renewal (10-second certificates) both validate with
# no further DNS change, and the record is never removed. The status page
# lists the record the operator must add.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use JSON::PP;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => 10 },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge dns-persist-01;
        dns_resolver 127.0.0.1:%%DNS_PORT%%;
        dns_propagation_timeout 30s;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /status { acme_status; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name persist.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;

my $line = $t->wait_log(qr/needs the DNS record/, 20);
ok $line, 'the record the operator must add is logged' or diag $t->error_log;
my ($account) = $t->error_log =~ /using account "([^"]+)"/;
my ($value) = ($line // '') =~ /needs the DNS record _validation-persist\.persist\.test\. IN TXT "([^"]+)"/;
ok $value, 'in zone file form';
like $value // '', qr/^[a-z0-9.-]+; accounturi=\Q$account\E$/,
    'issuer domain name and this account, no wildcard policy';

my $status = $t->http_get('/status', host => 'status.test');
my $json = eval { decode_json($status->{content}) } // {};
my ($pebble) = grep { $_->{name} eq 'pebble' } @{ $json->{issuers} // [] };
is_deeply $pebble && $pebble->{dns_persist},
    [{ name => '_validation-persist.persist.test', type => 'TXT', value => $value }],
    'the status page lists exactly the record to add'
    or diag "$status->{status} $status->{content}";

my $r = $t->challtest('/set-txt', { host => '_validation-persist.persist.test.', value => $value });
ok $r->{success}, 'record set once' or diag "$r->{status} $r->{content}";

my $root = $t->pebble_root;
my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'persist.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 40);
ok $first, 'first certificate issued and served' or diag $t->error_log;
my $second = $first && $t->wait_for(sub {
    my $r = $t->tls_get(name => 'persist.test', ca => $root);
    $r->{verified} && $r->{serial} ne $first->{serial} ? $r : undef
}, timeout => 40);
ok $second, 'renewed with no DNS change' or diag $t->error_log;

my $log = $t->error_log;
my $notices = () = $log =~ /needs the DNS record/g;
is $notices, 1, 'the record was asked for once only';
my $waits = () = $log =~ /waiting up to 30 s for the TXT record "_validation-persist\.persist\.test"/g;
is $waits, 1, 'the renewal found the record standing and did not wait';
my $issued = () = $log =~ /certificate "persist\.test" issued/g;
cmp_ok $issued, '>=', 2, 'two orders issued';
cmp_ok $t->pebble_log_count(qr/Pulled a task from the Tasks queue: .*Value:"persist\.test"/), '>=', 2,
    'Pebble validated each order (no authorization reuse)';
is_deeply [$t->dig('_validation-persist.persist.test', 'TXT', port => $t->port('dns'))], [$value],
    'the record stands, unchanged';
unlike $log, qr/\[(?:error|crit|alert)\]/, 'no errors';

done_testing;
