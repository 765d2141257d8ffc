# Servers with acme certificates share the in-memory fallback (and servers
# configured nginx-acme style the same "$acme_certificate" strings), yet a
# TLS 1.2 session cached by one of them must not be resumed by another that
# shares the session cache: each gets its own session id context. (OpenSSL
# looks sessions up in the listener's default server, so each server here
# has a listener of its own.)
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $servers = '';
for my $name (qw(a b c d)) {
    my $vars = $name =~ /[cd]/
        ? "ssl_certificate \$acme_certificate;\n        ssl_certificate_key \$acme_certificate_key;" : '';
    $servers .= <<"EOF";
    server {
        listen 127.0.0.1:%%PORT_\U$name\E%% ssl;
        server_name $name.test;
        acme_certificate nowhere;
        $vars
    }
EOF
}
$t->write_nginx_conf(<<"EOF");
http {
    ssl_session_cache shared:SSL:1m;
    ssl_session_tickets off;
    acme_issuer nowhere {
        uri https://127.0.0.1:%%PORT_CLOSED%%/dir;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
$servers
}
EOF
$t->start_nginx;

# A TLS 1.2 handshake with openssl s_client offering the session in $in (if
# any) and saving the one it ends with in $out; true when it was resumed.
sub handshake {
    my ($name, %opt) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec 'openssl', 's_client', -connect => '127.0.0.1:' . $t->port($name), -servername => "$name.test",
            '-tls1_2', ($opt{in} ? (-sess_in => $opt{in}) : ()), ($opt{out} ? (-sess_out => $opt{out}) : ());
        exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    die "s_client $name: $out" unless $out =~ /^(New|Reused), TLSv1\.2/m;
    return $1 eq 'Reused';
}

for my $pair ([qw(a b)], [qw(c d)], [qw(a c)]) {
    my ($one, $other) = @$pair;
    my $session = $t->dir . "/session-$one";
    handshake($one, out => $session);
    ok handshake($one, in => $session), "$one.test resumes its own session";
    ok !handshake($other, in => $session), "$other.test does not resume the session of $one.test";
}

done_testing;
