# nginx -t and the module's configuration checks: every bad configuration
# is rejected with an [emerg] that names the problem and the file:line of
# the offending directive; good configurations pass without touching the
# state directory and without contacting the CA. No Pebble is needed.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 60);
my $dir = $t->dir;
my $state_parent = "$dir/state";    # every issuer's state_path lives below it

# A "CA" that must never be contacted: a listening socket nobody should
# connect to while nginx -t runs.
my $ca = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => $t->port('ca'),
    Listen    => 5,
    ReuseAddr => 1,
) or die "listen: $!";
$ca->blocking(0);
my $uri = 'https://127.0.0.1:' . $t->port('ca') . '/dir';

# Substitutes %%URI%% (the fake CA) before handing the template to the harness.
sub write_conf {
    my ($template) = @_;
    $template =~ s/%%URI%%/$uri/g;
    return $t->write_nginx_conf($template);
}

# The 1-based line number of the only line of $file matching $re.
sub line_of {
    my ($file, $re) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my @hits;
    while (my $l = <$fh>) {
        push @hits, $. if $l =~ $re;
    }
    die "line_of($re): " . scalar(@hits) . " matching lines in $file\n" unless @hits == 1;
    return $hits[0];
}

# Runs nginx -t on $template and checks that it fails with an [emerg]
# matching $msg (a regex, without the location) that names the file and
# the line matching $where in the written configuration. $located is how
# the location appears: 'suffix' (nginx's own "... in FILE:LINE" at the
# end, for errors found while parsing) or 'inline' (the module's own
# "in FILE:LINE" inside the message, for errors found after the http
# block was parsed). Returns the output.
sub rejects {
    my ($name, $template, $msg, $where, %opt) = @_;
    my $located = $opt{located} // 'suffix';
    my $conf = write_conf($template);
    my $line = line_of($conf, $where);
    my ($rc, $out) = $t->run_nginx_t;
    my $loc = qr/\Q$conf\E:$line\b/;
    subtest $name => sub {
        isnt $rc, 0, 'nginx -t fails';
        my @emerg = grep { /\[emerg\]/ } split /\n/, $out;
        is scalar(@emerg), 1, 'exactly one [emerg]' or diag $out;
        my $want = $located eq 'inline'
            ? qr/\[emerg\] .*$msg/
            : qr/\[emerg\] .*$msg in $loc$/;
        unlike $out, qr/test is successful/, 'not reported as successful';
        # Known module defects: only the message checks are TODO.
        local $main::TODO = $opt{todo};
        like $emerg[0] // '', $want, 'names the problem' . ($located eq 'suffix' ? ' and file:line' : '')
            or diag $out;
        like $emerg[0] // '', $loc, "names $conf:$line" or diag $out if $located eq 'inline';
        $opt{more}->($out) if $opt{more};
    };
    return $out;
}

sub no_state_touched {
    my ($name) = @_;
    ok !-e $state_parent, "$name: state directory (and its parent) not created";
    my $peer = $ca->accept;
    ok !$peer, "$name: the CA was not contacted";
}

# The issuer block most cases share (valid on its own).
my $issuer = <<'EOF';
    acme_issuer test {
        uri %%URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/state/test;
        accept_terms_of_service;
    }
EOF

sub server {
    my ($body) = @_;
    return <<"EOF";
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
$body
    }
EOF
}

# ------------------------------------------------------------ issuers

rejects 'acme_certificate naming an unknown issuer', <<"EOF",
http {
$issuer
@{[ server("        server_name example.test;\n        acme_certificate nosuch;") ]}
}
EOF
    qr/unknown acme issuer "nosuch" in /, qr/acme_certificate nosuch;/, located => 'inline';

rejects 'acme_issuer without uri', <<"EOF",
http {
    acme_issuer nouri {
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/state/nouri;
    }
@{[ server("        server_name example.test;\n        acme_certificate nouri;") ]}
}
EOF
    qr/acme_issuer "nouri" has no "uri"/, qr/acme_issuer nouri \{/, located => 'inline';

rejects 'duplicate acme_issuer name', <<"EOF",
http {
$issuer
    acme_issuer test {    # the second one
        uri %%URI%%;
        state_path %%TESTDIR%%/state/test2;
    }
}
EOF
    qr/duplicate acme_issuer "test"/, qr/acme_issuer test \{ +# the second one/;

rejects 'unknown directive inside acme_issuer', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        no_such_thing on;
    }
}
EOF
    qr/unknown directive "no_such_thing" in acme_issuer/, qr/no_such_thing on;/;

