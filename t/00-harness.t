# Self-test of t/lib/AcmeTest.pm: Pebble and its DNS stub start and answer,
# and a plain nginx (no ACME module) serves a static certificate that
# tls_get reads and verifies.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1);
plan skip_all => 'no pebble (run make deps)' unless defined AcmeTest->pebble_version;

my $t = AcmeTest->new(timeout => 120);
diag('pebble ' . AcmeTest->pebble_version . ' from ' . AcmeTest->pebble_bin('pebble'));

# --- ports
my %seen;
my @names = qw(http https acme mgmt dns challtest);
$seen{ $t->port($_) }++ for @names;
is scalar(keys %seen), scalar(@names), 'harness ports are distinct';
is $t->port('http'), $t->port('HTTP'), 'port() is stable and case-insensitive';

# --- Pebble
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
like $t->acme_uri, qr{^https://127\.0\.0\.1:\d+/dir$}, 'acme_uri';

my $http = HTTP::Tiny->new(timeout => 5, verify_SSL => 1,
    SSL_options => { SSL_ca_file => $t->pebble_ca_file });
my $r = $http->get($t->acme_uri);
ok $r->{success}, 'directory answers over verified HTTPS' or diag "$r->{status} $r->{content}";
my $dir = eval { JSON::PP::decode_json($r->{content}) } || {};
ok $dir->{newOrder} && $dir->{newNonce} && $dir->{newAccount}, 'directory lists the ACME resources';
if (AcmeTest->pebble_at_least('2.10')) {
    ok $dir->{renewalInfo}, 'pebble 2.10 directory has renewalInfo';
    ok $dir->{meta} && $dir->{meta}{profiles} && $dir->{meta}{profiles}{shortlived},
        'configured profiles are advertised';
}

my $root = $t->pebble_root;
ok -s $root, 'pebble_root saved to a file';
my $pem = do { local (@ARGV, $/) = $root; <> };
like $pem, qr/^-----BEGIN CERTIFICATE-----/, 'management /roots/0 is a PEM certificate';
like $t->pebble_intermediate, qr/pebble-intermediate\.pem$/, 'pebble_intermediate';

# the DNS stub answers A queries with 127.0.0.1
my $dns = dns_a_query('anything.example.test', $t->port('dns'));
is $dns, '127.0.0.1', 'DNS stub answers every name with 127.0.0.1';
$r = $t->challtest('/set-txt', { host => '_acme-challenge.example.test.', value => 'x' });
ok $r->{success}, 'challtestsrv management API answers';

is $t->pebble_orders, 0, 'no orders yet';

# --- config test of a broken configuration
$t->write_nginx_conf(<<'EOF', module => 0);
http {
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        no_such_directive on;
    }
}
EOF
my ($rc, $out) = $t->run_nginx_t;
isnt $rc, 0, 'nginx -t fails on a broken config';
like $out, qr/unknown directive "no_such_directive" in \S+nginx\.conf:\d+/, 'and says why, with file:line';

