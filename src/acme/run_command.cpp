// Running a command with a timeout: posix_spawn of a small shell wrapper
// that runs the command and writes its exit status to fd 3. nginx's SIGCHLD
// handler in the helper reaps any child (waitpid(-1)), so the status cannot
// come from waitpid; the wrapper's own child, the command, is the shell's to
// reap. The event command and the dns-01 hook both run through here.
#include "run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace acme {

namespace {

constexpr std::size_t max_output = 64 * 1024;

const char wrapper[] = "\"$@\"; echo $? >&3";

struct Fd {
    int fd = -1;
    ~Fd() { reset(); }
    void reset() {
        if (fd != -1) ::close(fd);
        fd = -1;
    }
};

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& environment,
                          std::chrono::milliseconds timeout) {
    CommandResult result;
    if (argv.empty()) return result;
    int out[2], status[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return result;
    Fd out_r{out[0]}, out_w{out[1]};
    if (::pipe2(status, O_CLOEXEC) != 0) return result;
    Fd status_r{status[0]}, status_w{status[1]};

    std::vector<std::string> args{"/bin/sh", "-c", wrapper, "sh"};
    args.insert(args.end(), argv.begin(), argv.end());
    std::vector<char*> cargv;
    for (std::string& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> env;
    for (char** e = environ; e && *e; e++) {
        if (std::strncmp(*e, "ACME_", 5) != 0) env.emplace_back(*e);
    }
    env.insert(env.end(), environment.begin(), environment.end());
    std::vector<char*> cenv;
    for (std::string& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_w.fd, 2);
    posix_spawn_file_actions_adddup2(&fa, status_w.fd, 3);
    // nginx's listening sockets and log files are not close-on-exec.
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    // The engine's threads block every signal, and nginx ignores some:
    // the command gets the defaults, in a process group of its own.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        result.output = std::string("cannot run /bin/sh: ") + std::strerror(rc);
        return result;
    }
    result.started = true;
    out_w.reset();
    status_w.reset();

    std::string status_text;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out_r.fd != -1 || status_r.fd != -1) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            ::kill(-pid, SIGKILL);
            break;
        }
        pollfd fds[2] = {{out_r.fd, POLLIN, 0}, {status_r.fd, POLLIN, 0}};
        int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (n < 0 && errno != EINTR) break;
        Fd* which[2] = {&out_r, &status_r};
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd == -1 || fds[i].revents == 0) continue;
            char buf[4096];
            ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
            if (got <= 0) {
                which[i]->reset();
                continue;
            }
            std::string& into = i == 0 ? result.output : status_text;
            if (into.size() < max_output) into.append(buf, std::min<std::size_t>(got, max_output));
        }
    }
    // nginx may have reaped it already (ECHILD).
    int ignored;
    while (::waitpid(pid, &ignored, 0) == -1 && errno == EINTR) {
    }
    if (!result.timed_out && !status_text.empty()) {
        result.exit_code = std::atoi(status_text.c_str());
    }
    return result;
}

}  // namespace acme
