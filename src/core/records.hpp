// What each rank publishes in the exchange round of a call (threads: plain pointers).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/plan.hpp"
#include "moedist/moedist.hpp"
#include "transport/local_group.hpp"

namespace moedist::core {

// The attributes that must agree on every rank of a call (SPEC §7; mismatch is 361001).
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
    const transport::LocalGroup* peer_group = nullptr;  // T == 2: my TP peer's EP group
    int32_t error = 0;                                  // a Code, 0 when fine
    char error_message[256] = {};

    void set_error(const Status& status);
};

struct DispatchRecord {
    RecordHeader header;
    int64_t ep_rank = 0;
    int64_t num_tokens = 0;
    const SendPlan* plan = nullptr;
    TensorView x;
    TensorView scales;         // data == nullptr when absent
    TensorView expert_scales;  // data == nullptr when absent
};

struct CombineRecord {
    RecordHeader header;
    int64_t ep_rank = 0;
    int64_t num_tokens = 0;
    TensorView expand_x;
    TensorView ep_send_counts;
    TensorView tp_send_counts;  // data == nullptr when T == 1
    int64_t tp_rank = 0;
};

// A rank's record in its TP group: where its EP group's records are.
struct TpRecord {
    AttrDigest attrs;
    transport::LocalGroup* ep_group = nullptr;
    uint64_t ep_call = 0;
    int64_t ep_rank = 0;
};

template <class Record>
const Record& record_of(const transport::LocalGroup& group, int rank, uint64_t call) {
    static_assert(std::is_trivially_copyable_v<Record>);
    static_assert(sizeof(Record) <= transport::LocalGroup::kMaxRecordBytes);
    return *static_cast<const Record*>(group.record(rank, call));
}

}  // namespace moedist::core