rejects 'ssl_verify with a bad value', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        ssl_verify maybe;
    }
}
EOF
    qr/invalid value "maybe" in "ssl_verify", it must be "on" or "off"/, qr/ssl_verify maybe;/;

rejects 'max_concurrent_orders 0', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        max_concurrent_orders 0;
    }
}
EOF
    qr/invalid value "0" in "max_concurrent_orders", it must be a number from 1 to 256/,
    qr/max_concurrent_orders 0;/;

rejects 'background_rate not a number', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        background_rate fast;
    }
}
EOF
    qr/invalid value "fast" in "background_rate", it must be a number from 1 to 1000/,
    qr/background_rate fast;/;

rejects 'max_concurrent_orders twice', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        max_concurrent_orders 4;
        max_concurrent_orders 8;
    }
}
EOF
    qr/"max_concurrent_orders" is duplicate/, qr/max_concurrent_orders 8;/;

rejects 'unsupported challenge dns-account-01', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        challenge dns-account-01;
    }
}
EOF
    qr/unsupported challenge type "dns-account-01" \(supported: http-01, tls-alpn-01, dns-01[^)]*\)/,
    qr/challenge dns-account-01;/;

rejects 'unsupported challenge type in a list', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        challenge tls-alpn-01 http-01 dns-account-01;
    }
}
EOF
    qr/unsupported challenge type "dns-account-01" \(supported: http-01, tls-alpn-01, dns-01[^)]*\)/,
    qr/challenge tls-alpn-01 http-01 dns-account-01;/;

rejects 'challenge type listed twice', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        challenge http-01 tls-alpn http;
    }
}
EOF
    qr/challenge type "http" is listed twice/, qr/challenge http-01 tls-alpn http;/;

rejects 'challenge without a type', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        challenge;
    }
}
EOF
    qr/invalid number of arguments in "challenge" directive/, qr/challenge;/;

rejects 'challenge given twice', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        challenge tls-alpn-01;
        challenge http-01;
    }
}
EOF
    qr/"challenge" is duplicate/, qr/challenge http-01;/;

rejects 'unreadable ssl_trusted_certificate (missing file)', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        ssl_trusted_certificate %%TESTDIR%%/no-such-ca.pem;
    }
}
EOF
    qr/cannot read ssl_trusted_certificate "\Q$dir\E\/no-such-ca\.pem" \(2: No such file or directory\)/,
    qr/no-such-ca\.pem;/;

rejects 'account_key ecdsa:192', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        account_key ecdsa:192;
    }
}
EOF
    qr/invalid account_key "ecdsa:192": expected ecdsa:256 \(or ecdsa\), ecdsa:384, ecdsa:521, rsa:2048 \(or rsa\), rsa:3072 or rsa:4096 or a key file/,
    qr/account_key ecdsa:192;/;

rejects 'account_key file missing', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        account_key %%TESTDIR%%/no-such.key;
    }
}
EOF
    qr/cannot read account_key "\Q$dir\E\/no-such\.key" \(2: No such file or directory\)/,
    qr/account_key .*no-such\.key;/;

$t->write_file('garbage.key', "this is not a key\n");
rejects 'account_key file that is not a key', <<"EOF",
http {
    acme_issuer test {
        uri %%URI%%;
        account_key %%TESTDIR%%/garbage.key;
    }
}
EOF
    qr/invalid account_key "\Q$dir\E\/garbage\.key": \S.*/, qr/account_key .*garbage\.key;/;

# ------------------------------------------------------------ acme_certificate

