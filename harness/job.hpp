// A whole dispatch → expert → combine job on W·T ranks, with inputs that differ per (source rank,
// token, column), checked bit for bit against the naive reference. Shared by the tests,
// `moedist run` and the benchmarks.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "moedist/moedist.hpp"
#include "moedist/status.hpp"

namespace moedist::harness {

enum class Routing { kUniform, kZipf, kHot, kDuplicates };

// Where the ranks run: threads of this process, or processes forked from it (each joins its
// groups through a rank-table-style rendezvous; tensors in the shared-memory arena).
// kHosts: this host's share of the ranks as processes (like kProcesses), joined with the other
// hosts' through a rank table naming JobSpec::hosts (the ucx engine); each host checks its own.
enum class Backend { kThreads, kProcesses, kHosts };

struct JobSpec {
    int ep_world_size = 8;       // W
    int tp_size = 1;             // T
    int shared_rank_num = 0;     // S
    int moe_expert_num = 64;     // E
    int top_k = 8;               // K
    int hidden = 7168;           // H
    int64_t tokens = 32;         // BS of every rank (the maximum when uneven_bs)
    bool uneven_bs = false;      // BS differs per rank (some ranks get 0); globalBs = maxBs·W
    bool global_bs_zero = true;  // globalBs = 0 (only with equal BS)
    DType dtype = DType::kBFloat16;
    int quant_mode = 0;  // docs/contract.md §5: 0 (none or pre-quantized x), 1 static, 2 per-token,
                         // 3 per-group, 4 MX
    DType target = DType::kInt8;  // expandX dtype when quantizing; the 8-bit x with pre_quantized
    bool pre_quantized = false;   // quant_mode 0 with an 8-bit x (format `target`) and its scales
    int static_scales = 1;        // quant_mode 1 scales: 1 = (1,), 2 = (H,), 3 = (E[+1], H)
    bool smooth_scales = false;
    bool special_rows = false;  // token 0 all zero, token 1 one huge element, token 2 one NaN
    bool expand_scales = true;  // pass expertScales to dispatch and ask for expandScales
    int expert_token_nums_type = 0;
    int comm_quant_mode = 0;
    Routing routing = Routing::kUniform;
    double zipf_alpha = 1.2;
    bool strided_x = false;  // x with padded rows, a storage offset and column stride 2
    int extra_rows = 0;      // expandX / counts tensors larger than required
    bool split = false;      // dispatch and combine as send half + wait() (C++ API)
    int micro_batches = 1;   // 2: a layer benchmark's two micro-batches (RankRunner::layer)
    int expert_passes = 0;   // the layer's expert compute: multiply-adds per received element
    bool c_api = false;      // through aclCreateTensor + the aclnn two-phase API, with junk
                             // tensors in every reserved input, instead of the C++ API
    // docs/contract.md §3 tails: zeroed (C++: MoeConfig::zero_padding; C API:
    // MOEDIST_ZERO_PADDING=1), or left untouched (the default), so they must keep the poison the
    // harness wrote before the first call.
    bool zero_padding = false;
    // Outputs are poisoned before the first call so the reference check can see tails; a
    // timing-only job (false) leaves them untouched, so unwritten tails cost no memory.
    bool checked = true;
    Backend backend = Backend::kThreads;
    std::vector<std::string>
        hosts;           // kHosts: every host's address, rank r on host r / (W·T / hosts)
    int host_index = 0;  // kHosts: which of them this is
    uint64_t seed = 1;
    // The V2 family (docs/contract.md §10): torch_npu's *_v2 operators.
    bool v2 = false;
    int shared_expert_num = 1;  // N (S % N == 0) when S > 0
    int zero_experts = 0;       // Z, C, Q special experts (ids [E, E'))
    int copy_experts = 0;
    int const_experts = 0;
    int const_alpha_form = 1;       // const experts' alphas: 1 (Q,), 2 (Q, H)
    int mask = 0;                   // xActiveMask: 0 none, 1 (BS,) prefix, 2 (BS, K) entries
    double mask_inactive = -1;      // in [0, 1]: the inactive fraction (of tokens, or of entries);
                                    // -1: per rank at random (prefix: [0, BS/2]; entries: 30%)
    bool unweighted = false;        // combine gets an empty expertScales (every weight 1)
    bool shared_expert_x = false;   // combine adds sharedExpertX (S = 0)
    bool add_rms_norm = false;      // CombineAddRmsNorm: residualX and gamma; x, y and rstd out
    bool performance_info = false;  // V4: performanceInfo on dispatch and combine
    std::string comm_alg;           // commAlg (every value gives the same results)
    // Fault injection: global rank `bad_id_rank` (>= 0, with tokens) gets `bad_id_value` as its
    // expert id at flat index bad_id_slot % (BS*K) (an id outside [0, E) fails every rank).
    int bad_id_rank = -1;
    int64_t bad_id_slot = 0;
    int32_t bad_id_value = -1;

