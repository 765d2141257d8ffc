package AcmeTest;

# Integration test harness: runs Pebble, a DNS stub and nginx on loopback
# ports in a private directory, and inspects what nginx serves.

=head1 NAME

AcmeTest - start Pebble, pebble-challtestsrv and nginx for the integration tests

=head1 SYNOPSIS

    use Test::More;
    use AcmeTest;

    AcmeTest->requires(root => 1, module => 1);   # plan skip_all unless met
    my $t = AcmeTest->new;
    $t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
    $t->write_nginx_conf(<<'EOF');      # directive names: see docs/directives.md
    http {
        acme_issuer pebble {
            uri %%ACME_URI%%;
            ssl_trusted_certificate %%PEBBLE_CA%%;
            state_path %%TESTDIR%%/acme;
            accept_terms_of_service;
        }
        resolver 127.0.0.1:%%DNS_PORT%%;
        server {
            listen 127.0.0.1:%%HTTP_PORT%%;
            listen 127.0.0.1:%%HTTPS_PORT%% ssl;
            server_name example.test;
            acme_certificate pebble;
        }
    }
    EOF
    $t->start_nginx;
    my $root = $t->pebble_root;
    ok $t->wait_for(sub { $t->tls_get(name => 'example.test', ca => $root)->{verified} },
                    timeout => 30), 'certificate issued';
    done_testing;

=head1 DESCRIPTION

Everything runs on 127.0.0.1, in a directory of its own (under C<$TMPDIR>
or C</tmp>, or C<$ACME_TEST_TMPDIR>), readable by the unprivileged worker
user. Every process the harness starts is stopped when the object goes away
or the test script ends, even when it dies (TERM, then KILL after 5 s).
When a test fails, the directory is kept and its path and the tails of the
logs are printed with C<diag>; C<ACME_TEST_KEEP=1> keeps it always.

A whole test script is bounded by an alarm (C<timeout> option of C<new>,
or C<$ACME_TEST_TIMEOUT>, default 300 s). Every wait in the harness is
bounded as well.

Environment: C<ACME_MODULE> is the module to load (absolute path; the
Makefile sets it), C<PEBBLE_DIR> a directory with C<bin/pebble>,
C<bin/pebble-challtestsrv> and C<VERSION> (default: the repository's
C<.deps/pebble>; when absent, Debian's C</usr/bin/pebble> 2.4 is used).

=head1 CLASS METHODS

=over

=item AcmeTest->requires(root => 1, module => 1, pebble => '2.10', nginx => '1.29.2')

Calls C<plan skip_all> unless running as root, C<ACME_MODULE> names a
readable file, (C<< stream => 1 >>) nginx's stream module is installed and
C<ngx_stream_acme_module.so> was built next to C<ACME_MODULE>, the Pebble in use is at least the given version, and so is
nginx. Give only the conditions the test needs.

=item AcmeTest->pebble_version

The version of the Pebble that will be used, e.g. "2.10.0" or "2.4.0".
Also works on an object. C<< AcmeTest->pebble_at_least('2.10') >> compares.

=item AcmeTest->nginx_version

The version of the nginx binary the tests run (C<$NGINX_BINARY>, by
default C</usr/sbin/nginx>), from C<nginx -v>, e.g. "1.22.1"; undef when
it cannot be run. C<< AcmeTest->nginx_at_least('1.29.2') >> compares.

=back

=head1 CONSTRUCTOR

=over

=item my $t = AcmeTest->new(%opts)

Options: C<timeout> (seconds for the whole script, default 300),
C<worker_processes> (default 2), C<log_level> (nginx error_log level,
default C<notice>).

=back

=head1 METHODS

=head2 Ports and files

=over

=item $t->dir

The test directory (mode 0755).

=item $t->port($name)

A free loopback port (TCP and UDP) for C<$name>, the same one on every call.
Names the harness uses: C<http>, C<https> (nginx; Pebble validates http-01
and tls-alpn-01 there), C<acme> and C<mgmt> (Pebble), C<dns> and
C<challtest> (pebble-challtestsrv). Any other name is free for tests and
is substituted as C<%%PORT_NAME%%> (upper case) in nginx configurations.

=item $t->write_file($relpath, $content)

Writes a file in the test directory (mode 0644), returns its absolute path.

=item $t->worker_dir($relpath)

Creates a directory in the test directory owned by the nginx worker user
(nobody), for a store the helper process must write. Returns its path.

=item $t->make_cert(name => 'example.test', names => [...], key => 'ec'|'rsa', days => 30)

Makes a key and certificate signed by the harness CA (the one that also
signed Pebble's own listener certificate). C<names> defaults to
C<[name]>; IP addresses become IP SANs. Returns C<($cert_file, $key_file)>.
C<< $t->ca_file >> is the CA certificate.

=back

=head2 Pebble

=over

=item $t->start_pebble(env => {...}, config => {...})

Starts pebble-challtestsrv as a DNS stub answering every A query with
127.0.0.1 (AAAA disabled, its own challenge responders off), then Pebble
using it (or the DNS server C<dnsserver>, "ADDR:PORT"), with
C<PEBBLE_VA_NOSLEEP=1> plus C<env>. Pebble's configuration
(C<listenAddress>, C<httpPort> = port('http'), C<tlsPort> = port('https'),
C<retryAfter> 0/0, profiles C<default> (90 days) and C<shortlived>
(6 days), no EAB) is merged with C<config> (hashes merge recursively; an
undef value deletes the key). Pebble 2.10 gives an order that names no
profile one of its profiles at random: a test that depends on the lifetime
keeps only one, e.g. C<< profiles => { default => { validityPeriod => 30 },
shortlived => undef } >>. Its ARI window is +-24 hours around two thirds of
the lifetime, so a certificate of seconds is always due by ARI unless the
test moves the window (C<set_renewal_window>). Waits until the directory answers. Note that
Pebble rejects 5% of nonces by default (C<PEBBLE_WFE_NONCEREJECT>) and
reuses a valid authorization for half of the identifiers
(C<PEBBLE_AUTHZREUSE>; even with 0 it does so for about 1 in 100, as it
compares with <=): a test that needs a validation on a later order must
allow for one without.

=item $t->stop_pebble

Stops Pebble and the DNS stub. C<start_pebble> may then be called again;
the new Pebble has a new root.

=item $t->acme_uri

C<https://127.0.0.1:PORT/dir>.

=item $t->pebble_ca_file

The CA file that verifies Pebble's HTTPS listener (for
C<ssl_trusted_certificate>). Same as C<< $t->ca_file >>.

=item $t->pebble_root

Fetches Pebble's current root (management C</roots/0>) into a file once per
Pebble run and returns the file's path. Certificates Pebble issues chain to it.

=item $t->pebble_intermediate

Same for C</intermediates/0>.

=item $t->start_ocsp_responder

An OCSP responder on 127.0.0.1:C<< port('ocsp') >> (C<openssl ocsp>),
signing with Pebble's intermediate certificate and key (from Pebble's
management API), so start Pebble first with C<< config => {
ocspResponderURL => $t->ocsp_uri } >>. It answers from the index file
C<ocsp-index.txt> (empty at first: "unknown" for every serial), which
C<< $t->ocsp_good($serial_hex) >> extends; C<openssl ocsp> reads it again
when it changes. Stopped with the test.

=item $t->pebble_mgmt($method, $path, $body)

A request to Pebble's management API, C<$body> a hash encoded as JSON.
Returns the HTTP::Tiny response hash. E.g.
C<< $t->pebble_mgmt(GET => '/roots/0') >>.

=item $t->set_renewal_window($cert_pem, $start, $end, explanation => $url)

Makes Pebble's ARI (C<renewalInfo>) answer for that certificate suggest the
window from C<$start> to C<$end> (epoch seconds), through the management
API's C<POST /set-renewal-info/> (body C<{"Certificate": PEM,
"ARIResponse": JSON text}>). Dies unless Pebble accepts it.

=item AcmeTest::ari_cert_id($cert_pem)

The RFC 9773 certificate identifier of a PEM certificate:
base64url(authority key identifier) "." base64url(serial, DER content).

=item $t->challtest($path, \%body)

POST to pebble-challtestsrv's management API, e.g.
C<< $t->challtest('/set-txt', { host => '_acme-challenge.example.test.', value => 'x' }) >>.
Returns the HTTP::Tiny response hash.

=item $t->start_named(zone => 'example.test', key => 'acme-key', records => "...")

Starts BIND's C<named> (in the foreground, as root, files in C<DIR/named/>)
on port('named') of 127.0.0.1 as the primary of C<zone>, which allows
dynamic updates signed with a fresh TSIG key (C<tsig-keygen>, hmac-sha256)
named C<key>. C<records> (zone file lines; default an A record for the
apex and a wildcard) follow the SOA, NS and C<ns> A records. Returns the
key file (C<< $t->named_key_file >>); C<< $t->named_wrong_key_file >> is
another key of the same name. Start Pebble with C<< dnsserver =>
'127.0.0.1:' . $t->port('named') >> to have it validate dns-01 there.
Stopped with the other processes.

=item $t->dig($name, $type, port => $port)

The records C<named> (or the server on C<port>) answers for C<$name>
(C<$type> default C<TXT>, quotes removed), one per element.

=item $t->pebble_log, $t->pebble_log_count(qr/.../)

Pebble's output, and the number of its lines that match.
C<< $t->pebble_orders >> is the number of new orders Pebble accepted.

=item my $gate = $t->start_gate(from => $t->port('gate'), to => $t->port('http'))

A small forwarding proxy from port C<from> to port C<to> (those are the
defaults) that holds each connection until the test opens it, so that a
test acts at a known step of an order: start Pebble with C<< config =>
{ httpPort => $t->port('gate') } >> and its http-01 validations wait at
the gate. The gate starts closed. C<< $gate->hit >> is true once a
connection arrived; C<< $gate->open >> lets held and later connections
through; C<< $gate->close >> holds the next ones again and clears C<hit>.
A connection held for 20 s goes through anyway. C<< $gate->stop >> stops
it, otherwise stopped with the other processes; C<< $gate->pid >>.

=item my $log = $t->start_backend($name)

A tiny HTTP/1.0 server on 127.0.0.1:port($name), a process per
connection, for C<proxy_pass> in a C<stream> server: every request gets
C<200> with the body C<"$name\n">. Each connection adds one line to the
file C<$log>: the request line, or an empty line when the connection sent
nothing. Stopped with the other processes.

=back

=head2 Faults

=over

=item $t->start_ca_proxy

