# The Debian package (make deb): apt-get installs it next to the
# distribution's nginx; it depends on that nginx's exact ABI, puts the module
# into /usr/lib/nginx/modules, enables it through modules-available and
# modules-enabled, and makes /var/lib/nginx/acme for www-data. Debian's stock
# nginx.conf with one site file of acme_issuer / acme_certificate lines
# passes nginx -t, and the installed module gets a certificate from Pebble.
# Remove keeps the state, purge deletes it. The machine is left as it was:
# the package purged, sites-enabled restored, no distro nginx running.
# libnginx-mod-stream-acme, built next to it, is installed with it: it
# depends on it and on Debian's libnginx-mod-stream, is enabled after
# both, and a stream server gets its certificate with the installed
# modules; removing the http package removes it too.
use strict;
use warnings;
use Test::More;
use AcmeTest;
use File::Path qw(remove_tree);

AcmeTest->requires(root => 1);

my $deb = $ENV{ACME_DEB};
my $PKG = 'libnginx-mod-http-acme';
my $SITES = '/etc/nginx/sites-enabled';
my $SAVED = '/etc/nginx/.sites-enabled.acme-test';
my $STATE = '/var/lib/nginx/acme';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-acme.conf';
my $SPKG = 'libnginx-mod-stream-acme';
my $SENABLED = '/etc/nginx/modules-enabled/70-mod-stream-acme.conf';

sub dpkg_status {
    my ($pkg) = @_;
    my $s = `dpkg-query -W -f='\${Status}' $pkg 2>/dev/null` // '';
    return $s;
}

if (!$deb || !-r $deb) {
    plan skip_all => 'ACME_DEB is not set to the built package (make deb, or make test)';
}
if (dpkg_status('nginx') !~ /install ok installed/ || !-d $SITES || !-r '/etc/nginx/nginx.conf') {
    plan skip_all => "Debian's nginx package with its stock configuration is not installed";
}
if (dpkg_status($PKG) =~ /installed|config-files/ || dpkg_status($SPKG) =~ /installed|config-files/
    || -e $STATE) {
    plan skip_all => "$PKG, $SPKG or $STATE is already on this machine: not touching it";
}
(my $sdeb = $deb) =~ s{libnginx-mod-http-acme_([^/]+)$}{libnginx-mod-stream-acme_$1};
if (!-r $sdeb) {
    plan skip_all => "no $sdeb beside $deb (make deb builds both)";
}
if (dpkg_status('libnginx-mod-stream') !~ /install ok installed/) {
    plan skip_all => "Debian's libnginx-mod-stream is not installed (make deps)";
}
# A run that was killed after moving sites-enabled aside: put it back.
if (-d $SAVED) {
    remove_tree($SITES) if -d $SITES && !grep { !/acme-test$/ } glob("$SITES/*");
    rename $SAVED, $SITES if !-e $SITES;
}

$deb = File::Spec->rel2abs($deb);
$sdeb = File::Spec->rel2abs($sdeb);
my $t = AcmeTest->new(timeout => 120);

# What nginx -t and the workers of a stock configuration change, put back at
# the end: the owners of nginx's temporary directories.
my %owner = map { my @s = stat $_; ($_ => [@s[4, 5]]) } glob('/var/lib/nginx/*');
my $distro_nginx_before = distro_nginx_pid();
my ($installed, $moved) = (0, 0);

sub distro_nginx_pid {
    open my $fh, '<', '/run/nginx.pid' or return undef;
    my $pid = <$fh> // '';
    chomp $pid;
    return $pid =~ /^\d+$/ && kill(0, $pid) ? $pid : undef;
}

# apt-get as setup-deps.sh runs it: no service may start (policy-rc.d), and
# a concurrent apt-get elsewhere is waited for.
sub apt {
    my (@args) = @_;
    my $policy = '/usr/sbin/policy-rc.d';
    my $made = 0;
    if (!-e $policy) {
        open my $fh, '>', $policy or die "$policy: $!";
        print {$fh} "#!/bin/sh\nexit 101\n";
        close $fh;
        chmod 0755, $policy;
        $made = 1;
    }
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    my ($rc, $out) = AcmeTest::_run('apt-get', '-y', '-q', '-o', 'DPkg::Lock::Timeout=120', @args);
    unlink $policy if $made;
    return ($rc, $out);
}