    std::string describe() const;
};

// Wall time of each phase: from the first rank's start to the last rank's return.
struct PhaseTimes {
    double dispatch_ms = 0;
    double combine_ms = 0;
    // A layer benchmark's step (micro_batches = 2): the layer run sequential, then overlapped.
    double layer_sequential_ms = 0;
    double layer_overlapped_ms = 0;
};

// The floors of `moedist bench`, each run by every rank on its own buffers with the byte counts
// of the last step (see RankRunner).
enum class Floor { kWrite, kRead, kMemcpy, kBarrier };

struct JobReport {
    bool ok = true;
    std::string first_mismatch;            // empty when ok
    std::vector<PhaseTimes> steps;         // one per step
    int64_t dispatch_bytes = 0;            // expandX bytes written (real rows, all ranks)
    int64_t combine_bytes = 0;             // expert-output bytes read (all ranks)
    std::vector<int64_t> rows_per_expert;  // E MoE experts, then S shared ranks (own EP group 0)
    // Backend::kHosts: what this host's ranks sent to other hosts in the last step (rows and
    // bytes, docs/performance.md), and what a flat all-to-all would have sent.
    int64_t cross_dispatch_rows = 0, cross_dispatch_bytes = 0, cross_dispatch_flat_rows = 0;
    int64_t cross_combine_rows = 0, cross_combine_bytes = 0;
};

// A job with its inputs, outputs and one persistent thread (or process) per rank.
class Job {
public:
    explicit Job(const JobSpec& spec);
    ~Job();
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;

    // One dispatch → expert → combine step on every rank; each phase timed alone.
    // After a failure every later step is skipped; status() says why.
    PhaseTimes step();
    // A floor of the last step on every rank (wall time, milliseconds).
    double floor(Floor which);
    // One MoE layer of two micro-batches (spec.micro_batches = 2) on every rank, sequential or
    // overlapped (RankRunner::layer); wall time in milliseconds.
    double layer(bool overlapped);

    // The first failed rank's status, or OK.
    Status status() const;
    // Every rank's status of the last step (global rank order).
    std::vector<Status> statuses() const;
    // Compares the last step's outputs of every rank with the reference (sets ok/first_mismatch)
    // and fills bytes and the load table.
    JobReport check(bool with_reference) const;
    // Bytes of every tensor the job allocated for its ranks.
    int64_t allocated_bytes() const;
    // The last step's bytes across hosts of this process's ranks (Backend::kHosts), into `report`.
    void add_cross_host_traffic(JobReport* report) const;

private:
    struct State;
    State* state_;
};

// Builds a Job, runs `steps` steps, and compares every output of every rank with the reference
// (check = false skips the reference). `on_step` (optional) is called after each step.
JobReport run_job(const JobSpec& spec,
                  int steps,
                  bool check,
                  const std::function<void(int)>& on_step = nullptr);

// GoogleTest prints a spec by its description.
void PrintTo(const JobSpec& spec, std::ostream* out);

// expandX's dtype for a spec.
DType expand_dtype(const JobSpec& spec);

// Rejects specs the generic profile would reject, with a one-line reason.
std::string spec_error(const JobSpec& spec);

}  // namespace moedist::harness
