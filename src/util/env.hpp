// Environment parameters: every variable moedist reads is declared once, in the table of env.cpp
// (name, type, default, meaning; `moedist --help-env` prints it), and read through it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "moedist/export.hpp"
#include "moedist/profile.hpp"

namespace moedist::util {

enum class Env {
    kTimeoutMs,
    kZeroPadding,
    kDebug,
    kSoc,
    kJobId,
    kRanksPerNode,
    kMpiAlgo,
    kHcclBuffsize,
    kHcclIntraPcie,
    kHcclIntraRoce,
    kServerId,
    kIfBasePort,
    kJobKey,
    kCount,
};

struct EnvParam {
    Env id;
    const char* name;
    const char* type;
    const char* default_value;
    const char* meaning;
};

// Every parameter, in Env order.
MOEDIST_API std::span<const EnvParam> env_params();

// The variable's text now; null when unset or empty.
MOEDIST_API const char* env_text(Env id);

// MOEDIST_TIMEOUT_MS (default 30000): the longest any wait for a peer may take.
MOEDIST_API int64_t timeout_ms();

// MOEDIST_ZERO_PADDING, read at every call (each first phase): "1" zeroes the tails of expandX,
// dynamicScales and expandScales; anything else, or unset, leaves them untouched as the device
// does (the default).
bool zero_padding();

// MOEDIST_DEBUG=WARN|INFO|TRACE (default off): 0 off, 1 warn, 2 info, 3 trace.
MOEDIST_API int debug_level();

// MOEDIST_SOC (default generic): the profile of calls that leave MoeConfig::soc unset. An
// unknown value makes every first phase fail (561002) naming it in `text`.
struct SocSetting {
    std::optional<Soc> soc;
    std::string text;
};
const SocSetting& soc_setting();

// HCCL_BUFFSIZE, HCCL_INTRA_PCIE_ENABLE, HCCL_INTRA_ROCE_ENABLE (the A2/A3 buffer rules).
const HcclBufferEnv& hccl_buffer_env();

// MOEDIST_JOB_ID: names the launch a rank belongs to (rank-table rendezvous); "" when unset.
std::string job_id();

// MOEDIST_RANKS_PER_NODE (mpi backend): simulated nodes of n ranks; 0 when unset or invalid.
MOEDIST_API int ranks_per_node();

// MOEDIST_MPI_ALGO (mpi backend): "p2p" (default), "alltoallv" or "rma".
MOEDIST_API std::string mpi_algo();

// MOEDIST_SERVER_ID (rank tables across hosts): the server_id of this host's entry, when its
// own names and addresses are not enough (several addresses, tests); "" when unset.
std::string server_id();

// HCCL_IF_BASE_PORT (default 60000): the base of the port of a rank table's hub across hosts;
// 60000 when unset or not in [1024, 65535 - 4096].
int if_base_port();

// MOEDIST_JOB_KEY: a secret shared by every host of a job; its hub and members prove they hold
// it (HMAC-SHA256). "" when unset (then only the table's fingerprint is checked).
std::string job_key();

}  // namespace moedist::util
