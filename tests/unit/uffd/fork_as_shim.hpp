// fork() with the handlers the shim registers (pthread_atfork in shim/init.cpp), in their order: prepare
// runs MappingManager::before_fork (every live mapping filled) then ChunkCache::before_fork; the parent and
// child handlers run the cache's first. The child runs `child` and exits with its result; returns the
// child's wait status.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "core/cache/chunk_cache.hpp"
#include "core/vfs/mappings.hpp"

namespace mf::test {

inline int fork_as_shim(MappingManager& mgr, ChunkCache& cache, const std::function<int()>& child) {
  mgr.before_fork();
  cache.before_fork();
  const pid_t pid = fork();
  if (pid == 0) {
    cache.after_fork_child();
    mgr.after_fork_child();
    _exit(child());
  }
  cache.after_fork_parent();
  mgr.after_fork_parent();
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

}  // namespace mf::test
