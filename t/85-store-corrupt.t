# Damaged store files: a chain cut in the middle of its intermediate, a
# key that does not match the certificate, garbage in the .json record, an
# empty certificate file. While nginx runs nothing reads them but a
# respawned worker, which must keep what it serves (a cut chain parsed as
# far as it goes would be served without its intermediate, and fail every
# client). After a reload the master never serves a damaged pair (the
# fallback stands in, with a warning that names the file), the engine
# names the damaged file and orders at once, and a good certificate is
# served again within seconds; the damaged record is reported and only
# loses its history.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');

my @names = qw(trunc.test mismatch.test garbage.test empty.test);
# One worker, so that the respawned one answers every handshake.
my $t = AcmeTest->new(timeout => 180, worker_processes => 1);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { profiles => { default => { description => 'hour', validityPeriod => 3600 },
                              shortlived => undef } });
my $servers = join '', map { <<"EOF2" } @names;
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $_;
        acme_certificate pebble;
    }
EOF2
$t->write_nginx_conf(<<"EOF2");
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
$servers}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
my $state = $t->dir . '/acme';

my %first;
ok $t->wait_for(sub {
    for my $n (@names) {
        next if $first{$n};
        my $r = $t->tls_get(name => $n, ca => $root);
        $first{$n} = $r if $r->{verified};
    }
    keys %first == @names
}, timeout => 60), 'four certificates issued' or die('not issued');
for my $n (@names) {
    # Pebble's ARI window would make these due at once.
    $t->set_renewal_window($first{$n}{cert_pem}, $first{$n}{not_after} + 86400,
        $first{$n}{not_after} + 2 * 86400);
}
my %file = map { my ($c) = glob("$state/$_-*.crt"); ($_ => $c =~ s/\.crt$//r) } @names;

# Damage, in place (owner and mode stay).
sub overwrite {
    my ($path, $content) = @_;
    open my $fh, '+<', $path or die "$path: $!";
    truncate $fh, 0;
    print {$fh} $content;
    close $fh;
}
my $chain = AcmeTest::_slurp("$file{'trunc.test'}.crt");
my $second = index $chain, '-----BEGIN CERTIFICATE-----', 1;
ok $second > 0, 'a chain with an intermediate';
overwrite("$file{'trunc.test'}.crt", substr($chain, 0, $second + 300));
my (undef, $other_key) = AcmeTest::_run(qw(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256));
like $other_key, qr/BEGIN PRIVATE KEY/, 'another key';
overwrite("$file{'mismatch.test'}.key", $other_key);
overwrite("$file{'garbage.test'}.json", "{\"failures\": 2, \x00\xff garbage");
overwrite("$file{'empty.test'}.crt", '');

sub all_served {
    my ($what) = @_;
    for my $n (@names) {
        my $r = $t->tls_get(name => $n, ca => $root);
        ok $r->{verified} && $r->{serial} eq $first{$n}{serial}, "$what: $n still served and verified"
            or diag $r->{verify_error} // $r->{error};
    }
}

# 1. While nginx runs, a worker that starts (after a crash) reads the store.
all_served('damaged files');
my $mark = $t->log_mark;
my ($worker) = $t->worker_pids;
kill 'KILL', $worker;
ok $t->wait_for(sub { my @w = $t->worker_pids; @w && $w[0] != $worker }, timeout => 10),
    'the worker is respawned';
sleep 0.5;
# It starts from the master's copy, which here predates the issuance (the
# fallback), and the files cannot replace it: never a damaged pair.
my @respawned;
for my $n (@names) {
    my $r = $t->tls_get(name => $n, ca => $root);
    $respawned[0]{$n} = $r->{verified} && $r->{serial} eq $first{$n}{serial};
    ok $respawned[0]{$n} || ($r->{subject_cn} // '') eq 'acme fallback',
        "respawned worker: $n is served its certificate or the fallback"
        or diag $r->{verify_error} // $r->{error};
}
ok $respawned[0]{'garbage.test'}, 'a damaged record changes nothing there';
TODO: {
    local $TODO = 'a worker respawned while the store is damaged serves the master\'s copy '
        . '(the fallback here) until the next reload or renewal: the engine reads the store '
        . 'only at start';
    ok $respawned[0]{$_}, "respawned worker: $_ still served its certificate"
        for qw(trunc.test mismatch.test empty.test);
}
my $log = $t->error_log($mark);
like $log, qr/\[error\].*acme: stored certificate "\Q$file{'trunc.test'}\E\.crt" is not installed: malformed PEM certificate chain: certificate 2 has no END line/,
    'the cut chain is not installed, and named';
like $log, qr/\[error\].*acme: stored certificate "\Q$file{'empty.test'}\E\.crt" is not installed: no certificate/,
    'nor the empty file';

# 2. A reload: the master reads the store, a new engine inspects it.
$mark = $t->log_mark;
my $orders = $t->pebble_orders;
$t->reload_nginx;
my %after = map { $_ => $t->tls_get(name => $_, ca => $root) } @names;
my %fixed;
my @broken;    # handshakes that showed neither a good certificate nor the fallback
$t->wait_for(sub {
    for my $n (@names) {
        my $r = $t->tls_get(name => $n, ca => $root);
        if ($r->{verified}) {
            $fixed{$n} = $r;
        } elsif (($r->{subject_cn} // '') ne 'acme fallback') {
            push @broken, "$n: " . ($r->{verify_error} // $r->{error} // '?');
        }
    }
    keys %fixed == @names
}, timeout => 30, interval => 0.2);
is scalar(@broken), 0, 'no damaged pair was ever served' or diag explain \@broken;
is_deeply [sort keys %fixed], [sort @names], 'every name has a good certificate again';
$log = $t->error_log($mark);
for my $c (['trunc.test', 'malformed PEM certificate chain: certificate 2 has no END line'],
           ['mismatch.test', 'certificate and key do not match'],
           ['empty.test', 'no certificate in PEM data']) {
    my ($n, $why) = @$c;
    like $log, qr/\[warn\].*acme: stored certificate "\Q$file{$n}\E\.crt" is not usable \(\Q$why\E\), serving the fallback until it is renewed/,
        "$n: the master names the file";
    isnt $fixed{$n}{serial}, $first{$n}{serial}, "$n: a new certificate";
}
like $log, qr/acme: certificate "trunc\.test" needs to be ordered \(unreadable: "\Q$file{'trunc.test'}\E\.crt": malformed PEM certificate chain/,
    'the engine names the cut chain';
like $log, qr/acme: certificate "mismatch\.test" needs to be ordered \(key mismatch\)/, 'and the mismatch';
like $log, qr/acme: certificate "empty\.test" needs to be ordered \(unreadable: "\Q$file{'empty.test'}\E\.crt": no certificate in PEM data\)/,
    'and the empty file';
like $log, qr/\[warn\].*acme: ignoring the record "\Q$file{'garbage.test'}\E\.json": /,
    'the damaged record is reported';
like $log, qr/acme: certificate "garbage\.test" is valid until /, 'its certificate is still current';
is $fixed{'garbage.test'}{serial}, $first{'garbage.test'}{serial}, 'and still served';
is $t->pebble_orders - $orders, 3, 'one order for each damaged pair';

TODO: {
    local $TODO = 'a reload serves the fallback for a damaged pair until the engine has '
        . 'renewed it (about a second); the master could keep the previous cycle\'s certificate';
    for my $n (qw(trunc.test mismatch.test empty.test)) {
        ok $after{$n}{verified}, "$n: the last good certificate is served right after the reload";
    }
}
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\](?!.* exited on signal 9$)/m,
    'nothing worse than an error logged (but the killed worker)';

done_testing;
