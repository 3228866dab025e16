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
//   TpRecord        attrs | my EP group, my call number there, my EP rank | relay, error
//   TpRelayRecord   verdict | rows | the rows, scales, extra and counts the TP peer copies
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/plan.hpp"
#include "moedist/moedist.hpp"
#include "transport/transport.hpp"

namespace moedist::core {

// What a call's attributes are read from (make_digest).
struct CallFacts {
    int64_t op = 0;  // 1 dispatch, 2 combine
    const MoeConfig* config = nullptr;
    int64_t top_k = 0;
    int64_t hidden = 0;
    DType x_dtype = DType::kBFloat16;
    DType expand_dtype = DType::kBFloat16;
    bool has_expert_scales = false;
    int64_t extra_columns = 0;  // dispatch: extra's columns (0: none)
    DType extra_dtype = DType::kBFloat16;
};

// Every attribute that must agree on every rank of a call (a mismatch is 361001), each declared
// once: its digest field, the name messages give it, and its value (an int64 read from a
// CallFacts `f`). Adding an attribute is one line here.
#define MOEDIST_CALL_ATTRIBUTES(X)                                                               \
    X(op, "operation", f.op)                                                                     \
    X(api, "api (V1 or V2 operator family)", static_cast<int64_t>(f.config->api))                \
    X(ep_world_size, "epWorldSize", f.config->ep_world_size)                                     \
    X(moe_expert_num, "moeExpertNum", f.config->moe_expert_num)                                  \
    X(shared_expert_rank_num, "sharedExpertRankNum", f.config->shared_expert_rank_num)           \
    X(shared_expert_num, "sharedExpertNum", f.config->shared_experts())                          \
    X(tp_size, "tpWorldSize", f.config->tp_size())                                               \
    X(top_k, "K (expertIds dim 1)", f.top_k)                                                     \
    X(hidden, "H (hidden size)", f.hidden)                                                       \
    X(quant_mode, "quantMode", f.op == 1 ? f.config->quant_mode : 0)                             \
    X(global_bs, "globalBs", f.config->global_bs)                                                \
    X(row_layout, "rowLayout", static_cast<int64_t>(f.config->row_layout))                       \
    X(comm_quant_mode, "commQuantMode", f.op == 2 ? f.config->comm_quant_mode : 0)               \
    X(x_dtype, "x dtype", static_cast<int64_t>(f.x_dtype))                                       \
    X(expand_dtype, "expandX dtype", static_cast<int64_t>(f.expand_dtype))                       \
    X(has_expert_scales, "expertScales presence", f.has_expert_scales ? 1 : 0)                   \
    X(extra_columns, "extra columns", f.extra_columns)                                           \
    X(extra_dtype, "extra dtype", f.extra_columns > 0 ? static_cast<int64_t>(f.extra_dtype) : 0) \
    X(zero_expert_num, "zeroExpertNum", f.config->zero_expert_num)                               \
    X(copy_expert_num, "copyExpertNum", f.config->copy_expert_num)                               \
    X(const_expert_num, "constExpertNum", f.config->const_expert_num)

// The attributes' values, as every rank's record carries them.
struct AttrDigest {
#define MOEDIST_DIGEST_FIELD(field, name, value) int64_t field = 0;
    MOEDIST_CALL_ATTRIBUTES(MOEDIST_DIGEST_FIELD)
#undef MOEDIST_DIGEST_FIELD

