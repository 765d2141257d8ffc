# tls-alpn-01 on a server reachable only on TLS (no port-80 listener at
# all): the certificate is issued with `challenge tls-alpn-01`, while
# ordinary HTTPS clients on the same listener (with http2) are served
# before, during and after the challenge; raw acme-tls/1 clients get the
# challenge certificate only while a challenge is pending, over TLS 1.2 and
# TLS 1.3. The listener's default server takes its certificate from
# variables, then (after reloads) from files, then rejects handshakes.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use POSIX ();
use Time::HiRes qw(sleep time);

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180, log_level => 'info');

# Delaying TCP relays (own processes, stopped with the harness's others):
# one in front of Pebble's ACME API holds the engine back for a second
# before it can publish anything, one in front of nginx holds each of
# Pebble's validation connections for a second while the challenge is
# pending. Both give the client below time to see every phase.
my $relay = $t->write_file('relay.pl', <<'EOF');
use strict; use IO::Socket::INET; use IO::Select; use POSIX ();
my ($listen, $target, $delay) = @ARGV;
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $listen,
    Listen => 64, ReuseAddr => 1) or die "listen $listen: $!";
$SIG{CHLD} = 'IGNORE';
while (1) {
    my $c = $srv->accept or next;
    my $pid = fork;
    if (defined $pid && !$pid) {
        select(undef, undef, undef, $delay);
        my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $target)
            or POSIX::_exit(0);
        my $sel = IO::Select->new($c, $u);
        OUTER: while (my @ready = $sel->can_read(30)) {
            for my $from (@ready) {
                my $to = $from == $c ? $u : $c;
                my $n = sysread($from, my $buf, 65536);
                last OUTER unless $n;
                syswrite($to, $buf) or last OUTER;
            }
        }
        POSIX::_exit(0);
    }
    close $c;
}
EOF
$t->_spawn('acme-relay', [$^X, $relay, $t->port('acme_relay'), $t->port('acme'), 1]);
$t->_spawn('tls-relay', [$^X, $relay, $t->port('tls_relay'), $t->port('https'), 1]);

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 },
    config => { tlsPort => $t->port('tls_relay') });
$t->make_cert(name => $_) for qw(static.test var.test);

