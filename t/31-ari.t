# ARI (RFC 9773): the engine asks Pebble's renewalInfo for the certificate's
# suggested window; when the CA moves the window into the past (as after a
# revocation), the certificate is replaced well before the ratio rule would
# renew it, and the new order names the old certificate in "replaces".
# Then the replaced certificate comes back from a "backup": the CA refuses
# to replace it twice (alreadyReplaced) and the engine orders without.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

# 120 s: the ratio rule renews after about 60 s; ARI is asked every 12 s
# (a tenth of the lifetime, below Pebble's Retry-After of 6 hours).
my $lifetime = 120;
my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF2', log_level => 'info');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name ari.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'ari.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'first certificate served' or die('no certificate');
my $old_id = AcmeTest::ari_cert_id($first->{cert_pem});
my $state = $t->dir . '/acme';
my ($crt) = glob("$state/ari.test-*.crt");
(my $key = $crt) =~ s/\.crt$/.key/;
my %backup = map { $_ => slurp($_) } $crt, $key;

# A window after expiry: ARI never postpones the ratio rule, and nothing
# happens early.
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400,
    $first->{not_after} + 2 * 86400);
ok $t->wait_log(qr/acme: certificate "ari\.test": the CA suggests renewal between/, 20),
    'renewal information fetched';
is $t->tls_get(name => 'ari.test', ca => $root)->{serial}, $first->{serial}, 'not renewed yet';

# The CA moves the window into the past, with an explanation.
my $now = time;
$t->set_renewal_window($first->{cert_pem}, int($now) - 7200, int($now) - 3600,
    explanation => 'https://ca.example/incident/42');
my $changed = time;
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'ari.test', ca => $root);
    $r->{verified} && $r->{serial} ne $first->{serial} ? $r : undef
}, timeout => 30, interval => 0.05);
my $served = time;
ok $renewed, 'certificate replaced after the window moved' or die('not replaced');
my $took = $served - $changed;
diag sprintf 'ARI window change to new certificate served: %.1f s', $took;
cmp_ok $took, '<', 20, 'replaced within two ARI checks';
cmp_ok $served, '<', $first->{not_before} + $lifetime / 2 - 2, 'before the ratio rule was due';

like $t->error_log, qr/\[notice\].*acme: certificate "ari\.test": the CA suggests renewal between .* \(see https:\/\/ca\.example\/incident\/42\), renewal at /,
    'moved window logged with the explanation URL';
like $t->error_log, qr/acme: ordering certificate "ari\.test" from "pebble" to replace \Q$old_id\E$/m,
    'renewal order carries "replaces" with the old certificate ID';
unlike $t->error_log, qr/as a replacement/, 'the CA accepted the replacement';
is $t->pebble_orders, 2, 'exactly one renewal order';
unlike $t->error_log, qr/\[(?:alert|crit|emerg|error)\]/, 'no errors logged';

# The old certificate restored: its ARI window is still in the past, but
# the CA has it replaced already.
for my $f (keys %backup) {
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} $backup{$f};
    close $fh;
}
my $mark = $t->log_mark;
$t->reload_nginx;
my @na = gmtime $first->{not_after};
my $until = sprintf '%04d-%02d-%02d %02d:%02d:%02d UTC', $na[5] + 1900, $na[4] + 1, @na[3, 2, 1, 0];
ok $t->wait_log(qr/acme: certificate "ari\.test" is valid until \Q$until\E/, 10, $mark),
    'the new engine starts from the restored certificate';
my $again = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'ari.test', ca => $root);
    $r->{verified} && $r->{serial} ne $first->{serial} && $r->{serial} ne $renewed->{serial} ? $r : undef
}, timeout => 30);
ok $again, 'and replaced by a new one';
like $t->error_log($mark), qr/acme: the CA refused the order for "ari\.test" as a replacement \(urn:ietf:params:acme:error:alreadyReplaced: .*\), ordering without/,
    'alreadyReplaced: ordered again without "replaces"';
unlike $t->error_log($mark), qr/\[(?:alert|crit|emerg|error)\]/, 'no errors logged';

done_testing;

sub slurp { local (@ARGV, $/) = @_; <> }
