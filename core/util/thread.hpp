// Threads that modelfetch itself starts (the client's I/O thread, the fault thread, fill workers) are
// marked, and the shim's hooks pass every libc call made on a marked thread straight to libc. Otherwise our
// own I/O could wait on our own locks: e.g. curl's send() reaching the mapping check while fork preparation
// holds the mapping lock and waits for that very transfer. Initial-exec TLS: one load, no allocation, safe
// in a preloaded library.
//
// They also take no signals: every signal is blocked in them from their first instruction (the mask is
// inherited from the creating thread, which blocks all around the creation), so a process-directed signal
// (SIGALRM, SIGINT, SIGCHLD, ...) always reaches one of the program's own threads and the program's
// handlers never run on a thread they do not know.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace mf {

extern thread_local bool t_internal_thread __attribute__((tls_model("initial-exec")));

inline bool on_internal_thread() { return t_internal_thread; }

template <class F>
std::thread start_internal_thread(F&& body) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  struct Restore {
    sigset_t* mask;
    ~Restore() { pthread_sigmask(SIG_SETMASK, mask, nullptr); }
  } restore{&old};  // also when std::thread throws
  return std::thread([body = std::forward<F>(body)]() mutable {
    t_internal_thread = true;
    body();
  });
}

}  // namespace mf
