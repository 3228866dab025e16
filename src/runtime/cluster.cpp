#include "runtime/cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "transport/access.hpp"
#include "transport/deferred.hpp"
#include "transport/host_rendezvous.hpp"
#include "transport/process_group.hpp"
#include "transport/socket_rendezvous.hpp"
#include "ucx/ucx_engine.hpp"
#include "util/env.hpp"

namespace moedist::runtime {
namespace {

constexpr std::size_t kMaxPathLength = 4096;              // CANN's limit for clusterInfo
constexpr std::uintmax_t kMaxRankTableBytes = 64u << 20;  // far beyond any real rank table

// Reads the rank table at `path` into *text: a regular file (checked on the open descriptor, so a
// FIFO, a device or a directory is refused without blocking) of at most kMaxRankTableBytes.
// Empty on success, else the reason.
std::string read_table(const std::filesystem::path& path, std::string* text) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::string("it cannot be opened: ") + std::strerror(errno);
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat info {};
    if (::fstat(fd, &info) != 0) return std::string("fstat failed: ") + std::strerror(errno);
    if (!S_ISREG(info.st_mode)) {
        const char* kind = S_ISDIR(info.st_mode)    ? "a directory"
                           : S_ISFIFO(info.st_mode) ? "a FIFO"
                           : S_ISSOCK(info.st_mode) ? "a socket"
                           : S_ISCHR(info.st_mode)  ? "a character device"
                           : S_ISBLK(info.st_mode)  ? "a block device"
                                                    : "not a regular file";
        return std::string("it is ") + kind + ", not a regular file";
    }
    if (static_cast<std::uintmax_t>(info.st_size) > kMaxRankTableBytes) {
        return "it has " + std::to_string(info.st_size) + " bytes, more than 64 MiB";
    }
    text->clear();
    char chunk[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof(chunk));
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::string("reading it failed: ") + std::strerror(errno);
        }
        if (text->size() + static_cast<std::size_t>(n) > kMaxRankTableBytes)
            return "it grew past 64 MiB while being read";
        text->append(chunk, static_cast<std::size_t>(n));
    }
    return {};
}

uint64_t fnv1a(const std::string& text, uint64_t h = 1469598103934665603ull) {
    for (const char ch : text) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    return h;
}

// The start time of process `pid` (field 22 of /proc/<pid>/stat, clock ticks since boot), or "".
std::string start_time_of(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char buffer[1024];
    const ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
    ::close(fd);
    if (n <= 0) return {};
    buffer[n] = '\0';
    const char* p = std::strrchr(buffer, ')');  // the command may hold spaces and parentheses
    for (int field = 2; p != nullptr && field < 22; ++field) p = std::strchr(p + 1, ' ');
    if (p == nullptr) return {};
    return std::string(p + 1, std::strcspn(p + 1, " "));
}

}  // namespace

std::string launch_identity() {
    if (std::string id = util::job_id(); !id.empty()) return "job:" + id;
    // Launchers that name their jobs (torchrun, Slurm, PBS, LSF, Flux, PMIx/OpenMPI).
    static const char* const kLauncherJobs[] = {"TORCHELASTIC_RUN_ID",
                                                "SLURM_JOB_ID",
                                                "PBS_JOBID",
                                                "LSB_JOBID",
                                                "FLUX_JOB_ID",
                                                "PMIX_NAMESPACE"};
    for (const char* name : kLauncherJobs) {
        const char* value = std::getenv(name);
        if (value == nullptr || *value == '\0') continue;
        std::string id = std::string(name) + ":" + std::string(value).substr(0, 256);
        if (std::strcmp(name, "SLURM_JOB_ID") == 0) {
            if (const char* step = std::getenv("SLURM_STEP_ID")) {
                id += '.';
                id.append(step, strnlen(step, 32));
            }
        }
        return id;
    }
    // Otherwise the ranks a launcher forked or started: its pid and start time.
    const pid_t parent = getppid();
    return "parent:" + std::to_string(parent) + ":" + start_time_of(parent);
}

std::string rendezvous_key(const LoadedTable& loaded) {
    // Ranks of this table and this launch meet; another launch on the same table forms its own
    // group (the launch is in the key), a table changed between ranks' starts fails the join.
    char key[64];
    std::snprintf(key,
                  sizeof(key),
                  "%016llx-%u-%016llx",
                  static_cast<unsigned long long>(fnv1a(loaded.path.string())),
                  static_cast<unsigned>(geteuid()),
                  static_cast<unsigned long long>(fnv1a(launch_identity())));
    return key;
}

uint64_t table_fingerprint(const RankTable& table) {
    uint64_t h = fnv1a("ranks:" + std::to_string(table.size));
    for (const std::string& server : table.server_of_rank) h = fnv1a(server + "\n", h);
    // Two tables of one layout (the EP groups of a TP pair's job) differ by their devices.
    for (const std::string& device : table.device_of_rank) h = fnv1a(device + "\n", h);
    return h;
}

