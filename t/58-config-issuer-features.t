# nginx -t for the directives of EAB, profiles, preferred chains, CSR common
# names and several key types: good values pass, bad ones give one [emerg]
# with the problem and file:line, and no message quotes a MAC key.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $key32 = 'A' x 43;    # base64url of 32 bytes
my $key_file = $t->write_file('eab.key', "$key32\n");

sub conf {
    my ($issuer_extra, $cert) = @_;
    $cert //= 'acme_certificate test;';
    return <<"EOF";
http {
    acme_issuer test {
        uri https://127.0.0.1:%%PORT_CA%%/dir;
        state_path %%TESTDIR%%/state;
        accept_terms_of_service;
$issuer_extra
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name example.test;
        $cert
    }
}
EOF
}

sub rejects {
    my ($name, $conf, $msg, $where) = @_;
    my $file = $t->write_nginx_conf($conf);
    my @lines = split /\n/, do { local (@ARGV, $/) = $file; <> };
    my ($line) = grep { $lines[$_ - 1] =~ $where } 1 .. @lines;
    my ($rc, $out) = $t->run_nginx_t;
    subtest $name => sub {
        isnt $rc, 0, 'nginx -t fails';
        my @emerg = grep { /\[emerg\]/ } split /\n/, $out;
        is scalar(@emerg), 1, 'one [emerg]' or diag $out;
        like $emerg[0] // '', qr/\[emerg\] .*$msg in \Q$file\E:$line$/, 'the problem and file:line'
            or diag $out;
        unlike $out, qr/AAAAAAAAAA|notbase64/, 'no MAC key in the message';
    };
}

$t->write_nginx_conf(conf(<<"EOF", 'acme_certificate test key=ecdsa:256 key=rsa:2048 profile=shortlived;'));
        contact admin\@example.test;
        account_key ecdsa:384;
        challenge http-01;
        ssl_verify on;
        external_account_key kid-1 data:$key32;
        profile classic require;
        preferred_chain "ISRG Root X1";
        common_name_in_csr on;
EOF
my ($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'every nginx-acme issuer directive, several key= and profile= are accepted' or diag $out;

$t->write_nginx_conf(conf("        external_account_key kid-1 $key_file alg=HS256;\n        common_name_in_csr off;"));
($rc, $out) = $t->run_nginx_t;
is $rc, 0, 'external_account_key from a file, alg=HS256' or diag $out;

rejects 'external_account_key without a key', conf('        external_account_key kid-1;'),
    qr/invalid number of arguments in "external_account_key" directive/, qr/external_account_key kid-1;/;
rejects 'external_account_key not base64url', conf('        external_account_key kid-1 data:notbase64!!;'),
    qr/invalid MAC key in "external_account_key": a base64url-encoded key is expected/, qr/external_account_key/;
rejects 'external_account_key file missing', conf('        external_account_key kid-1 /nonexistent/eab.key;'),
    qr/cannot read external_account_key "\/nonexistent\/eab\.key" \(2: No such file or directory\)/, qr/external_account_key/;
rejects 'external_account_key bad alg', conf("        external_account_key kid-1 data:$key32 alg=HS999;"),
    qr/invalid parameter "alg=HS999" in "external_account_key": alg=HS256, alg=HS384 or alg=HS512 is expected/, qr/external_account_key/;
rejects 'external_account_key too short for HS512', conf("        external_account_key kid-1 data:$key32 alg=HS512;"),
    qr/MAC key in "external_account_key" is too short for HS512: 32 bytes, at least 64 are needed/, qr/external_account_key/;
rejects 'external_account_key twice', conf("        external_account_key a data:$key32;\n        external_account_key b data:$key32;"),
    qr/"external_account_key" is duplicate/, qr/external_account_key b /;
rejects 'profile with a bad option', conf('        profile shortlived maybe;'),
    qr/invalid parameter "maybe" in "profile": "require" is expected/, qr/profile shortlived maybe;/;
rejects 'profile twice', conf("        profile a;\n        profile b;"),
    qr/"profile" is duplicate/, qr/profile b;/;
rejects 'preferred_chain twice', conf("        preferred_chain a;\n        preferred_chain b;"),
    qr/"preferred_chain" is duplicate/, qr/preferred_chain b;/;
rejects 'common_name_in_csr maybe', conf('        common_name_in_csr maybe;'),
    qr/invalid value "maybe" in "common_name_in_csr", it must be "on" or "off"/, qr/common_name_in_csr maybe;/;
rejects 'the same key= twice', conf('', 'acme_certificate test key=rsa:2048 key=rsa:2048;'),
    qr/duplicate key type "rsa:2048" in "acme_certificate"/, qr/acme_certificate test key/;
rejects 'a key= repeating another acme_certificate', conf('', "acme_certificate test;\n        acme_certificate test key=rsa:2048 key=ecdsa:256;"),
    qr/duplicate "acme_certificate" with the same key type/, qr/acme_certificate test key/;
rejects 'empty profile=', conf('', 'acme_certificate test profile=;'),
    qr/empty profile name in "acme_certificate"/, qr/acme_certificate test profile/;
rejects 'profile= twice', conf('', 'acme_certificate test profile=a profile=b;'),
    qr/"profile=" is duplicate in "acme_certificate"/, qr/acme_certificate test profile/;

done_testing;
