# acme_reload: after a certificate is issued and stored, nginx reloads
# gracefully, through the reload process the master started as root (the
# helper, running as nobody, cannot signal the master). Exactly one reload
# per issuance, new workers, no failed request under load during it, and a
# server whose ssl_certificate names the stored file serves the new
# certificate after it. The process is not duplicated by reloads and ends
# with nginx; nginx -t rejects a delay under a second.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, pebble => '2.10');
my $wrk = -x '/usr/bin/wrk' ? '/usr/bin/wrk' : undef;

my $t = AcmeTest->new(timeout => 180);

# The delay must be at least a second, with file and line.
$t->write_nginx_conf(<<'EOF2');
http {
    acme_reload on;
    acme_reload_delay 500ms;
}
EOF2
my ($rc, $out) = $t->run_nginx_t;
isnt $rc, 0, 'nginx -t fails with acme_reload_delay 500ms';
like $out, qr/\[emerg\] "acme_reload_delay" directive must be at least 1s in \Q${\$t->dir}\E\/nginx\.conf:\d+/,
    'and says why, with file and line';

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my $delay = 3;
my $conf = <<'EOF2';
http {
    %%PEBBLE_ISSUER%%
    acme_reload on;
    acme_reload_delay 3s;
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /manage { acme_status renew; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name reload.test;
        acme_certificate pebble;
        location / { return 200 "ok\n"; }
    }
    #FILES#
}
EOF2
$t->write_nginx_conf($conf =~ s/#FILES#//r);
my $mark0 = $t->log_mark;
my $master = $t->start_nginx;

# The reload processes of this nginx (children of its master; another
# test's nginx may run beside it): `nginx: acme reload process`.
sub reload_processes {
    my @p;
    open my $ps, '-|', 'ps', '-e', '-o', 'pid=,ppid=,user=,args=' or return;
    while (<$ps>) {
        push @p, { pid => $1, user => $3 }
            if /^\s*(\d+)\s+(\d+)\s+(\S+)\s+nginx: acme reload process/ && $2 == $master;
    }
    return grep { kill 0, $_->{pid} } @p;
}
# The master's line for each SIGHUP: "signal 1 (SIGHUP) received from PID, reconfiguring".
sub reconfigurings { my @l = $t->error_log($_[0]) =~ /(.*signal 1 \(SIGHUP\) received.*reconfiguring.*)/g; @l }

my @rp = reload_processes();
is scalar @rp, 1, 'one reload process';
is $rp[0]{user}, 'root', 'it runs as root (the master does)';
my $rp = $rp[0]{pid};

my $root = $t->pebble_root;
my $first = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'reload.test', ca => $root);
    $r->{verified} ? $r : undef
}, timeout => 60);
ok $first, 'first certificate served' or die('no certificate');

# The first issuance is followed by one reload, asked by the helper and
# sent by the reload process.
my $line = $t->wait_log(qr/reconfiguring/, 30, $mark0);
like $line, qr/signal 1 \(SIGHUP\) received from $rp, reconfiguring/,
    'the first issuance made the reload process signal a reload';
like $t->error_log($mark0), qr/acme: asking nginx for a graceful reload: new certificate for "reload\.test"/,
    'the helper asked for it';
$t->wait_for(sub { !@{ $t->nginx_pids->{shutting_down} } && $t->worker_pids }, timeout => 20);

# A server that reads the stored files itself.
my ($crt) = glob($t->dir . '/acme/reload.test-*.crt');
my ($key) = glob($t->dir . '/acme/reload.test-*.key');
ok $crt && $key, 'stored certificate and key';
$t->write_nginx_conf($conf =~ s{#FILES#}{server {
        listen 127.0.0.1:%%PORT_FILES%% ssl;
        server_name files.test;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        location / { return 200 "files\\n"; }
    }}r);
$t->reload_nginx;
my $files = $t->port('files');
# Its only server: the stored certificate's name is what a client asks for.
my $r = $t->tls_get(name => 'reload.test', port => $files, ca => $root);
ok $r->{verified}, 'the file server serves the stored certificate, verified';
is $r->{serial}, $first->{serial}, 'the first one';
@rp = reload_processes();
is_deeply [map { $_->{pid} } @rp], [$rp], 'reloads keep the one reload process';
sleep $delay + 1;    # a reload right after another one would wait the delay

# Renew now, under load on the file server.
my @workers = sort $t->worker_pids;
my $mark = $t->log_mark;
my ($wrk_pid, $wrk_out);
if ($wrk) {
    $wrk_out = $t->dir . '/wrk.out';
    $wrk_pid = fork // die "fork: $!";
    if (!$wrk_pid) {
        open STDOUT, '>', $wrk_out;
        open STDERR, '>&', \*STDOUT;
        exec($wrk, '-t1', '-c4', '-d14s', '--timeout', '5s', '-H', 'Connection: close',
            '-H', 'Host: files.test', "https://127.0.0.1:$files/") or POSIX::_exit(127);
    }
    sleep 1;
}
$r = $t->http_get('/manage?renew=reload.test', host => 'status.test', method => 'POST');
is $r->{status}, 202, 'renew asked';
my $swapped = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'reload.test', ca => $root);
    $r->{verified} && $r->{serial} ne $first->{serial} ? $r : undef
}, timeout => 60);
ok $swapped, 'renewed certificate hot-swapped' or die('no renewal');
$line = $t->wait_log(qr/reconfiguring/, 30, $mark);
like $line, qr/signal 1 \(SIGHUP\) received from $rp, reconfiguring/, 'the renewal made a reload';
my $after = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'reload.test', port => $files, ca => $root);
    $r->{serial} && $r->{serial} eq $swapped->{serial} ? $r : undef
}, timeout => 20);
ok $after && $after->{verified}, 'the file server serves the renewed certificate, verified';
my %old = map { $_ => 1 } @workers;
ok $t->wait_for(sub { my @w = $t->worker_pids; @w && !grep { $old{$_} } @w }, timeout => 20),
    'new worker processes';

if ($wrk) {
    waitpid($wrk_pid, 0);
    my $o = do { local (@ARGV, $/) = $wrk_out; <> } // '';
    diag $o;
    my ($requests) = $o =~ /(\d+) requests in/;
    ok $requests, "wrk completed $requests requests, each a new TLS connection, during the reload";
    unlike $o, qr/Socket errors/, 'no connect, read, write or timeout errors';
    unlike $o, qr/Non-2xx/, 'no failed responses';
} else {
    sleep $delay + 2;
    diag 'wrk is not installed: no load during the reload';
}
sleep 1 if $wrk;
my @reloads = reconfigurings($mark);
is scalar @reloads, 1, 'exactly one reload for the renewal' or diag explain \@reloads;
is_deeply [map { $_->{pid} } reload_processes()], [$rp], 'still the one reload process';

# It ends with nginx.
$t->stop_nginx(graceful => 1);
ok $t->wait_for(sub { !kill 0, $rp }, timeout => 10), 'the reload process ends with nginx';

# master_process off: no reload process.
$t->write_nginx_conf($conf =~ s/#FILES#//r, master_process => 0);
$mark = $t->log_mark;
$master = $t->start_nginx;    # the one nginx process: no child of it reloads
ok $t->wait_log(qr/acme_reload is ignored with "master_process off"/, 10, $mark),
    'master_process off: acme_reload is ignored, with a notice';
is scalar(reload_processes()), 0, 'and no reload process';
$t->stop_nginx;

done_testing;
