# acme_event_command: called as PATH ARG... <event> <certificate> with the
# ACME_* environment for renewing, issued, installed, failed and expiring;
# a command that fails or hangs (timeout) neither blocks nor loses an
# issuance; a non-zero exit on "renewing" postpones the order; an issuer's
# own command overrides the http block's.
use strict;
use warnings;
use Test::More;
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
my $d = $t->dir;
mkdir "$d/events" or die;
chmod 0777, "$d/events";
$t->write_file("$d/hook.sh", <<"EOF2");
#!/bin/sh
f="$d/events/\$ACME_EVENT.\$ACME_CERTIFICATE.\$\$"
{ echo "args=\$*"; env | grep '^ACME_' | sort; } > "\$f.tmp" && mv "\$f.tmp" "\$f"
echo "hook saw \$ACME_EVENT"
case "\$ACME_EVENT" in
    issued) exit 3 ;;
    installed) sleep 30 ;;
esac
exit 0
EOF2
$t->write_file("$d/postpone.sh", <<"EOF2");
#!/bin/sh
touch "$d/events/postpone.\$1"
[ "\$1" = renewing ] && { echo "not now"; exit 1; }
exit 0
EOF2
chmod 0755, "$d/hook.sh", "$d/postpone.sh";

$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    acme_event_command %%TESTDIR%%/hook.sh first "second arg";
    acme_event_timeout 3s;
    acme_warn_window 1000d;
    %%PEBBLE_ISSUER%%
    acme_issuer careful {
        uri %%ACME_URI%%;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/careful;
        accept_terms_of_service;
        event_command %%TESTDIR%%/postpone.sh;
    }
    acme_issuer nowhere {
        uri https://127.0.0.1:%%PORT_CLOSED%%/dir;
        state_path %%TESTDIR%%/nowhere;
        accept_terms_of_service;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        server_name status.test;
        location = /status { acme_status; }
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name ok.test www.ok.test;
        acme_certificate pebble;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name fail.test;
        acme_certificate nowhere;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name later.test;
        acme_certificate careful;
    }
}
EOF2
$t->start_nginx;

sub calls {
    my ($event, $prefix) = @_;
    opendir my $dh, "$d/events" or return ();
    my @out;
    for my $f (sort grep { /^\Q$event\E\.\Q$prefix\E-[0-9a-f]{8}\.\d+$/ } readdir $dh) {
        my %e;
        for (split /\n/, do { local (@ARGV, $/) = "$d/events/$f"; <> }) {
            my ($k, $v) = /^([^=]+)=(.*)$/ or next;
            $e{$k} = $v;
        }
        push @out, \%e;
    }
    return @out;
}

# The certificate is issued and served, whatever the command does.
my $r = $t->wait_for(sub {
    my $r = $t->tls_get(name => 'ok.test', port => $t->port('https'), request => '/');
    $r->{issuer_cn} && $r->{issuer_cn} ne 'acme fallback' && ($r->{subject_cn} // '') ne 'acme fallback' ? $r : undef
}, timeout => 60);
ok $r, 'issued and served although "issued" exits 3 and "installed" hangs';

my ($renewing) = $t->wait_for(sub { my @c = calls('renewing', 'ok.test'); @c ? \@c : undef }, timeout => 5)->[0];
ok $renewing, '"renewing" called';
is $renewing->{args}, 'first second arg renewing ' . $renewing->{ACME_CERTIFICATE},
    'called as PATH ARG... <event> <certificate>';
my $issued = ($t->wait_for(sub { my @c = calls('issued', 'ok.test'); @c ? \@c : undef }, timeout => 10) // [])->[0];
ok $issued, '"issued" called' or die('no issued event');
is $issued->{ACME_EVENT}, 'issued', 'ACME_EVENT';
like $issued->{ACME_CERTIFICATE}, qr/^ok\.test-[0-9a-f]{8}$/, 'ACME_CERTIFICATE: the id';
is $issued->{ACME_NAMES}, 'ok.test www.ok.test', 'ACME_NAMES space-separated';
is $issued->{ACME_ISSUER}, 'pebble', 'ACME_ISSUER';
is $issued->{ACME_CERT_FILE}, "$d/acme/$issued->{ACME_CERTIFICATE}.crt", 'ACME_CERT_FILE';
is $issued->{ACME_KEY_FILE}, "$d/acme/$issued->{ACME_CERTIFICATE}.key", 'ACME_KEY_FILE';
ok -r $issued->{ACME_CERT_FILE}, 'the certificate file is there when "issued" runs';
cmp_ok abs(($issued->{ACME_NOT_AFTER} // 0) - $r->{not_after}), '<=', 1, 'ACME_NOT_AFTER';
ok $t->wait_log(qr/acme: event command \(issued ok\.test-[0-9a-f]{8}\): hook saw issued/, 10),
    'the output is logged';
ok $t->wait_log(qr/\[error\].*acme: event command \(issued ok\.test-[0-9a-f]{8}\): exited with 3/, 10),
    'a non-zero exit is logged as an error';

my $installed = ($t->wait_for(sub { my @c = calls('installed', 'ok.test'); @c ? \@c : undef }, timeout => 10) // [])->[0];
ok $installed, '"installed" called';
ok $t->wait_log(qr/event command \(installed ok\.test-[0-9a-f]{8}\): timed out after 3 s/, 10),
    'a hanging command is killed after acme_event_timeout';

my $expiring = ($t->wait_for(sub { my @c = calls('expiring', 'ok.test'); @c ? \@c : undef }, timeout => 10) // [])->[0];
ok $expiring, '"expiring" called while less than acme_warn_window remains';
is $expiring && $expiring->{ACME_NOT_AFTER}, $issued->{ACME_NOT_AFTER}, 'with the expiry';

my $failed = ($t->wait_for(sub { my @c = calls('failed', 'fail.test'); @c ? \@c : undef }, timeout => 30) // [])->[0];
ok $failed, '"failed" called for the unreachable issuer';
ok length($failed->{ACME_ERROR_DETAIL} // ''), 'ACME_ERROR_DETAIL' or diag explain $failed;
is $failed && $failed->{ACME_ISSUER}, 'nowhere', 'its issuer';

# The issuer's own command: "renewing" exits 1, so nothing is ordered.
ok $t->wait_log(qr/acme: certificate "later\.test": renewal postponed \(the event command exited with 1\), next attempt at /,
    20), 'a non-zero "renewing" postpones the order, logged';
ok -e "$d/events/postpone.renewing", 'the issuer\'s command overrides the http block\'s';
ok !calls('renewing', 'later.test'), 'and the http block\'s is not called for it';
sleep 2;
my $later = $t->tls_get(name => 'later.test', port => $t->port('https'), request => '/');
is $later->{subject_cn}, 'acme fallback', 'no certificate ordered while postponed';
ok $t->wait_log(qr/acme: event command \(renewing later\.test-[0-9a-f]{8}\): not now/, 10), 'its output logged';
is $t->pebble_orders, 1, 'only the one order';

done_testing;
