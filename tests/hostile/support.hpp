// The hostile suite's tools: tensors on aclrtMalloc blocks or host memory, a small two-phase job
// on W thread ranks through the C API (with hooks between the phases), guard-page buffers and
// temporary files. Every expectation the tests compare against is computed here independently
// of moedist: the job's combine output must equal its input x bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "hccl/hccl.h"

namespace hostile {

// aclGetRecentErrMsg() of this thread, "" when none.
std::string recent();

// Bytes per element of the dtypes the suite uses.
std::size_t elem_bytes(aclDataType dtype);

// An aclTensor and, optionally, the memory it owns. Move-only; destroys and frees what is left.
class Tensor {
public:
    Tensor() = default;
    Tensor(Tensor&& other) noexcept;
    Tensor& operator=(Tensor&& other) noexcept;
    Tensor(const Tensor&) = delete;
    Tensor& operator=(const Tensor&) = delete;
    ~Tensor();

    // A contiguous tensor alone in an aclrtMalloc block of (its bytes + slack) bytes; slack < 0
    // makes the view reach past the block. Filled with `fill` bytes.
    static Tensor device(const std::vector<int64_t>& shape,
                         aclDataType dtype,
                         int64_t slack = 0,
                         uint8_t fill = 0);
    // A contiguous tensor in host memory the runtime did not allocate.
    static Tensor host(const std::vector<int64_t>& shape, aclDataType dtype, uint8_t fill = 0);
    // Any view over memory owned elsewhere (`strides` empty: aclCreateTensor's default).
    static Tensor view(const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& strides,
                       aclDataType dtype,
                       int64_t offset,
                       void* data);

    aclTensor* get() const { return handle_; }
    void* data() const { return data_; }  // where the view's storage starts
    std::size_t bytes() const { return bytes_; }
    bool on_device() const { return device_; }

    void free_memory();  // aclrtFree now; the descriptor stays
    void destroy();      // aclDestroyTensor now; the memory stays

private:
    void reset();

