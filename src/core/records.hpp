// What each rank publishes in the first round of a call: plain bytes with no pointers. Memory is
// named by transport::RegionRef (mapped back by the reader through its endpoint), groups by
// transport::GroupRef.
//
// A record comes from another process: the reader copies it out of the shared block once
// (CallRounds keeps the copies) and checks every field it will use against what it knows on its
// own — its attributes, the bounds of the regions the record names — before using any
// (check_dispatch_record, check_combine_record). Nothing in a record becomes an address, an index
// or a size before it passed.
//
//   DispatchRecord  header | ep rank, BS | plan: expert_begin (E+1 int32) then entries_by_expert
//                   (BS·K int32) | x, scales, expertScales | staged rows and their scales
//   CombineRecord   header | ep rank, BS, tp rank | expandX, epSendCounts, tpSendCounts
//   TpRecord        attrs | my EP group, my call number there, my EP rank
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/plan.hpp"
#include "moedist/moedist.hpp"
#include "transport/transport.hpp"

namespace moedist::core {

// The attributes that must agree on every rank of a call (docs/contract.md §7; mismatch is 361001).
struct AttrDigest {
    int64_t op = 0;  // 1 dispatch, 2 combine
    int64_t ep_world_size = 0;
    int64_t moe_expert_num = 0;
    int64_t shared_expert_rank_num = 0;
    int64_t shared_expert_num = 0;
    int64_t tp_size = 0;
    int64_t top_k = 0;
    int64_t hidden = 0;
    int64_t quant_mode = 0;
    int64_t global_bs = 0;
    int64_t comm_quant_mode = 0;
    int64_t x_dtype = 0;
    int64_t expand_dtype = 0;
    int64_t has_expert_scales = 0;

    static constexpr int kNumFields = 14;
    int64_t field(int i) const {
        int64_t value = 0;
        std::memcpy(&value,
                    reinterpret_cast<const char*>(this) + i * static_cast<int>(sizeof(int64_t)),
                    sizeof(value));
        return value;
    }
    static const char* field_name(int i);
};
static_assert(sizeof(AttrDigest) == AttrDigest::kNumFields * sizeof(int64_t));

AttrDigest make_digest(int64_t op,
                       const MoeConfig& config,
                       int64_t top_k,
                       int64_t hidden,
                       DType x_dtype,
                       DType expand_dtype,
                       bool has_expert_scales);

// Empty when a and b agree, else "<field> must agree on every rank of <where>, got a on rank i and
// b on rank j" (`where` names the group or groups, quoted).
std::string compare_digests(
    const AttrDigest& a, int rank_a, const AttrDigest& b, int rank_b, const std::string& group);

// The start of every record: what all ranks of both EP groups must agree on, and a verdict this
// rank reached on its own before arriving (so every rank can fail with it).
struct RecordHeader {
    AttrDigest attrs;
    transport::GroupRef peer_group;  // T == 2: my TP peer's EP group (id 0 otherwise)
    int32_t error = 0;               // a Code, 0 when fine
    char error_message[256] = {};

    void set_error(const Status& status);
};

// A tensor as a peer names it: the region from element [0, ...] to the view's last element.
struct TensorRef {
    transport::RegionRef region;
    DType dtype = DType::kFloat32;
    int32_t ndim = 0;
    int64_t shape[2] = {0, 0};
    int64_t strides[2] = {0, 0};
    bool present() const { return ndim > 0; }
};

// Bytes from a view's first to one past its last element (0 for an empty view).
std::size_t extent_bytes(const TensorView& view);

// Exposes `view` (1 or 2 dims) on `endpoint` (staged into scratch slot `stage` when peers could
// not map its memory) and describes it.
Status publish_tensor(transport::Transport& endpoint,
                      const TensorView& view,
                      int stage,
                      TensorRef* out);

// The view of a peer's tensor in this process (data null when absent or not mappable).
TensorView view_of(transport::Transport& endpoint, int rank, const TensorRef& ref);

struct DispatchRecord {
    // Rows to every receiver (when W <= kRecordedRanks) and tokens every node needs (when the
    // group spans nodes): what every rank must know before any bytes cross nodes.
    static constexpr int kRecordedRanks = 64;
    static constexpr int kMaxNodes = 16;

    RecordHeader header;
    int64_t ep_rank = 0;
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t num_experts = 0;
    transport::RegionRef plan;  // int32: expert_begin[E + 1], then entries_by_expert[BS·K]
    int32_t bad_id = 0;         // the plan found an id outside [0, E) (first one below)
    int32_t bad_value = 0;
    int64_t bad_token = 0;
    int64_t bad_k = 0;
    TensorRef x;
    TensorRef scales;         // absent when not given
    TensorRef expert_scales;  // absent when not given
    // When the mode's quantization does not depend on the expert (no smooth or per-expert
    // scales), the sender quantizes each token once: its BS rows (expandX's dtype) and their
    // scales (dynamicScales' layout per row); receivers copy them. Absent otherwise.
    TensorRef staged_rows;
    TensorRef staged_scales;
    int32_t rows_to[kRecordedRanks] = {};
    int32_t tokens_to_node[kMaxNodes] = {};
};

struct CombineRecord {
    RecordHeader header;
    int64_t ep_rank = 0;
    int64_t num_tokens = 0;
    int64_t tp_rank = 0;
    TensorRef expand_x;
    TensorRef ep_send_counts;
    TensorRef tp_send_counts;  // absent when T == 1
};

// A rank's record in its TP group: where its EP group's records are.
struct TpRecord {
    AttrDigest attrs;
    transport::GroupRef ep_group;
    uint64_t ep_call = 0;
    int64_t ep_rank = 0;
    int64_t ep_size = 0;
};

template <class Record>
const Record& record_of(const transport::Transport& endpoint, int rank, uint64_t call) {
    static_assert(std::is_trivially_copyable_v<Record>);
    static_assert(sizeof(Record) <= transport::Transport::kMaxRecordBytes);
    return *reinterpret_cast<const Record*>(endpoint.record(rank, call));
}

// What a reader knows on its own about every record of a call (its attributes, which every
// rank's header carries and check_headers compared).
struct RecordBounds {
    int64_t world = 0;
    int64_t experts = 0;       // E
    int64_t top_k = 0;         // K
    int64_t hidden = 0;        // H
    int64_t nodes = 1;         // nodes of the group
    DType x_dtype = DType::kBFloat16;
    DType expand_dtype = DType::kBFloat16;
    int64_t local_blocks_moe = 0;     // W·L: epSendCounts entries of a MoE rank
    bool tp = false;
};

// Empty when `rec`, published by EP rank `rank`, is one this rank can use: every field inside
// its range and every tensor inside the region that carries it; else the first field that is
// not, in words (the caller names the rank and the group).
std::string check_dispatch_record(const DispatchRecord& rec, int64_t rank, const RecordBounds& b);
std::string check_combine_record(const CombineRecord& rec, int64_t rank, const RecordBounds& b);

// Empty when a sender's plan arrays (expert_begin[E + 1] then entries_by_expert[BS·K], as
// published) are a plan over BS·K entries; else why not.
std::string check_plan_arrays(const int32_t* arrays, int64_t experts, int64_t num_tokens, int64_t top_k);

// Empty when `ref` describes a tensor of `ndim` dims of `dtype` whose extent lies inside its
// region (when it has one); else why not.
std::string check_tensor_ref(const TensorRef& ref, int32_t ndim, DType dtype, const char* name);

}  // namespace moedist::core
