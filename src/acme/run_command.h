// Runs a program with a timeout and collects its output: the event command
// and the dns-01 hook share it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace acme {

// How one call ended.
struct CommandResult {
    bool started = false;
    bool timed_out = false;
    int exit_code = -1;  // -1: killed, or unknown
    std::string output;  // stdout and stderr, at most 64 KiB
    bool ok() const { return started && !timed_out && exit_code == 0; }
};

// Runs argv with the given extra environment (the engine's own ACME_*
// variables are not passed on); kills its process group after `timeout`.
// Never throws.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& environment,
                          std::chrono::milliseconds timeout);

}  // namespace acme
