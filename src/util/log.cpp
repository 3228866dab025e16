#include "util/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace moedist::util {
namespace {

spdlog::logger& logger() {
    // A logger of our own (never registered globally, so it cannot clash with the application's
    // spdlog use), created on first use and never destroyed.
    static spdlog::logger* instance = [] {
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        auto* made = new spdlog::logger("moedist", std::move(sink));
        made->set_pattern("[%H:%M:%S.%f] [moedist] [%l] [pid %P tid %t] %v");
        made->set_level(spdlog::level::trace);
        made->flush_on(spdlog::level::trace);
        return made;
    }();
    return *instance;
}

}  // namespace

void log_line(int level, std::string_view text) {
    try {
        const auto spd = level >= kTrace  ? spdlog::level::trace
                         : level >= kInfo ? spdlog::level::info
                                          : spdlog::level::warn;
        logger().log(spd, "{}", text);
    } catch (...) {
        // Logging never fails a call.
    }
}

}  // namespace moedist::util
