# Engine lines reach every error_log target: a syslog server on a loopback
# UDP socket and a file, both in the http block (which then replaces the
# main error_log for the module, as for the rest of http), plus memory:.
# After `nginx -s reopen` (USR1) engine lines go to the new file, never the
# old one.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
my $d = $t->dir;
my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $t->port('syslog'),
    Proto => 'udp') or die "udp: $!";
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    error_log syslog:server=127.0.0.1:%%PORT_SYSLOG%%,tag=acmetest notice;
    error_log %%TESTDIR%%/http.log notice;
    error_log memory:1m notice;
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /manage { acme_status renew; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;

my @syslog;
sub receive {
    my ($re, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $rin = '';
        vec($rin, fileno($udp), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, 0.5);
        $udp->recv(my $msg, 65536);
        push @syslog, $msg;
        return $msg if $msg =~ $re;
    }
    return undef;
}
sub slurp { my $f = shift; -e $f ? do { local (@ARGV, $/) = $f; <> } : '' }

my $issued = qr/acme: certificate "example\.test" issued by "pebble"/;
my $msg = receive($issued, 60);
ok $msg, 'the issuance line reaches syslog' or diag join '', @syslog;
like $msg // '', qr/^<\d+>.*acmetest: /, 'as a syslog message with the tag';
ok grep({ /acme: issuer "pebble": using account/ } @syslog), 'other engine lines too';
$t->wait_for(sub { slurp("$d/http.log") =~ $issued }, timeout => 5);
like slurp("$d/http.log"), $issued, 'and the http block\'s log file';

# Reopen: the old file is moved away; what the engine writes afterwards
# goes to the new one only.
rename "$d/http.log", "$d/http.log.1" or die;
$t->signal_nginx('USR1');
$t->wait_for(sub { -e "$d/http.log" }, timeout => 10);
ok -e "$d/http.log", 'reopened';
my $r = $t->http_get('/manage?renew=example.test', host => 'status.test', method => 'POST');
is $r->{status}, 202, 'renewal requested';
ok receive($issued, 40), 'the renewal is logged to syslog';
$t->wait_for(sub { slurp("$d/http.log") =~ $issued }, timeout => 10);
like slurp("$d/http.log"), qr/renewal requested, ordering now.*$issued/s, 'the new file has the renewal';
my $old = slurp("$d/http.log.1");
my $n = () = $old =~ /$issued/g;
is $n, 1, 'the old file has only the first issuance';
unlike $old, qr/renewal requested/, 'nothing after the reopen went to the old file';

done_testing;
