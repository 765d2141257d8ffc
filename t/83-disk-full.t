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
use AcmeTest;
use FaultTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

# Backoff capped at 9 s. A longer chain than Pebble's default: about
# 4.4 KB, two pages.
my $f = FaultTest->start(name => 'disk.test', lifetime => 90, renew_before => 85,
    tmpfs => '256k', pebble_env => { PEBBLE_CHAIN_LENGTH => 3 }, log_level => 'info');
my $t = $f->t;
# Until every worker has the first certificate, another one still answers
# with the placeholder, which $f->check counts as bad.
$t->wait_installed('disk.test') or die('not installed by every worker');
my $first = $f->first;
my $state = $f->state;
my $base = $f->base;
my %stored = map { $_ => sha256_hex(AcmeTest::_slurp("$base.$_")) } qw(crt key);
cmp_ok -s "$base.crt", '>', 4096, 'the chain takes two pages';

sub store_intact {
    my ($what) = @_;
    is sha256_hex(AcmeTest::_slurp("$base.$_")), $stored{$_}, "$what: the stored $_ is the old one"
        for qw(crt key);
    is_deeply [glob("$state/*.tmp.*")], [], "$what: no temporary file left";
}

# 1. No space at all: the order cannot be saved.
my $mark = $t->log_mark;
my $filler = $t->fill_fs($state);
is $t->fs_free_blocks($state), 0, 'the disk is full';
my $f1 = $f->wait_failure($mark);
ok $f1, 'the attempt fails' or die('no failure');
# (The saved order is written in place, without a temporary file.)
like $f1, qr/failed: \w+\(\) "\Q$base\E\.order\.json" failed: No space left on device/,
    'the error names the file and the cause';
ok !-e "$base.order.json", 'and leaves no half-written order';
like $t->error_log($mark), qr/\[error\].*acme: \w+\(\) "\Q$base\E\.json\.tmp\.\d+\.\d+" failed: No space left on device/,
    'so does the record that could not be written';
store_intact('full');
is $f->check->{serial}, $first->{serial}, 'the current certificate is still served';

# 2. Space for the key, not for the chain.
$mark = $t->log_mark;
unlink $filler;
$filler = $t->fill_fs($state, leave => 2);
my $f2 = $f->wait_failure($mark);
ok $f2, 'the next attempt fails too';
like $f2, qr/failed: \w+\(\) "\Q$base\E\.crt\.tmp\.\d+\.\d+" failed: No space left on device/,
    'when it writes the chain';
store_intact('nearly full');
ok glob("$state/disk.test-*.order.json"), 'the issued order is saved for the next attempt';

# A reload reads the store again: a torn pair would give the fallback.
$mark = $t->log_mark;
$t->reload_nginx;
my $r = $f->check;
ok $r->{verified} && $r->{serial} eq $first->{serial}, 'after a reload the same certificate is served'
    or diag explain $r;
ok $t->wait_log(qr/acme: certificate "disk\.test" is valid until /, 10, $mark),
    'and the new engine finds it valid';
unlike $t->error_log($mark), qr/not usable|key mismatch/, 'not a torn pair';

# 3. Space again: the saved order is resumed.
$mark = $t->log_mark;
my $orders = $t->pebble_orders;
unlink $filler;
my $renewed = $f->wait_renewed(timeout => 40);
ok $renewed, 'renewed once there is space' or die('not renewed');
like $t->error_log($mark), qr/acme: certificate "disk\.test" issued by "pebble"/, 'issuance logged';
cmp_ok $t->pebble_orders - $orders, '<=', 1, 'at most one more order';
my $rec = $t->cert_record('disk.test', state => $state);
is lc($rec->{serial}) =~ s/^0+//r, lc($renewed->{serial}) =~ s/^0+//r, '.json: the new certificate';
ok !$rec->{failures} && !$rec->{last_error}, '.json: no failure left';
is_deeply [glob("$state/*.tmp.*")], [], 'no temporary file left';
$f->finish;

done_testing;
