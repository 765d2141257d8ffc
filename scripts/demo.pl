#!/usr/bin/perl
# Demo: a local Pebble CA and nginx with ngx_http_acme_module on loopback.
# nginx starts with an empty certificate store, serves a self-signed
# fallback, orders a certificate from Pebble and swaps it in; this script
# waits for that and prints what a TLS client sees.
#
#   make demo
#   ACME_MODULE=$PWD/build/ngx_http_acme_module.so perl -I t/lib scripts/demo.pl
#
# Runs as root (nginx workers run as nobody). Everything listens on
# 127.0.0.1 only; everything started is stopped on exit.
# Exit status: 0 when the certificate was issued and verified, 1 otherwise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use POSIX qw(strftime);
use Test::More ();    # AcmeTest reports through Test::Builder
use Time::HiRes qw(time sleep);

use AcmeTest;

$| = 1;

my $NAME    = 'demo.example.test';
my @NAMES   = ($NAME, "www.$NAME");
my $WAIT    = 60;    # seconds for the certificate to appear

sub fail_exit {
    my ($t, $why) = @_;
    print STDERR "\nFAILED: $why\n";
    if ($t) {
        for my $f (qw(error.log nginx.out pebble.log challtestsrv.log)) {
            my $path = $t->dir . "/$f";
            next unless -s $path;
            my $content = do { local (@ARGV, $/) = $path; <> };
            my @lines = split /\n/, $content;
            my $n = @lines > 200 ? 200 : scalar @lines;
            print STDERR "--- $f (last $n lines) ---\n", join("\n", @lines[-$n .. -1]), "\n";
        }
        local $ENV{ACME_TEST_KEEP} = 1;    # keep the directory for a look
        $t->cleanup;
    }
    exit 1;
}

if ($> != 0) {
    print STDERR "demo.pl must run as root (nginx workers run as nobody)\n";
    exit 1;
}
if (!AcmeTest->module_path) {
    print STDERR "ACME_MODULE must name the built module (make demo sets it)\n";
    exit 1;
}
if (!defined AcmeTest->pebble_version) {
    print STDERR "no pebble found (run make deps)\n";
    exit 1;
}

my $t;
my $ok = eval {
    $t = AcmeTest->new(timeout => 150);

    print "Starting Pebble ", AcmeTest->pebble_version, " (", AcmeTest->pebble_bin('pebble'), ")\n";
    $t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
    my $root = $t->pebble_root;

    $t->write_nginx_conf(<<"EOF");
http {
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        contact admin\@example.test;
        accept_terms_of_service;
    }

    # "port 80": answers http-01 challenges, redirects everything else
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name _;
        return 301 https://\$host\$request_uri;
    }

    # "port 443": no ssl_certificate, the module provides it
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name @NAMES;
        acme_certificate pebble;
        location / {
            return 200 "hello from \$server_name\\n";
        }
    }
}
EOF
    my $https = $t->port('https');
    my $http  = $t->port('http');
    print "nginx:  http://127.0.0.1:$http (redirect), https://127.0.0.1:$https ($NAME)\n";
    print "ACME:   ", $t->acme_uri, "\n\n";

    my $t0 = time;
    $t->start_nginx;
    my $started = time - $t0;

    my ($first, $result);
    my $deadline = $t0 + $WAIT;
    while (time < $deadline) {
        my $r = $t->tls_get(name => $NAME, port => $https, ca => $root, timeout => 2);
        $first //= $r if $r->{ok};
        if ($r->{verified}) {
            $result = $r;
            last;
        }
        sleep 0.05;
    }
    my $elapsed = time - $t0;
    die "no certificate verifying against Pebble's root within ${WAIT}s\n" unless $result;

    printf "nginx started (master and workers up) in %.2f s\n", $started;
    if ($first && !$first->{verified}) {
        printf "first handshake: served \"%s\" (issuer \"%s\", the temporary self-signed fallback)\n",
            $first->{subject_cn} // '-', $first->{issuer_cn} // '-';
    }
    printf "first verified handshake %.2f s after starting nginx\n\n", $elapsed;

    my $utc = sub { defined $_[0] ? strftime('%Y-%m-%d %H:%M:%S UTC', gmtime $_[0]) : '-' };
    my $days = ($result->{not_after} - $result->{not_before}) / 86400;
    print "What a client sees at https://$NAME/ :\n";
    printf "  %-12s %s\n", 'subject CN', $result->{subject_cn} // '(none)';
    printf "  %-12s %s\n", 'SANs', join(', ', @{ $result->{sans} });
    printf "  %-12s %s\n", 'issuer CN', $result->{issuer_cn} // '-';
    printf "  %-12s %s\n", 'not before', $utc->($result->{not_before});
    printf "  %-12s %s (%.0f days)\n", 'not after', $utc->($result->{not_after}), $days;
    printf "  %-12s %s\n", 'serial', $result->{serial} // '-';
    printf "  %-12s %s %s\n", 'key', $result->{key_type} // '?', $result->{key_bits} // '';
    printf "  %-12s %s, %d certificate(s) sent\n", 'protocol', $result->{protocol} // '?',
        $result->{chain_len} // 0;
    printf "  %-12s verifies against Pebble's root, name matches\n", 'chain';

    # the other name and a request, for completeness
    my $www = $t->tls_get(name => $NAMES[1], port => $https, ca => $root, request => '/',
        timeout => 2);
    printf "  %-12s %s (%s)\n", "www", $www->{verified} ? 'verified' : 'NOT verified: '
        . ($www->{verify_error} // $www->{error} // '?'),
        defined $www->{status} ? "GET / -> $www->{status} " . ($www->{body} // '') =~ s/\s+$//r : 'no answer';
    my $redir = $t->http_get('/some/path?x=1', host => $NAME, port => $http);
    printf "  %-12s GET http://%s/some/path?x=1 -> %s %s\n\n", 'plain http', $NAME,
        $redir->{status} // 'no answer', $redir->{headers}{location} // '';

    print "acme lines from nginx's error log:\n";
    my @acme = grep { /acme/ } split /\n/, $t->error_log;
    print "  $_\n" for @acme;

    die "www.$NAME does not verify\n" unless $www->{verified};
    1;
};
if (!$ok) {
    my $err = $@ || 'unknown error';
    $err =~ s/\s+$//;
    fail_exit($t, $err);
}

$t->cleanup;
print "\nOK: stopped nginx, Pebble and the DNS stub.\n";
exit 0;
