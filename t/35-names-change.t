# Configuration changes take effect on reload: new names in server_name get
# a certificate for exactly those names, and a removed server keeps its
# files in the store but is no longer renewed (30-second certificates, so
# renewals are frequent enough to notice).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => 30 },
                              shortlived => undef } });
my $conf = <<'EOF2';
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name a.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name b.test;
        acme_certificate pebble;
    }
}
EOF2
$t->write_nginx_conf($conf);
$t->start_nginx;
my $root = $t->pebble_root;
my $state = $t->dir . '/acme';

for my $name (qw(a.test b.test)) {
    ok $t->wait_for(sub { $t->tls_get(name => $name, ca => $root)->{verified} }, timeout => 30),
        "$name issued";
}
my $b_cert = $t->tls_get(name => 'b.test', ca => $root);
my ($a_crt) = glob("$state/a.test-*.crt");
my ($b_crt) = glob("$state/b.test-*.crt");

# a.test gains a name; b.test goes away.
$conf =~ s/server_name a\.test;/server_name a.test new.a.test;/ or die;
$conf =~ s/    server \{\n[^}]*server_name b\.test;[^}]*\}\n//s or die;
$t->write_nginx_conf($conf);
my $mark = $t->log_mark;
my $old_helper = $t->helper_pid;
$t->reload_nginx;

my $r = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'new.a.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $r, 'the new name is served with a valid certificate after the reload';
is_deeply [sort @{ $r->{sans} // [] }], ['a.test', 'new.a.test'], 'for exactly the configured names';
like $t->error_log($mark), qr/engine started for 1 certificate\(s\)/, 'the new engine manages one certificate';
# The old helper's last lines can be written after the reload's mark.
unlike join('', grep { !/\[\w+\] $old_helper#/ } split /^/, $t->error_log($mark)),
    qr/acme: certificate "b\.test"/, 'and does not look at b.test';

# Over several renewal periods: a.test keeps being renewed, b.test not.
my $b_mtime = (stat $b_crt)[9];
my $serial = $r->{serial};
my $renewed = $t->wait_for(sub {
    my $x = $t->tls_get(name => 'a.test', ca => $root);
    $x->{verified} && $x->{serial} ne $serial
}, timeout => 30);
ok $renewed, 'a.test is still renewed';
# Past the time the ratio rule would have renewed b.test's certificate.
sleep 0.5 while time < $b_cert->{not_before} + 20;
ok -s $a_crt && -s $b_crt, 'old files stay in the store';
is((stat $b_crt)[9], $b_mtime, 'b.test is no longer renewed');
unlike $t->error_log($mark), qr/\[(?:alert|crit|emerg|error)\]/, 'no errors logged';

done_testing;
