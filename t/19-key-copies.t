# Private keys are held once, in OpenSSL's form, in every worker: a PEM
# copy is kept only when $acme_certificate_key is used somewhere in the
# configuration, and the key text read from the store is wiped after use.
# The test looks for a line of the stored key's PEM in the workers' memory.
use strict;
use warnings;
use Test::More;
use AcmeTest;
no warnings 'portable';    # /proc/PID/maps addresses above 32 bits

AcmeTest->requires(root => 1, module => 1);

my $t = AcmeTest->new(timeout => 120);
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
my $conf = <<'EOF2';
http {
    %%PEBBLE_ISSUER%%
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
        %%KEY_USE%%
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name copies.test;
        acme_certificate pebble;
    }
}
EOF2
(my $without = $conf) =~ s/%%KEY_USE%%//;
$t->write_nginx_conf($without);
$t->start_nginx;
my $root = $t->pebble_root;
ok $t->wait_for(sub { $t->tls_get(name => 'copies.test', ca => $root)->{verified} }, timeout => 30),
    'certificate issued';
my ($key_file) = glob($t->dir . '/acme/copies.test-*.key');
my @lines = grep { length == 64 } split /\n/, do { local (@ARGV, $/) = $key_file; <> };
ok @lines, 'a full line of base64 in the stored key';
my $needle = $lines[0];

# A restart: the master reads the key at configuration time, the workers
# start from its memory.
$t->stop_nginx;
$t->start_nginx;
ok $t->tls_get(name => 'copies.test', ca => $root)->{verified}, 'served after the restart';
is scalar(grep { in_memory($_, $needle) } $t->worker_pids), 0,
    'without $acme_certificate_key no worker holds the key as text';

# With the variable in use, every worker keeps it: the search finds it.
(my $with = $conf) =~ s/%%KEY_USE%%/location = \/key-length { set \$k \$acme_certificate_key; return 204; }/;
$t->write_nginx_conf($with);
$t->reload_nginx;
my @workers = $t->worker_pids;
is scalar(grep { in_memory($_, $needle) } @workers), scalar(@workers),
    'with $acme_certificate_key each worker holds the key text';

done_testing;

# Whether the writable memory of a process contains $needle.
sub in_memory {
    my ($pid, $needle) = @_;
    open my $maps, '<', "/proc/$pid/maps" or return 0;
    open my $mem, '<:raw', "/proc/$pid/mem" or return 0;
    my $found = 0;
    while (my $line = <$maps>) {
        my ($from, $to, $perms) = $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+)/ or next;
        next unless $perms =~ /^rw/;
        my ($start, $len) = (hex $from, hex($to) - hex($from));
        next if $len > 512 * 1024 * 1024;
        sysseek($mem, $start, 0) or next;
        my $buf = '';
        my $n = sysread($mem, $buf, $len);
        next unless $n;
        if (index($buf, $needle) >= 0) { $found = 1; last }
    }
    return $found;
}
