#include "support.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>

namespace hostile {
namespace {
// A bug that leaves a rank waiting shows as a fast failure (read once per process, before any
// moedist call).
const bool kShortTimeout = [] {
    setenv("MOEDIST_TIMEOUT_MS", "3000", 0);
    return true;
}();
}  // namespace

std::string recent() {
    const char* m = aclGetRecentErrMsg();
    return m == nullptr ? "" : m;
}

std::size_t elem_bytes(aclDataType dtype) {
    const std::size_t n = aclDataTypeSize(dtype);
    return n == 0 ? 1 : n;
}

namespace {

std::size_t shape_bytes(const std::vector<int64_t>& shape, aclDataType dtype) {
    std::size_t n = elem_bytes(dtype);
    for (int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
}

aclTensor* create(const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& strides,
                  aclDataType dtype,
                  int64_t offset,
                  void* data) {
    return aclCreateTensor(shape.empty() ? nullptr : shape.data(),
                           shape.size(),
                           dtype,
                           strides.empty() ? nullptr : strides.data(),
                           offset,
                           ACL_FORMAT_ND,
                           nullptr,
                           0,
                           data);
}

}  // namespace

Tensor::Tensor(Tensor&& other) noexcept { *this = std::move(other); }

Tensor& Tensor::operator=(Tensor&& other) noexcept {
    if (this != &other) {
        reset();
        handle_ = std::exchange(other.handle_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
        device_ = std::exchange(other.device_, false);
        host_ = std::move(other.host_);
    }
    return *this;
}

Tensor::~Tensor() { reset(); }

void Tensor::reset() {
    destroy();
    free_memory();
    host_.clear();
    data_ = nullptr;
    bytes_ = 0;
}

Tensor Tensor::device(const std::vector<int64_t>& shape,
                      aclDataType dtype,
                      int64_t slack,
                      uint8_t fill) {
    Tensor t;
    t.bytes_ = shape_bytes(shape, dtype);
    const auto block = static_cast<std::size_t>(static_cast<int64_t>(t.bytes_) + slack);
    if (aclrtMalloc(&t.data_, block, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS) return t;
    t.device_ = true;
    std::memset(t.data_, fill, block);
    t.handle_ = create(shape, {}, dtype, 0, t.data_);
    return t;
}

Tensor Tensor::host(const std::vector<int64_t>& shape, aclDataType dtype, uint8_t fill) {
    Tensor t;
    t.bytes_ = shape_bytes(shape, dtype);
    t.host_.assign(t.bytes_ + 1, fill);
    t.data_ = t.host_.data();
    t.handle_ = create(shape, {}, dtype, 0, t.data_);
    return t;
}

Tensor Tensor::view(const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& strides,
                    aclDataType dtype,
                    int64_t offset,
                    void* data) {
    Tensor t;
    t.data_ = data;
    t.handle_ = create(shape, strides, dtype, offset, data);
    return t;
}

void Tensor::free_memory() {
    if (device_) aclrtFree(data_);
    device_ = false;
}

void Tensor::destroy() {
    if (handle_ != nullptr) aclDestroyTensor(handle_);
    handle_ = nullptr;
}

namespace {
std::vector<HcclComm> init_all(int size) {
    if (size <= 0) return {};
    std::vector<int32_t> devices(static_cast<std::size_t>(size));
    for (int i = 0; i < size; ++i) devices[static_cast<std::size_t>(i)] = i;
    std::vector<HcclComm> comms(static_cast<std::size_t>(size), nullptr);
    if (HcclCommInitAll(static_cast<uint32_t>(size), devices.data(), comms.data()) !=
        HCCL_SUCCESS) {
        return {};
    }
    return comms;
}
}  // namespace

Group::Group(int size) : Group(init_all(size)) {}

Group::Group(std::vector<HcclComm> comms) : comms_(std::move(comms)) {
    char name[128] = {};
    if (!comms_.empty() && HcclGetCommName(comms_[0], name) == HCCL_SUCCESS) name_ = name;
}

Group::~Group() {
    for (HcclComm c : comms_) HcclCommDestroy(c);
}

RankTensors make_rank(const JobShape& s, int rank, bool device) {
    auto make = [&](const std::vector<int64_t>& shape, aclDataType dtype) {
        return device ? Tensor::device(shape, dtype) : Tensor::host(shape, dtype);
    };
    const int64_t rows = s.capacity();
    RankTensors t;
    t.x = make({s.tokens, s.hidden}, ACL_BF16);
    t.expert_ids = make({s.tokens, 1}, ACL_INT32);
    t.expert_scales = make({s.tokens, 1}, ACL_FLOAT);
    t.expand_x = make({rows, s.hidden}, ACL_BF16);
    t.expand_idx = make({s.tokens}, ACL_INT32);
    t.expert_token_nums = make({1}, ACL_INT64);
    t.ep_recv_counts = make({s.world}, ACL_INT32);
    t.out_x = make({s.tokens, s.hidden}, ACL_BF16);
    auto* x = static_cast<uint16_t*>(t.x.data());
    for (int64_t i = 0; i < s.tokens * s.hidden; ++i)  // distinct normal bf16 values
        x[i] = static_cast<uint16_t>(0x3F80 + ((rank * s.tokens * s.hidden + i) % 0x3F00));
    auto* ids = static_cast<int32_t*>(t.expert_ids.data());
    for (int64_t tok = 0; tok < s.tokens; ++tok)
        ids[tok] = static_cast<int32_t>((tok + rank) % s.world);
    auto* w = static_cast<float*>(t.expert_scales.data());
    for (int64_t tok = 0; tok < s.tokens; ++tok) w[tok] = 1.0f;
    t.x_bytes.assign(static_cast<uint8_t*>(t.x.data()),
                     static_cast<uint8_t*>(t.x.data()) + t.x.bytes());
    return t;
}

aclnnStatus DispatchCall::phase1(aclOpExecutor** executor) const {
    uint64_t workspace = 0;
    return aclnnMoeDistributeDispatchGetWorkspaceSize(x,
                                                      expert_ids,
                                                      scales,
                                                      x_active_mask,
                                                      expert_scales,
                                                      group_ep,
                                                      ep_world_size,
                                                      ep_rank_id,
                                                      moe_expert_num,
                                                      group_tp,
                                                      tp_world_size,
                                                      tp_rank_id,
                                                      expert_shard_type,
                                                      shared_expert_num,
                                                      shared_expert_rank_num,
                                                      quant_mode,
                                                      global_bs,
                                                      expert_token_nums_type,
                                                      expand_x,
                                                      dynamic_scales,
                                                      expand_idx,
                                                      expert_token_nums,
                                                      ep_recv_counts,
                                                      tp_recv_counts,
                                                      expand_scales,
                                                      &workspace,
                                                      executor);
}

aclnnStatus CombineCall::phase1(aclOpExecutor** executor) const {
    uint64_t workspace = 0;
    return aclnnMoeDistributeCombineGetWorkspaceSize(expand_x,
                                                     expert_ids,
                                                     expand_idx,
                                                     ep_send_counts,
                                                     expert_scales,
                                                     tp_send_counts,
                                                     nullptr,
                                                     nullptr,
                                                     nullptr,
                                                     nullptr,
                                                     nullptr,
                                                     group_ep,
                                                     ep_world_size,
                                                     ep_rank_id,
                                                     moe_expert_num,
                                                     group_tp,
                                                     tp_world_size,
                                                     tp_rank_id,
                                                     0,
                                                     shared_expert_num,
                                                     shared_expert_rank_num,
                                                     global_bs,
                                                     out_dtype,
                                                     comm_quant_mode,
                                                     0,
                                                     x,
                                                     &workspace,
                                                     executor);
}

DispatchCall dispatch_call(const JobShape& s,
                           int rank,
                           const std::string& group,
                           const RankTensors& t) {
    DispatchCall c;
    c.x = t.x.get();
    c.expert_ids = t.expert_ids.get();
    c.expert_scales = t.expert_scales.get();
    c.group_ep = group.c_str();
    c.ep_world_size = s.world;
    c.ep_rank_id = rank;
    c.moe_expert_num = s.world;
    c.expand_x = t.expand_x.get();
    c.expand_idx = t.expand_idx.get();
    c.expert_token_nums = t.expert_token_nums.get();
    c.ep_recv_counts = t.ep_recv_counts.get();
    return c;
}

CombineCall combine_call(const JobShape& s,
                         int rank,
                         const std::string& group,
                         const RankTensors& t) {
    CombineCall c;
    c.expand_x = t.expand_x.get();
    c.expert_ids = t.expert_ids.get();
    c.expand_idx = t.expand_idx.get();
    c.ep_send_counts = t.ep_recv_counts.get();
    c.expert_scales = t.expert_scales.get();
    c.group_ep = group.c_str();
    c.ep_world_size = s.world;
    c.ep_rank_id = rank;
    c.moe_expert_num = s.world;
    c.x = t.out_x.get();
    return c;
}

namespace {

// All ranks meet here; returns true when every rank passed `ok`.
class Barrier {
public:
    explicit Barrier(int n) : n_(n) {}
    bool meet(bool ok) {
        std::unique_lock<std::mutex> lock(mutex_);
        all_ok_ = all_ok_ && ok;
        const int generation = generation_;
        if (++arrived_ == n_) {
            arrived_ = 0;
            ++generation_;
            result_ = all_ok_;
            all_ok_ = true;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return generation_ != generation; });
        }
        return result_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int n_;
    int arrived_ = 0;
    int generation_ = 0;
    bool all_ok_ = true;
    bool result_ = true;
};

}  // namespace

std::vector<RankOutcome> run_job(const JobShape& s, const JobHooks& hooks, const Group* group) {
    Group own(group == nullptr ? s.world : 0);
    const Group& g = group == nullptr ? own : *group;
    std::vector<RankOutcome> outcomes(static_cast<std::size_t>(s.world));
    if (!g.ok() || g.size() != s.world) return outcomes;
    Barrier barrier(s.world);
    auto rank_main = [&](int r) {
        RankOutcome& o = outcomes[static_cast<std::size_t>(r)];
        RankTensors t = make_rank(s, r, hooks.device);
        DispatchCall d = dispatch_call(s, r, g.name(), t);
        if (hooks.before_dispatch) hooks.before_dispatch(r, t, d);
        aclOpExecutor* exec = nullptr;
        o.dispatch1 = d.phase1(&exec);
        o.dispatch1_msg = recent();
        if (!barrier.meet(o.dispatch1 == 0)) return;
        bool ran = false;
        if (hooks.dispatch_between)
            ran = hooks.dispatch_between(r, t, exec, &o.dispatch2, &o.dispatch2_msg);
        if (!ran) {
            o.dispatch2 = aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr);
            o.dispatch2_msg = recent();
        }
        if (!barrier.meet(o.dispatch2 == 0)) return;
        CombineCall c = combine_call(s, r, g.name(), t);
        if (hooks.before_combine) hooks.before_combine(r, t, c);
        o.combine1 = c.phase1(&exec);
        o.combine1_msg = recent();
        if (!barrier.meet(o.combine1 == 0)) return;
        ran = false;
        if (hooks.combine_between)
            ran = hooks.combine_between(r, t, exec, &o.combine2, &o.combine2_msg);
        if (!ran) {
            o.combine2 = aclnnMoeDistributeCombine(nullptr, 0, exec, nullptr);
            o.combine2_msg = recent();
        }
        barrier.meet(o.combine2 == 0);
        if (o.combine2 == 0 && t.out_x.data() != nullptr) {
            o.x_ok = std::memcmp(t.out_x.data(), t.x_bytes.data(), t.x_bytes.size()) == 0;
        }
    };
    std::vector<std::thread> threads;
    for (int r = 0; r < s.world; ++r) threads.emplace_back(rank_main, r);
    for (std::thread& th : threads) th.join();
    return outcomes;
}

bool fresh_job_succeeds(int world) {
    JobShape s;
    s.world = world;
    for (const RankOutcome& o : run_job(s)) {
        if (o.dispatch2 != 0 || o.combine2 != 0 || !o.x_ok) return false;
    }
    return true;
}

GuardedBuffer::GuardedBuffer(std::size_t bytes) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t pages = (bytes + page - 1) / page + 1;
    map_bytes_ = pages * page;
    map_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map_ == MAP_FAILED) std::abort();
    char* guard = static_cast<char*>(map_) + (pages - 1) * page;
    if (mprotect(guard, page, PROT_NONE) != 0) std::abort();
    data_ = guard - bytes;
}

GuardedBuffer::~GuardedBuffer() { munmap(map_, map_bytes_); }

TempDir::TempDir() {
    std::string pattern =
        std::filesystem::temp_directory_path().string() + "/moedist-hostile-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
    const std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary);
    out << text;
    return file;
}

std::string rank_table_text(int ranks) {
    std::string devices;
    for (int r = 0; r < ranks; ++r) {
        devices += std::string(r ? "," : "") + "{\"device_id\":\"" + std::to_string(r) +
                   "\",\"device_ip\":\"192.168.1." + std::to_string(r) + "\",\"rank_id\":\"" +
                   std::to_string(r) + "\"}";
    }
    return "{\"version\":\"1.0\",\"server_count\":\"1\",\"server_list\":[{\"server_id\":"
           "\"127.0.0.1\",\"device\":[" +
           devices + "]}],\"status\":\"completed\"}";
}

}  // namespace hostile
