# Retry-After from the CA: 503 answers with a short Retry-After are retried
# in place; a rateLimited problem with Retry-After longer than the backoff
# sets the next attempt to that time, and no request goes to the CA before
# it, not even from the new engine of a reload. Pebble does not rate-limit,
# so a tiny stub CA (HTTPS, directory, nonces, newAccount, newOrder) stands
# in for it and records every request.
use strict;
use warnings;
use Test::More;
use IO::Socket::SSL;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $retry_after = 90;
my $t = AcmeTest->new(timeout => 120);
my $dir = $t->dir;
my $requests = "$dir/stub-requests.log";
my $stub_pid = start_stub($t->port('stub'));
END { kill 'KILL', $stub_pid if $stub_pid; }

$t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer stub {
        uri https://127.0.0.1:%%PORT_STUB%%/dir;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name limited.test;
        acme_certificate stub;
    }
}
EOF2
$t->start_nginx;

my $line = $t->wait_log(qr/acme: certificate "limited\.test" from "stub" failed: /, 30);
ok $line, 'the order failed' or die('no failure logged');
like $line, qr/failed: urn:ietf:params:acme:error:rateLimited: too many new orders recently, next attempt at /,
    'the CA\'s problem is logged';

my @orders = requests('POST /new-order');
is scalar @orders, 3, 'newOrder sent three times: two 503s retried in place, then 429';
cmp_ok $orders[1] - $orders[0], '>=', 0.9, 'first in-place retry after the 503\'s Retry-After (1 s)';
cmp_ok $orders[2] - $orders[1], '>=', 2.9, 'second one after 3 s';
my $limited_at = $orders[2];

my @n = $line =~ /next attempt at (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/;
my $next = timegm($n[5], $n[4], $n[3], $n[2], $n[1] - 1, $n[0]);
cmp_ok abs($next - ($limited_at + $retry_after)), '<=', 2,
    "next attempt at the Retry-After time ($retry_after s), not the 1 min backoff";
my ($json) = glob("$dir/acme/limited.test-*.json");
my $meta = decode_json(do { local (@ARGV, $/) = $json; <> });
is $meta->{last_error}{type}, 'urn:ietf:params:acme:error:rateLimited', '.json: last error';
cmp_ok abs($meta->{retry_after_until} - ($limited_at + $retry_after)), '<=', 2,
    '.json: the Retry-After time is kept';

# A reload starts a new engine: it must wait for the same time.
my $mark = $t->log_mark;
$t->reload_nginx;
ok $t->wait_log(qr/acme: certificate "limited\.test" needs to be ordered \(missing\), not before .* \(Retry-After\)/, 10, $mark),
    'the new engine knows the Retry-After time';
sleep 8;
my @after = grep { $_ > $limited_at + 0.5 } map { $_->[0] } all_requests();
is scalar @after, 0, 'no request to the CA before the time given';
unlike $t->error_log($mark), qr/failed:/, 'no attempt after the reload';

done_testing;

sub all_requests {
    open my $fh, '<', $requests or return ();
    return map { [split / /, $_, 2] } map { chomp; $_ } <$fh>;
}

sub requests {
    my ($what) = @_;
    return map { $_->[0] } grep { $_->[1] eq $what } all_requests();
}

# The stub CA: one process per connection, keep-alive, every request
# logged as "<time> <method> <path>".
sub start_stub {
    my ($port) = @_;
    my ($crt, $key) = $t->make_cert(names => ['localhost', '127.0.0.1'], file => 'stub');
    my $listen = IO::Socket::SSL->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 16,
        ReuseAddr => 1, SSL_server => 1, SSL_cert_file => $crt, SSL_key_file => $key)
        or die "stub: $! $SSL_ERROR";
    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $listen;
        return $pid;
    }
    alarm 0;
    $SIG{CHLD} = 'IGNORE';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    my $base = "https://127.0.0.1:$port";
    my $orders = 0;
    while (1) {
        my $c = $listen->accept or next;
        my $h = fork;
        if (!defined $h || $h) {
            # No TLS close_notify from here: the child owns the session.
            $c->close(SSL_no_shutdown => 1);
            next;
        }
        while (my ($method, $path) = read_request($c)) {
            open my $log, '>>', $requests or POSIX::_exit(1);
            printf {$log} "%.3f %s %s\n", time, $method, $path;
            close $log;
            my $n = () = grep { $_->[1] eq 'POST /new-order' } all_requests();
            my %h = ('Replay-Nonce' => 'nonce' . int(rand(1e9)), 'Content-Type' => 'application/json');
            if ($path eq '/dir') {
                respond($c, 200, \%h, encode_json({ newNonce => "$base/nonce",
                    newAccount => "$base/new-acct", newOrder => "$base/new-order" }));
            } elsif ($path eq '/nonce') {
                respond($c, 200, \%h, '');
            } elsif ($path eq '/new-acct') {
                respond($c, 201, { %h, Location => "$base/acct/1" }, '{"status":"valid"}');
            } elsif ($path eq '/new-order' && $n <= 2) {
                respond($c, 503, { %h, 'Retry-After' => 1, 'Content-Type' => 'application/problem+json' },
                    '{"type":"urn:ietf:params:acme:error:serverInternal","detail":"busy","status":503}');
            } elsif ($path eq '/new-order') {
                respond($c, 429, { %h, 'Retry-After' => $retry_after,
                        'Content-Type' => 'application/problem+json' },
                    '{"type":"urn:ietf:params:acme:error:rateLimited",'
                    . '"detail":"too many new orders recently","status":429}');
            } else {
                respond($c, 404, \%h, '{}');
            }
        }
        POSIX::_exit(0);
    }
}

sub read_request {
    my ($c) = @_;
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        my $n = sysread($c, my $buf, 1) or return;
        $head .= $buf;
    }
    my ($method, $path) = $head =~ m{^(\S+) (\S+)} or return;
    my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
    my $body = '';
    while (length $body < ($len // 0)) {
        my $n = sysread($c, my $buf, $len - length $body) or return;
        $body .= $buf;
    }
    return ($method, $path);
}

sub respond {
    my ($c, $status, $headers, $body) = @_;
    my $out = "HTTP/1.1 $status X\r\nContent-Length: " . length($body) . "\r\n";
    $out .= "$_: $headers->{$_}\r\n" for sort keys %$headers;
    print {$c} "$out\r\n$body";
}
