#include "trust_support.hpp"

#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <thread>
#include <vector>

#include "runtime/cluster.hpp"
#include "transport/shm_arena.hpp"

namespace trust {

using moedist::Code;
using moedist::DType;
using moedist::Status;
using moedist::TensorView;

uint16_t x_bits(uint64_t job, int rank, int64_t t, int64_t h) {
    // Exponents 0x3C..0x40 (0.0078 .. 4): finite, exact through an fp32 round trip.
    const uint64_t mix = job * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(rank) * 7919 +
                         static_cast<uint64_t>(t) * 104729 + static_cast<uint64_t>(h) * 31;
    return static_cast<uint16_t>(0x3C00 + (mix >> 17) % 0x0400);
}

namespace {

// Arena blocks of one run_rank, freed when it returns.
struct Blocks {
    std::vector<void*> all;
    ~Blocks() {
        for (void* p : all) moedist::transport::arena_free(p);
    }
    void* take(std::size_t bytes) {
        void* p = moedist::transport::arena_allocate(bytes);
        if (p != nullptr) all.push_back(p);
        return p;
    }
    template <class T>
    T* of(std::size_t n) {
        return static_cast<T*>(take(n * sizeof(T)));
    }
};

Status mismatch(const std::string& what) { return {static_cast<Code>(900001), what}; }

}  // namespace

Status run_rank(const JobSpec& spec, const moedist::Communicator& ep, int calls) {
    const int W = spec.world, r = ep.rank();
    const int64_t bs = spec.tokens, H = spec.hidden;
    moedist::MoeConfig config;
    config.ep_world_size = W;
    config.ep_rank_id = r;
    config.moe_expert_num = W;
    if (spec.timeout_ms > 0) config.timeout_ms = spec.timeout_ms;
    const int64_t capacity = config.capacity_rows(bs, 1);
    const int64_t expand_rows = spec.short_expand_x ? capacity - 1 : capacity;
    const std::size_t x_bytes = static_cast<std::size_t>(bs * H) * 2;
    Blocks blocks;
    // A block larger than the arena's usual segment gets a new segment of its own.
    auto* x = static_cast<uint16_t*>(blocks.take(std::max(x_bytes, spec.x_segment_bytes)));
    auto* ids = blocks.of<int32_t>(static_cast<std::size_t>(bs));
    auto* weights = blocks.of<float>(static_cast<std::size_t>(bs));
    auto* expand_x = blocks.of<uint16_t>(static_cast<std::size_t>(capacity * H));
    auto* expand_idx = blocks.of<int32_t>(static_cast<std::size_t>(bs));
    auto* token_nums = blocks.of<int64_t>(1);
    auto* recv = blocks.of<int32_t>(static_cast<std::size_t>(W));
    auto* out = blocks.of<uint16_t>(static_cast<std::size_t>(bs * H));
    if (!x || !ids || !weights || !expand_x || !expand_idx || !token_nums || !recv || !out)
        return {Code::kRuntime, "the job's tensors must fit in memory"};
    for (int64_t t = 0; t < bs; ++t) {
        ids[t] = static_cast<int32_t>((t + r + 1) % W);
        weights[t] = 1.0f;
        for (int64_t h = 0; h < H; ++h) x[t * H + h] = x_bits(spec.job, r, t, h);
    }
    std::optional<moedist::MoeDistributor> moe;
    if (Status s = moedist::MoeDistributor::create(ep, std::nullopt, config, &moe); !s.ok())
        return s;
    moedist::DispatchInputs in;
    in.x = TensorView::contiguous(x, DType::kBFloat16, {bs, H});
    in.expert_ids = TensorView::contiguous(ids, DType::kInt32, {bs, 1});
    moedist::DispatchOutputs o;
    o.expand_x = TensorView::contiguous(expand_x, DType::kBFloat16, {expand_rows, H});
    o.expand_idx = TensorView::contiguous(expand_idx, DType::kInt32, {bs});
    o.expert_token_nums = TensorView::contiguous(token_nums, DType::kInt64, {1});
    o.ep_recv_counts = TensorView::contiguous(recv, DType::kInt32, {W});
    for (int call = 0; call < calls; ++call) {
        if (Status s = moe->try_dispatch(in, o); !s.ok()) return s;
        // Rows by source rank ascending, each source's tokens in order (L = 1, K = 1).
        int64_t row = 0;
        for (int src = 0; src < W; ++src) {
            for (int64_t t = 0; t < bs; ++t) {
                if ((t + src + 1) % W != r) continue;
                for (int64_t h = 0; h < H; ++h) {
                    if (expand_x[row * H + h] != x_bits(spec.job, src, t, h)) {
                        return mismatch("row " + std::to_string(row) + " must be token " +
                                        std::to_string(t) + " of rank " + std::to_string(src) +
                                        " of job " + std::to_string(spec.job) +
                                        ", got other bytes (rows of another job?)");
                    }
                }
                ++row;
            }
        }
        if (token_nums[0] != row)
            return mismatch("expertTokenNums must be " + std::to_string(row) + ", got " +
                            std::to_string(token_nums[0]));
        uint16_t* expert_out = expand_x;
        if (spec.expert_out_segment_bytes > 0) {
            expert_out = static_cast<uint16_t*>(blocks.take(std::max(
                static_cast<std::size_t>(capacity * H) * 2, spec.expert_out_segment_bytes)));
            if (expert_out == nullptr) return {Code::kRuntime, "expert outputs must fit"};
            std::memcpy(expert_out, expand_x, static_cast<std::size_t>(capacity * H) * 2);
        }
        moedist::CombineInputs c;
        c.expand_x = TensorView::contiguous(expert_out, DType::kBFloat16, {capacity, H});
        c.expert_ids = in.expert_ids;
        c.expand_idx = spec.expand_idx_2d
                           ? TensorView::contiguous(expand_idx, DType::kInt32, {bs, 1})
                           : o.expand_idx;
        c.ep_send_counts = o.ep_recv_counts;
        c.expert_scales = TensorView::contiguous(weights, DType::kFloat32, {bs, 1});
        std::memset(out, 0, static_cast<std::size_t>(bs * H) * 2);
        if (Status s = moe->try_combine(c, TensorView::contiguous(out, DType::kBFloat16, {bs, H}));
            !s.ok())
            return s;
        if (std::memcmp(out, x, x_bytes) != 0)
            return mismatch("combine's x must be this rank's x, got other bytes");
    }
    return Status::Ok();
}

struct Board::Slot {
    int32_t code = -1;
    char message[512] = {};
};

Board::Board(int slots) : count_(slots) {
    void* p = mmap(nullptr,
                   sizeof(Slot) * static_cast<std::size_t>(slots),
                   PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS,
                   -1,
                   0);
    slots_ = static_cast<Slot*>(p);
    for (int i = 0; i < slots; ++i) new (&slots_[i]) Slot();
}

Board::~Board() { munmap(slots_, sizeof(Slot) * static_cast<std::size_t>(count_)); }

void Board::put(int slot, const Status& s) const {
    slots_[slot].code = s.raw_code();
    const std::size_t n = std::min(s.message().size(), sizeof(slots_[slot].message) - 1);
    std::memcpy(slots_[slot].message, s.message().data(), n);
    slots_[slot].message[n] = '\0';
}

int32_t Board::code(int slot) const { return slots_[slot].code; }
std::string Board::message(int slot) const { return slots_[slot].message; }

pid_t fork_child(const std::function<int()>& body) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) _exit(body());
    return pid;
}

