# acme_storage in nginx -t: good URLs and parameters pass without
# contacting Redis; bad ones are rejected with an [emerg] that names the
# problem and the file:line of the directive. No Pebble or Redis needed.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $pw = $t->write_file('redis.pw', "s3cret\n");
my $empty = $t->write_file('empty.pw', "\n");
my $seal = $t->write_file('seal.key', ('0123456789abcdef' x 4) . "\n");
my $short = $t->write_file('short.key', ('0123456789abcdef' x 3) . "\n");
my $raw = $t->write_file('raw.key', 'k' x 32);

sub conf {
    my ($storage) = @_;
    return <<"EOF2";
http {
    acme_issuer pebble {
        uri https://127.0.0.1:%%PORT_CA%%/dir;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
    }
$storage
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name cfg.cluster.test;
        acme_certificate pebble;
    }
}
EOF2
}

sub line_of {
    my ($file, $re) = @_;
    open my $fh, '<', $file or die "$file: $!";
    while (my $l = <$fh>) { return $. if $l =~ $re }
    die "no line matching $re in $file";
}

for my $good ('acme_storage redis://127.0.0.1:6379;',
    'acme_storage redis://acme:p%40ss@127.0.0.1:6379/2 prefix=site-a;',
    'acme_storage redis://[::1]:6379 prefix=x password_file=' . $pw . ';',
    'acme_storage redis://127.0.0.1:6379 encrypt_key_file=' . $seal . ';') {
    $t->write_nginx_conf(conf("    $good"));
    my ($rc, $out) = $t->run_nginx_t;
    is $rc, 0, "accepted: $good" or diag $out;
}
ok !-e $t->dir . '/acme', 'nginx -t left the state directory alone';

my @bad = (
    ['acme_storage http://127.0.0.1:6379;', qr/invalid acme_storage URL: the URL must start with redis:\/\/ or rediss:\/\//],
    ['acme_storage redis://127.0.0.1;', qr/invalid acme_storage URL: the URL has no port \(HOST:PORT\)/],
    ['acme_storage redis://127.0.0.1:99999;', qr/invalid acme_storage URL: invalid port "99999"/],
    ['acme_storage redis://127.0.0.1:6379/db1;', qr/invalid acme_storage URL: invalid database number "db1"/],
    ['acme_storage redis://user@127.0.0.1:6379;', qr/invalid acme_storage URL: the credentials must be user:password or :password/],
    ['acme_storage rediss://127.0.0.1:6379;', qr/invalid acme_storage URL: rediss:\/\/ is not supported/],
    ['acme_storage redis://127.0.0.1:6379 prefix=a*b;', qr/invalid acme_storage prefix "a\*b"/],
    ['acme_storage redis://127.0.0.1:6379 ttl=5;', qr/invalid acme_storage parameter "ttl=5"/],
    ['acme_storage redis://:pw@127.0.0.1:6379 password_file=' . $pw . ';', qr/acme_storage has a password in the URL and a password_file/],
    ['acme_storage redis://127.0.0.1:6379 password_file=' . $t->dir . '/missing.pw;', qr/acme_storage password_file: .*missing\.pw/],
    ['acme_storage redis://127.0.0.1:6379 password_file=' . $empty . ';', qr/acme_storage password_file ".*empty\.pw" is empty/],
    ["acme_storage redis://127.0.0.1:6379;\n    acme_storage redis://127.0.0.1:6380;", qr/"acme_storage" directive is duplicate/, qr/6380/],
    ['acme_storage;', qr/invalid number of arguments in "acme_storage" directive/],
    ['acme_storage redis://127.0.0.1:6379 encrypt_key_file=' . $t->dir . '/missing.key;',
        qr/acme_storage encrypt_key_file: open\(\) "\Q${\ $t->dir}\E\/missing\.key" failed: No such file or directory/],
    ['acme_storage redis://127.0.0.1:6379 encrypt_key_file=' . $t->dir . ';',
        qr/acme_storage encrypt_key_file: read\(\) "\Q${\ $t->dir}\E" failed: Is a directory/],
    ['acme_storage redis://127.0.0.1:6379 encrypt_key_file=' . $short . ';',
        qr/acme_storage encrypt_key_file "\Q$short\E": not a key of 64 hex digits \(make one with "openssl rand -hex 32"\)/],
    ['acme_storage redis://127.0.0.1:6379 encrypt_key_file=' . $raw . ';',
        qr/acme_storage encrypt_key_file "\Q$raw\E": not a key of 64 hex digits/],
    ['acme_storage redis://127.0.0.1:6379 encrypt_key_file=' . $seal . ' encrypt_key_file=' . $seal . ';',
        qr/duplicate acme_storage encrypt_key_file/],
    ['acme_storage redis://127.0.0.1:6379 encrypt_key_file=;', qr/invalid acme_storage encrypt_key_file/],
);
for my $case (@bad) {
    my ($text, $msg, $where) = @$case;
    my $conf = $t->write_nginx_conf(conf("    $text"));
    my $line = line_of($conf, $where // qr/acme_storage/);
    my ($rc, $out) = $t->run_nginx_t;
    isnt $rc, 0, "rejected: $text";
    like $out, qr/\[emerg\].*$msg.* in \Q$conf\E:$line\b/, "... with the reason at $conf:$line"
        or diag $out;
}

done_testing;
