# The master reads the store as root from a directory the worker user
# owns. A worker that was taken over could plant a symbolic link to a
# root-only file, or loosen a key's mode: the master refuses such files
# (serving the fallback) and the engine orders a new certificate, whose
# files replace them.
use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use AcmeTest;

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 180);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
$t->write_nginx_conf(<<'EOF2');
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name trust.test;
        acme_certificate pebble;
    }
}
EOF2
$t->start_nginx;
my $root = $t->pebble_root;
sub served { $t->tls_get(name => 'trust.test', ca => $root) }
sub issued_after {
    my ($serial) = @_;
    return $t->wait_for(sub { my $r = served(); $r->{verified} && $r->{serial} ne $serial ? $r : undef },
        timeout => 30);
}

my $first = $t->wait_for(sub { my $r = served(); $r->{verified} ? $r : undef }, timeout => 30);
ok $first, 'certificate issued' or die('no certificate: ' . $t->error_log);
my ($key) = glob($t->dir . '/acme/trust.test-*.key');
ok $key && -f $key, 'the key is stored';

# A symbolic link to a root-only copy of the key: followed before, it made
# the master load a file the worker user cannot read.
$t->stop_nginx;
my $private = $t->dir . '/root-only';
mkdir $private, 0700 or die "mkdir: $!";
copy($key, "$private/real.key") or die "copy: $!";
chmod 0600, "$private/real.key";
unlink $key;
symlink("$private/real.key", $key) or die "symlink: $!";
my $mark = $t->log_mark;
$t->start_nginx;
ok $t->wait_log(qr/\[warn\] .*acme: stored certificate "[^"]+" is not usable \("\Q$key\E" is a symbolic link\), serving the fallback/, 5, $mark),
    'symbolic link: the master says why it refuses the stored key';
# The fallback, or already the new certificate (Pebble is quick), but
# never the one behind the link.
my $r = served();
ok $r->{ok} && (!$r->{verified} || $r->{serial} ne $first->{serial}),
    'symbolic link: what is behind it is not served, from the first handshake';
ok $t->wait_log(qr/acme: certificate "trust\.test" needs to be ordered \(unreadable: "\Q$key\E" is a symbolic link\)/, 10, $mark),
    'symbolic link: the engine refuses it too and orders';
my $second = issued_after($first->{serial});
ok $second, 'symbolic link: a new certificate is served';
ok !-l $key && -f $key, 'symbolic link: replaced by a regular file';
is((stat $key)[2] & 07777, 0600, 'the new key has mode 0600');

# A key others may read: the next reload refuses it.
chmod 0644, $key;
$mark = $t->log_mark;
$t->reload_nginx;
ok $t->wait_log(qr/\[warn\] .*acme: stored certificate "[^"]+" is not usable \("\Q$key\E" is readable by group or others\)/, 5, $mark),
    'loose mode: the master refuses the key';
ok issued_after($second->{serial}), 'loose mode: a new certificate is served';
is((stat $key)[2] & 07777, 0600, 'loose mode: the new key has mode 0600 again');

done_testing;