namespace {}  // namespace

HcclResult load_rank_table(const char* cluster_info, LoadedTable* out, std::string* message) {
    const std::size_t length = strnlen(cluster_info, kMaxPathLength);
    if (length == 0 || length >= kMaxPathLength) {
        *message = "clusterInfo must be a path of 1..4095 characters, got " +
                   std::to_string(length) + (length >= kMaxPathLength ? " or more" : "");
        return HCCL_E_PARA;
    }
    const std::string given(cluster_info, length);
    std::error_code error;
    out->path = std::filesystem::canonical(given, error);
    if (error) {
        *message = "clusterInfo must name a readable rank table, got '" + quote_bounded(given) +
                   "': " + error.message();
        return HCCL_E_OPEN_FILE_FAILURE;
    }
    std::string text;
    if (std::string why = read_table(out->path, &text); !why.empty()) {
        *message =
            "clusterInfo must name a readable rank table, got '" + out->path.string() + "': " + why;
        return HCCL_E_OPEN_FILE_FAILURE;
    }
    std::string why;
    if (!parse_rank_table(text, &out->table, &why)) {
        *message = why + " ('" + out->path.string() + "')";
        return HCCL_E_PARA;
    }
    return HCCL_SUCCESS;
}

bool server_is_local(const std::string& server_id) {
    if (server_id.empty() || server_id == "localhost") return true;
    in_addr v4{};
    if (inet_pton(AF_INET, server_id.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127)
        return true;
    in6_addr v6{};
    if (inet_pton(AF_INET6, server_id.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0 && server_id == host) return true;
    ifaddrs* addresses = nullptr;
    bool local = false;
    if (getifaddrs(&addresses) == 0) {
        for (ifaddrs* a = addresses; a != nullptr && !local; a = a->ifa_next) {
            if (a->ifa_addr == nullptr) continue;
            char text[INET6_ADDRSTRLEN] = {};
            if (a->ifa_addr->sa_family == AF_INET) {
                inet_ntop(AF_INET,
                          &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr,
                          text,
                          sizeof(text));
            } else if (a->ifa_addr->sa_family == AF_INET6) {
                inet_ntop(AF_INET6,
                          &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr,
                          text,
                          sizeof(text));
            }
            local = server_id == text;
        }
        freeifaddrs(addresses);
    }
    return local;
}

namespace {
std::atomic<MpiClusterJoin> mpi_join{nullptr};
}

void set_mpi_cluster_join(MpiClusterJoin join) { mpi_join.store(join); }

bool under_mpirun() {
    return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

namespace {

// A server of the table is this host: MOEDIST_SERVER_ID when set, else server_is_local.
bool server_is_this_host(const std::string& server_id) {
    const std::string given = util::server_id();
    return given.empty() ? server_is_local(server_id) : server_id == given;
}

// HCCL_IF_BASE_PORT + an offset in [0, 4096) from the table's fingerprint.
int hub_port(const RankTable& table) {
    return util::if_base_port() + static_cast<int>(table_fingerprint(table) % 4096);
}

// A table whose servers are several hosts, without a launcher: this host's ranks form a process
// group as on one host, and the hosts meet at the hub (rank 0, on its server's address) and then
// talk over UCX (ucx/ucx_engine.hpp).
HcclResult join_across_hosts(const LoadedTable& loaded,
                             uint32_t rank,
                             Communicator* out,
                             std::string* message) {
    const RankTable& table = loaded.table;
    const int size = table.size;
    const std::string path = loaded.path.string();
    const std::string& mine = table.server_of_rank[rank];
    if (!server_is_this_host(mine)) {
        *message = "rank " + std::to_string(rank) + " of rank table '" + path +
                   "' must run on its server '" + quote_bounded(mine) +
                   "' (one of this host's names or addresses, or MOEDIST_SERVER_ID), got another "
                   "host";
        return HCCL_E_PARA;
    }
    // Nodes: the table's servers in their order of appearance.
    std::vector<int> node_of(static_cast<std::size_t>(size));
    std::vector<std::string> servers;
    for (int r = 0; r < size; ++r) {
        const std::string& server = table.server_of_rank[static_cast<std::size_t>(r)];
        auto at = std::find(servers.begin(), servers.end(), server);
        if (at == servers.end()) at = servers.insert(servers.end(), server);
        node_of[static_cast<std::size_t>(r)] = static_cast<int>(at - servers.begin());
    }
    const int my_node = node_of[rank];
    int local = 0, local_size = 0;
    for (int r = 0; r < size; ++r) {
        if (node_of[static_cast<std::size_t>(r)] != my_node) continue;
        if (r < static_cast<int>(rank)) ++local;
        ++local_size;
    }
    const std::string key = rendezvous_key(loaded);
    const std::string name = "hccl_" + key;
    const uint64_t fingerprint = table_fingerprint(table);
    transport::HostRendezvousOptions hub;
    hub.hub_address = table.server_of_rank[0];
    hub.port = hub_port(table);
    hub.fingerprint = fingerprint;
    hub.key = util::job_key();
    hub.rank = static_cast<int>(rank);
    hub.size = size;
    auto join = [=](std::shared_ptr<transport::Transport>* endpoint) mutable -> Status {
        const auto deadline = transport::call_deadline();
        hub.deadline = deadline;
        std::unique_ptr<transport::SocketRendezvous> node_rendezvous;
        Status s = transport::SocketRendezvous::open(key + "n" + std::to_string(my_node),
                                                     local,
                                                     local_size,
                                                     fingerprint,
                                                     deadline,
                                                     &node_rendezvous);
        if (s.ok()) {
            ucx::HostJoin spec;
            spec.name = name;
            spec.rank = static_cast<int>(rank);
            spec.node_of = node_of;
            spec.node_all_gather = [&](std::span<const std::byte> bytes,
                                       std::vector<std::byte>* all) {
                return node_rendezvous->all_gather(bytes, all);
            };
            spec.global_all_gather = [&](std::span<const std::byte> bytes,
                                         std::vector<std::byte>* all) {
                return transport::host_all_gather(hub, bytes, ucx::kMaxBlobBytes, all);
            };
            s = ucx::join_hosts(spec, endpoint);
        }
        if (!s.ok())
            return {Code::kRuntime,
                    "rank " + std::to_string(rank) + " of rank table '" + path +
                        "' must join its group across hosts, got: " + s.message()};
        return Status::Ok();
    };
    *out = transport::Access::make(
        transport::deferred_endpoint(name, static_cast<int>(rank), size, std::move(join)));
    return HCCL_SUCCESS;
}

}  // namespace

HcclResult join_rank_table(const LoadedTable& loaded,
                           uint32_t rank,
                           Communicator* out,
                           std::string* message) {
    const RankTable& table = loaded.table;
    const int size = table.size;
    const std::string path = loaded.path.string();
    if (rank >= static_cast<uint32_t>(size)) {
        *message = "rank must be < " + std::to_string(size) + " (ranks in '" + path + "'), got " +
                   std::to_string(rank);
        return HCCL_E_PARA;
    }
    if (MpiClusterJoin join = mpi_join.load(); join != nullptr && under_mpirun()) {
        if (Status s = join(static_cast<int>(rank), size, out); !s.ok()) {
            *message = "rank " + std::to_string(rank) + " of rank table '" + path +
                       "' must join its group over MPI, got: " + s.message();
            return HCCL_E_INTERNAL;
        }
        return HCCL_SUCCESS;
    }
    for (int r = 0; r < size; ++r) {
        if (!server_is_this_host(table.server_of_rank[static_cast<std::size_t>(r)]))
            return join_across_hosts(loaded, rank, out, message);
    }
    const std::string key = rendezvous_key(loaded);
    // The group forms in the background; the first use of the handle waits for it.
    const std::string name = "hccl_" + key;
    const std::string where = path;
    const uint64_t fingerprint = table_fingerprint(table);
    auto join = [key, name, where, rank, size, fingerprint](
                    std::shared_ptr<transport::Transport>* endpoint) -> Status {
        std::unique_ptr<transport::SocketRendezvous> rendezvous;
        Status s = transport::SocketRendezvous::open(key,
                                                     static_cast<int>(rank),
                                                     size,
                                                     fingerprint,
                                                     transport::call_deadline(),
                                                     &rendezvous);
        if (s.ok()) {
            s = transport::join_process_group(
                static_cast<int>(rank),
                size,
                name,
                [&](std::span<const std::byte> mine, std::vector<std::byte>* all) {
                    return rendezvous->all_gather(mine, all);
                },
                endpoint,
                /*register_endpoint=*/false);
        }
        if (!s.ok()) {
            return {Code::kRuntime,
                    "rank " + std::to_string(rank) + " of rank table '" + where +
                        "' must join its group, got: " + s.message()};
        }
        return Status::Ok();
    };
    *out = transport::Access::make(
        transport::deferred_endpoint(name, static_cast<int>(rank), size, std::move(join)));
    return HCCL_SUCCESS;
}

}  // namespace moedist::runtime

namespace moedist {

Status Communicator::from_rank_table(const std::string& path, int rank, Communicator* out) {
    runtime::LoadedTable table;
    std::string message;
    if (rank < 0) return {Code::kInnerTiling, "rank must be >= 0, got " + std::to_string(rank)};
    if (runtime::load_rank_table(path.c_str(), &table, &message) != HCCL_SUCCESS)
        return {Code::kInnerTiling, message};
    if (runtime::join_rank_table(table, static_cast<uint32_t>(rank), out, &message) != HCCL_SUCCESS)
        return {Code::kRuntime, message};
    return Status::Ok();
}

}  // namespace moedist
