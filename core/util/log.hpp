// Logging: one line per message, prefixed "modelfetch:", written with write(2) on fd 2 so it is safe before
// init is done and never goes through stdio or allocates (the shim may log from inside a libc hook).
// Level from MODELFETCH_LOG=error|warn|info|debug (default warn). Messages must never contain credentials:
// callers log keys, offsets and errno text, never headers or URLs with query strings.
#pragma once

#include <atomic>
#include <optional>
#include <string_view>

namespace mf {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

std::optional<LogLevel> parse_log_level(std::string_view text);
void set_log_level(LogLevel level);
LogLevel log_level();

inline bool log_enabled(LogLevel level) { return static_cast<int>(level) <= static_cast<int>(log_level()); }

// printf-style; truncates at 1 KiB. Appends the newline.
void log_message(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace mf

#define MF_LOG(level, ...)                                             \
  do {                                                                 \
    if (::mf::log_enabled(level)) ::mf::log_message(level, __VA_ARGS__); \
  } while (0)
#define MF_ERROR(...) MF_LOG(::mf::LogLevel::error, __VA_ARGS__)
#define MF_WARN(...) MF_LOG(::mf::LogLevel::warn, __VA_ARGS__)
#define MF_INFO(...) MF_LOG(::mf::LogLevel::info, __VA_ARGS__)
#define MF_DEBUG(...) MF_LOG(::mf::LogLevel::debug, __VA_ARGS__)