    aclTensor* handle_ = nullptr;
    void* data_ = nullptr;
    std::size_t bytes_ = 0;
    bool device_ = false;        // data_ is an aclrtMalloc block this tensor frees
    std::vector<uint8_t> host_;  // host memory this tensor owns
};

// A communicator group of `size` thread ranks (HcclCommInitAll), destroyed at scope end.
class Group {
public:
    explicit Group(int size);
    explicit Group(std::vector<HcclComm> comms);  // ranks made elsewhere (e.g. a rank table)
    ~Group();
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;
    bool ok() const { return !comms_.empty(); }
    const std::string& name() const { return name_; }
    int size() const { return static_cast<int>(comms_.size()); }

private:
    std::vector<HcclComm> comms_;
    std::string name_;
};

// The job: W ranks, E = W experts (L = 1), K = 1, H, BS tokens per rank, bf16, no quantization,
// expertScales 1.0. Token t of rank r goes to expert (t + r) % W, so combine returns x exactly.
struct JobShape {
    int world = 2;
    int64_t tokens = 2;                                  // BS
    int64_t hidden = 8;                                  // H
    int64_t capacity() const { return tokens * world; }  // A = maxBs * W * min(L, K)
};

// One rank's tensors, named by their aclnn parameters; combine reuses expandX, expertIds,
// expandIdx, epRecvCounts (as epSendCounts) and expertScales.
struct RankTensors {
    Tensor x, expert_ids, expert_scales, expand_x, expand_idx, expert_token_nums, ep_recv_counts;
    Tensor out_x;                  // combine's x
    std::vector<uint8_t> x_bytes;  // what x holds, for the check of combine's output
};

// The tensors of `rank`, on aclrtMalloc blocks (`device`) or host memory.
RankTensors make_rank(const JobShape& shape, int rank, bool device = true);

// Every argument of aclnnMoeDistributeDispatchGetWorkspaceSize; tests change any of them.
struct DispatchCall {
    const aclTensor* x = nullptr;
    const aclTensor* expert_ids = nullptr;
    const aclTensor* scales = nullptr;
    const aclTensor* x_active_mask = nullptr;
    const aclTensor* expert_scales = nullptr;
    const char* group_ep = nullptr;
    int64_t ep_world_size = 0, ep_rank_id = 0, moe_expert_num = 0;
    const char* group_tp = "";
    int64_t tp_world_size = 0, tp_rank_id = 0, expert_shard_type = 0, shared_expert_num = 0;
    int64_t shared_expert_rank_num = 0, quant_mode = 0, global_bs = 0, expert_token_nums_type = 0;
    aclTensor* expand_x = nullptr;
    aclTensor* dynamic_scales = nullptr;
    aclTensor* expand_idx = nullptr;
    aclTensor* expert_token_nums = nullptr;
    aclTensor* ep_recv_counts = nullptr;
    aclTensor* tp_recv_counts = nullptr;
    aclTensor* expand_scales = nullptr;
    aclnnStatus phase1(aclOpExecutor** executor) const;
};

// Every argument of aclnnMoeDistributeCombineGetWorkspaceSize that moedist reads.
struct CombineCall {
    const aclTensor* expand_x = nullptr;
    const aclTensor* expert_ids = nullptr;
    const aclTensor* expand_idx = nullptr;
    const aclTensor* ep_send_counts = nullptr;
    const aclTensor* expert_scales = nullptr;
    const aclTensor* tp_send_counts = nullptr;
    const char* group_ep = nullptr;
    int64_t ep_world_size = 0, ep_rank_id = 0, moe_expert_num = 0;
    const char* group_tp = "";
    int64_t tp_world_size = 0, tp_rank_id = 0, shared_expert_num = 0, shared_expert_rank_num = 0;
    int64_t global_bs = 0, out_dtype = 0, comm_quant_mode = 0;
    aclTensor* x = nullptr;
    aclnnStatus phase1(aclOpExecutor** executor) const;
};

DispatchCall dispatch_call(const JobShape& shape,
                           int rank,
                           const std::string& group,
                           const RankTensors& t);
CombineCall combine_call(const JobShape& shape,
                         int rank,
                         const std::string& group,
                         const RankTensors& t);

// What one rank saw: codes and messages of both phases of both operations (-1: not called) and
// whether combine's x equals x.
struct RankOutcome {
    aclnnStatus dispatch1 = -1, dispatch2 = -1, combine1 = -1, combine2 = -1;
    std::string dispatch1_msg, dispatch2_msg, combine1_msg, combine2_msg;
    bool x_ok = false;
};

// Hooks of run_job, each called on the rank's own thread (null: nothing).
struct JobHooks {
    bool device = true;  // tensors on aclrtMalloc blocks
    std::function<void(int rank, RankTensors&, DispatchCall&)> before_dispatch;
    // Between phase 1 and the op call; may run the executor itself (return true: run_job does
    // not call the op, and *status / *message are the outcome).
    std::function<bool(int rank, RankTensors&, aclOpExecutor*, aclnnStatus*, std::string*)>
        dispatch_between;
    std::function<void(int rank, RankTensors&, CombineCall&)> before_combine;
    std::function<bool(int rank, RankTensors&, aclOpExecutor*, aclnnStatus*, std::string*)>
        combine_between;
};

// Runs dispatch then combine on every rank of a fresh group (or of `group` when given). A rank
// whose phase 1 fails makes no rank call the op; a failed dispatch anywhere skips combine.
std::vector<RankOutcome> run_job(const JobShape& shape,
                                 const JobHooks& hooks = {},
                                 const Group* group = nullptr);

// True when a valid job on a fresh group of `world` ranks succeeds with combine's x == x on
// every rank (the process stays usable after a bad case).
bool fresh_job_succeeds(int world = 2);

// `bytes` bytes that end exactly at a PROT_NONE page: reading or writing one byte past them
// faults, with or without sanitizers.
class GuardedBuffer {
public:
    explicit GuardedBuffer(std::size_t bytes);
    ~GuardedBuffer();
    GuardedBuffer(const GuardedBuffer&) = delete;
    GuardedBuffer& operator=(const GuardedBuffer&) = delete;
    char* data() const { return data_; }

private:
    void* map_ = nullptr;
    std::size_t map_bytes_ = 0;
    char* data_ = nullptr;
};

// A temporary directory, removed with its contents at scope end.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string write(const std::string& name, const std::string& text) const;

private:
    std::string path_;
};

// A rank table of `ranks` devices on one loopback server, rank_ids "0".."ranks-1".
std::string rank_table_text(int ranks);

}  // namespace hostile
