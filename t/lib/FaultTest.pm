package FaultTest;

# What the fault-injection tests (t/80-t/89) share: Pebble issuing
# certificates that live for seconds, nginx renewing one of them shortly
# after issuance (optionally through the CA proxy, onto a tmpfs, or under
# libfaketime), and a watch on what is served while a fault lasts.

=head1 NAME

FaultTest - set-up and checks shared by the fault-injection tests

=head1 SYNOPSIS

    my $f = FaultTest->start(name => 'faults.test', lifetime => 90, renew_before => 85,
                             proxy => 1);
    my $t = $f->t;                      # the AcmeTest object
    my $mark = $t->log_mark;
    $t->set_ca_fault(500);
    my $line = $f->wait_failure($mark); # checks what is served meanwhile
    $t->set_ca_fault('pass');
    ok $f->wait_renewed, 'renewed';
    $f->finish;                         # nothing bad was served, no alert

=head1 DESCRIPTION

C<< FaultTest->start(%opt) >> starts Pebble with one profile of
C<lifetime> seconds (nonces never rejected, C<pebble_env> added to its
environment), the CA proxy with C<< proxy => 1 >>, a tmpfs of C<tmpfs>
(e.g. C<'256k'>) as the state directory, and nginx with one issuer
(C<renew_before_expiry> C<renew_before> seconds; C<uri> the proxy or
Pebble) and one server for C<name>, with C<nginx_env> in its environment
and C<conf_head> at main level; with C<< faketime => 1 >> under libfaketime
(C<faketime_env> with offset 0, C<faketime_conf>; C<< $f->t->set_fake_time >>
moves the clock). It waits for the first certificate (a
test failure and dies otherwise) and moves Pebble's ARI window for it
a day past its expiry, so that the ratio rule alone decides. C<timeout>
and C<log_level> go to C<< AcmeTest->new >>.

Methods: C<t>, C<name>, C<root> (Pebble's root file), C<state> (the state
directory), C<first> (the first certificate, as C<tls_get> returns it),
C<base> (its store path without suffix, once stored).

C<< $f->check >> makes a handshake and remembers it when it did not verify
or showed a certificate other than the first and those C<wait_renewed>
returned; C<< $f->bad >> lists those. C<< $f->wait_line($re, $mark,
timeout => 40) >> waits for an error log line after C<$mark> (checking
meanwhile) and returns it; C<< $f->wait_failure($mark) >> waits for the
certificate's C<failed:> line. C<< $f->wait_renewed(timeout => 30) >> waits
until a new certificate verifies, returns it and counts it as good.
C<< $f->next_attempt_in($line) >> is the delay the line announces, in
seconds. C<< $f->far_ari($cert) >> moves the ARI window of a certificate.
C<< $f->finish >> checks that nothing bad was served and that nothing
worse than an error was logged (C<< allow => qr/.../ >> excuses lines).

=cut

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use AcmeTest;

