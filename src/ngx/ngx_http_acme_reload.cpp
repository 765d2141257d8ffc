// acme_reload: the reload process. Workers and the helper run as the worker
// user and cannot signal a master that runs as root, so the master starts a
// small process of its own, before anything runs unprivileged, that keeps
// root and does one thing: on a "reload" message from the helper it sends
// the master SIGHUP, at most once per acme_reload_delay (acme/reload_gate.h).
//
// It is started from init_module: in the master on a reload, and at
// start-up in the process that becomes the master (or forks it, with
// `daemon on`), so it reaches the master through nginx's pid file, as
// `nginx -s reload` does. The master and the helper hold the other end of
// its socket (close-on-exec: a binary upgrade's new master starts its
// own); workers close theirs. The process ends when its socket's last
// holder is gone, that is with nginx; a reload finds it alive and starts
// none, unless the pid file or the delay changed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "acme/reload_gate.h"
#include "ngx/ngx_http_acme.h"

namespace {

// Plain data: it must survive reloads (the module stays loaded while a
// cycle uses it) and needs no destructor when the module is unloaded.
struct ngx_http_acme_reload_process_t {
    int fd;  // the master's end of the socket; -1: no process
    ngx_msec_t delay;
    char pid_file[NGX_MAX_PATH];
};

ngx_http_acme_reload_process_t reload_process = {-1, 0, {0}};

void reload_log(const std::string &what) {
    // The process has no nginx log of its own: stderr is nginx's error log
    // (or the terminal nginx was started from).
    std::string line = "nginx: [alert] acme reload process: " + what + "\n";
    ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
}

// The master from the pid file, checked to run this very binary, so a stale
// pid file cannot make it signal another root process.
void reload_master(const char *pid_file) {
    std::ifstream in(pid_file);
    long pid = 0;
    if (!(in >> pid) || pid <= 1 || pid == getpid()) {
        reload_log(std::string("no master pid in \"") + pid_file + "\"");
        return;
    }
    struct stat self, master;
    std::string exe = "/proc/" + std::to_string(pid) + "/exe";
    if (stat("/proc/self/exe", &self) != 0 || stat(exe.c_str(), &master) != 0 ||
        self.st_dev != master.st_dev || self.st_ino != master.st_ino) {
        reload_log("process " + std::to_string(pid) + " from \"" + pid_file +
                   "\" is not this nginx: no reload");
        return;
    }
    if (kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
        reload_log("kill(" + std::to_string(pid) + ", SIGHUP) failed: " + std::strerror(errno));
    }
}

[[noreturn]] void reload_process_main(int fd, ngx_msec_t delay, const char *pid_file) {
    // nginx's handlers and blocked signals are the master's: defaults here.
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        sigaction(sig, &sa, nullptr);
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);  // a terminal's hangup is not for it
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    setsid();

    // Nothing of nginx's but stderr: listening sockets, logs, other sockets.
    int null = open("/dev/null", O_RDWR);
    if (null != -1) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
    }
    if (dup2(fd, 3) == -1) {
        _exit(1);
    }
    closefrom(4);
    std::string pid_path = pid_file;
    ngx_setproctitle(const_cast<char *>("acme reload process"));

    acme::run_reload_gate(3, std::chrono::milliseconds(delay),
                          [&] { reload_master(pid_path.c_str()); });
    _exit(0);
}

bool reload_process_alive() {
    if (reload_process.fd == -1) {
        return false;
    }
    pollfd p{reload_process.fd, POLLOUT, 0};
    return poll(&p, 1, 0) >= 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) == 0;
}

// Lets the process go: it ends once the helper that still holds the socket
// (the old one, on a reload) has gone too.
void release_reload_process() {
    if (reload_process.fd != -1) {
        close(reload_process.fd);
        reload_process.fd = -1;
    }
}

ngx_int_t start_reload_process(ngx_cycle_t *cycle, ngx_msec_t delay, const ngx_str_t &pid_file) {
    if (pid_file.len >= sizeof(reload_process.pid_file)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "acme_reload: pid file name too long");
        return NGX_ERROR;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno, "acme_reload: socketpair() failed");
        return NGX_ERROR;
    }
    char path[NGX_MAX_PATH];
    ngx_memcpy(path, pid_file.data, pid_file.len);
    path[pid_file.len] = '\0';

    pid_t pid = fork();
    if (pid == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno, "acme_reload: fork() failed");
        close(sv[0]);
        close(sv[1]);
        return NGX_ERROR;
    }
    if (pid == 0) {
        close(sv[0]);
        reload_process_main(sv[1], delay, path);
    }
    close(sv[1]);
    release_reload_process();
    reload_process.fd = sv[0];
    reload_process.delay = delay;
    ngx_memcpy(reload_process.pid_file, path, pid_file.len + 1);
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0, "acme: reload process %P started", pid);
    return NGX_OK;
}

}  // namespace

ngx_int_t ngx_http_acme_reload_init_module(ngx_cycle_t *cycle) {
    // nginx -t and nginx -s also get here (as root): they start nothing.
    if (ngx_test_config || ngx_process == NGX_PROCESS_SIGNALLER) {
        return NGX_OK;
    }
    auto *amcf = static_cast<ngx_http_acme_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_acme_module));
    auto *ccf = reinterpret_cast<ngx_core_conf_t *>(ngx_get_conf(cycle->conf_ctx, ngx_core_module));
    if (amcf == nullptr || !amcf->reload || amcf->certs.nelts == 0) {
        release_reload_process();
        return NGX_OK;
    }
    if (!ccf->master) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "acme_reload is ignored with \"master_process off\"");
        return NGX_OK;
    }
    bool same = reload_process.delay == amcf->reload_delay &&
                ccf->pid.len < sizeof(reload_process.pid_file) &&
                ngx_strncmp(reload_process.pid_file, ccf->pid.data, ccf->pid.len) == 0 &&
                reload_process.pid_file[ccf->pid.len] == '\0';
    if (same && reload_process_alive()) {
        return NGX_OK;
    }
    return start_reload_process(cycle, amcf->reload_delay, ccf->pid);
}

void ngx_http_acme_reload_init_process() {
    // Only the helper asks for reloads.
    if (ngx_process != NGX_PROCESS_HELPER) {
        release_reload_process();
    }
}

bool ngx_http_acme_reload_request(std::string &error) {
    if (reload_process.fd == -1) {
        error = "no reload process";
        return false;
    }
    ssize_t n = send(reload_process.fd, acme::reload_request, std::strlen(acme::reload_request),
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        error = std::string("send() to the reload process failed: ") + std::strerror(errno);
        return false;
    }
    return true;
}

bool ngx_http_acme_reload_available() { return reload_process.fd != -1; }

char *ngx_http_acme_reload_delay_check(ngx_conf_t *cf, void *, void *data) {
    if (*static_cast<ngx_msec_t *>(data) < 1000) {
        return const_cast<char *>("must be at least 1s");
    }
    (void)cf;
    return NGX_CONF_OK;
}