rejects 'acme_certificate key=rsa:1024', <<"EOF",
http {
$issuer
@{[ server("        server_name example.test;\n        acme_certificate test key=rsa:1024;") ]}
}
EOF
    qr/invalid key type "rsa:1024" in "acme_certificate": expected ecdsa:256 \(or ecdsa\), ecdsa:384, ecdsa:521, rsa:2048 \(or rsa\), rsa:3072 or rsa:4096/,
    qr/key=rsa:1024;/;

rejects 'invalid identifier "bad..name"', <<"EOF",
http {
$issuer
@{[ server(qq{        acme_certificate test "bad..name";}) ]}
}
EOF
    qr/invalid identifier "bad\.\.name": empty label in "acme_certificate"/, qr/"bad\.\.name";/;

rejects 'invalid identifier -foo.example', <<"EOF",
http {
$issuer
@{[ server(qq{        acme_certificate test -foo.example;}) ]}
}
EOF
    qr/invalid identifier "-foo\.example": label starts or ends with '-' in "acme_certificate"/,
    qr/-foo\.example;/;

rejects 'no identifiers: no server_name', <<"EOF",
http {
$issuer
@{[ server("        acme_certificate test;") ]}
}
EOF
    qr/acme_certificate in \S+ has no identifiers: give them as arguments or set server_name/,
    qr/acme_certificate test;/, located => 'inline';

{
    my $out = rejects 'no identifiers: only a regex server_name', <<"EOF",
http {
$issuer
@{[ server("        server_name ~^www\\d+\\.example\\.test\$;\n        acme_certificate test;") ]}
}
EOF
        qr/acme_certificate in \S+ has no identifiers: give them as arguments or set server_name/,
        qr/acme_certificate test;/, located => 'inline',
        more => sub {
            my ($out) = @_;
            my $conf = "$dir/nginx.conf";
            my $line = line_of($conf, qr/acme_certificate test;/);
            like $out,
                qr/\[warn\] .*acme_certificate in \Q$conf\E:$line: regular expression server_name "~?\^www\\d\+\\\.example\\\.test\$" is skipped/,
                'warns that the regex server_name is skipped';
        };
}

rejects 'wildcard identifier with a tls-alpn-01 issuer', <<"EOF",
http {
    acme_issuer alpn {
        uri %%URI%%;
        state_path %%TESTDIR%%/state/alpn;
        challenge tls-alpn-01 http-01;
    }
@{[ server("        server_name example.test;\n        acme_certificate alpn *.example.test;") ]}
}
EOF
    qr/wildcard identifier "\*\.example\.test" in \S+ needs the dns-01 challenge, which issuer "alpn" does not use/,
    qr/acme_certificate alpn \*\.example\.test;/, located => 'inline';

# A wildcard server_name is skipped (without dns-01 it cannot be had),
# and then nothing is left.
rejects 'only a wildcard server_name with the http-01 issuer', <<"EOF",
http {
$issuer
@{[ server("        server_name *.example.test;\n        acme_certificate test;") ]}
}
EOF
    qr/acme_certificate in \S+ has no identifiers: give them as arguments or set server_name/,
    qr/acme_certificate test;/, located => 'inline';

rejects 'acme_certificate outside a server block', <<"EOF",
http {
$issuer
    acme_certificate test example.test;
}
EOF
    qr/"acme_certificate" directive is not allowed here/, qr/acme_certificate test example\.test;/;

# ------------------------------------------------------------ acme_shared_zone

rejects 'acme_shared_zone with a bad parameter', <<"EOF",
http {
$issuer
    acme_shared_zone size=1m;
}
EOF
    qr/invalid parameter "size=1m": zone=NAME:SIZE is expected/, qr/acme_shared_zone size=1m;/;

rejects 'acme_shared_zone too small', <<"EOF",
http {
$issuer
    acme_shared_zone zone=acme_small:8k;
}
EOF
    qr/zone "zone=acme_small:8k" is too small: at least \d+k/, qr/acme_shared_zone zone=acme_small:8k;/;