# --- plain nginx with a static certificate
my ($crt, $key) = $t->make_cert(names => ['example.test', 'www.example.test']);
$t->write_nginx_conf(<<"EOF", module => 0);
http {
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name example.test;
        location / { return 200 "plain\\n"; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test www.example.test;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        location / { return 200 "hello \$ssl_server_name\\n"; }
    }
}
EOF
($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts the config' or diag $out;

my $master = $t->start_nginx;
ok $master, 'nginx started';
my $pids = $t->nginx_pids;
is $pids->{master}, $master, 'nginx_pids master';
is scalar @{ $pids->{workers} }, 2, 'two workers';
ok !defined $t->helper_pid, 'no helper process without the module';

my $g = $t->tls_get(name => 'example.test', ca => $t->ca_file, request => '/');
ok $g->{ok}, 'TLS handshake' or diag $g->{error};
is $g->{verified}, 1, 'verified against the harness CA' or diag $g->{verify_error};
is $g->{subject_cn}, 'example.test', 'subject_cn';
is_deeply [sort @{ $g->{sans} }], ['example.test', 'www.example.test'], 'sans';
is $g->{issuer_cn}, 'AcmeTest harness CA', 'issuer_cn';
is $g->{key_type}, 'ec', 'key_type';
is $g->{key_bits}, 256, 'key_bits';
like $g->{serial}, qr/^[0-9A-F]+$/, 'serial is hex';
ok $g->{not_before} <= time + 60 && $g->{not_after} > time + 29 * 86400, 'validity';
is $g->{chain_len}, 1, 'chain has the leaf only';
like $g->{chain_pem}, qr/BEGIN CERTIFICATE/, 'chain_pem';
is $g->{status}, 200, 'HTTP status over TLS';
is $g->{body}, "hello example.test\n", 'HTTP body over TLS';

$g = $t->tls_get(name => 'other.test', ca => $t->ca_file);
ok $g->{ok} && !$g->{verified}, 'wrong name does not verify';
like $g->{verify_error}, qr/does not match/, 'and says so';

$g = $t->tls_get(name => 'example.test', ca => $t->pebble_root);
ok $g->{ok} && !$g->{verified} && $g->{verify_error}, 'wrong CA does not verify';

$g = $t->tls_get(name => 'example.test');
ok $g->{ok} && !$g->{verified}, 'no CA: handshake without verification';

$r = $t->http_get('/', host => 'example.test');
is $r->{status}, 200, 'http_get' or diag "$r->{status} $r->{content}";
is $r->{content}, "plain\n", 'http_get body';

# --- reload replaces the workers
my @old = $t->worker_pids;
my $mark = $t->log_mark;
ok $t->reload_nginx, 'reload';
my %old = map { $_ => 1 } @old;
ok !(grep { $old{$_} } $t->worker_pids), 'new workers after reload';
ok $t->wait_log(qr/\[notice\].*reconfiguring/, 5, $mark), 'wait_log sees the reload';

# a failed reload is reported and keeps the old workers
@old = $t->worker_pids;
$t->write_nginx_conf("http { server { listen 127.0.0.1:%%HTTP_PORT%%; bogus; } }\n", module => 0);
my $err = $t->reload_nginx(expect_fail => 1);
like $err, qr/\[emerg\].*unknown directive "bogus"/, 'failed reload returns the error';
is_deeply [sort $t->worker_pids], [sort @old], 'old workers kept';

ok $t->wait_for(sub { 42 }, timeout => 1) == 42, 'wait_for returns the value';
ok !defined $t->wait_for(sub { 0 }, timeout => 0.3), 'wait_for times out';

$t->stop_nginx;
ok !$t->nginx_pids->{master}, 'nginx stopped';
ok !kill(0, $master), 'master is gone';
ok !(grep { kill 0, $_ } @old), 'workers are gone';

$t->stop_pebble;
ok !HTTP::Tiny->new(timeout => 1)->get($t->acme_uri)->{success}, 'pebble stopped';

done_testing;

# A minimal DNS A query over UDP; returns the first address or undef.
sub dns_a_query {
    my ($name, $port) = @_;
    require IO::Socket::INET;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'udp')
        or return undef;
    my $q = pack('n6', 0x1234, 0x0100, 1, 0, 0, 0)
        . join('', map { chr(length) . $_ } split /\./, $name) . "\0" . pack('n2', 1, 1);
    $s->send($q);
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;
    select(my $rout = $rin, undef, undef, 3) or return undef;
    $s->recv(my $buf, 512);
    my ($id, $flags, $qd, $an) = unpack 'n4', $buf;
    return undef unless $an;
    # skip the header and the question, then walk the answers
    my $off = 12;
    $off++ while ord(substr $buf, $off, 1);
    $off += 5;
    for (1 .. $an) {
        if ((ord(substr $buf, $off, 1) & 0xc0) == 0xc0) { $off += 2 }
        else { $off++ while ord(substr $buf, $off, 1); $off++ }
        my ($type, $class, $ttl, $len) = unpack 'n n N n', substr $buf, $off, 10;
        $off += 10;
        return join '.', unpack 'C4', substr $buf, $off, 4 if $type == 1 && $len == 4;
        $off += $len;
    }
    return undef;
}
