# ACME profiles: the issuer's `profile` and acme_certificate's `profile=`
# go into newOrder; a profile the CA does not offer is dropped with a notice,
# or, with `require`, not ordered at all; renewals keep the profile.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 }, config => {
    profiles => { brief => { description => 'renewed within the test', validityPeriod => 30 } },
});
my $issuer = sub {
    my ($name, $extra) = @_;
    return <<"EOF2";
    acme_issuer $name {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme-$name;
        accept_terms_of_service;
        $extra
    }
EOF2
};
my $server = sub {
    my ($name, $cert) = @_;
    return <<"EOF2";
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $name;
        $cert
    }
EOF2
};
$t->write_nginx_conf(join '', "http {\n",
    $issuer->('short', 'profile shortlived;'),
    $issuer->('plain', ''),
    $issuer->('unknown', 'profile nosuch;'),
    $issuer->('required', 'profile nosuch require;'),
    "    server {\n        listen 127.0.0.1:%%HTTP_PORT%%;\n    }\n",
    $server->('short.test', 'acme_certificate short;'),
    $server->('brief.test', 'acme_certificate plain profile=brief;'),
    $server->('unknown.test', 'acme_certificate unknown;'),
    $server->('required.test', 'acme_certificate required;'),
    "}\n");
$t->start_nginx;
my $root = $t->pebble_root;

my %got;
for my $name (qw(short.test brief.test unknown.test)) {
    $got{$name} = $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, ca => $root);
        $r->{verified} ? $r : undef
    }, timeout => 30);
    ok $got{$name}, "$name: issued";
}
is $t->pebble_orders, 3, 'no order for the required profile the CA does not offer';

my $lifetime = sub { $_[0] ? $_[0]{not_after} - $_[0]{not_before} : -1 };
cmp_ok abs($lifetime->($got{'short.test'}) - 518400), '<=', 2, 'profile shortlived: 6 days';
cmp_ok abs($lifetime->($got{'brief.test'}) - 30), '<=', 2, 'profile=brief on acme_certificate: 30 s';
like $t->error_log, qr/\[notice\] .*acme: certificate "unknown\.test": profile "nosuch" is not offered by issuer "unknown" \(it offers brief, default, shortlived\), ordering with the CA's default profile/,
    'unknown profile dropped with a notice';
like $t->wait_log(qr/certificate "required\.test" from "required" failed/, 10),
    qr/profile "nosuch" is not offered by issuer "required" \(it offers brief, default, shortlived\) and is required, not ordering, next attempt at /,
    'required profile: the error says why';
is $t->tls_get(name => 'required.test')->{subject_cn}, 'acme fallback', 'required profile: fallback served';

# The 30 s certificate is renewed at half its lifetime, with the same profile.
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'brief.test', ca => $root);
    $r->{verified} && $r->{serial} ne $got{'brief.test'}{serial} ? $r : undef
}, timeout => 40);
ok $renewed, 'brief.test renewed';
cmp_ok abs($lifetime->($renewed) - 30), '<=', 2, 'the renewal has the same profile';

sub meta {
    my ($issuer, $name) = @_;
    my $dir = $t->dir . "/acme-$issuer";
    opendir my $dh, $dir or die "$dir: $!";
    my ($json) = grep { /^\Q$name\E-.*\.json$/ } readdir $dh;
    return JSON::PP::decode_json(do { local (@ARGV, $/) = "$dir/$json"; <> });
}
is meta('plain', 'brief.test')->{profile}, 'brief', 'the renewal order asked for the profile';
is meta('short', 'short.test')->{profile}, 'shortlived', 'profile recorded in the .json';
# Pebble picks a profile at random for an order that names none, so the
# lifetime says nothing here: what was asked for does.
is meta('unknown', 'unknown.test')->{profile}, undef, 'unknown profile: ordered without one';

done_testing;
