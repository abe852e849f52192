// libmodelfetch.so entry: the interposed libc symbols live in the other files of shim/ as they are added.
#include "core/util/log.hpp"

extern "C" __attribute__((visibility("default"))) const char* modelfetch_version() { return "0.1.0"; }
