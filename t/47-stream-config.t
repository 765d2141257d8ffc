# nginx -t and ngx_stream_acme_module: a wrong load order, directives in the
# wrong block and bad acme_certificate arguments in stream{} are rejected
# with an [emerg] that says what to change and where; good configurations
# (with and without an http block) pass. No CA is contacted.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1, stream => 1);

my $t = AcmeTest->new(timeout => 60);
my $dir = $t->dir;

my $issuer = <<'EOF2';
    acme_issuer pebble {
        uri https://127.0.0.1:%%PORT_CA%%/dir;
        state_path %%TESTDIR%%/state/pebble;
        accept_terms_of_service;
    }
EOF2
my $stream_server = <<'EOF2';
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        acme_certificate pebble stream.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
EOF2

# The 1-based number of the only line of $file that matches $re.
sub line_of {
    my ($file, $re) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my @hits;
    while (my $l = <$fh>) { push @hits, $. if $l =~ $re }
    die "line_of($re): " . scalar(@hits) . " lines\n" unless @hits == 1;
    return $hits[0];
}

# nginx -t fails with one [emerg] matching $msg, located at the line of the
# configuration that matches $where.
sub rejects {
    my ($name, $conf_text, $msg, $where, %opt) = @_;
    my $conf = $t->write_nginx_conf($conf_text, %opt);
    my $line = line_of($conf, $where);
    my ($rc, $out) = $t->run_nginx_t;
    isnt $rc, 0, "$name: nginx -t fails";
    my @emerg = $out =~ /^(nginx: \[emerg\] .*)$/mg;
    is scalar(@emerg), 1, "$name: one [emerg]" or diag $out;
    like $emerg[0] // '', qr/\[emerg\] (?:$msg)/, "$name: the reason";
    like $emerg[0] // '', qr/\Q$conf\E:$line\b/, "$name: at $conf:$line";
}

# Wrong load orders, each a configuration with its own load_module lines.
rejects('stream acme module before the http one', <<"EOF2",
stream {
$issuer
$stream_server
}
EOF2
    qr/ngx_stream_acme_module needs ngx_http_acme_module, which is not loaded before it: "load_module modules\/ngx_http_acme_module.so;" must come before "load_module modules\/ngx_stream_acme_module.so;"/,
    qr/^stream \{/, module => 0, top => "load_module %%NGX_STREAM_MODULE%%;\n"
        . "load_module %%STREAM_MODULE%%;\nload_module %%MODULE%%;");

rejects('stream acme module before nginx\'s stream module', <<"EOF2",
stream {
$issuer
$stream_server
}
EOF2
    qr/ngx_stream_acme_module is loaded before nginx's stream module: "load_module modules\/ngx_stream_module.so;" must come before "load_module modules\/ngx_stream_acme_module.so;"/,
    qr/^stream \{/, module => 0, top => "load_module %%MODULE%%;\n"
        . "load_module %%STREAM_MODULE%%;\nload_module %%NGX_STREAM_MODULE%%;");

# With an http block before it, the stream block uses its ACME settings.
rejects('acme_issuer in stream after an http block', <<"EOF2",
http {
$issuer
}
stream {
    acme_issuer other {
        uri https://127.0.0.1:%%PORT_CA%%/dir;
    }
$stream_server
}
EOF2
    qr/"acme_issuer" belongs in the http block: the stream block uses the ACME settings of the http block before it/,
    qr/acme_issuer other/, stream => 1);

rejects('acme_shared_zone in stream after an http block', <<"EOF2",
http {
$issuer
}
stream {
    acme_shared_zone zone=s:1m;
$stream_server
}
EOF2
    qr/"acme_shared_zone" belongs in the http block/, qr/acme_shared_zone/, stream => 1);

rejects('stream block before an http block that has certificates too', <<"EOF2",
stream {
$issuer
$stream_server
}
http {
$issuer
    server {
        listen 127.0.0.1:%%PORT_HTTPS2%% ssl;
        server_name http.test;
        acme_certificate pebble;
    }
}
EOF2
    qr/acme_certificate in \S+: a stream block with acme_certificate comes before this http block: move the stream block after the http block/,
    qr/acme_certificate pebble;/, stream => 1);

rejects('acme_certificate without identifiers', <<"EOF2",
stream {
$issuer
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        acme_certificate pebble;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
}
EOF2
    AcmeTest->nginx_at_least('1.25.5')
        ? qr/acme_certificate in \S+ has no identifiers: give them as arguments or set server_name/
        : qr/acme_certificate in \S+ has no identifiers: in a stream server they are given as arguments/,
    qr/acme_certificate pebble;/, stream => 1);

rejects('unknown issuer', <<"EOF2",
stream {
$issuer
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        acme_certificate nope stream.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
}
EOF2
    qr/unknown acme issuer "nope" in/, qr/acme_certificate nope/, stream => 1);

rejects('bad key type (the http module\'s parser)', <<"EOF2",
stream {
$issuer
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        acme_certificate pebble stream.test key=dsa;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
}
EOF2
    qr/invalid key type "dsa" in "acme_certificate": expected ecdsa:256/, qr/key=dsa/, stream => 1);

# Good configurations: no http block; the http block's issuer; the store
# is left alone by nginx -t.
for my $case (
    ['no http block', "stream {\n$issuer\n$stream_server\n}\n"],
    ['issuer in the http block', "http {\n$issuer\n}\nstream {\n$stream_server\n}\n"],
    ['issuer and a certificate in the http block',
        "http {\n$issuer\n    server {\n        listen 127.0.0.1:%%PORT_HTTPS2%% ssl;\n"
        . "        server_name stream.test;\n        acme_certificate pebble;\n    }\n}\n"
        . "stream {\n$stream_server\n}\n"],
) {
    my ($name, $conf) = @$case;
    $t->write_nginx_conf($conf, stream => 1);
    my ($rc, $out) = $t->run_nginx_t;
    is $rc, 0, "$name: nginx -t passes" or diag $out;
    ok !-e "$dir/state", "$name: nginx -t created no state directory";
}

done_testing;
