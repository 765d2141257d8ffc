# nginx -t and the dns-01 directives: each mistake is rejected with one
# [emerg] naming the problem and the file:line; wildcards are accepted for
# an issuer with dns-01 and still rejected without. No CA, no DNS server.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $dir = $t->dir;
my $good_key = $t->write_file('tsig.key', <<'EOF');
key "acme-key" {
	algorithm hmac-sha256;
	secret "XTKHx9TxGQSrSRBInDJtE7wmER4AuebSqb1QCCO+VLQ=";
};
EOF
my $md5_key = $t->write_file('md5.key', <<'EOF');
key "old" { algorithm hmac-md5; secret "XTKHx9TxGQSrSRBInDJtE7wmER4AuebSqb1QCCO+VLQ="; };
EOF
my $hook = $t->write_file('hook.sh', "#!/bin/sh\nexit 0\n");
chmod 0755, $hook;
my $not_exec = $t->write_file('not-exec.sh', "#!/bin/sh\nexit 0\n");

sub line_of {
    my ($file, $re) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my @hits;
    while (my $l = <$fh>) { push @hits, $. if $l =~ $re }
    die "line_of($re): " . scalar(@hits) . " matching lines\n" unless @hits == 1;
    return $hits[0];
}

# An http block with one issuer (its body given) and one TLS server.
sub conf {
    my ($issuer_body, $server_body) = @_;
    $server_body //= "server_name example.test;\n        acme_certificate dns;";
    return <<"EOF";
http {
    acme_issuer dns {
        uri https://127.0.0.1:%%PORT_CA%%/dir;
        state_path %%TESTDIR%%/state;
        accept_terms_of_service;
$issuer_body
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        $server_body
    }
}
EOF
}

sub rejects {
    my ($name, $template, $msg, $where, %opt) = @_;
    my $conf = $t->write_nginx_conf($template);
    my $line = line_of($conf, $where);
    my ($rc, $out) = $t->run_nginx_t;
    subtest $name => sub {
        isnt $rc, 0, 'nginx -t fails';
        my @emerg = grep { /\[emerg\]/ } split /\n/, $out;
        is scalar(@emerg), 1, 'exactly one [emerg]' or diag $out;
        like $emerg[0] // '', qr/\[emerg\] .*$msg/, 'names the problem' or diag $out;
        like $emerg[0] // '', qr/\Q$conf\E:$line\b/, "names $conf:$line" or diag $out;
    };
}

sub accepts {
    my ($name, $template) = @_;
    $t->write_nginx_conf($template);
    my ($rc, $out) = $t->run_nginx_t;
    subtest $name => sub {
        is $rc, 0, 'nginx -t succeeds' or diag $out;
        unlike $out, qr/\[(?:emerg|alert|crit|error)\]/, 'no errors';
        unlike $out, qr/\[warn\].*skipped/, 'no name is skipped';
    };
    ok !-e "$dir/state", "$name: state directory not created";
}

rejects 'dns-01 without a way to publish', conf("        challenge dns-01;"),
    qr/acme_issuer "dns" in \S+ uses the dns-01 challenge but has neither "dns_update" nor "dns_hook"/,
    qr/acme_issuer dns \{/;
rejects 'dns_update with a bad port', conf("        challenge dns-01;\n        dns_update 127.0.0.1:99999;"),
    qr/invalid server "127\.0\.0\.1:99999" in "dns_update"/, qr/dns_update 127/;
rejects 'dns_update with a missing key file',
    conf("        challenge dns-01;\n        dns_update 127.0.0.1 key=$dir/nosuch.key;"),
    qr/cannot read dns_update key "\Q$dir\E\/nosuch\.key" \(2: No such file or directory\)/, qr/dns_update 127/;
rejects 'dns_update with an hmac-md5 key',
    conf("        challenge dns-01;\n        dns_update 127.0.0.1 key=$md5_key;"),
    qr/invalid dns_update key "\Q$md5_key\E": unsupported algorithm "hmac-md5"/, qr/dns_update 127/;
rejects 'dns_update with an unknown parameter',
    conf("        challenge dns-01;\n        dns_update 127.0.0.1 ttl=5;"),
    qr/invalid parameter "ttl=5" in "dns_update": key=FILE or zone=ZONE expected/, qr/dns_update 127/;
rejects 'dns_update and dns_hook together',
    conf("        challenge dns-01;\n        dns_update 127.0.0.1 key=$good_key;\n        dns_hook $hook;"),
    qr/"dns_update" and "dns_hook" exclude each other/, qr/dns_hook /;
rejects 'dns_hook that cannot be executed', conf("        challenge dns-01;\n        dns_hook $not_exec;"),
    qr/"dns_hook" "\Q$not_exec\E" cannot be executed/, qr/dns_hook /;
rejects 'dns_hook with a relative path', conf("        challenge dns-01;\n        dns_hook hook.sh;"),
    qr/invalid "dns_hook" "hook\.sh": an absolute path is expected/, qr/dns_hook /;
rejects 'dns_propagation_timeout that is no time',
    conf("        challenge dns-01;\n        dns_hook $hook;\n        dns_propagation_timeout soon;"),
    qr/invalid dns_propagation_timeout "soon"/, qr/dns_propagation_timeout/;
rejects 'dns_propagation_check that is not on or off',
    conf("        challenge dns-01;\n        dns_hook $hook;\n        dns_propagation_check maybe;"),
    qr/invalid value "maybe" in "dns_propagation_check", it must be "on" or "off"/, qr/dns_propagation_check/;
rejects 'dns_resolver with a bad address',
    conf("        challenge dns-01;\n        dns_hook $hook;\n        dns_resolver 127.0.0.1:;"),
    qr/invalid server "127\.0\.0\.1:" in "dns_resolver"/, qr/dns_resolver/;
rejects 'a wildcard for an issuer with http-01 only', conf("",
        "server_name example.test;\n        acme_certificate dns *.example.test;"),
    qr/wildcard identifier "\*\.example\.test" in \S+ needs the dns-01 challenge, which issuer "dns" does not use/,
    qr/acme_certificate dns \*/;

accepts 'dns_update with a key and zone, wildcard server_name',
    conf("        challenge dns-01 http-01;\n        dns_update [::1]:5353 key=$good_key zone=example.test;\n"
        . "        dns_resolver 127.0.0.1:53 [::1];\n        dns_propagation_timeout 2m;\n        dns_propagation_check off;",
        "server_name *.example.test .example.test;\n        acme_certificate dns;");
accepts 'dns_hook with arguments, wildcard and dot-name arguments',
    conf("        challenge dns;\n        dns_hook $hook one two;\n        dns_hook_timeout 10s;",
        "server_name example.test;\n        acme_certificate dns *.example.test .example.org;");

done_testing;