Starts a second nginx (the stock binary, without the module; master and one
worker, files in C<DIR/ca-proxy/>) on C<port('ca_proxy')> that proxies to
Pebble's HTTPS listener. It passes the client's C<Host> on, and Pebble
builds every URL from it, so an issuer with C<uri> C<< $t->ca_proxy_uri >>
(or C<https://127.0.0.1:%%PORT_CA_PROXY%%/dir>) sends all its requests
through the proxy. Its TLS certificate is signed by the harness CA (the
issuer's C<ssl_trusted_certificate %%PEBBLE_CA%%> verifies it). Call after
C<start_pebble>; it starts passing everything through.

=item $t->set_ca_fault($mode, %opt)

Switches the proxy (rewrites the file its C<location> includes, sends HUP
and waits for the new worker; a fraction of a second). Modes: C<pass>;
a status such as C<500> or C<503>, answered by the proxy with a problem
document (C<type>, default C<...:serverInternal>, and C<detail> options;
C<< problem => 0 >> gives nginx's HTML page instead) and, with
C<< retry_after => N >>, a C<Retry-After> header; C<close> (C<return 444>:
the connection is closed without an answer); C<cut> (the answer's headers
and the start of its body, then the connection is closed: a small upstream
promises 4000 bytes and sends 15); C<slow> (C<limit_rate>, C<< rate => >>
bytes per second, default 200). C<< paths => REGEX >> limits the fault to
requests whose path matches (e.g. C<^/certZ/>, Pebble's certificate
downloads), C<< method => 'POST' >> to one method. Requests the proxy
answered itself never reach Pebble.

=item $t->ca_proxy_requests

Every request the proxy saw, in order: hashes with C<time> (epoch seconds,
milliseconds), C<method>, C<uri>, C<status> (444 for C<close>) and
C<request_time>.

=item $t->mount_tmpfs($relpath, size => '1m', mode => 0700)

Mounts a tmpfs of that size (owned by nobody, as a state directory must
be) on a directory of the test directory, created when missing, and
returns its path. Every mount is unmounted when the test ends, failed or
not (after the processes are stopped; lazily if it is still busy).

=item $t->set_read_only($path, 1), $t->set_read_only($path, 0)

Makes a directory read-only while it is in use, and writable again: a
read-only bind mount of it over itself, then its removal. From then on
every open for writing under it (and every create, rename or unlink) fails
with EROFS; descriptors opened before keep working. (C<mount -o
remount,ro> of a file system is refused while a process has a file on it
open for writing, as the engine has its C<.lock>.)

=item $t->fill_fs($path, leave => 0, file => "$path/.filler")

Appends zeros to C<file> until the file system of C<$path> has C<leave>
free blocks (tmpfs: pages of 4096 bytes) and returns the file's name;
removing the file frees the space. C<< $t->fs_free_blocks($path) >> is the
number of free blocks (and in list context the block size too).

=item $t->faketime_env(offset => 0), $t->set_fake_time($offset)

The environment that runs a process under libfaketime (Debian's
C<faketime> package; C<AcmeTest::faketime_available> says whether it is
installed) with a wall clock C<offset> seconds off the real one, read
from C<DIR/faketime.rc> at every call (C<FAKETIME_NO_CACHE>), so that
C<set_fake_time> moves it at once in every process started with it.
Only the wall clock moves (C<FAKETIME_DONT_FAKE_MONOTONIC>): nginx's timers
and the engine's timeouts keep real time. libfaketime translates the
deadline of a C<pthread_cond_timedwait> (the engine's scheduler sleeps in
one) when the wait starts: a jump is seen when the wait ends, not at once
as with a real clock step. nginx clears the environment of its workers and
helper (libfaketime then stops reading the file there): put
C<AcmeTest::faketime_conf> (C<env> lines) at main level in the
configuration.

=back

=head2 nginx

=over

=item $t->write_nginx_conf($template, %opt)

Writes C<nginx.conf> and returns its path. The template is the C<http>
block and anything else at main level; the harness puts in front of it
C<load_module> (ACME_MODULE), C<daemon off>, C<master_process>, C<pid>,
C<error_log DIR/error.log LEVEL>, C<worker_processes> and C<events>, and
adds C<access_log DIR/access.log> at the top of the C<http> block.
Options: C<< module => 0 >> leaves C<load_module> out (it is also left out
when ACME_MODULE is unset; C<< module => 1 >> then dies), C<log_level>
(e.g. C<debug>; Debian's nginx has debug logging), C<worker_processes>,
C<top> (main-level text put first, before C<load_module> and C<events>:
e.g. an C<include> of C</etc/nginx/modules-enabled/*.conf>),
C<< master_process => 0 >> (one process; C<nginx_pids> then has no
workers, and in-place reloads of that mode are not reliable in nginx itself),
C<< stream => 1 >> (also loads nginx's stream module before ours and
C<ngx_stream_acme_module.so>, from next to ACME_MODULE, after it, for a
C<stream> block in the template).

Substitutes C<%%MODULE%%> (the module's absolute path, for a test that
writes its own C<load_module> with C<< module => 0 >>; C<%%STREAM_MODULE%%>
and C<%%NGX_STREAM_MODULE%%> are ngx_stream_acme_module.so's and nginx's
stream module's), C<%%HTTP_PORT%%>,
C<%%HTTPS_PORT%%>, C<%%ACME_URI%%>, C<%%PEBBLE_CA%%>, C<%%TESTDIR%%>,
C<%%DNS_PORT%%>, C<%%PEBBLE_ROOT%%> (only while Pebble runs) and
C<%%PORT_NAME%%> for any other port name. An unknown C<%%WORD%%> dies.
A line holding only C<%%PEBBLE_ISSUER%%> becomes the issuer most tests use:
C<acme_issuer pebble> with C<uri %%ACME_URI%%>, C<ssl_trusted_certificate
%%PEBBLE_CA%%>, C<state_path %%TESTDIR%%/acme> and C<accept_terms_of_service>.

Workers, and the helper process, run as nobody: what they read must be
world-readable (files the harness writes are), and what they write must be
in a directory nobody owns (C<worker_dir>, or a directory nginx creates
itself, such as a registered path that does not exist yet).

=item $t->run_nginx_t

Runs C<nginx -t> on that configuration; returns C<($exit_code, $output)>,
the output being nginx's stderr and stdout.

=item $t->start_nginx(env => {...}, timeout => 20)

Starts nginx (master in the foreground, as the harness's child) and waits
until its pid file and all workers are there. Dies with the log tail if it
does not start. Returns the master pid. C<env> is added to its environment
(e.g. C<< $t->faketime_env >>); every nginx process inherits it, across
reloads too. C<timeout>: seconds to wait for the workers (a configuration
of thousands of servers takes longer).

=item $t->reload_nginx(expect_fail => 0, timeout => 20)

Sends HUP and waits until a new set of workers replaced the old ones.
When the reload fails (an C<[emerg]> in the error log), dies, or with
C<< expect_fail => 1 >> returns the error line (and true on success).

=item $t->stop_nginx(graceful => 0, timeout => 5)

TERM (QUIT when graceful), waits for the master and its children to exit;
KILL after C<timeout> seconds (nginx under valgrind needs longer).

=item $t->signal_nginx($signal)

Sends a signal to the master.

=item $t->nginx_pids($name)

C<< { master => PID, workers => [PID...], helper => PID, loader => PID,
shutting_down => [PID...] } >> (helper is the "cache manager process").
C<$name> is the harness's name of the process, C<nginx> by default
(C<ca-proxy> for the CA proxy).

=item $t->helper_pid, $t->worker_pids

Shortcuts.

=item $t->error_log, $t->log_mark, $t->wait_log(qr/.../, $timeout, $mark)

The error log's contents (from C<$mark>, a byte offset from C<log_mark>,
when given), and waiting for a line to match: returns the first matching
line, or undef after C<$timeout> seconds (default 30).

=item $t->wait_installed($name, timeout => 10, mark => $mark)

Waits until every worker has logged that it installed the certificate whose
first name is C<$name> (the C<info> line of a hot swap, so the test needs
C<< log_level => 'info' >>). Each worker swaps on its own timer: a
handshake that one worker answers with the new certificate says nothing of
the others. True when all have, false after the timeout.

=item AcmeTest::log_time($line), AcmeTest::next_attempt_time($line)

The time (epoch seconds) of an error log line, and the time in its
C<next attempt at ... UTC>; undef when the line has none.

=item $t->cert_record($name, state => "DIR/acme")

The decoded C<< <name>-<hash>.json >> record of a certificate whose first
name is C<$name>, or undef.

=back

=head2 Clusters (several nginx nodes, one Redis)

=over

=item my $n2 = $t->new_node

Another AcmeTest object (directory, ports, zone and nginx of its own) that
uses C<$t>'s Pebble, DNS stub and Redis: its C<%%ACME_URI%%>,
C<%%DNS_PORT%%>, C<%%PEBBLE_CA%%> and C<%%PORT_REDIS%%> are C<$t>'s. Pebble
validates through C<$t>'s C<http>/C<https> ports only. Start Pebble (and
Redis) on C<$t> first. Its processes are stopped with it or at the end.

=item $t->start_redis, $t->stop_redis, $t->redis_alive

Starts Debian's C<redis-server> on 127.0.0.1:port('redis') (no
persistence, directory C<DIR/redis>) and waits until it answers PING;
stops it (TERM). Returns the port.

=item $t->redis_cli(@args)

Runs C<redis-cli -p PORT @args> and returns its output (chomped).

=back

=head2 Clients

=over

=item $t->tls_get(name => 'example.test', port => $t->port('https'), ca => $file, alpn => [...], request => '/path', headers => {...}, timeout => 5)

Connects to 127.0.0.1:port with SNI C<name> (no SNI when C<name> is
undef or empty). Never dies; returns a hash: C<ok> (handshake done),
C<error>, C<verified> (only with C<ca>: the chain verifies to C<ca> and the
name matches), C<verify_error>, C<subject_cn>, C<sans> (DNS names and IP
addresses), C<issuer_cn>, C<not_before> and C<not_after> (epoch seconds),
C<serial> (upper-case hex), C<key_type> (C<ec>, C<rsa>, C<ed25519>, ...),
C<key_bits> (256 for P-256, 2048 for RSA 2048), C<cert_pem> (the leaf),
C<chain_pem> (all certificates the server sent, leaf first), C<chain_len>,
C<alpn> (protocol selected, with C<alpn>), C<protocol> (TLS version).
With C<request>, sends a GET for that path (Host: C<host> or C<name>) and
adds C<status>, C<headers> (hash, lower-case names) and C<body>.
C<ssl_options> passes more IO::Socket::SSL options (e.g.
C<< { SSL_version => 'TLSv1_2' } >>).

=item $t->http_get($path, host => 'example.test', port => $t->port('http'), headers => {...})

A plain HTTP/1.1 GET to 127.0.0.1 (C<Connection: close>), following no
redirects. Never dies; returns C<< { status, success, headers, content, error } >>
(C<headers> with lower-case names; C<status> undef when there was no
answer).

=item $t->wait_for(sub { ... }, timeout => 30, interval => 0.1)

Calls the sub until it returns true; returns that value, or undef after
the timeout.

=item $t->cleanup

Stops everything and removes the directory now (otherwise done when the
object goes away or at END).

=back

=cut

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(EINTR);
use Fcntl qw(:mode :flock);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::SSL;
use JSON::PP;
use MIME::Base64 ();
use Net::SSLeay;
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken);
use Socket qw(inet_ntoa inet_ntop AF_INET6);
use Test::More ();
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm timelocal);

our $VERSION = '0.1';

my $REPO = abs_path(dirname(__FILE__) . '/../..');
my $NGINX = $ENV{NGINX_BINARY} || '/usr/sbin/nginx';
# `make test SANITIZE=...`: the module needs the sanitizer runtimes loaded
# before it, so nginx (and only nginx: not perl, openssl or Pebble) starts
# with them preloaded; workers and the helper are forks and keep them.
my %NGINX_ENV = $ENV{ACME_TEST_NGINX_PRELOAD} ? (LD_PRELOAD => $ENV{ACME_TEST_NGINX_PRELOAD}) : ();
my %LIVE;    # objects with processes to stop at END
my %TAKEN;   # every port handed out in this process

# Everything is on loopback: no proxy may get in the way (HTTP::Tiny and
# the children, libcurl included, honour these).
delete @ENV{qw(http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY)};

# ---------------------------------------------------------------------------
# class methods

sub pebble_dir {
    my $dir = $ENV{PEBBLE_DIR} || "$REPO/.deps/pebble";
    return -x "$dir/bin/pebble" && -x "$dir/bin/pebble-challtestsrv" ? $dir : undef;
}

sub pebble_bin {
    my ($class, $name) = @_;
    my $dir = pebble_dir();
    return $dir ? "$dir/bin/$name" : "/usr/bin/$name";
}

sub pebble_version {
    my $dir = pebble_dir();
    if ($dir && open my $fh, '<', "$dir/VERSION") {
        my $v = <$fh> // '';
        $v =~ s/\s+//g;
        return $v if $v ne '';
    }
    return undef unless -x '/usr/bin/pebble';
    my $v = `dpkg-query -W -f='\${Version}' pebble 2>/dev/null` // '';
    $v =~ s/[+~-].*//;
    return $v || '2.4.0';
}

sub _vcmp {
    my ($a, $b) = @_;
    my @a = split /\./, $a;
    my @b = split /\./, $b;
    while (@a || @b) {
        my $x = shift(@a) // 0;
        my $y = shift(@b) // 0;
        return $x <=> $y if $x != $y;
    }
    return 0;
}

sub pebble_at_least {
    my ($self, $want) = @_;
    my $v = pebble_version();
    return defined $v && _vcmp($v, $want) >= 0;
}

my $NGINX_VERSION;

sub nginx_version {
    return $NGINX_VERSION if defined $NGINX_VERSION;
    my $out = `$NGINX -v 2>&1` // '';
    ($NGINX_VERSION) = $out =~ m{nginx/(\d+(?:\.\d+)*)};
    return $NGINX_VERSION;
}

sub nginx_at_least {
    my ($self, $want) = @_;
    my $v = nginx_version();
    return defined $v && _vcmp($v, $want) >= 0;
}

sub module_path {
    my $m = $ENV{ACME_MODULE};
    return undef unless defined $m && $m ne '';
    my $abs = abs_path($m);
    return defined $abs && -r $abs ? $abs : undef;
}

# nginx's stream module (Debian's libnginx-mod-stream), and ours, built
# next to ACME_MODULE (or STREAM_ACME_MODULE).
our $NGX_STREAM_MODULE = $ENV{NGX_STREAM_MODULE} // '/usr/lib/nginx/modules/ngx_stream_module.so';

sub stream_module_path {
    my $m = $ENV{STREAM_ACME_MODULE};
    if (!defined $m || $m eq '') {
        my $http = module_path() or return undef;
        ($m = $http) =~ s{[^/]+$}{ngx_stream_acme_module.so};
    }
    my $abs = abs_path($m);
    return defined $abs && -r $abs ? $abs : undef;
}

sub requires {
    my ($class, %req) = @_;
    my $why;
    if ($req{root} && $> != 0) {
        $why = 'needs root (nginx workers run as nobody)';
    } elsif ($req{module} && !module_path()) {
        $why = 'ACME_MODULE is not set to the built module (use make integration)';
    } elsif ($req{stream} && !-r $NGX_STREAM_MODULE) {
        $why = "needs nginx's stream module $NGX_STREAM_MODULE (libnginx-mod-stream; run make deps)";
    } elsif ($req{stream} && !stream_module_path()) {
        $why = 'no ngx_stream_acme_module.so next to ACME_MODULE (use make integration)';
    } elsif ($req{pebble}) {
        my $v = pebble_version();
        if (!defined $v) {
            $why = 'no pebble installed (run make deps)';
        } elsif (_vcmp($v, $req{pebble}) < 0) {
            $why = "needs pebble $req{pebble}, have $v (run make deps)";
        }
    }
    if (!$why && $req{nginx} && !nginx_at_least(undef, $req{nginx})) {
        $why = "needs nginx $req{nginx}, have " . (nginx_version() // 'none');
    }
    if ($why) {
        Test::More::plan(skip_all => $why);
        exit 0;
    }
    return 1;
}

# ---------------------------------------------------------------------------
# construction and cleanup

sub new {
    my ($class, %opt) = @_;
    my $base = $ENV{ACME_TEST_TMPDIR} || File::Spec->tmpdir;
    make_path($base) unless -d $base;
    my $script = $0;
    $script =~ s{.*/}{};
    $script =~ s/\.t$//;
    $script =~ s/[^A-Za-z0-9_-]/_/g;
    my $dir = tempdir("acmetest-$script-XXXXXX", DIR => $base, CLEANUP => 0);
    $dir = abs_path($dir);
    chmod 0755, $dir or die "chmod $dir: $!";
    _make_traversable($dir);

    my $self = bless {
        dir              => $dir,
        ports            => {},
        procs            => {},    # name => {pid, log}
        worker_processes => $opt{worker_processes} // 2,
        log_level        => $opt{log_level} // 'notice',
        owner            => $$,
    }, $class;

    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});

    my $timeout = $opt{timeout} // $ENV{ACME_TEST_TIMEOUT} // 300;
    if ($timeout) {
        $SIG{ALRM} = sub { die "AcmeTest: test timed out after ${timeout}s\n" };
        alarm $timeout;
    }
    for my $sig (qw(INT TERM HUP)) {
        $SIG{$sig} = sub { _cleanup_all(1); exit 1 }
            if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
    }
    return $self;
}

# Workers run as nobody and must reach the test directory.
sub _make_traversable {
    my ($path) = @_;
    my $p = dirname($path);
    while ($p ne '/' && $p ne '.') {
        my @st = stat $p or last;
        chmod(($st[2] & 07777) | 0001, $p) unless $st[2] & 0001;
        $p = dirname($p);
    }
}

sub dir { $_[0]{dir} }

sub DESTROY {
    my ($self) = @_;
    return unless $self->{owner} && $self->{owner} == $$;
    $self->cleanup;
}

# A die outside any eval unwinds the script's lexicals (and so runs
# DESTROY) before END blocks: remember it to keep the logs.
my $DYING;
{
    my $prev = $SIG{__DIE__};
    $SIG{__DIE__} = sub {
        $DYING = 1 if defined $^S && !$^S;
        $prev->(@_) if ref $prev eq 'CODE';
    };
}

sub cleanup {
    my ($self, $aborted) = @_;
    return if $self->{cleaned}++;
    local ($?, $!, $@);    # waitpid and friends must not change the exit code
    delete $LIVE{"$self"};
    $self->_stop_all;
    $self->_unmount_all;
    my $keep = $ENV{ACME_TEST_KEEP};
    my $failed = $aborted || $DYING || !Test::More->builder->is_passing;
    if ($failed) {
        $self->_diag_logs;
        $keep = 1;
    }
    if ($keep) {
        Test::More::diag("AcmeTest: files kept in $self->{dir}");
    } else {
        remove_tree($self->{dir});
    }
}

sub _cleanup_all {
    my ($aborted) = @_;
    for my $t (values %LIVE) {
        $t->cleanup($aborted) if $t && $t->{owner} == $$;
    }
}

# Runs before Test::Builder's END (LIFO), so $? is still the script's own
# exit code: non-zero means it died.
END {
    my $rc = $?;
    _cleanup_all($rc != 0);
    $? = $rc;
}

# The logs of a failed test go to the TAP output and, when
# ACME_TEST_FAILURE_LOG names a file, are appended to it: `make integration`
# prints that file after prove's summary, where a CI log's tail shows it.
sub _diag_logs {
    my ($self) = @_;
    my $report = '';
    # error.log last, its clients' comings and goings left out: the
    # engine's lines and nginx's warnings are what explain a failure.
    for my $f (qw(challtestsrv.log pebble.log nginx.out error.log)) {
        my $path = "$self->{dir}/$f";
        next unless -s $path;
        my @lines = split /\n/, _slurp($path);
        @lines = grep { !/\[info\] .*client (?:closed connection|timed out|sent)|SSL_do_handshake\(\) failed/ } @lines
            if $f eq 'error.log';
        my $max = $f eq 'error.log' ? 40 : 20;
        my $n = @lines > $max ? $max : scalar @lines;
        my $text = "--- $0: last $n lines of $f ---\n" . join("\n", @lines[-$n .. -1]);
        Test::More::diag($text);
        $report .= "$text\n" unless $f eq 'challtestsrv.log';
    }
    my $failure_log = $ENV{ACME_TEST_FAILURE_LOG};
    if ($failure_log && open my $fh, '>>', $failure_log) {
        my @details = Test::More->builder->details;
        my @failed = map { $_ + 1 . " ($details[$_]{name})" } grep { !$details[$_]{ok} } 0 .. $#details;
        my $what = @failed ? 'failed: ' . join(', ', @failed) : 'died';
        # Scripts run in parallel: one locked write each, never interleaved.
        flock $fh, LOCK_EX;
        syswrite $fh, "=== $0: $what\n$report";
        close $fh;
    }
}

# ---------------------------------------------------------------------------
# small helpers

sub _slurp {
    my ($path, $from) = @_;
    open my $fh, '<', $path or return '';
    binmode $fh;
    seek $fh, $from, 0 if $from;
    local $/;
    my $c = <$fh>;
    return $c // '';
}

sub write_file {
    my ($self, $rel, $content) = @_;
    my $path = $rel =~ m{^/} ? $rel : "$self->{dir}/$rel";
    make_path(dirname($path), { mode => 0755 });
    open my $fh, '>', $path or die "write $path: $!";
    binmode $fh;
    print {$fh} $content;
    close $fh or die "write $path: $!";
    chmod 0644, $path;
    return $path;
}

sub worker_dir {
    my ($self, $rel) = @_;
    my $path = "$self->{dir}/$rel";
    make_path($path, { mode => 0755 });
    my $uid = getpwnam('nobody') // 65534;
    my $gid = getgrnam('nogroup') // 65534;
    chown $uid, $gid, $path;
    return $path;
}

sub wait_for {
    my ($self, $cb, %opt) = @_;
    my $timeout  = $opt{timeout}  // 30;
    my $interval = $opt{interval} // 0.1;
    my $deadline = time + $timeout;
    while (1) {
        my $r = $cb->();
        return $r if $r;
        return undef if time >= $deadline;
        sleep $interval;
    }
}

sub _run {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or do { print "exec $cmd[0]: $!\n"; POSIX::_exit(127) };
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub _openssl {
    my ($self, @args) = @_;
    my ($rc, $out) = _run('openssl', @args);
    die "openssl @args failed:\n$out" if $rc;
    return $out;
}

# ---------------------------------------------------------------------------
# ports

sub _port_free {
    my ($port) = @_;
    for my $proto (qw(tcp udp)) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => $proto,
            ($proto eq 'tcp' ? (Listen => 1) : ()),
        ) or return 0;
        close $s;
    }
    return 1;
}

# Random ports below the ephemeral range, so that no outgoing connection
# (and no other test running in parallel, most likely) takes one meanwhile.
sub port {
    my ($self, $name) = @_;
    $name = lc $name;
    return $self->{ports}{$name} if $self->{ports}{$name};
    my %used = map { $_ => 1 } values %{ $self->{ports} };
    for (1 .. 500) {
        my $p = 20000 + int(rand(12000));
        # %TAKEN: ports of other objects (cluster nodes) not yet bound
        next if $used{$p} || $TAKEN{$p};
        next unless _port_free($p);
        $TAKEN{$p} = 1;
        return $self->{ports}{$name} = $p;
    }
    die "AcmeTest: no free port found for $name";
}

# ---------------------------------------------------------------------------
# processes

sub _spawn {
    my ($self, $name, $cmd, %opt) = @_;
    my $log = $opt{log} // "$self->{dir}/$name.log";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        # own process group, so that leftovers can be found and stopped
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        $ENV{$_} = $opt{env}{$_} for keys %{ $opt{env} || {} };
        alarm 0;
        exec @$cmd or do { print STDERR "exec $cmd->[0]: $!\n"; POSIX::_exit(127) };
    }
    $self->{procs}{$name} = { pid => $pid, log => $log, cmd => $cmd };
    return $pid;
}

sub _alive {
    my ($pid) = @_;
    my $r = waitpid($pid, WNOHANG);
    return 0 if $r == $pid || $r == -1;
    return kill(0, $pid) ? 1 : 0;
}

sub _proc_alive {
    my ($self, $name) = @_;
    my $p = $self->{procs}{$name} or return 0;
    return _alive($p->{pid});
}

sub _stop {
    my ($self, $name, $sig, $timeout) = @_;
    my $p = delete $self->{procs}{$name} or return;
    my $pid = $p->{pid};
    $sig //= 'TERM';
    kill $sig, $pid;
    my $deadline = time + ($timeout // 5);
    while (time < $deadline) {
        last unless _alive($pid);
        sleep 0.05;
    }
    if (_alive($pid)) {
        kill 'KILL', $pid;
        my $d2 = time + 5;
        sleep 0.05 while _alive($pid) && time < $d2;
    }
    # whatever the process left in its group (nginx workers of a killed master)
    if (kill 0, -$pid) {
        kill 'TERM', -$pid;
        my $d3 = time + 5;
        sleep 0.05 while kill(0, -$pid) && time < $d3;
        kill 'KILL', -$pid if kill 0, -$pid;
    }
}

sub _stop_all {
    my ($self) = @_;
    $self->_stop('nginx') if $self->{procs}{nginx};
    $self->_stop($_) for sort keys %{ $self->{procs} };
}

# ---------------------------------------------------------------------------
# certificates

sub _ensure_ca {
    my ($self) = @_;
    my $d = $self->{dir};
    return "$d/ca.pem" if -s "$d/ca.pem";
    $self->_openssl(qw(req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256),
        -keyout => "$d/ca.key", -out => "$d/ca.pem", -days => 30,
        -subj => '/CN=AcmeTest harness CA',
        -addext => 'basicConstraints=critical,CA:TRUE',
        -addext => 'keyUsage=critical,keyCertSign,cRLSign');
    chmod 0644, "$d/ca.pem";
    chmod 0600, "$d/ca.key";
    return "$d/ca.pem";
}

sub ca_file { $_[0]->_ensure_ca }

sub make_cert {
    my ($self, %opt) = @_;
    my $name = $opt{name} // ($opt{names} ? $opt{names}[0] : 'localhost');
    my @names = @{ $opt{names} || [$name] };
    my $key_type = $opt{key} // 'ec';
    my $days = $opt{days} // 30;
    my $ca = $self->_ensure_ca;
    my $d = $self->{dir};
    (my $base = $opt{file} // $name) =~ s/[^A-Za-z0-9_.-]/_/g;
    my ($crt, $key, $csr, $ext) = map { "$d/$base.$_" } qw(crt key csr ext);

    my @newkey = $key_type eq 'rsa'
        ? (-newkey => 'rsa:2048')
        : (-newkey => 'ec', -pkeyopt => 'ec_paramgen_curve:P-256');
    $self->_openssl('req', '-new', '-nodes', @newkey, -keyout => $key, -out => $csr,
        -subj => "/CN=$name");
    my $san = join ',', map { /^[\d.]+$/ || /:/ ? "IP:$_" : "DNS:$_" } @names;
    $self->write_file($ext, "subjectAltName=$san\nbasicConstraints=CA:FALSE\n"
        . "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
    $self->_openssl(qw(x509 -req), -in => $csr, -CA => $ca, -CAkey => "$d/ca.key",
        -CAcreateserial => (), -out => $crt, -days => $days, -extfile => $ext);
    chmod 0644, $crt, $key;    # read by nobody in tests; throwaway keys
    unlink $csr, $ext;
    return ($crt, $key);
}

# ---------------------------------------------------------------------------
# Pebble

sub _merge {
    my ($into, $from) = @_;
    for my $k (keys %$from) {
        my $v = $from->{$k};
        if (!defined $v) {
            delete $into->{$k};
        } elsif (ref $v eq 'HASH' && ref $into->{$k} eq 'HASH') {
            _merge($into->{$k}, $v);
        } else {
            $into->{$k} = $v;
        }
    }
    return $into;
}

sub _https {
    my ($self, %opt) = @_;
    return HTTP::Tiny->new(
        timeout    => $opt{timeout} // 5,
        verify_SSL => 1,
        SSL_options => { SSL_ca_file => $self->ca_file },
        max_redirect => 0,
        agent => "AcmeTest/$VERSION",
    );
}

sub start_pebble {
    my ($self, %opt) = @_;
    die "pebble already running" if $self->{procs}{pebble};
    my $d = $self->{dir};
    my $version = pebble_version() // die "AcmeTest: no pebble (run make deps)";

    my ($cert, $key) = $self->make_cert(names => ['localhost', '127.0.0.1', 'ca.acme.test'], file => 'pebble-listener');

    my $config = {
        listenAddress                  => '127.0.0.1:' . $self->port('acme'),
        managementListenAddress        => '127.0.0.1:' . $self->port('mgmt'),
        certificate                    => $cert,
        privateKey                     => $key,
        httpPort                       => $self->port('http'),
        tlsPort                        => $self->port('https'),
        ocspResponderURL               => '',
        externalAccountBindingRequired => JSON::PP::false,
        retryAfter                     => { authz => 0, order => 0 },
        profiles => {
            default    => { description => 'default', validityPeriod => 7776000 },
            shortlived => { description => 'short',   validityPeriod => 518400 },
        },
    };
    _merge($config, $opt{config} || {});
    my $cfile = $self->write_file('pebble-config.json',
        JSON::PP->new->canonical->pretty->encode({ pebble => $config }));

    # DNS stub: every A query answers 127.0.0.1, no AAAA, no responders.
    my $cts = $self->pebble_bin('pebble-challtestsrv');
    my (undef, $help) = _run($cts, '-h');
    my $dns_flag = $help =~ /-dnsserver\b/ ? '-dnsserver' : '-dns01';
    my $dns = '127.0.0.1:' . $self->port('dns');
    my @cts = ($cts, $dns_flag => $dns, -http01 => '', -https01 => '', -tlsalpn01 => '',
        -management => '127.0.0.1:' . $self->port('challtest'),
        -defaultIPv4 => '127.0.0.1', -defaultIPv6 => '');
    push @cts, -doh => '' if $help =~ /-doh\b/;
    $self->_spawn('challtestsrv', \@cts);
    $self->wait_for(sub {
            die "pebble-challtestsrv exited:\n" . _slurp("$d/challtestsrv.log")
                unless $self->_proc_alive('challtestsrv');
            IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->port('challtest'),
                Proto => 'tcp', Timeout => 1);
        }, timeout => 15)
        or die "pebble-challtestsrv did not start:\n" . _slurp("$d/challtestsrv.log");

    my %env = (PEBBLE_VA_NOSLEEP => 1, %{ $opt{env} || {} });
    $dns = $opt{dnsserver} if $opt{dnsserver};
    $self->_spawn('pebble', [$self->pebble_bin('pebble'), -config => $cfile, -dnsserver => $dns],
        env => \%env);
    my $http = $self->_https(timeout => 2);
    my $ok = $self->wait_for(sub {
            die "pebble exited:\n" . _slurp("$d/pebble.log") unless $self->_proc_alive('pebble');
            $http->get($self->acme_uri)->{success};
        }, timeout => 20);
    die "pebble did not answer at " . $self->acme_uri . ":\n" . _slurp("$d/pebble.log") unless $ok;
    delete @{$self}{qw(pebble_root pebble_intermediate)};
    $self->{pebble_running} = 1;
    return 1;
}

sub stop_pebble {
    my ($self) = @_;
    $self->_stop('pebble');
    $self->_stop('challtestsrv');
    delete @{$self}{qw(pebble_root pebble_intermediate pebble_running)};
}

sub acme_uri { 'https://127.0.0.1:' . $_[0]->port('acme') . '/dir' }

sub pebble_ca_file { $_[0]->ca_file }

sub pebble_mgmt {
    my ($self, $method, $path, $body) = @_;
    my $url = 'https://127.0.0.1:' . $self->port('mgmt') . $path;
    return $self->_https->request($method, $url,
        defined $body ? { content => encode_json($body),
                          headers => { 'content-type' => 'application/json' } } : {});
}

sub _rfc3339 {
    my @t = gmtime $_[0];
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0];
}

sub set_renewal_window {
    my ($self, $pem, $start, $end, %opt) = @_;
    my $ari = { suggestedWindow => { start => _rfc3339($start), end => _rfc3339($end) } };
    $ari->{explanationURL} = $opt{explanation} if $opt{explanation};
    my $r = $self->pebble_mgmt(POST => '/set-renewal-info/',
        { Certificate => $pem, ARIResponse => encode_json($ari) });
    die "set-renewal-info: $r->{status} $r->{content}" unless $r->{success};
    return 1;
}

sub _b64url {
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub ari_cert_id {
    my ($pem) = @_;
    my $bio = Net::SSLeay::BIO_new(Net::SSLeay::BIO_s_mem());
    Net::SSLeay::BIO_write($bio, $pem);
    my $x509 = Net::SSLeay::PEM_read_bio_X509($bio);
    Net::SSLeay::BIO_free($bio);
    die "ari_cert_id: not a certificate" unless $x509;
    # The AKI key id as printed by OpenSSL ("keyid:AB:CD:..." or "AB:CD:...").
    my $aki;
    for my $i (0 .. Net::SSLeay::X509_get_ext_count($x509) - 1) {
        my $ext = Net::SSLeay::X509_get_ext($x509, $i);
        my $obj = Net::SSLeay::X509_EXTENSION_get_object($ext);
        next unless Net::SSLeay::OBJ_obj2nid($obj) == &Net::SSLeay::NID_authority_key_identifier;
        my $v = Net::SSLeay::X509V3_EXT_print($ext);
        ($aki) = $v =~ /((?:[0-9A-F]{2}:)+[0-9A-F]{2})/i;
    }
    my $serial = Net::SSLeay::P_ASN1_INTEGER_get_hex(Net::SSLeay::X509_get_serialNumber($x509));
    Net::SSLeay::X509_free($x509);
    die "ari_cert_id: no authority key identifier" unless $aki;
    $aki =~ s/://g;
    $serial = "0$serial" if length($serial) % 2;
    $serial = "00$serial" if hex(substr($serial, 0, 1)) >= 8;
    return _b64url(pack 'H*', $aki) . '.' . _b64url(pack 'H*', $serial);
}

sub _fetch_pem {
    my ($self, $what, $file) = @_;
    return $self->{$what} if $self->{$what} && -s $self->{$what};
    die "pebble is not running" unless $self->{pebble_running};
    my $path = $what eq 'pebble_root' ? '/roots/0' : '/intermediates/0';
    my $r = $self->pebble_mgmt(GET => $path);
    die "GET $path: $r->{status} $r->{content}" unless $r->{success};
    return $self->{$what} = $self->write_file($file, $r->{content});
}

sub ocsp_uri { 'http://127.0.0.1:' . $_[0]->port('ocsp') . '/' }

sub start_ocsp_responder {
    my ($self) = @_;
    my $icert = $self->pebble_intermediate;
    my $r = $self->pebble_mgmt(GET => '/intermediate-keys/0');
    die "GET /intermediate-keys/0: $r->{status} $r->{content}" unless $r->{success};
    my $ikey = $self->write_file('pebble-intermediate.key', $r->{content});
    my $index = $self->write_file('ocsp-index.txt', '');
    $self->{ocsp_mtime} = (stat $index)[9];
    # Every entry has a subject of its own, but say so anyway.
    $self->write_file('ocsp-index.txt.attr', "unique_subject = no\n");
    $self->_spawn('ocsp', ['openssl', 'ocsp', -port => $self->port('ocsp'),
        -index => $index, -rsigner => $icert, -rkey => $ikey, -CA => $icert,
        -nmin => 10, '-ignore_err']);
    $self->wait_for(sub {
            die "openssl ocsp exited:\n" . _slurp("$self->{dir}/ocsp.log")
                unless $self->_proc_alive('ocsp');
            # Not a probe connection: the responder serves one at a time.
            _slurp("$self->{dir}/ocsp.log") =~ /waiting for OCSP client connections/;
        }, timeout => 10)
        or die "openssl ocsp did not start:\n" . _slurp("$self->{dir}/ocsp.log");
    return 1;
}

# Marks a serial (hex) as good in the responder's index (openssl ca's
# format: status, expiry, revocation, serial, file, subject).
sub ocsp_good {
    my ($self, $serial) = @_;
    $serial = "0$serial" if length($serial) % 2;
    my @t = gmtime(time + 86400 * 90);
    my $exp = sprintf '%02d%02d%02d%02d%02d%02dZ', $t[5] % 100, $t[4] + 1, @t[3, 2, 1, 0];
    open my $fh, '>>', "$self->{dir}/ocsp-index.txt" or die "ocsp-index.txt: $!";
    print $fh "V\t$exp\t\t\U$serial\E\tunknown\t/CN=$serial\n";
    close $fh;
    # openssl ocsp reloads the index when its mtime (in seconds) changes:
    # give every write a second of its own.
    my $m = $self->{ocsp_mtime} + 1;
    $m = time if time > $m;
    utime $m, $m, "$self->{dir}/ocsp-index.txt";
    $self->{ocsp_mtime} = $m;
    return 1;
}

sub pebble_root         { $_[0]->_fetch_pem('pebble_root', 'pebble-root.pem') }
sub pebble_intermediate { $_[0]->_fetch_pem('pebble_intermediate', 'pebble-intermediate.pem') }

sub challtest {
    my ($self, $path, $body) = @_;
    my $url = 'http://127.0.0.1:' . $self->port('challtest') . $path;
    return HTTP::Tiny->new(timeout => 5)->post($url, {
        content => encode_json($body || {}),
        headers => { 'content-type' => 'application/json' },
    });
}

sub start_named {
    my ($self, %opt) = @_;
    die "named already running" if $self->{procs}{named};
    my $zone = $opt{zone} // 'example.test';
    my $key = $opt{key} // 'acme-key';
    my $nd = "$self->{dir}/named";
    mkdir $nd;
    my (undef, $out) = _run('tsig-keygen', '-a', 'hmac-sha256', $key);
    die "tsig-keygen: $out" unless $out =~ /secret/;
    $self->{named_key} = $self->write_file('named/key.conf', $out);
    my (undef, $wout) = _run('tsig-keygen', '-a', 'hmac-sha256', $key);
    $self->{named_wrong_key} = $self->write_file('named/wrong-key.conf', $wout);
    my $records = $opt{records} // "\@ IN A 127.0.0.1\n* IN A 127.0.0.1\n";
    $self->write_file("named/$zone.zone", <<"EOF");
\$TTL 60
\@ IN SOA ns.$zone. hostmaster.$zone. 1 60 60 600 60
\@ IN NS ns.$zone.
ns IN A 127.0.0.1
$records
EOF
    my $port = $self->port('named');
    my $conf = $self->write_file('named/named.conf', <<"EOF");
include "$self->{named_key}";
options {
    directory "$nd";
    pid-file none;
    listen-on port $port { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
};
controls { };
zone "$zone" {
    type primary;
    file "$zone.zone";
    allow-update { key "$key"; };
};
EOF
    $self->_spawn('named', ['named', '-g', '-c', $conf, '-p', $port]);
    $self->wait_for(sub {
            die "named exited:\n" . _slurp("$self->{dir}/named.log")
                unless $self->_proc_alive('named');
            _slurp("$self->{dir}/named.log") =~ /\brunning\b/;
        }, timeout => 15)
        or die "named did not start:\n" . _slurp("$self->{dir}/named.log");
    return $self->{named_key};
}

sub named_key_file       { $_[0]{named_key} }
sub named_wrong_key_file { $_[0]{named_wrong_key} }

sub dig {
    my ($self, $name, $type, %opt) = @_;
    my $port = $opt{port} // $self->port('named');
    my (undef, $out) = _run('dig', '@127.0.0.1', '-p', $port, '+short', '+norec', '+time=2', '+tries=2',
        $name, $type // 'TXT');
    return map { my $v = $_; $v =~ s/^"|"$//g; $v } grep { length } split /\n/, $out;
}

sub pebble_log { _slurp("$_[0]{dir}/pebble.log") }

sub pebble_log_count {
    my ($self, $re) = @_;
    return scalar grep { $_ =~ $re } split /\n/, $self->pebble_log;
}

# Pebble logs "POST /order-plz -> calling handler()" for every newOrder
# request and "There are now N orders in the db" for each one it accepted.
sub pebble_orders {
    my ($self) = @_;
    return $self->pebble_log_count(qr/Added order "[^"]+" to the db/);
}

# ---------------------------------------------------------------------------
# the gate

sub start_backend {
    my ($self, $name) = @_;
    my $log = "$self->{dir}/$name.log";
    my $script = $self->write_file("$name.pl", <<'EOF');
use strict; use IO::Socket::INET; use POSIX ();
my ($port, $log, $name) = @ARGV;
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
    Listen => 256, ReuseAddr => 1) or die "listen $port: $!";
$SIG{CHLD} = 'IGNORE';
my $body = "$name\n";
while (1) {
    my $c = $srv->accept or next;
    my $pid = fork;
    if (defined $pid && !$pid) {
        my $line = <$c> // '';
        while (my $h = <$c>) { last if $h =~ /^\r?\n$/ }
        $line =~ s/\r?\n$//;
        open my $fh, '>>', $log; print $fh "$line\n"; close $fh;
        print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            . length($body) . "\r\n\r\n$body" if $line;
        close $c;
        POSIX::_exit(0);
    }
    close $c;
}
EOF
    $self->_spawn($name, [$^X, $script, $self->port($name), $log, $name]);
    $self->wait_for(sub { !_port_free($self->port($name)) }, timeout => 10)
        or die "AcmeTest: backend $name did not start\n";
    return $log;
}

sub start_gate {
    my ($self, %opt) = @_;
    my $from = $opt{from} // $self->port('gate');
    my $to = $opt{to} // $self->port('http');
    my $name = "gate-$from";
    die "AcmeTest: a gate already listens on $from" if $self->{procs}{$name};
    my $gate = bless { t => $self, name => $name,
        open_file => "$self->{dir}/$name.open", hit_file => "$self->{dir}/$name.hit" },
        'AcmeTest::Gate';
    $gate->close;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $from,
        Listen => 16, ReuseAddr => 1) or die "AcmeTest: gate on $from: $!";
    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $listen;
        $self->{procs}{$name} = { pid => $pid, log => '/dev/null', cmd => ['gate', $from, $to] };
        $gate->{pid} = $pid;
        weaken($gate->{t});
        return $gate;
    }
    eval { _gate_main($listen, $to, @{$gate}{qw(open_file hit_file)}) };
    POSIX::_exit(0);    # a die must not go on running the test script
}

# A forked helper process (gate, cutter): its own process group, so that
# stopping it stops the connections it holds as well, and nothing of the
# test script's (alarm, signal handlers, the TAP pipe).
sub _detach_child {
    setpgrp(0, 0);
    alarm 0;
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP ALRM __DIE__);
    $SIG{CHLD} = 'IGNORE';
    # Nothing here may hold the TAP pipe open.
    my $tb = Test::More->builder;
    close $_ for grep { defined } $tb->output, $tb->failure_output, $tb->todo_output;
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
}

sub _gate_main {
    my ($listen, $to, $open_file, $hit_file) = @_;
    _detach_child();
    while (1) {
        my $c = $listen->accept;
        if (!$c) {
            next if $! == EINTR;
            POSIX::_exit(0);
        }
        my $h = fork;
        next if !defined $h;
        if ($h) {
            close $c;
            next;
        }
        close $listen;
        if (open my $fh, '>', $hit_file) { close $fh }
        my $until = time + 20;
        sleep 0.05 while !-e $open_file && time < $until;
        my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $to) or POSIX::_exit(0);
        my $sel = IO::Select->new($c, $u);
        OUTER: while (my @ready = $sel->can_read(10)) {
            for my $s (@ready) {
                my $n = sysread($s, my $buf, 65536);
                last OUTER unless $n;
                syswrite($s == $c ? $u : $c, $buf);
            }
        }
        POSIX::_exit(0);
    }
}

package AcmeTest::Gate;

sub pid  { $_[0]{pid} }
sub hit  { -e $_[0]{hit_file} ? 1 : 0 }

sub open {
    my ($self) = @_;
    CORE::open(my $fh, '>', $self->{open_file}) or die "AcmeTest: $self->{open_file}: $!";
    CORE::close($fh);
    chmod 0644, $self->{open_file};
    return 1;
}

sub close {
    my ($self) = @_;
    unlink $self->{open_file}, $self->{hit_file};
    return 1;
}

sub stop {
    my ($self) = @_;
    $self->{t}->_stop($self->{name}) if $self->{t};
}

package AcmeTest;

# ---------------------------------------------------------------------------
# the CA proxy: a second nginx (the stock binary, without the module) in
# front of Pebble, whose behaviour the test switches with set_ca_fault

sub start_ca_proxy {
    my ($self, %opt) = @_;
    die "AcmeTest: the CA proxy is already running" if $self->{procs}{'ca-proxy'};
    die "AcmeTest: start_pebble first" unless $self->{pebble_running};
    my $d = "$self->{dir}/ca-proxy";
    make_path($d, { mode => 0755 });
    my $port = $self->port('ca_proxy');
    my $cut = $self->port('ca_cut');
    my ($crt, $key) = $self->make_cert(names => ['localhost', '127.0.0.1'], file => 'ca-proxy');
    $self->_start_cutter($cut);
    $self->set_ca_fault('pass', reload => 0);
    my $acme = $self->port('acme');
    my $ca = $self->ca_file;
    $self->write_file("$d/nginx.conf", <<"EOF2");
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log info;
events {
    worker_connections 256;
}
http {
    log_format faults '\$msec \$request_method \$uri \$status \$request_time';
    access_log $d/access.log faults;
    # What this nginx answers itself is a problem document (RFC 7807).
    default_type application/problem+json;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $crt;
        ssl_certificate_key $key;
        location / {
            set \$ca_upstream https://127.0.0.1:$acme;
            include $d/fault.conf;
            proxy_pass \$ca_upstream;
            # Pebble builds its URLs from the Host header: they all point here.
            proxy_set_header Host \$http_host;
            proxy_http_version 1.1;
            proxy_ssl_trusted_certificate $ca;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_read_timeout 300s;
        }
    }
}
EOF2
    unlink "$d/nginx.pid";
    my $pid = $self->_spawn('ca-proxy', [$NGINX, '-p', "$d/", '-c', "$d/nginx.conf", '-e',
            "$d/error.log"], log => "$d/nginx.out");
    my $ok = $self->wait_for(sub {
            return 'dead' unless _alive($pid);
            return scalar @{ $self->nginx_pids('ca-proxy')->{workers} } >= 1;
        }, timeout => 20);
    if (!$ok || $ok eq 'dead') {
        my $why = _slurp("$d/nginx.out") . _slurp("$d/error.log");
        $self->_stop('ca-proxy');
        die "AcmeTest: the CA proxy did not start:\n$why";
    }
    my $http = $self->_https(timeout => 2);
    $self->wait_for(sub { $http->get($self->ca_proxy_uri)->{success} }, timeout => 10)
        or die "AcmeTest: the CA proxy does not pass the directory through:\n" . _slurp("$d/error.log");
    return $pid;
}

