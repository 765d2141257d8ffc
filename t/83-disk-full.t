# The state directory's disk fills up during renewals: the store is a small
# tmpfs the test fills. First there is no space at all (the attempt fails
# when it saves the order), then two free pages: enough for the saved
# order and the new key, not for the new chain (the chain takes two
# pages; the old chain's are freed only by the rename that replaces
# it). Neither leaves anything half-written or a new key beside the
# old certificate: the stored pair is the old one byte for byte, no
# temporary file is left, a reload serves it (it would serve the fallback
# for a torn pair), the error names the file, and once there is space the
# next attempt renews the certificate from the saved order.
use strict;
use warnings;
use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my $lifetime = 90;    # backoff capped at 9 s
my $t = AcmeTest->new(timeout => 180);
my $state = $t->mount_tmpfs('acme', size => '256k');
# A longer chain than Pebble's default: about 4.4 KB, two pages.
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, PEBBLE_CHAIN_LENGTH => 3 },
    config => { profiles => { default => { description => 'short', validityPeriod => $lifetime },
                              shortlived => undef } });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        renew_before_expiry 85s;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name disk.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;

my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'disk.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 30);
ok $first, 'certificate issued onto the tmpfs' or BAIL_OUT('no certificate');
$t->set_renewal_window($first->{cert_pem}, $first->{not_after} + 86400,
    $first->{not_after} + 2 * 86400);
my ($crt) = glob("$state/disk.test-*.crt");
(my $key = $crt) =~ s/\.crt$/.key/;
(my $base = $crt) =~ s/\.crt$//;
my %stored = (crt => sha256_hex(AcmeTest::_slurp($crt)), key => sha256_hex(AcmeTest::_slurp($key)));
cmp_ok -s $crt, '>', 4096, 'the chain takes two pages' or diag AcmeTest::_slurp($crt);
my @bad;

sub served_ok {
    my $r = $t->tls_get(name => 'disk.test', ca => $root);
    push @bad, $r->{verify_error} // $r->{error} // $r->{serial}
        unless $r->{verified} && $r->{serial} eq $first->{serial};
    return $r;
}

sub next_failure {
    my ($mark) = @_;
    my $line;
    $t->wait_for(sub {
        served_ok();
        ($line) = grep { /acme: certificate "disk\.test" from "pebble" failed: / }
            split /\n/, $t->error_log($mark);
        $line
    }, timeout => 40, interval => 0.25);
    return $line;
}

sub store_intact {
    my ($what) = @_;
    is sha256_hex(AcmeTest::_slurp($crt)), $stored{crt}, "$what: the stored chain is the old one";
    is sha256_hex(AcmeTest::_slurp($key)), $stored{key}, "$what: the stored key is the old one";
    is_deeply [glob("$state/*.tmp.*")], [], "$what: no temporary file left";
}

# 1. No space at all: the order cannot be saved.
my $mark = $t->log_mark;
my $filler = $t->fill_fs($state);
is $t->fs_free_blocks($state), 0, 'the disk is full';
my $f1 = next_failure($mark);
ok $f1, 'the attempt fails' or BAIL_OUT('no failure');
like $f1, qr/failed: \w+\(\) "\Q$base\E\.order\.json\.tmp\.\d+\.\d+" failed: No space left on device/,
    'the error names the file and the cause';
like $t->error_log($mark), qr/\[error\].*acme: \w+\(\) "\Q$base\E\.json\.tmp\.\d+\.\d+" failed: No space left on device/,
    'so does the record that could not be written';
store_intact('full');
is served_ok()->{serial}, $first->{serial}, 'the current certificate is still served';

# 2. Space for the key, not for the chain.
$mark = $t->log_mark;
unlink $filler;
$filler = $t->fill_fs($state, leave => 2);
my $f2 = next_failure($mark);
ok $f2, 'the next attempt fails too';
like $f2, qr/failed: \w+\(\) "\Q$base\E\.crt\.tmp\.\d+\.\d+" failed: No space left on device/,
    'when it writes the chain';
store_intact('nearly full');
my ($saved) = glob("$state/disk.test-*.order.json");
ok $saved, 'the issued order is saved for the next attempt';

# A reload reads the store again: a torn pair would give the fallback.
$mark = $t->log_mark;
$t->reload_nginx;
my $r = served_ok();
ok $r->{verified} && $r->{serial} eq $first->{serial}, 'after a reload the same certificate is served'
    or diag explain $r;
ok $t->wait_log(qr/acme: certificate "disk\.test" is valid until /, 10, $mark),
    'and the new engine finds it valid';
unlike $t->error_log($mark), qr/not usable|key mismatch/, 'not a torn pair';

# 3. Space again: the saved order is resumed.
$mark = $t->log_mark;
my $orders = $t->pebble_orders;
unlink $filler;
my $renewed = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'disk.test', ca => $root);
    return $r if $r->{verified} && $r->{serial} ne $first->{serial};
    served_ok();
    undef
}, timeout => 40, interval => 0.25);
ok $renewed, 'renewed once there is space' or BAIL_OUT('not renewed');
my $log = $t->error_log($mark);
like $log, qr/acme: certificate "disk\.test" issued by "pebble"/, 'issuance logged';
cmp_ok $t->pebble_orders - $orders, '<=', 1, 'at most one more order';
my $rec = $t->cert_record('disk.test', state => $state);
is lc($rec->{serial}) =~ s/^0+//r, lc($renewed->{serial}) =~ s/^0+//r, '.json: the new certificate';
ok !$rec->{failures} && !$rec->{last_error}, '.json: no failure left';
is_deeply [glob("$state/*.tmp.*")], [], 'no temporary file left';
is scalar(@bad), 0, 'the old certificate was served, and verified, until the renewal'
    or diag explain \@bad;
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'nothing worse than an error logged';

done_testing;
