# OCSP stapling of managed certificates: with ssl_stapling on and
# ssl_stapling_verify on, the engine fetches the response for the issued
# certificate from the responder Pebble names, and workers staple it
# (openssl s_client -status: successful, good, for the served serial);
# after a renewal the new certificate gets its own response. A server
# without ssl_stapling staples nothing.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180, log_level => 'info');
$t->start_pebble(config => { ocspResponderURL => $t->ocsp_uri });
$t->start_ocsp_responder;
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /manage { acme_status renew; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name stapled.test;
        acme_certificate pebble;
        ssl_stapling on;
        ssl_stapling_verify on;
    }
    server {
        listen 127.0.0.1:%%PORT_PLAIN%% ssl;
        server_name plain.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;

my $root = $t->pebble_root;

# Whether the stored response (the one stapled: same serial) verifies
# against Pebble's root through the intermediate, as a client would check it.
sub stored_verifies {
    my ($cert_pem) = @_;
    my ($file) = glob($t->dir . '/acme/stapled.test-*.ocsp') or return 0;
    my $leaf = $t->write_file('leaf.pem', $cert_pem);
    my $icert = $t->pebble_intermediate;
    my $out = `openssl ocsp -respin $file -issuer $icert -CAfile $root -cert $leaf 2>&1`;
    diag $out unless $out =~ /Response verify OK/ && $out =~ /: good/;
    return $out =~ /Response verify OK/ && $out =~ /: good/;
}

# What `openssl s_client -status` says about the stapled response.
sub stapled {
    my ($name, $port) = @_;
    my $out = `echo | openssl s_client -connect 127.0.0.1:$port -servername $name -status -CAfile $root 2>&1`;
    my %r = (out => $out);
    $r{status} = $1 if $out =~ /OCSP Response Status: (\w+)/;
    $r{cert_status} = $1 if $out =~ /Cert Status: (\w+)/;
    $r{serial} = (uc $1) =~ s{^0+}{}r if $out =~ /Serial Number: ([0-9A-Fa-f]+)/;
    # OpenSSL 3.6 (sid) says "OCSP responses: no responses sent".
    $r{none} = 1 if $out =~ /OCSP responses?: no responses? sent/;
    return \%r;
}

sub served {
    my ($name, $port) = @_;
    $t->wait_for(sub {
        my $r = $t->tls_get(name => $name, port => $port, ca => $root);
        $r->{serial} =~ s{^0+}{} if $r->{serial};
        $r->{verified} ? $r : undef
    }, timeout => 90);
}

my $first = served('stapled.test', $t->port('https'));
ok $first, 'the CA certificate is served' or die('no certificate');
my $plain = served('plain.test', $t->port('plain'));
ok $plain, 'the server without stapling is served too';

# The responder knows the serials only now: the engine's first fetches get
# "unknown" and are retried.
$t->ocsp_good($first->{serial});
$t->ocsp_good($plain->{serial});
my $s = $t->wait_for(sub {
    my $s = stapled('stapled.test', $t->port('https'));
    ($s->{cert_status} // '') eq 'good' ? $s : undef
}, timeout => 60);
ok $s, 'a response is stapled' or diag stapled('stapled.test', $t->port('https'))->{out};
is $s->{status}, 'successful', 'OCSP Response Status: successful';
is $s->{cert_status}, 'good', 'Cert Status: good';
is $s->{serial}, $first->{serial}, 'for the served certificate';
ok stored_verifies($first->{cert_pem}), 'the response verifies against the issuer';
like $t->error_log, qr/OCSP responder "http:\/\/127\.0\.0\.1:\d+\/": unknown/,
    'the unknown answer was logged and retried';
my $p = stapled('plain.test', $t->port('plain'));
ok $p->{none} && !$p->{cert_status}, 'no stapling without ssl_stapling' or diag $p->{out};
my @ocsp = glob($t->dir . '/acme/stapled.test-*.ocsp');
is scalar @ocsp, 1, 'the response is stored next to the certificate';
is @ocsp && sprintf('%04o', (stat $ocsp[0])[2] & 07777), '0644', 'readable by workers, as the .crt';
ok !glob($t->dir . '/acme/plain.test-*.ocsp'), 'and only for the stapled one';

# Renewal: a new serial, and its own response.
my $mark = $t->log_mark;
my $r = $t->http_get('/manage?renew=stapled.test', host => 'status.test', method => 'POST');
is $r->{status}, 202, 'renew-now accepted' or diag explain $r;
my $second = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'stapled.test', port => $t->port('https'), ca => $root);
    $r->{serial} =~ s{^0+}{} if $r->{serial};
    $r->{verified} && $r->{serial} ne $first->{serial} ? $r : undef
}, timeout => 90);
ok $second, 'the renewed certificate is served' or die('no renewal');
# Until every worker has it, another one still staples the old response to
# the old certificate.
$t->wait_installed('stapled.test', mark => $mark) or die('not installed by every worker');
my $old = stapled('stapled.test', $t->port('https'));
ok !$old->{serial} || $old->{serial} eq $second->{serial},
    'the old response is not stapled to the new certificate';
$t->ocsp_good($second->{serial});
$s = $t->wait_for(sub {
    my $s = stapled('stapled.test', $t->port('https'));
    ($s->{serial} // '') eq $second->{serial} ? $s : undef
}, timeout => 60);
ok $s, 'a response for the new certificate is stapled';
is $s && $s->{status}, 'successful', 'successful after renewal';
is $s && $s->{cert_status}, 'good', 'good after renewal';
ok $s && stored_verifies($second->{cert_pem}), 'verified after renewal';

done_testing;