{
    # Every certificate needs a slot in the zone: 300 do not fit in 200k,
    # and nginx -t says which size would do.
    my $servers = join '', map { "    server { server_name z$_.example.test; acme_certificate test; }\n" } 1 .. 300;
    my $out = rejects 'acme_shared_zone too small for the certificates', <<"EOF",
http {
$issuer
    acme_shared_zone zone=acme_few:200k;
$servers}
EOF
        qr/acme_shared_zone "acme_few" in \S+ is too small for 300 acme_certificate directives: at least \d+k is needed/,
        qr/acme_shared_zone zone=acme_few:200k;/, located => 'inline';
    my ($need) = $out =~ /at least (\d+)k is needed/;
    write_conf(<<"EOF");
http {
$issuer
    acme_shared_zone zone=acme_few:${\ ($need // 0)}k;
$servers}
EOF
    my ($rc, $ok) = $t->run_nginx_t;
    is $rc, 0, 'the size nginx -t named is enough' or diag $ok;
}

no_state_touched('after the rejected configurations');

# ------------------------------------------------------------ good configurations

sub accepts {
    my ($name, $template) = @_;
    write_conf($template);
    my ($rc, $out) = $t->run_nginx_t;
    subtest $name => sub {
        is $rc, 0, 'nginx -t succeeds' or diag $out;
        like $out, qr/syntax is ok/, 'syntax is ok';
        like $out, qr/test is successful/, 'test is successful';
        unlike $out, qr/\[(?:emerg|alert|crit|error)\]/, 'no errors';
    };
    no_state_touched($name);
    return $out;
}

accepts 'valid issuer and server without ssl_certificate', <<"EOF";
http {
$issuer
@{[ server("        server_name example.test www.example.test;\n        acme_certificate test;") ]}
}
EOF

accepts 'max_concurrent_orders and background_rate', <<"EOF";
http {
    acme_issuer test {
        uri %%URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/state/test;
        accept_terms_of_service;
        max_concurrent_orders 2;
        background_rate 10;
    }
@{[ server("        server_name example.test;\n        acme_certificate test;") ]}
}
EOF

{
    # A catch-all "_" and nginx wildcards name servers, not hosts: they are
    # skipped with a warning, as regex names are, and the rest is ordered.
    my $out = accepts 'server_name _ and wildcards are skipped', <<"EOF";
http {
$issuer
@{[ server("        server_name _ *.example.test www.example.* example.test;\n        acme_certificate test;") ]}
}
EOF
    my $conf = "$dir/nginx.conf";
    my $line = line_of($conf, qr/acme_certificate test;/);
    like $out, qr/\[warn\] .*acme_certificate in \Q$conf\E:$line: server_name "_" is skipped: /,
        'warns that "_" is skipped';
    like $out, qr/\[warn\] .*acme_certificate in \Q$conf\E:$line: wildcard server_name "\*\.example\.test" is skipped/,
        'warns that the leading wildcard is skipped';
    like $out, qr/\[warn\] .*wildcard server_name "www\.example\.\*" is skipped/,
        'warns that the trailing wildcard is skipped';
}

rejects 'no identifiers: only server_name _', <<"EOF",
http {
$issuer
@{[ server("        server_name _;\n        acme_certificate test;") ]}
}
EOF
    qr/acme_certificate in \S+ has no identifiers: give them as arguments or set server_name/,
    qr/acme_certificate test;/, located => 'inline';

accepts 'server_name .example.test', <<"EOF";
http {
$issuer
@{[ server("        server_name .example.test;\n        acme_certificate test;") ]}
}
EOF

accepts 'IP address identifier', <<"EOF";
http {
$issuer
@{[ server("        server_name example.test;\n        acme_certificate test 127.0.0.1;") ]}
}
EOF

accepts 'IP addresses in server_name', <<"EOF";
http {
$issuer
@{[ server("        server_name 127.0.0.1 [::1] 2001:db8::1;\n        acme_certificate test;") ]}
}
EOF

accepts 'challenge types in order of preference, both spellings', <<"EOF";
http {
    acme_issuer test {
        uri %%URI%%;
        state_path %%TESTDIR%%/state/test;
        challenge tls-alpn http;
    }
    acme_issuer other {
        uri %%URI%%;
        state_path %%TESTDIR%%/state/other;
        challenge http-01 tls-alpn-01;
    }
@{[ server("        server_name example.test;\n        acme_certificate test;\n        acme_certificate other key=rsa:2048;") ]}
}
EOF

done_testing;