my $conf = <<'EOF2';
http {
    ssl_protocols TLSv1.2 TLSv1.3;    # nginx 1.22's default lacks TLSv1.3
    acme_issuer pebble {
        uri https://127.0.0.1:%%PORT_ACME_RELAY%%/dir;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        challenge tls-alpn-01;
    }
    # The listener's default server takes certificates from variables.
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl http2 DEFAULT_VAR;
        server_name var.test;
        ssl_certificate %%TESTDIR%%/$ssl_server_name.crt;
        ssl_certificate_key %%TESTDIR%%/$ssl_server_name.key;
        location / { return 200 "var\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl DEFAULT_STATIC;
        server_name static.test;
        ssl_certificate %%TESTDIR%%/static.test.crt;
        ssl_certificate_key %%TESTDIR%%/static.test.key;
        location / { return 200 "static\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name alpn.test;
        acme_certificate pebble;
        location / { return 200 "alpn\n"; }
    }
    SECOND
    THIRD
}
EOF2
(my $conf1 = $conf) =~ s/DEFAULT_VAR/default_server/;
$conf1 =~ s/DEFAULT_STATIC|SECOND|THIRD//g;
$t->write_nginx_conf($conf1);

# True when the leaf carries the critical id-pe-acmeIdentifier extension.
sub acme_identifier_critical {
    my ($pem) = @_;
    my $file = $t->write_file('leaf.pem', $pem);
    my (undef, $text) = AcmeTest::_run('openssl', 'x509', '-noout', '-text', '-in', $file);
    return $text =~ /1\.3\.6\.1\.5\.5\.7\.1\.31: critical/ ? 1 : 0;
}

# The client: from before nginx starts until told to stop, each round makes
# two ordinary HTTPS requests and one acme-tls/1 handshake (alternately
# TLS 1.2 and 1.3), and writes one line per round.
my $rounds = $t->dir . '/rounds.txt';
my $stop = $t->dir . '/stop-client';
my $client = fork // die "fork: $!";
if (!$client) {
    open my $out, '>', $rounds or POSIX::_exit(1);
    $out->autoflush(1);
    my $ca = $t->ca_file;
    my $deadline = time + 120;
    for (my $i = 0; !-e $stop && time < $deadline && getppid() != 1; $i++) {
        my $h2 = $t->tls_get(name => 'static.test', ca => $ca, alpn => ['h2', 'http/1.1'], timeout => 3);
        my $get = $t->tls_get(name => 'alpn.test', alpn => ['http/1.1'], request => '/', timeout => 3);
        my $version = $i % 2 ? 'TLSv1_2' : 'TLSv1_3';
        my $probe = $t->tls_get(name => 'alpn.test', alpn => ['acme-tls/1'], request => '/',
            timeout => 3, ssl_options => { SSL_version => $version });
        my $state = !$probe->{ok} && ($probe->{error} // '') =~ /no application protocol/ ? 'refused'
            : !$probe->{ok} ? 'down'
            : 'served';
        if ($state eq 'served') {
            # the challenge certificate, acme-tls/1, and no request read
            my $ok = ($probe->{alpn} // '') eq 'acme-tls/1' && "@{ $probe->{sans} }" eq 'alpn.test'
                && !defined $probe->{status};
            $state = $ok ? 'challenge' : 'wrong';
            if ($ok && !-e "$rounds.pem") {
                open my $p, '>', "$rounds.pem";
                print {$p} $probe->{cert_pem};
                close $p;
            }
        }
        my $ordinary = $h2->{ok} && $h2->{verified} && ($h2->{alpn} // '') eq 'h2'
            && $get->{ok} && ($get->{status} // 0) == 200 && ($get->{body} // '') eq "alpn\n";
        my $why = $ordinary ? '' : join ' / ', grep { $_ } $h2->{error}, $get->{error},
            ($get->{ok} && !$get->{status} ? 'no response' : ());
        my $issuer = $get->{issuer_cn} // '';
        print {$out} join("\t", $i, $version, $state, $ordinary ? 'ok' : 'fail', $issuer, $why), "\n";
    }
    POSIX::_exit(0);
}

$t->start_nginx;
my $root = $t->pebble_root;
my $issued = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'alpn.test', ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 40);
ok $issued, 'certificate issued with tls-alpn-01 through a TLS-only server' or diag explain $issued;
is_deeply $issued->{sans}, ['alpn.test'], 'exactly the configured name';
is $issued->{status}, 200, 'served over the new certificate';
sleep 0.5;    # some rounds after issuance
open my $touch, '>', $stop or die;
close $touch;
waitpid $client, 0;

my @rounds = map { [split /\t/, $_, -1] } split /\n/, AcmeTest::_slurp($rounds);
my $first = 0;
$first++ while $first < @rounds && $rounds[$first][3] ne 'ok';    # nginx starting
my @failed = grep { $_->[3] ne 'ok' || $_->[2] eq 'down' } @rounds[$first .. $#rounds];
is scalar @failed, 0, 'no ordinary request failed once nginx was up'
    or diag join "\n", map { join ' ', @$_ } @failed[0 .. ($#failed < 4 ? $#failed : 4)];
is scalar(grep { $_->[2] eq 'wrong' } @rounds), 0, 'acme-tls/1 never got anything but the challenge';
my ($begin) = grep { $rounds[$_][2] eq 'challenge' } 0 .. $#rounds;
my ($end) = reverse grep { $rounds[$_][2] eq 'challenge' } 0 .. $#rounds;
ok defined $begin, 'acme-tls/1 clients got the challenge certificate while it was pending'
    or diag "rounds: " . scalar @rounds;
SKIP: {
    skip 'no challenge seen', 6 unless defined $begin;
    my @before = @rounds[$first .. $begin - 1];
    my @during = @rounds[$begin .. $end];
    my @after = @rounds[$end + 1 .. $#rounds];
    ok @before >= 1 && !grep({ $_->[2] ne 'refused' } @before),
        'before: acme-tls/1 refused (' . scalar(@before) . ' rounds of ordinary requests)';
    ok @during >= 1, 'during: ' . scalar(@during) . ' rounds of ordinary requests';
    ok((grep { $_->[2] eq 'challenge' && $_->[1] eq 'TLSv1_2' } @during)
        && (grep { $_->[2] eq 'challenge' && $_->[1] eq 'TLSv1_3' } @during),
        'the challenge certificate was served over TLS 1.2 and over TLS 1.3');
    ok @after >= 1 && !grep({ $_->[2] ne 'refused' } @after),
        'after: acme-tls/1 refused again (' . scalar(@after) . ' rounds)';
    ok((grep { $_->[4] =~ /^Pebble Intermediate/ } @after), 'after: the issued certificate served');
    my $pem = AcmeTest::_slurp("$rounds.pem");
    ok acme_identifier_critical($pem), 'challenge certificate carries the critical acmeIdentifier';
}
ok $t->error_log =~ /acme: answering tls-alpn-01 challenge for "alpn\.test"/,
    'the validation was answered in the handshake';
like $t->error_log, qr/acme: authorization for "alpn\.test" is valid \(tls-alpn-01\)/,
    'authorization by tls-alpn-01';
unlike $t->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts in the error log';

# No pending challenge: acme-tls/1 fails the handshake (no certificate at
# all), ordinary ALPN gets the normal certificate; whatever the server.
my $ca = $t->ca_file;
for my $version (qw(TLSv1_2 TLSv1_3)) {
    my %opts = (ssl_options => { SSL_version => $version });
    for my $name (qw(alpn.test static.test var.test unknown.test)) {
        my $r = $t->tls_get(name => $name, alpn => ['acme-tls/1'], %opts);
        ok !$r->{ok} && !$r->{sans}, "$version $name: acme-tls/1 without a challenge gets no certificate";
        like $r->{error} // '', qr/no application protocol/, "$version $name: no_application_protocol alert";
    }
    my $r = $t->tls_get(name => 'alpn.test', ca => $root, alpn => ['h2', 'http/1.1'], %opts);
    ok $r->{verified} && $r->{alpn} eq 'h2', "$version alpn.test: h2,http/1.1 gets the issued certificate and h2";
    is $r->{protocol}, $version, "$version negotiated";
    for my $name (qw(static.test var.test)) {
        $r = $t->tls_get(name => $name, ca => $ca, alpn => ['h2', 'http/1.1'], request => '/', %opts);
        ok $r->{verified}, "$version $name: normal certificate";
    }
}

# Reload: a server with a static certificate becomes the listener's
# default server, and a new name is validated through it.
my $mark = $t->log_mark;
(my $conf2 = $conf) =~ s/DEFAULT_VAR//;
$conf2 =~ s/DEFAULT_STATIC/default_server/;
$conf2 =~ s/SECOND/server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name second.test;
        acme_certificate pebble;
        location \/ { return 200 "second\\n"; }
    }/;
(my $conf3 = $conf2) =~ s/THIRD/server {
        listen 127.0.0.1:%%PORT_REJECT%% ssl default_server;
        ssl_reject_handshake on;
    }
    server {
        listen 127.0.0.1:%%PORT_REJECT%% ssl;
        server_name third.test;
        acme_certificate pebble;
        location \/ { return 200 "third\\n"; }
    }/;
$conf2 =~ s/THIRD//;
$t->write_nginx_conf($conf2);
$t->reload_nginx;
my $second = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'second.test', ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 40);
ok $second, 'after a reload, a name is issued with tls-alpn-01 through a static default server';
is $second->{body}, "second\n", 'and served';
like $t->error_log($mark), qr/acme: answering tls-alpn-01 challenge for "second\.test"/,
    'answered in the handshake';
my $r = $t->tls_get(name => undef, alpn => ['acme-tls/1']);
like $r->{error} // '', qr/no application protocol/, 'acme-tls/1 without SNI is refused';

# Reload: a listener whose default server rejects handshakes
# (ssl_reject_handshake), Pebble's validations now relayed there.
$t->_stop('tls-relay');
$t->_spawn('tls-relay', [$^X, $relay, $t->port('tls_relay'), $t->port('reject'), 1]);
$mark = $t->log_mark;
$t->write_nginx_conf($conf3);
$t->reload_nginx;
my $third = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'third.test', port => $t->port('reject'), ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 40);
ok $third, 'a name behind an ssl_reject_handshake default server is issued with tls-alpn-01';
is $third->{body}, "third\n", 'and served';
like $t->error_log($mark), qr/acme: answering tls-alpn-01 challenge for "third\.test"/,
    'answered in the handshake';
$r = $t->tls_get(name => 'other.test', port => $t->port('reject'), alpn => ['h2', 'http/1.1']);
ok !$r->{ok} && $r->{error} !~ /no application protocol/, 'other names are still rejected by nginx';
$r = $t->tls_get(name => 'other.test', port => $t->port('reject'), alpn => ['acme-tls/1']);
like $r->{error} // '', qr/no application protocol/, 'acme-tls/1 for them: no_application_protocol';
unlike $t->error_log, qr/\[(?:alert|crit)\]/, 'no alerts in the error log';

done_testing;