    static const int kNumFields;
    int64_t field(int i) const {
        int64_t value = 0;
        std::memcpy(&value,
                    reinterpret_cast<const char*>(this) + i * static_cast<int>(sizeof(int64_t)),
                    sizeof(value));
        return value;
    }
    static const char* field_name(int i);
};

AttrDigest make_digest(const CallFacts& facts);

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

// The view `ref` describes, over `data` (its shape, strides and dtype; nothing checked).
TensorView view_over(const TensorRef& ref, void* data);

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
    // int32: expert_begin[E + 1], entries_by_expert[BS·K], then (when active_listed) the active
    // tokens, num_active of them; else tokens [0, num_active) are the active ones.
    transport::RegionRef plan;
    int64_t num_active = 0;
    int32_t active_listed = 0;
    int32_t bad_id = 0;  // the plan found an active id outside [0, E') (first one below)
    int32_t bad_value = 0;
    int32_t bad_mask = 0;  // a 1-D mask that is not a prefix (first bad token below)
    int64_t bad_mask_token = 0;
    int64_t bad_token = 0;
    int64_t bad_k = 0;
    TensorRef x;
    TensorRef scales;         // absent when not given
    TensorRef expert_scales;  // absent when not given
    TensorRef extra;          // absent when not given: (BS, S) bytes beside each row
    // When the mode's quantization does not depend on the expert (no smooth or per-expert
    // scales), the sender quantizes each token once: its BS rows (expandX's dtype) and their
    // scales (dynamicScales' layout per row); receivers copy them. Absent otherwise.
    TensorRef staged_rows;
    TensorRef staged_scales;
    int64_t most_rows_to_one_expert =
        0;  // the largest block this sender sends (a padded layout's bound)
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
    TensorRef assist;          // V2: the triples of the own rows (combine checks its rows by them)
    // Expert-padded rows: maxBs when expand_x (and assist) are published in that layout, 0 when
    // they were staged packed (only the rows, not the gaps) or the layout is packed.
    int64_t padded_stride = 0;
};

// A rank's record in its TP group: where its EP group's records are.
struct TpRecord {
    AttrDigest attrs;
    transport::GroupRef ep_group;
    uint64_t ep_call = 0;
    int64_t ep_rank = 0;
    int64_t ep_size = 0;
    int32_t relay = 0;  // 1: my EP group spans nodes, so the pair relays rows (tp_relay.hpp)
    int32_t error = 0;  // 1: my first phase failed (an aborted call): no relay round follows
};

// A rank's record in its TP pair's relay round (EP groups that span nodes, tp_relay.hpp).
// Dispatch: my own rows (expandX, dynamicScales and extra rows [0, rows)) and my epRecvCounts'
// own blocks, which the peer copies after its own. Combine: the `rows` partial rows I hold of the
// peer's tokens (expandX rows [my own, my own + rows)), which the peer adds to its own.
struct TpRelayRecord {
    int32_t error = 0;  // a Code, 0 when fine: the peer reads nothing and fails with it
    char error_message[256] = {};
    int64_t rows = 0;
    TensorRef rows_x;
    TensorRef scales;  // absent unless the dispatch makes scales
    TensorRef extra;   // absent unless the dispatch carries extra columns
    TensorRef counts;  // dispatch: epRecvCounts' own blocks

    void set_error(const Status& status);
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
    int64_t experts = 0;  // E
    int64_t top_k = 0;    // K
    int64_t hidden = 0;   // H
    int64_t nodes = 1;    // nodes of the group
    DType x_dtype = DType::kBFloat16;
    DType expand_dtype = DType::kBFloat16;
    int64_t local_blocks_moe = 0;  // W·L: epSendCounts entries of a MoE rank
    bool tp = false;
    bool v2 = false;
    int64_t scale_rows = 0;     // per-expert scales' rows: E + 1 (V1), N + E (V2)
    int64_t padded_stride = 0;  // combine: maxBs when owners' rows are expert-padded, else 0
    int64_t extra_columns = 0;  // dispatch: S of extra (0: none), in extra_dtype
    DType extra_dtype = DType::kBFloat16;
};

// Empty when `rec`, published by EP rank `rank`, is one this rank can use: every field inside
// its range and every tensor inside the region that carries it; else the first field that is
// not, in words (the caller names the rank and the group).
std::string check_dispatch_record(const DispatchRecord& rec, int64_t rank, const RecordBounds& b);
std::string check_combine_record(const CombineRecord& rec, int64_t rank, const RecordBounds& b);

// Empty when a sender's plan arrays (expert_begin[E + 1], entries_by_expert[BS·K], then
// `listed` active tokens, as published) are a plan over BS·K entries with `num_active` active
// tokens (ascending, in [0, BS)); else why not.
std::string check_plan_arrays(const int32_t* arrays,
                              int64_t experts,
                              int64_t num_tokens,
                              int64_t top_k,
                              int64_t num_active = -1,
                              bool listed = false);

// Empty when `ref` describes a tensor of `ndim` dims of `dtype` whose extent lies inside its
// region (when it has one); else why not.
std::string check_tensor_ref(const TensorRef& ref, int32_t ndim, DType dtype, const char* name);

}  // namespace moedist::core
