# Two servers with the same names, key type and issuer share one
# certificate; when their profile= or renew= differ, nginx -t says which
# server's settings are used.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $conf = $t->write_nginx_conf(<<'EOF2');
http {
    acme_issuer ca {
        uri https://127.0.0.1:%%PORT_CLOSED%%/dir;
        state_path %%TESTDIR%%/acme;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name shared.test;
        acme_certificate ca;
    }
    server {
        listen 127.0.0.1:%%PORT_OTHER%% ssl;
        server_name shared.test;
        acme_certificate ca renew=10d;
    }
    server {
        listen 127.0.0.1:%%PORT_THIRD%% ssl;
        server_name shared.test;
        acme_certificate ca;
    }
}
EOF2
my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'nginx -t accepts the configuration' or diag $out;
my @lines = split /\n/, do { local (@ARGV, $/) = $conf; <> };
my ($first) = grep { $lines[$_ - 1] =~ /acme_certificate ca;/ } 1 .. @lines;
my ($second) = grep { $lines[$_ - 1] =~ /renew=10d/ } 1 .. @lines;
like $out, qr/\[warn\] acme_certificate in \S+:$second shares its certificate with the one in \S+:$first, whose profile= and renew= are used/,
    'warning names both places';
my $warnings = () = $out =~ /shares its certificate/g;
is $warnings, 1, 'identical settings are not warned about';

done_testing;