sub start {
    my ($class, %o) = @_;
    my $t = AcmeTest->new(timeout => $o{timeout} // 180,
        ($o{log_level} ? (log_level => $o{log_level}) : ()));
    my $state = $o{tmpfs} ? $t->mount_tmpfs('acme', size => $o{tmpfs}) : $t->dir . '/acme';
    $t->start_pebble(env => { PEBBLE_WFE_NONCEREJECT => 0, %{ $o{pebble_env} || {} } },
        config => { profiles => {
            default    => { description => 'short', validityPeriod => $o{lifetime} },
            shortlived => undef } });
    $t->start_ca_proxy if $o{proxy};
    my $uri = $o{proxy} ? 'https://127.0.0.1:%%PORT_CA_PROXY%%/dir' : '%%ACME_URI%%';
    my $head = ($o{faketime} ? AcmeTest::faketime_conf() : '') . ($o{conf_head} // '');
    $t->write_nginx_conf($head . <<"EOF");
http {
    acme_issuer pebble {
        uri $uri;
        ssl_trusted_certificate %%PEBBLE_CA%%;
        state_path %%TESTDIR%%/acme;
        accept_terms_of_service;
        renew_before_expiry $o{renew_before}s;
    }
    server {
        listen 127.0.0.1:%%HTTP_PORT%%;
    }
    server {
        listen 127.0.0.1:%%HTTPS_PORT%% ssl;
        server_name $o{name};
        acme_certificate pebble;
    }
}
EOF
    $t->start_nginx(env => $o{faketime} ? { %{ $t->faketime_env }, %{ $o{nginx_env} || {} } }
                                        : $o{nginx_env});
    my $self = bless { t => $t, name => $o{name}, state => $state, root => $t->pebble_root,
        good => {}, bad => [] }, $class;
    my $first = $t->wait_for(sub {
        my $r = $t->tls_get(name => $self->{name}, ca => $self->{root});
        $r->{verified} ? $r : undef
    }, timeout => 30);
    ok $first, "certificate for $o{name} issued" or die('no certificate');
    $self->{first} = $first;
    $self->{good}{ $first->{serial} } = 1;
    $self->far_ari($first);
    return $self;
}

sub t     { $_[0]{t} }
sub name  { $_[0]{name} }
sub root  { $_[0]{root} }
sub state { $_[0]{state} }
sub first { $_[0]{first} }
sub bad   { @{ $_[0]{bad} } }

sub base {
    my ($self) = @_;
    my ($crt) = glob("$self->{state}/$self->{name}-*.crt");
    return defined $crt ? $crt =~ s/\.crt$//r : undef;
}

sub far_ari {
    my ($self, $cert) = @_;
    $self->{t}->set_renewal_window($cert->{cert_pem}, $cert->{not_after} + 86400,
        $cert->{not_after} + 2 * 86400);
}

sub check {
    my ($self, $r) = @_;
    $r //= $self->{t}->tls_get(name => $self->{name}, ca => $self->{root});
    push @{ $self->{bad} }, $r->{verify_error} // $r->{error} // "serial $r->{serial}"
        unless $r->{verified} && $self->{good}{ $r->{serial} };
    return $r;
}

sub wait_line {
    my ($self, $re, $mark, %opt) = @_;
    my $line;
    $self->{t}->wait_for(sub {
        $self->check;
        ($line) = grep { $_ =~ $re } split /\n/, $self->{t}->error_log($mark);
        $line
    }, timeout => $opt{timeout} // 40, interval => $opt{interval} // 0.25);
    return $line;
}

sub wait_failure {
    my ($self, $mark, %opt) = @_;
    return $self->wait_line(qr/acme: certificate "\Q$self->{name}\E" from "pebble" failed: /,
        $mark, %opt);
}

sub wait_renewed {
    my ($self, %opt) = @_;
    my $t = $self->{t};
    my $r = $t->wait_for(sub {
        my $r = $t->tls_get(name => $self->{name}, ca => $self->{root});
        return $r if $r->{verified} && !$self->{good}{ $r->{serial} };
        # The same handshake: a second one could already see the renewal.
        $self->check($r);
        undef
    }, timeout => $opt{timeout} // 30, interval => $opt{interval} // 0.25);
    $self->{good}{ $r->{serial} } = 1 if $r;
    return $r;
}

sub next_attempt_in {
    my ($self, $line) = @_;
    return AcmeTest::next_attempt_time($line) - AcmeTest::log_time($line);
}

sub finish {
    my ($self, %opt) = @_;
    is scalar($self->bad), 0, 'a good certificate was served, and verified, all along'
        or diag explain [ $self->bad ];
    my $allow = $opt{allow};
    my @worse = grep { /\[(?:alert|crit|emerg)\]/ && !($allow && $_ =~ $allow) }
        split /\n/, $self->{t}->error_log;
    is scalar(@worse), 0, 'nothing worse than an error logged' or diag join "\n", @worse;
}

1;
