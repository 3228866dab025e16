#include "util/env.hpp"

#include <cstdlib>
#include <cstring>

namespace moedist::util {

int64_t timeout_ms() {
    static const int64_t value = [] {
        const char* text = std::getenv("MOEDIST_TIMEOUT_MS");
        if (text == nullptr || *text == '\0') return int64_t{30000};
        char* end = nullptr;
        const long long parsed = std::strtoll(text, &end, 10);
        return (end != nullptr && *end == '\0' && parsed > 0) ? static_cast<int64_t>(parsed)
                                                              : int64_t{30000};
    }();
    return value;
}

bool zero_padding() {
    const char* text = std::getenv("MOEDIST_ZERO_PADDING");
    return text != nullptr && std::strcmp(text, "1") == 0;
}

int debug_level() {
    static const int value = [] {
        const char* text = std::getenv("MOEDIST_DEBUG");
        if (text == nullptr) return 0;
        if (std::strcmp(text, "TRACE") == 0) return 3;
        if (std::strcmp(text, "INFO") == 0) return 2;
        if (std::strcmp(text, "WARN") == 0) return 1;
        return 0;
    }();
    return value;
}

const SocSetting& soc_setting() {
    static const SocSetting value = [] {
        const char* text = std::getenv("MOEDIST_SOC");
        if (text == nullptr || *text == '\0') return SocSetting{Soc::kGeneric, "generic"};
        return SocSetting{parse_soc(text), text};
    }();
    return value;
}

const HcclBufferEnv& hccl_buffer_env() {
    static const HcclBufferEnv value = [] {
        HcclBufferEnv env;
        if (const char* text = std::getenv("HCCL_BUFFSIZE"); text != nullptr && *text != '\0') {
            char* end = nullptr;
            const long long parsed = std::strtoll(text, &end, 10);
            env.buffsize_mb = (end != nullptr && *end == '\0' && parsed > 0 && parsed < (1LL << 40))
                                  ? static_cast<int64_t>(parsed)
                                  : -1;
        }
        const char* pcie = std::getenv("HCCL_INTRA_PCIE_ENABLE");
        const char* roce = std::getenv("HCCL_INTRA_ROCE_ENABLE");
        env.intra_pcie = pcie != nullptr && std::strcmp(pcie, "1") == 0 && roce != nullptr &&
                         std::strcmp(roce, "0") == 0;
        return env;
    }();
    return value;
}

}  // namespace moedist::util
