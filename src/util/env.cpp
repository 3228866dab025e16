#include "util/env.hpp"

#include <cstdlib>
#include <cstring>
#include <iterator>

namespace moedist::util {
namespace {

constexpr EnvParam kParams[] = {
    {Env::kTimeoutMs,
     "MOEDIST_TIMEOUT_MS",
     "integer ms",
     "30000",
     "longest wait for a peer; then 361001 naming the missing rank (read once)"},
    {Env::kZeroPadding,
     "MOEDIST_ZERO_PADDING",
     "0/1",
     "unset",
     "1 zeroes the tails of expandX, dynamicScales and expandScales up to each tensor's end "
     "(read at each first phase; MoeConfig::zero_padding overrides it)"},
    {Env::kDebug, "MOEDIST_DEBUG", "WARN|INFO|TRACE", "off", "log lines to stderr (read once)"},
    {Env::kSoc,
     "MOEDIST_SOC",
     "generic|A2|A3",
     "generic",
     "product profile of the first phase (MoeConfig::soc overrides it; read once)"},
    {Env::kJobId,
     "MOEDIST_JOB_ID",
     "text",
     "the launcher's",
     "names this process's launch: ranks of a rank table meet only ranks of the same launch "
     "(default: the launcher's job id variables, else the parent process)"},
    {Env::kRanksPerNode,
     "MOEDIST_RANKS_PER_NODE",
     "integer",
     "unset",
     "mpi backend: nodes of n consecutive ranks on one host (simulated nodes); must be the same "
     "on every rank"},
    {Env::kMpiAlgo,
     "MOEDIST_MPI_ALGO",
     "p2p|rma|alltoallv",
     "p2p",
     "mpi backend: how rows cross nodes"},
    {Env::kHcclBuffsize,
     "HCCL_BUFFSIZE",
     "integer MB",
     "200",
     "A2/A3 profiles: the buffer-size rules"},
    {Env::kHcclIntraPcie,
     "HCCL_INTRA_PCIE_ENABLE",
     "0/1",
     "unset",
     "A2 profile: with HCCL_INTRA_ROCE_ENABLE=0, the other buffer formula"},
    {Env::kHcclIntraRoce,
     "HCCL_INTRA_ROCE_ENABLE",
     "0/1",
     "unset",
     "A2 profile: see HCCL_INTRA_PCIE_ENABLE"},
    {Env::kServerId,
     "MOEDIST_SERVER_ID",
     "text",
     "unset",
     "rank tables across hosts: this host's server_id in the table (like HCCL_IF_IP), when its "
     "names and addresses do not say it"},
    {Env::kIfBasePort,
     "HCCL_IF_BASE_PORT",
     "integer",
     "60000",
     "rank tables across hosts: the hub listens on the first server's address at this port + "
     "the table's offset (0..4095)"},
    {Env::kJobKey,
     "MOEDIST_JOB_KEY",
     "text",
     "unset",
     "rank tables across hosts: a secret every host of the job sets; the hub and its members "
     "prove they hold it (HMAC-SHA256), so no other job or user can join or answer"},
};
static_assert(std::size(kParams) == static_cast<std::size_t>(Env::kCount));

}  // namespace

std::span<const EnvParam> env_params() { return kParams; }

const char* env_text(Env id) {
    const char* text = std::getenv(kParams[static_cast<std::size_t>(id)].name);
    return text == nullptr || *text == '\0' ? nullptr : text;
}

int64_t timeout_ms() {
    static const int64_t value = [] {
        const char* text = env_text(Env::kTimeoutMs);
        if (text == nullptr) return int64_t{30000};
        char* end = nullptr;
        const long long parsed = std::strtoll(text, &end, 10);
        return (end != nullptr && *end == '\0' && parsed > 0) ? static_cast<int64_t>(parsed)
                                                              : int64_t{30000};
    }();
    return value;
}

bool zero_padding() {
    const char* text = env_text(Env::kZeroPadding);
    return text != nullptr && std::strcmp(text, "1") == 0;
}

int debug_level() {
    static const int value = [] {
        const char* text = env_text(Env::kDebug);
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
        const char* text = env_text(Env::kSoc);
        if (text == nullptr) return SocSetting{Soc::kGeneric, "generic"};
        return SocSetting{parse_soc(text), text};
    }();
    return value;
}

const HcclBufferEnv& hccl_buffer_env() {
    static const HcclBufferEnv value = [] {
        HcclBufferEnv env;
        if (const char* text = env_text(Env::kHcclBuffsize); text != nullptr) {
            char* end = nullptr;
            const long long parsed = std::strtoll(text, &end, 10);
            env.buffsize_mb = (end != nullptr && *end == '\0' && parsed > 0 && parsed < (1LL << 40))
                                  ? static_cast<int64_t>(parsed)
                                  : -1;
        }
        const char* pcie = env_text(Env::kHcclIntraPcie);
        const char* roce = env_text(Env::kHcclIntraRoce);
        env.intra_pcie = pcie != nullptr && std::strcmp(pcie, "1") == 0 && roce != nullptr &&
                         std::strcmp(roce, "0") == 0;
        return env;
    }();
    return value;
}

std::string job_id() {
    const char* text = env_text(Env::kJobId);
    return text == nullptr ? std::string() : std::string(text).substr(0, 256);
}

int ranks_per_node() {
    const char* text = env_text(Env::kRanksPerNode);
    if (text == nullptr) return 0;
    char* end = nullptr;
    const long n = std::strtol(text, &end, 10);
    return end != nullptr && *end == '\0' && n > 0 && n < (1 << 20) ? static_cast<int>(n) : 0;
}

std::string mpi_algo() {
    const char* text = env_text(Env::kMpiAlgo);
    if (text != nullptr && (std::strcmp(text, "alltoallv") == 0 || std::strcmp(text, "rma") == 0))
        return text;
    return "p2p";
}

std::string server_id() {
    const char* text = env_text(Env::kServerId);
    return text == nullptr ? std::string() : std::string(text).substr(0, 255);
}

int if_base_port() {
    const char* text = env_text(Env::kIfBasePort);
    if (text == nullptr) return 60000;
    char* end = nullptr;
    const long port = std::strtol(text, &end, 10);
    return end != nullptr && *end == '\0' && port >= 1024 && port <= 65535 - 4096
               ? static_cast<int>(port)
               : 60000;
}

std::string job_key() {
    const char* text = env_text(Env::kJobKey);
    return text == nullptr ? std::string() : std::string(text).substr(0, 4096);
}

}  // namespace moedist::util