sub restore {
    $t->stop_nginx if $t;
    if ($moved && -d $SAVED) {
        remove_tree($SITES);
        rename $SAVED, $SITES or warn "cannot restore $SITES: $!";
        $moved = 0;
    }
    if ($installed) {
        my ($rc, $out) = apt('purge', $PKG, $SPKG);
        warn "apt-get purge $PKG $SPKG failed:\n$out" if $rc;
        $installed = 0;
    }
    for my $dir (keys %owner) {
        chown @{ $owner{$dir} }, $dir if -e $dir;
    }
    my $pid = distro_nginx_pid();
    if ($pid && !$distro_nginx_before) {
        system('service nginx stop >/dev/null 2>&1');
        kill 'TERM', $pid if distro_nginx_pid();
    }
}
END { restore() }

# --- install
my ($rc, $out) = apt('install', $deb, $sdeb);
$installed = 1;
is $rc, 0, "apt-get install $deb $sdeb" or die($out);
like dpkg_status($PKG), qr/install ok installed/, 'package installed';
like dpkg_status($SPKG), qr/install ok installed/, 'stream package installed';

my $sdepends = `dpkg-query -W -f='\${Depends}' $SPKG`;
my $version = `dpkg-query -W -f='\${Version}' $PKG`;
like $sdepends, qr/\blibnginx-mod-http-acme \(= \Q$version\E\)/,
    "stream package depends on $PKG of the same version ($sdepends)";
like $sdepends, qr/\blibnginx-mod-stream\b(?!-)/, 'and on libnginx-mod-stream';
like $sdepends, qr/\bnginx-abi-/, 'and on an nginx ABI';
ok -f '/usr/lib/nginx/modules/ngx_stream_acme_module.so', 'stream module in /usr/lib/nginx/modules';
my $savailable = '/usr/share/nginx/modules-available/mod-stream-acme.conf';
is AcmeTest::_slurp($savailable), "load_module modules/ngx_stream_acme_module.so;\n",
    "$savailable loads it";
is readlink($SENABLED), $savailable, "enabled by $SENABLED";
my @enabled = map { s{.*/}{}r } sort glob('/etc/nginx/modules-enabled/*.conf');
my %at = map { $enabled[$_] => $_ } 0 .. $#enabled;
ok defined $at{'50-mod-stream.conf'} && defined $at{'50-mod-http-acme.conf'}
    && $at{'70-mod-stream-acme.conf'} > $at{'50-mod-stream.conf'}
    && $at{'70-mod-stream-acme.conf'} > $at{'50-mod-http-acme.conf'},
    "modules-enabled loads it after nginx's stream module and ngx_http_acme_module (@enabled)";

my $depends = `dpkg-query -W -f='\${Depends}' $PKG`;
my ($abi) = $depends =~ /\b(nginx-abi-[^\s,]+)/;
ok $abi, "depends on an nginx ABI ($depends)";
my $provides = `dpkg-query -W -f='\${Provides}' nginx`;
like $provides, qr/(?:^|[\s,])\Q$abi\E(?:$|[\s,])/, "the installed nginx provides $abi" if $abi;

ok -f '/usr/lib/nginx/modules/ngx_http_acme_module.so', 'module in /usr/lib/nginx/modules';
my $available = '/usr/share/nginx/modules-available/mod-http-acme.conf';
is AcmeTest::_slurp($available), "load_module modules/ngx_http_acme_module.so;\n",
    "$available loads it";
is readlink($ENABLED), $available, "enabled by $ENABLED";
my @st = stat $STATE;
ok @st && -d _, "$STATE exists";
is @st && getpwuid($st[4]), 'www-data', "$STATE belongs to www-data";
is @st && sprintf('%04o', $st[2] & 07777), '0700', "$STATE has mode 0700";

# --- Debian's stock layout with one site file
$t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0 });
rename $SITES, $SAVED or die("cannot move $SITES aside: $!");
$moved = 1;
mkdir $SITES or die("mkdir $SITES: $!");
my $site = "$SITES/acme-test";
open my $fh, '>', $site or die("$site: $!");
printf {$fh} <<'EOF', $t->acme_uri, $t->pebble_ca_file, $t->port('http'), $t->port('https');
acme_issuer pebble {
    uri %s;
    ssl_trusted_certificate %s;
    accept_terms_of_service;
}

