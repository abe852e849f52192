#include "core/util/thread.hpp"

namespace mf {
thread_local bool t_internal_thread __attribute__((tls_model("initial-exec"))) = false;
}