sub ca_proxy_uri { 'https://127.0.0.1:' . $_[0]->port('ca_proxy') . '/dir' }

sub set_ca_fault {
    my ($self, $mode, %opt) = @_;
    my $d = "$self->{dir}/ca-proxy";
    my $body;
    if (!defined $mode || $mode eq 'pass') {
        $body = '';
    } elsif ($mode =~ /^[45]\d\d$/) {
        my $detail = $opt{detail} // "the CA proxy answers $mode";
        $detail =~ s/["\\']//g;
        my $type = $opt{type} // 'urn:ietf:params:acme:error:serverInternal';
        $body = defined $opt{retry_after} ? "add_header Retry-After $opt{retry_after} always;\n" : '';
        $body .= ($opt{problem} // 1)
            ? qq{return $mode '{"type":"$type","detail":"$detail","status":$mode}';\n}
            : "return $mode;\n";
    } elsif ($mode eq 'close') {
        $body = "return 444;\n";
    } elsif ($mode eq 'cut') {
        $body = 'set $ca_upstream http://127.0.0.1:' . $self->port('ca_cut') . ";\n";
    } elsif ($mode eq 'slow') {
        $body = 'limit_rate ' . ($opt{rate} // 200) . ";\n";
    } else {
        die "AcmeTest: unknown CA fault '$mode'";
    }
    die "AcmeTest: set_ca_fault takes paths or method, not both\n"
        if defined $opt{paths} && defined $opt{method};
    if (defined $opt{paths} && $body ne '') {
        (my $re = $opt{paths}) =~ s/"/\\"/g;
        $body = qq{if (\$uri ~ "$re") {\n$body}\n};
    } elsif (defined $opt{method} && $body ne '') {
        $opt{method} =~ /^[A-Z]+$/ or die "AcmeTest: bad method '$opt{method}'\n";
        $body = qq{if (\$request_method = $opt{method}) {\n$body}\n};
    }
    $self->write_file("$d/fault.conf", $body);
    $self->{ca_fault} = $mode // 'pass';
    return 1 if defined $opt{reload} && !$opt{reload};
    return $self->_reload_ca_proxy;
}

# HUP, then wait until the worker that answers runs the new configuration.
sub _reload_ca_proxy {
    my ($self) = @_;
    my $p = $self->{procs}{'ca-proxy'} or die "AcmeTest: the CA proxy is not running";
    my %old = map { $_ => 1 } @{ $self->nginx_pids('ca-proxy')->{workers} };
    my $elog = "$self->{dir}/ca-proxy/error.log";
    my $mark = -s $elog || 0;
    kill 'HUP', $p->{pid};
    my $ok = $self->wait_for(sub {
            die "AcmeTest: the CA proxy failed to reload:\n$1\n"
                if _slurp($elog, $mark) =~ /^(.*\[emerg\].*)$/m;
            my @w = @{ $self->nginx_pids('ca-proxy')->{workers} };
            return @w && !grep { $old{$_} } @w;
        }, timeout => 20);
    die "AcmeTest: the CA proxy did not reload" unless $ok;
    return 1;
}

sub ca_proxy_requests {
    my ($self) = @_;
    my @r;
    for (split /\n/, _slurp("$self->{dir}/ca-proxy/access.log")) {
        my ($time, $method, $uri, $status, $took) = split / /;
        push @r, { time => $time, method => $method, uri => $uri, status => $status,
                   request_time => $took };
    }
    return @r;
}

# Answers every request with the start of a response and closes the
# connection mid-body (Content-Length promises more than is sent).
sub _start_cutter {
    my ($self, $port) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
        Listen => 16, ReuseAddr => 1) or die "AcmeTest: cutter on $port: $!";
    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $listen;
        $self->{procs}{'ca-cutter'} = { pid => $pid, log => '/dev/null', cmd => ['cutter', $port] };
        return $pid;
    }
    eval {
        _detach_child();
        while (1) {
            my $c = $listen->accept or next;
            my $head = '';
            while ($head !~ /\r\n\r\n/) {
                sysread($c, my $buf, 4096) or last;
                $head .= $buf;
            }
            my $nonce = join '', map { ('A' .. 'Z')[rand 26] } 1 .. 22;
            syswrite $c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                . "Replay-Nonce: $nonce\r\nContent-Length: 4000\r\n\r\n{\"status\": \"val";
            close $c;
        }
    };
    POSIX::_exit(0);
}

# ---------------------------------------------------------------------------
# file systems

sub mount_tmpfs {
    my ($self, $rel, %opt) = @_;
    my $path = $rel =~ m{^/} ? $rel : "$self->{dir}/$rel";
    make_path($path, { mode => 0755 });
    my $uid = getpwnam('nobody') // 65534;
    my $gid = getgrnam('nogroup') // 65534;
    my $size = $opt{size} // '1m';
    my $mode = sprintf '%o', $opt{mode} // 0700;
    my ($rc, $out) = _run('mount', '-t', 'tmpfs', '-o', "size=$size,mode=$mode,uid=$uid,gid=$gid",
        'tmpfs', $path);
    die "AcmeTest: mount tmpfs on $path: $out" if $rc;
    push @{ $self->{mounts} }, $path;
    return $path;
}

# A read-only bind mount of the directory over itself: new opens for
# writing fail with EROFS. (remount,ro of the file system itself is refused,
# EBUSY, while a process holds a file on it open for writing, as the engine
# does its .lock.)
sub set_read_only {
    my ($self, $path, $ro) = @_;
    if ($ro) {
        my ($rc, $out) = _run('mount', '--bind', $path, $path);
        die "AcmeTest: bind mount $path: $out" if $rc;
        push @{ $self->{mounts} }, $path;
        ($rc, $out) = _run('mount', '-o', 'remount,bind,ro', $path);
        die "AcmeTest: remount,bind,ro $path: $out" if $rc;
        $self->{read_only}{$path}++;
    } elsif ($self->{read_only}{$path}) {
        my ($rc, $out) = _run('umount', $path);
        die "AcmeTest: umount $path: $out" if $rc;
        $self->{read_only}{$path}--;
        # the last mount of that path is the one just removed
        my $m = $self->{mounts};
        for my $i (reverse 0 .. $#$m) {
            next unless $m->[$i] eq $path;
            splice @$m, $i, 1;
            last;
        }
    }
    return 1;
}

sub fs_free_blocks {
    my ($self, $path) = @_;
    my (undef, $out) = _run('stat', '-f', '-c', '%a %S', $path);
    my ($free, $bsize) = $out =~ /^(\d+) (\d+)/ or die "AcmeTest: stat -f $path: $out";
    return wantarray ? ($free, $bsize) : $free;
}

sub fill_fs {
    my ($self, $path, %opt) = @_;
    my $leave = $opt{leave} // 0;
    my $file = $opt{file} // "$path/.filler";
    my ($free, $bsize) = $self->fs_free_blocks($path);
    my $n = $free - $leave;
    open my $fh, '>>', $file or die "AcmeTest: $file: $!";
    my $block = "\0" x $bsize;
    for (1 .. $n) {
        syswrite($fh, $block) == $bsize or last;
    }
    close $fh;
    return $file;
}

# ---------------------------------------------------------------------------
# the clock

my $LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

sub faketime_available { -r $LIBFAKETIME }

sub faketime_env {
    my ($self, %opt) = @_;
    die "AcmeTest: no libfaketime (apt-get install faketime)\n" unless faketime_available();
    $self->set_fake_time($opt{offset} // 0);
    return {
        LD_PRELOAD                   => $LIBFAKETIME,
        FAKETIME_TIMESTAMP_FILE      => "$self->{dir}/faketime.rc",
        FAKETIME_NO_CACHE            => 1,
        FAKETIME_DONT_FAKE_MONOTONIC => 1,
    };
}

# nginx empties the environment of its workers and helper but for what
# the configuration keeps with env: these lines, at main level.
sub faketime_conf {
    return join '', map { "env $_;\n" }
        qw(LD_PRELOAD FAKETIME_TIMESTAMP_FILE FAKETIME_NO_CACHE FAKETIME_DONT_FAKE_MONOTONIC);
}

sub set_fake_time {
    my ($self, $offset) = @_;
    my $spec = sprintf '%+d', $offset;
    # Replaced atomically: a reader never sees an empty file.
    $self->write_file('faketime.rc.new', "$spec\n");
    rename "$self->{dir}/faketime.rc.new", "$self->{dir}/faketime.rc"
        or die "AcmeTest: faketime.rc: $!";
    return 1;
}

sub _unmount_all {
    my ($self) = @_;
    for my $path (reverse @{ delete $self->{mounts} || [] }) {
        my ($rc) = _run('umount', $path);
        ($rc) = _run('umount', '-l', $path) if $rc;
        Test::More::diag("AcmeTest: cannot unmount $path") if $rc;
    }
}

# ---------------------------------------------------------------------------
# nginx

my $PEBBLE_ISSUER = <<'EOF';
    acme_issuer pebble {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
EOF

sub write_nginx_conf {
    my ($self, $template, %opt) = @_;
    my $d = $self->{dir};
    my $module = module_path();
    $self->{$_} = $opt{$_} for grep { exists $opt{$_} } qw(worker_processes log_level);
    $self->{master_process} = $opt{master_process} // 1;
    my $load = $opt{module} // 1;
    die "AcmeTest: ACME_MODULE is not set to a readable module\n"
        if $load && $opt{module} && !$module;

    my $stream = $opt{stream} ? stream_module_path() : undef;
    die "AcmeTest: stream => 1 needs ngx_stream_acme_module.so next to ACME_MODULE\n"
        if $opt{stream} && !$stream;
    my %sub = (
        MODULE     => $module // '',
        STREAM_MODULE     => stream_module_path() // '',
        NGX_STREAM_MODULE => $NGX_STREAM_MODULE,
        HTTP_PORT  => $self->port('http'),
        HTTPS_PORT => $self->port('https'),
        ACME_URI   => $self->acme_uri,
        PEBBLE_CA  => $self->ca_file,
        TESTDIR    => $d,
        DNS_PORT   => $self->port('dns'),
    );
    $sub{PEBBLE_ROOT} = $self->pebble_root if $self->{pebble_running};

    my $conf = $template;
    # The issuer most tests use, as a block of its own: expanded first, its
    # placeholders are then substituted like the rest.
    $conf =~ s/^[ \t]*%%PEBBLE_ISSUER%%[ \t]*\n/$PEBBLE_ISSUER/m;
    $conf =~ s/%%PORT_([A-Za-z0-9_]+)%%/$self->port(lc $1)/ge;
    $conf =~ s/%%([A-Z0-9_]+)%%/exists $sub{$1} ? $sub{$1} : die "AcmeTest: unknown %%$1%% in nginx config\n"/ge;
    $conf =~ s{^(\s*http\s*\{)}{$1\n    access_log $d/access.log;}m;

    my $head = defined $opt{top} ? "$opt{top}\n" : '';
    $head =~ s/%%([A-Z0-9_]+)%%/exists $sub{$1} ? $sub{$1} : die "AcmeTest: unknown %%$1%% in nginx config\n"/ge;
    # nginx's stream module, ours, then ngx_stream_acme_module: the order
    # the stream module needs.
    $head .= "load_module $NGX_STREAM_MODULE;\n" if $stream;
    $head .= "load_module $module;\n" if $load && $module;
    $head .= "load_module $stream;\n" if $stream;
    $head .= <<"EOF";
daemon off;
master_process @{[ $self->{master_process} ? 'on' : 'off' ]};
pid $d/nginx.pid;
error_log $d/error.log $self->{log_level};
worker_processes $self->{worker_processes};

events {
    worker_connections 1024;
}

EOF
    return $self->{nginx_conf} = $self->write_file('nginx.conf', $head . $conf);
}

sub _nginx_args {
    my ($self, $elog) = @_;
    die "AcmeTest: write_nginx_conf first" unless $self->{nginx_conf};
    return ('-p', "$self->{dir}/", '-c', $self->{nginx_conf}, '-e', $elog);
}

# The environment nginx starts with: a test's own (faketime, say) and the
# sanitizer runtimes, whose LD_PRELOAD lists are joined.
sub _nginx_env {
    my ($own) = @_;
    my %env = (%NGINX_ENV, %{ $own || {} });
    $env{LD_PRELOAD} = join ' ', grep { defined && length } $NGINX_ENV{LD_PRELOAD}, $own->{LD_PRELOAD}
        if $NGINX_ENV{LD_PRELOAD} && $own && $own->{LD_PRELOAD};
    return \%env;
}

sub run_nginx_t {
    my ($self) = @_;
    local @ENV{ keys %NGINX_ENV } = values %NGINX_ENV;
    return _run($NGINX, '-t', $self->_nginx_args("$self->{dir}/error-t.log"));
}

sub start_nginx {
    my ($self, %opt) = @_;
    die "nginx already running" if $self->{procs}{nginx};
    my $d = $self->{dir};
    unlink "$d/nginx.pid";
    my $pid = $self->_spawn('nginx', [$NGINX, $self->_nginx_args("$d/error.log")],
        log => "$d/nginx.out", env => _nginx_env($opt{env}));
    my $ok = $self->wait_for(sub {
            return 'dead' unless _alive($pid);
            return -s "$d/nginx.pid" unless $self->{master_process};
            my $p = $self->nginx_pids;
            return $p->{master} && @{ $p->{workers} } >= $self->{worker_processes};
        }, timeout => $opt{timeout} // 20);
    if (!$ok || $ok eq 'dead' || !_alive($pid)) {
        my $why = _slurp("$d/nginx.out") . _slurp("$d/error.log");
        $self->_stop('nginx');
        die "AcmeTest: nginx did not start:\n$why";
    }
    return $pid;
}

sub signal_nginx {
    my ($self, $sig) = @_;
    my $p = $self->{procs}{nginx} or die "nginx is not running";
    kill $sig, $p->{pid};
}

sub reload_nginx {
    my ($self, %opt) = @_;
    my $before = $self->nginx_pids;
    my %old = map { $_ => 1 } @{ $before->{workers} }, @{ $before->{shutting_down} },
        grep { defined } $before->{helper}, $before->{loader};
    my $mark = $self->log_mark;
    $self->signal_nginx('HUP');
    my $result;
    $self->wait_for(sub {
            my $log = _slurp("$self->{dir}/error.log", $mark);
            if ($log =~ /^(.*\[emerg\].*)$/m) {
                $result = { error => $1 };
                return 1;
            }
            if (!$self->{master_process}) {
                # one process re-reads its configuration in place
                return 0 unless $log =~ /reconfiguring/;
                sleep 0.3;    # no line marks the end of an in-place reload
                return $result = { ok => 1 };
            }
            my $now = $self->nginx_pids;
            my @new = grep { !$old{$_} } @{ $now->{workers} };
            my @stale = grep { $old{$_} } @{ $now->{workers} };
            if (@new >= $self->{worker_processes} && !@stale) {
                $result = { ok => 1 };
                return 1;
            }
            return 0;
        }, timeout => $opt{timeout} // 20);
    $result //= { error => 'timed out waiting for new workers' };
    if ($result->{error}) {
        return $result->{error} if $opt{expect_fail};
        die "AcmeTest: reload failed: $result->{error}\n";
    }
    die "AcmeTest: reload succeeded but expect_fail was given\n" if $opt{expect_fail};
    return 1;
}

sub stop_nginx {
    my ($self, %opt) = @_;
    return unless $self->{procs}{nginx};
    $self->_stop('nginx', $opt{graceful} ? 'QUIT' : 'TERM', $opt{timeout});
}

sub nginx_pids {
    my ($self, $name) = @_;
    my %r = (master => undef, workers => [], helper => undef, loader => undef,
        shutting_down => [], other => []);
    my $p = $self->{procs}{ $name // 'nginx' } or return \%r;
    my $master = $p->{pid};
    return \%r unless _alive($master);
    $r{master} = $master;
    open my $ps, '-|', 'ps', '-e', '-o', 'pid=,ppid=,args=' or return \%r;
    while (my $line = <$ps>) {
        my ($pid, $ppid, $args) = $line =~ /^\s*(\d+)\s+(\d+)\s+(.*)$/ or next;
        next unless $ppid == $master;
        if ($args =~ /worker process is shutting down/) {
            push @{ $r{shutting_down} }, $pid;
        } elsif ($args =~ /worker process/) {
            push @{ $r{workers} }, $pid;
        } elsif ($args =~ /cache manager process/) {
            $r{helper} = $pid;
        } elsif ($args =~ /cache loader process/) {
            $r{loader} = $pid;
        } else {
            push @{ $r{other} }, $pid;
        }
    }
    close $ps;
    return \%r;
}

sub helper_pid  { $_[0]->nginx_pids->{helper} }
sub worker_pids { @{ $_[0]->nginx_pids->{workers} } }

sub log_mark { -s "$_[0]{dir}/error.log" || 0 }

# The time of an error log line (nginx writes local time).
sub log_time {
    my ($line) = @_;
    my @d = $line =~ m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+)} or return undef;
    return timelocal($d[5], $d[4], $d[3], $d[2], $d[1] - 1, $d[0]);
}

# The "next attempt at YYYY-MM-DD HH:MM:SS UTC" of an engine log line.
sub next_attempt_time {
    my ($line) = @_;
    my @n = $line =~ /next attempt at (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+) UTC/ or return undef;
    return timegm($n[5], $n[4], $n[3], $n[2], $n[1] - 1, $n[0]);
}

sub cert_record {
    my ($self, $name, %opt) = @_;
    my $state = $opt{state} // "$self->{dir}/acme";
    my ($file) = grep { !/\.order\.json$/ } glob("$state/$name-*.json");
    return undef unless $file;
    my $r = eval { decode_json(_slurp($file)) };
    return $r;
}

sub error_log {
    my ($self, $mark) = @_;
    # Engine lines reach the file up to 100 ms after what they report (the
    # helper's main thread writes them): what a test saw happen is logged
    # by the time this returns.
    select(undef, undef, undef, 0.25);
    return _slurp("$self->{dir}/error.log", $mark);
}

sub wait_installed {
    my ($self, $name, %opt) = @_;
    my @workers = $self->worker_pids;
    return $self->wait_for(sub {
        my %by = map { $_ => 1 } _slurp("$self->{dir}/error.log", $opt{mark})
            =~ m{\[info\] (\d+)#\d+: acme: installed certificate "[^"]*/\Q$name\E-[0-9a-f]{8}\.crt"}g;
        !grep { !$by{$_} } @workers
    }, timeout => $opt{timeout} // 10);
}

sub wait_log {
    my ($self, $re, $timeout, $mark) = @_;
    my $found;
    $self->wait_for(sub {
            for my $line (split /\n/, _slurp("$self->{dir}/error.log", $mark)) {
                return $found = $line if $line =~ $re;
            }
            return 0;
        }, timeout => $timeout // 30);
    return $found;
}

# ---------------------------------------------------------------------------
# clients

sub http_get {
    my ($self, $path, %opt) = @_;
    my $port = $opt{port} // $self->port('http');
    my $timeout = $opt{timeout} // 5;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => $timeout)
        or return { status => undef, success => 0, headers => {}, content => undef,
                    error => "connect 127.0.0.1:$port: $!" };
    my $r = _http_exchange($sock, $path, $opt{host} // "127.0.0.1:$port", $timeout, $opt{headers},
        $opt{method});
    close $sock;
    return $r;
}

my %KEY_TYPES = (6 => 'rsa', 912 => 'rsa-pss', 408 => 'ec', 1087 => 'ed25519', 1088 => 'ed448');

sub _asn1_epoch {
    my ($t) = @_;
    my $iso = Net::SSLeay::P_ASN1_TIME_get_isotime($t) or return undef;
    my ($Y, $M, $D, $h, $m, $s) = $iso =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/ or return undef;
    return timegm($s, $m, $h, $D, $M - 1, $Y);
}

sub cert_info {
    my ($x509) = @_;
    my %r;
    $r{subject_cn} = Net::SSLeay::X509_NAME_get_text_by_NID(
        Net::SSLeay::X509_get_subject_name($x509), &Net::SSLeay::NID_commonName);
    $r{issuer_cn} = Net::SSLeay::X509_NAME_get_text_by_NID(
        Net::SSLeay::X509_get_issuer_name($x509), &Net::SSLeay::NID_commonName);
    $_ = undef for grep { defined && $_ eq '' } @r{qw(subject_cn issuer_cn)};
    my @alt = Net::SSLeay::X509_get_subjectAltNames($x509);
    my @sans;
    while (my ($type, $value) = splice @alt, 0, 2) {
        if ($type == 2) {
            push @sans, $value;
        } elsif ($type == 7) {
            push @sans, length $value == 4 ? inet_ntoa($value)
                : length $value == 16 ? inet_ntop(AF_INET6, $value) : $value;
        }
    }
    $r{sans} = \@sans;
    $r{not_before} = _asn1_epoch(Net::SSLeay::X509_get_notBefore($x509));
    $r{not_after}  = _asn1_epoch(Net::SSLeay::X509_get_notAfter($x509));
    $r{serial} = Net::SSLeay::P_ASN1_INTEGER_get_hex(Net::SSLeay::X509_get_serialNumber($x509));
    if (my $pk = Net::SSLeay::X509_get_pubkey($x509)) {
        my $id = Net::SSLeay::EVP_PKEY_id($pk);
        $r{key_type} = $KEY_TYPES{$id} // "nid$id";
        $r{key_bits} = Net::SSLeay::EVP_PKEY_bits($pk);
        Net::SSLeay::EVP_PKEY_free($pk);
    }
    $r{cert_pem} = Net::SSLeay::PEM_get_string_X509($x509);
    return \%r;
}

sub tls_get {
    my ($self, %opt) = @_;
    my $name = $opt{name};
    my $port = $opt{port} // $self->port('https');
    my $ca = $opt{ca};
    my $timeout = $opt{timeout} // 5;
    my %r = (ok => 0, verified => 0);

    my $sock = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Timeout  => $timeout,
        (defined $name ? (SSL_hostname => $name) : (SSL_hostname => '')),
        SSL_verify_mode => $ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
        ($ca ? (SSL_ca_file => $ca, SSL_ca_path => undef) : ()),
        # accept whatever comes; the verdict is read after the handshake
        SSL_verify_callback => sub { 1 },
        SSL_verifycn_scheme => 'none',
        ($opt{alpn} ? (SSL_alpn_protocols => $opt{alpn}) : ()),
        ($opt{ssl_options} ? %{ $opt{ssl_options} } : ()),
    );
    if (!$sock) {
        my $errno = "$!";
        my $ssl_error = $IO::Socket::SSL::SSL_ERROR // '';
        $r{error} = $ssl_error =~ /configuration failed/ || $ssl_error eq ''
            ? "connect 127.0.0.1:$port: $errno" : $ssl_error;
        return \%r;
    }
    $r{ok} = 1;
    my $ssl = $sock->_get_ssl_object;
    $r{protocol} = $sock->get_sslversion;
    $r{alpn} = $sock->alpn_selected if $opt{alpn};

    my @chain = Net::SSLeay::get_peer_cert_chain($ssl);
    my $leaf = Net::SSLeay::get_peer_certificate($ssl);
    if ($leaf) {
        %r = (%r, %{ cert_info($leaf) });
        $r{chain_pem} = join '', map { Net::SSLeay::PEM_get_string_X509($_) } @chain;
        $r{chain_len} = scalar @chain;
        if ($ca) {
            my $v = Net::SSLeay::get_verify_result($ssl);
            if ($v != 0) {
                $r{verify_error} = Net::SSLeay::X509_verify_cert_error_string($v);
            } elsif (defined $name && $name ne ''
                && !IO::Socket::SSL::verify_hostname_of_cert($name, $leaf, 'http')) {
                $r{verify_error} = "certificate does not match $name";
            } else {
                $r{verified} = 1;
            }
        }
        Net::SSLeay::X509_free($leaf);
    } else {
        $r{error} = 'no peer certificate';
    }

    if (defined $opt{request}) {
        my $h = _http_exchange($sock, $opt{request}, $opt{host} // $name // '127.0.0.1', $timeout,
            $opt{headers});
        @r{qw(status headers body)} = @{$h}{qw(status headers content)};
        $r{error} //= $h->{error} if $h->{error};
    }
    $sock->close(SSL_no_shutdown => 1);
    return \%r;
}

# One HTTP/1.1 request on a connected socket, read to EOF; never dies.
sub _http_exchange {
    my ($sock, $path, $host, $timeout, $headers, $method) = @_;
    $method //= 'GET';
    my $req = "$method $path HTTP/1.1\r\nHost: $host\r\nConnection: close\r\nUser-Agent: AcmeTest\r\n";
    $req .= "Content-Length: 0\r\n" if $method eq 'POST';
    $req .= "$_: $headers->{$_}\r\n" for sort keys %{ $headers || {} };
    print {$sock} "$req\r\n";
    my $resp = '';
    my $deadline = time + $timeout;
    while (time < $deadline) {
        if (!($sock->can('pending') && $sock->pending)) {
            my $rin = '';
            vec($rin, fileno($sock), 1) = 1;
            my $n = select(my $rout = $rin, undef, undef, 0.2);
            next if !$n || $n < 0;
        }
        my $got = sysread($sock, my $buf, 65536);
        last unless $got;
        $resp .= $buf;
    }
    my %r = (status => undef, headers => {}, content => undef, success => 0);
    if ($resp =~ m{^HTTP/\d(?:\.\d)?\s+(\d+)[^\r\n]*\r?\n(.*?)\r?\n\r?\n(.*)}s
        || $resp =~ m{^HTTP/\d(?:\.\d)?\s+(\d+)[^\r\n]*\r?\n(.*?)\r?\n\r?\n()$}s) {
        $r{status} = $1;
        my ($head, $body) = ($2, $3);
        for (split /\r?\n/, $head) {
            my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
            $r{headers}{ lc $k } = $v;
        }
        $body = _unchunk($body) if ($r{headers}{'transfer-encoding'} // '') =~ /chunked/i;
        $r{content} = $body;
        $r{success} = $r{status} =~ /^2/ ? 1 : 0;
    } else {
        $r{error} = length $resp ? 'malformed HTTP response: ' . substr($resp, 0, 200) : 'no HTTP response';
    }
    return \%r;
}

sub _unchunk {
    my ($s) = @_;
    my $out = '';
    while ($s =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr($s, 0, $n, '');
        $s =~ s/^\r\n//;
    }
    return $out;
}

# ---------------------------------------------------------------------------
# clusters: nodes sharing one Pebble and one Redis

sub new_node {
    my ($self) = @_;
    # timeout 0: the first object's alarm bounds the script
    my $n = (ref $self)->new(timeout => 0, worker_processes => $self->{worker_processes},
        log_level => $self->{log_level});
    $n->{ports}{$_} = $self->port($_) for qw(acme dns mgmt challtest redis);
    $n->write_file('ca.pem', _slurp($self->ca_file));
    $n->{pebble_peer} = $self;
    return $n;
}

sub start_redis {
    my ($self) = @_;
    my $port = $self->port('redis');
    my $d = "$self->{dir}/redis";
    make_path($d);
    $self->_spawn('redis', ['redis-server', '--port', $port, '--bind', '127.0.0.1',
            '--save', '', '--appendonly', 'no', '--dir', $d, '--daemonize', 'no']);
    $self->wait_for(sub {
            die "redis-server exited:\n" . _slurp("$self->{dir}/redis.log")
                unless $self->_proc_alive('redis');
            $self->redis_cli('PING') eq 'PONG';
        }, timeout => 15)
        or die "redis-server did not start:\n" . _slurp("$self->{dir}/redis.log");
    return $port;
}

sub stop_redis { $_[0]->_stop('redis') }

sub redis_alive { $_[0]->_proc_alive('redis') }

sub redis_cli {
    my ($self, @args) = @_;
    my (undef, $out) = _run('redis-cli', '-p', $self->port('redis'), @args);
    $out //= '';
    chomp $out;
    return $out;
}

1;