server {
    listen 127.0.0.1:%d;
    listen 127.0.0.1:%d ssl;
    server_name deb.test;
    acme_certificate pebble;
    location / { return 200 "deb\n"; }
}
EOF
close $fh;

($rc, $out) = AcmeTest::_run('/usr/sbin/nginx', '-t');
is $rc, 0, 'nginx -t on /etc/nginx/nginx.conf with the site file' or diag $out;
like $out, qr/syntax is ok/, 'syntax is ok';

# The running nginx: the harness's own (pid and logs in its directory),
# loading what modules-enabled loads and serving what sites-enabled has,
# with the stock configuration's user.
symlink '/usr/lib/nginx/modules', $t->dir . '/modules' or die "symlink: $!";
$t->write_nginx_conf(<<'EOF', module => 0, top => <<'TOP');
http {
    include /etc/nginx/mime.types;
    client_body_temp_path %%TESTDIR%%/body;
    proxy_temp_path %%TESTDIR%%/proxy;
    fastcgi_temp_path %%TESTDIR%%/fastcgi;
    uwsgi_temp_path %%TESTDIR%%/uwsgi;
    scgi_temp_path %%TESTDIR%%/scgi;
    include /etc/nginx/sites-enabled/*;
}
stream {
    server {
        listen 127.0.0.1:%%PORT_STREAM%% ssl;
        acme_certificate pebble stream-deb.test;
        proxy_pass 127.0.0.1:%%PORT_BACKEND%%;
    }
}
EOF
user www-data;
include /etc/nginx/modules-enabled/*.conf;
TOP
$t->start_backend('backend');
$t->start_nginx;
my $root = $t->pebble_root;
my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'deb.test', ca => $root, request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 30);
ok $r, 'certificate from Pebble with the installed module' or diag $t->error_log;
is $r && $r->{body}, "deb\n", 'served over it';
my $sr = $t->wait_for(sub {
        my $r = $t->tls_get(name => 'stream-deb.test', port => $t->port('stream'), ca => $root,
            request => '/');
        $r->{verified} ? $r : undef
    }, timeout => 30);
ok $sr, 'certificate from Pebble for the stream server with the installed modules'
    or diag $t->error_log;
is $sr && $sr->{body}, "backend\n", 'proxied to the backend over it';
my @crt = glob("$STATE/pebble/deb.test-*.crt");
ok @crt, "stored under $STATE/pebble";
@st = stat "$STATE/pebble";
is @st && getpwuid($st[4]), 'www-data', "$STATE/pebble belongs to www-data";
$t->stop_nginx;

# --- remove keeps the state and disables the module; purge deletes both
($rc, $out) = apt('remove', $PKG);
is $rc, 0, "apt-get remove $PKG" or diag $out;
ok !-e '/usr/lib/nginx/modules/ngx_http_acme_module.so', 'remove: module gone';
ok !-e $ENABLED, 'remove: not enabled';
unlike dpkg_status($SPKG), qr/install ok installed/, 'remove: the stream package went with it';
ok !-e '/usr/lib/nginx/modules/ngx_stream_acme_module.so', 'remove: stream module gone';
ok !-e $SENABLED, 'remove: stream module not enabled';
ok -d $STATE && (grep { -f } glob("$STATE/pebble/deb.test-*.crt")), "remove: $STATE kept";
($rc, $out) = apt('purge', $PKG, $SPKG);
is $rc, 0, "apt-get purge $PKG $SPKG" or diag $out;
$installed = 0 unless $rc;
ok !-e $STATE, "purge: $STATE gone";
ok !grep({ -l } glob('/etc/nginx/modules-enabled/*mod-http-acme*')), 'purge: no link left';
unlike dpkg_status($PKG), qr/installed|config-files/, 'purge: nothing of the package left in dpkg';
unlike dpkg_status($SPKG), qr/installed|config-files/, 'purge: nor of the stream package';
ok !grep({ -l } glob('/etc/nginx/modules-enabled/*mod-stream-acme*')), 'purge: no stream link left';

restore();
ok -d $SITES && !-e $SAVED, 'sites-enabled restored';
ok !-e $site, 'site file gone';
ok !distro_nginx_pid() || $distro_nginx_before, 'no distro nginx left running';

done_testing;
