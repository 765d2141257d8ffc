# dns-01 through RFC 2136 dynamic updates: a BIND primary on loopback holds
# the test zone and accepts TSIG-signed updates; Pebble validates against it.
# One certificate for a wildcard and its apex (from server_name
# "*.example.test" and ".example.test"), served for both names by SNI and
# verified against Pebble's root; the TXT records are gone afterwards. A
# second issuer with the wrong secret fails with a clear line and retries.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
my $key = $t->start_named(zone => 'example.test');
my $wrong = $t->named_wrong_key_file;
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_AUTHZREUSE => 0 },
    dnsserver => '127.0.0.1:' . $t->port('named'));
$t->write_nginx_conf(<<"EOF2");
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge dns-01;
        dns_update 127.0.0.1:%%PORT_NAMED%% key=$key;
        dns_resolver 127.0.0.1:%%PORT_NAMED%%;
    }
    acme_issuer wrongkey {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/wrong;
        accept_terms_of_service;
        challenge dns-01;
        dns_update 127.0.0.1:%%PORT_NAMED%% key=$wrong zone=example.test;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name *.example.test .example.test;
        acme_certificate pebble;
        location / { return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name wrong.example.test;
        acme_certificate wrongkey;
    }
    # dns-persist-01 publishes its standing record through the same update.
    acme_issuer persist {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/persist;
        accept_terms_of_service;
        challenge dns-persist-01;
        dns_update 127.0.0.1:%%PORT_NAMED%% key=$key;
        dns_resolver 127.0.0.1:%%PORT_NAMED%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name persist.example.test;
        acme_certificate persist;
    }
}
EOF2

$t->start_nginx;
my $root = $t->pebble_root;
for my $name (qw(foo.example.test example.test)) {
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 60);
    ok $r, "$name: chain verifies against Pebble's root" or next;
    is_deeply [sort @{ $r->{sans} }], ['*.example.test', 'example.test'],
        "$name: the wildcard and the apex";
    is $r->{status}, 200, "$name: served";
}
like $t->error_log, qr/authorization for "\*\.example\.test" .*dns-01|certificate "\*\.example\.test"/,
    'the wildcard was validated by dns-01';

# Removed after validation, both values of the shared record name.
ok $t->wait_for(sub { !$t->dig('_acme-challenge.example.test', 'TXT') }, timeout => 10),
    'TXT records removed after validation'
    or diag join ' ', $t->dig('_acme-challenge.example.test', 'TXT');

# One update message for both values of the wildcard+apex order, and one
# to remove them: named (-g) logs each change with the client's address and
# port, which differ per message. Messages are handled concurrently (the
# dns-persist-01 record is published beside), so their lines interleave.
sub update_messages {
    my ($change) = @_;
    open my $fh, '<', $t->dir . '/named.log' or return ();
    my %messages;
    while (my $l = <$fh>) {
        $messages{$1}++
            if $l =~ /client (\S+ [^\s\/:]+).*?: updating zone 'example\.test\/IN': \Q$change\E an RR at '?_acme-challenge\.example\.test'? TXT/;
    }
    return values %messages;
}
ok $t->wait_for(sub { my @m = update_messages('deleting'); @m == 1 && $m[0] == 2 }, timeout => 10),
    'the two values were removed in one update message'
    or diag join ' ', update_messages('deleting');
is_deeply [update_messages('adding')], [2], 'and added in one'
    or diag `grep updating ${\ $t->dir}/named.log`;

# The wrong secret: BIND refuses the update, the log says which key, and
# the certificate is tried again later.
my $line = $t->wait_log(qr/certificate "wrong\.example\.test".*dns-01.*key "acme-key\."/, 30);
ok $line, 'the wrong TSIG key is named in the log' or diag $t->error_log;
like $line, qr/NOTAUTH|TSIG/, 'with what the server said';
like $line, qr/retry|next attempt|again/i, 'and when it is tried again' if $line;
ok !$t->dig('_acme-challenge.wrong.example.test', 'TXT'), 'nothing was published with it';

# dns-persist-01 through dns_update: published once, and left standing.
my $p = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'persist.example.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $p, 'dns-persist-01 certificate served' or diag $t->error_log;
my ($account) = $t->error_log =~ /issuer "persist": using account "([^"]+)"/;
my @standing = $t->dig('_validation-persist.persist.example.test', 'TXT');
is scalar @standing, 1, 'one standing record';
like $standing[0] // '', qr/^[a-z0-9.-]+; accounturi=\Q$account\E$/, 'for this account';
like $t->error_log, qr/published the dns-persist-01 record _validation-persist\.persist\.example\.test\. IN TXT/,
    'the publication is logged';

done_testing;
