// Runs a credential_process command: `/bin/sh -c COMMAND` through posix_spawn, stdout read through a pipe
// (at most 1 MiB), stdin from /dev/null, stderr inherited (the AWS CLI passes it through too), bounded by a
// timeout after which the child's process group (its own: POSIX_SPAWN_SETPGROUP) is killed (SIGKILL) and
// the child reaped.
//
// Called from modelfetch's own credential thread (core/util/thread.hpp): the shim's hooks pass its
// pipe/poll/read calls straight to libc. That thread blocks every signal; the child gets an empty signal
// mask and default dispositions (POSIX_SPAWN_SETSIGMASK/SETSIGDEF), not the thread's. The child's
// environment is the process's minus LD_PRELOAD, so the shim is not loaded into the helper.
//
// If the program reaps the child first (a SIGCHLD handler calling waitpid(-1)), the exit status is
// unknown (ECHILD) and the output is judged on its own.
#pragma once

#include <cstdint>
#include <string>

#include "core/util/result.hpp"

namespace mf {

struct ProcessOutput {
  std::string out;        // stdout
  int exit_status = 0;    // WEXITSTATUS; -1 when killed by a signal; 0 when unknown (reaped elsewhere)
};

// Errors: ETIMEDOUT (killed after timeout_ms), E2BIG (more than 1 MiB on stdout), the posix_spawn errno.
Result<ProcessOutput> run_shell_command(const std::string& command, uint64_t timeout_ms);

}  // namespace mf
