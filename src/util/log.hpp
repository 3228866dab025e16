// Logging by MOEDIST_DEBUG=WARN|INFO|TRACE, to stderr, off by default. A disabled level costs one
// load of a cached integer: the message is not even formatted.
//
//   MOEDIST_LOG(kWarn, "rank {} timed out", r);   // timeouts, broken groups
//   MOEDIST_LOG(kInfo, ...)                        // one line per call: shapes, rows, time
//   MOEDIST_LOG(kTrace, ...)                       // per-peer waits
#pragma once

#include "moedist/export.hpp"

#include <fmt/format.h>

#include <string_view>

#include "util/env.hpp"

namespace moedist::util {

enum LogLevel : int { kWarn = 1, kInfo = 2, kTrace = 3 };

inline bool log_enabled(int level) { return debug_level() >= level; }

// Writes one line "[moedist] [level] text" to stderr (spdlog; thread-safe).
MOEDIST_API void log_line(int level, std::string_view text);

}  // namespace moedist::util

#define MOEDIST_LOG(level, ...)                                                            \
    do {                                                                                   \
        if (::moedist::util::log_enabled(::moedist::util::level))                          \
            ::moedist::util::log_line(::moedist::util::level, ::fmt::format(__VA_ARGS__)); \
    } while (0)