int wait_child(pid_t pid, double seconds) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    for (;;) {
        int status = 0;
        const pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
            return -2;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool can_change_user() { return geteuid() == 0; }

bool become_nobody() {
    return setgroups(0, nullptr) == 0 && setgid(65534) == 0 && setuid(65534) == 0 &&
           geteuid() == 65534;
}

std::string child_rendezvous_key(const std::string& table_path) {
    int fds[2];
    if (pipe(fds) != 0) return {};
    const pid_t pid = fork_child([&] {
        close(fds[0]);
        moedist::runtime::LoadedTable table;
        std::string why;
        if (moedist::runtime::load_rank_table(table_path.c_str(), &table, &why) != 0) return 1;
        const std::string key = moedist::runtime::rendezvous_key(table);
        return write(fds[1], key.data(), key.size()) == static_cast<ssize_t>(key.size()) ? 0 : 1;
    });
    close(fds[1]);
    char buffer[128] = {};
    const ssize_t n = read(fds[0], buffer, sizeof(buffer) - 1);
    close(fds[0]);
    wait_child(pid, 10);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

int connect_abstract(const std::string& name) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), std::min(name.size(), sizeof(addr.sun_path) - 2));
    const auto length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + std::min(name.size(), sizeof(addr.sun_path) - 2));
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int mapped_arena_segments() {
    std::ifstream maps("/proc/self/maps");
    int n = 0;
    for (std::string line; std::getline(maps, line);)
        if (line.find("moedist-arena") != std::string::npos) ++n;
    return n;
}

namespace {
int64_t field_kib(const char* path, const char* name) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(name, 0) != 0) continue;
        std::istringstream fields(line.substr(std::strlen(name)));
        int64_t kib = 0;
        fields >> kib;
        return kib;
    }
    return -1;
}
}  // namespace

int64_t host_shmem_kib() { return field_kib("/proc/meminfo", "Shmem:"); }
int64_t self_rss_shmem_kib() { return field_kib("/proc/self/status", "RssShmem:"); }

}  // namespace trust
