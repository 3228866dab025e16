#include "core/records.hpp"

#include <iterator>

#include "moedist/config.hpp"

namespace moedist::core {

namespace {
template <std::size_t N>
void store_error(const Status& status, int32_t* code, char (&message)[N]) {
    *code = status.raw_code();
    const std::string& text = status.message();
    const std::size_t n = text.size() < N - 1 ? text.size() : N - 1;
    std::memcpy(message, text.data(), n);
    message[n] = '\0';
}
}  // namespace

void RecordHeader::set_error(const Status& status) { store_error(status, &error, error_message); }
void TpRelayRecord::set_error(const Status& status) { store_error(status, &error, error_message); }

namespace {
#define MOEDIST_DIGEST_NAME(field, name, value) name,
constexpr const char* kAttributeNames[] = {MOEDIST_CALL_ATTRIBUTES(MOEDIST_DIGEST_NAME)};
#undef MOEDIST_DIGEST_NAME
}  // namespace

const int AttrDigest::kNumFields = static_cast<int>(std::size(kAttributeNames));
static_assert(sizeof(AttrDigest) == std::size(kAttributeNames) * sizeof(int64_t));

const char* AttrDigest::field_name(int i) { return kAttributeNames[i]; }

AttrDigest make_digest(const CallFacts& f) {
    AttrDigest d;
#define MOEDIST_DIGEST_SET(field, name, value) d.field = (value);
    MOEDIST_CALL_ATTRIBUTES(MOEDIST_DIGEST_SET)
#undef MOEDIST_DIGEST_SET
    return d;
}

std::string compare_digests(
    const AttrDigest& a, int rank_a, const AttrDigest& b, int rank_b, const std::string& group) {
    for (int i = 0; i < AttrDigest::kNumFields; ++i) {
        if (a.field(i) == b.field(i)) continue;
        return std::string(AttrDigest::field_name(i)) + " must agree on every rank of " + group +
               ", got " + std::to_string(a.field(i)) + " on rank " + std::to_string(rank_a) +
               " and " + std::to_string(b.field(i)) + " on rank " + std::to_string(rank_b);
    }
    return {};
}

std::size_t extent_bytes(const TensorView& view) {
    int64_t last = 0;
    for (int32_t d = 0; d < view.ndim; ++d) {
        if (view.dim(d) == 0) return 0;
        last += (view.dim(d) - 1) * view.stride(d);
    }
    return static_cast<std::size_t>(last + 1) * dtype_size(view.dtype);
}

Status publish_tensor(transport::Transport& endpoint,
                      const TensorView& view,
                      int stage,
                      TensorRef* out) {
    *out = TensorRef{};
    if (view.ndim < 1 || view.ndim > 2) return Status::Ok();  // absent
    out->dtype = view.dtype;
    out->ndim = view.ndim;
    for (int32_t d = 0; d < view.ndim; ++d) {
        out->shape[d] = view.dim(d);
        out->strides[d] = view.stride(d);
    }
    const std::size_t bytes = extent_bytes(view);
    if (bytes == 0 || view.data == nullptr) return Status::Ok();
    return endpoint.expose(view.data, bytes, stage, &out->region);
}

TensorView view_over(const TensorRef& ref, void* data) {
    TensorView view;
    view.dtype = ref.dtype;
    view.ndim = ref.ndim;
    for (int32_t d = 0; d < ref.ndim; ++d) {
        view.shape[static_cast<std::size_t>(d)] = ref.shape[d];
        view.strides[static_cast<std::size_t>(d)] = ref.strides[d];
    }
    view.data = data;
    return view;
}

TensorView view_of(transport::Transport& endpoint, int rank, const TensorRef& ref) {
    const bool mappable = ref.present() && !ref.region.empty();
    return view_over(ref,
                     mappable ? const_cast<std::byte*>(endpoint.map(rank, ref.region)) : nullptr);
}

namespace {

bool known_dtype(DType d) {
    return static_cast<int32_t>(d) >= static_cast<int32_t>(DType::kFloat32) &&
           static_cast<int32_t>(d) <= static_cast<int32_t>(DType::kE8M0);
}

// Bytes from the first to one past the last element of a checked ref (shapes and strides in
// [0, 2^40)), or -1 past 2^62.
__int128 extent_of(const TensorRef& ref) {
    __int128 last = 0;
    for (int32_t d = 0; d < ref.ndim; ++d) {
        if (ref.shape[d] == 0) return 0;
        last += static_cast<__int128>(ref.shape[d] - 1) * ref.strides[d];
    }
    return (last + 1) * static_cast<__int128>(dtype_size(ref.dtype));
}

std::string text(int64_t v) { return std::to_string(v); }

}  // namespace

std::string check_tensor_ref(const TensorRef& ref, int32_t ndim, DType dtype, const char* name) {
    const std::string what = std::string(name) + " ";
    if (ref.ndim != ndim) return what + "must have " + text(ndim) + " dims, got " + text(ref.ndim);
    if (!known_dtype(ref.dtype) || ref.dtype != dtype)
        return what + "must be " + dtype_name(dtype) + ", got dtype " +
               text(static_cast<int32_t>(ref.dtype));
    constexpr int64_t kLimit = int64_t{1} << 40;
    for (int32_t d = 0; d < ndim; ++d) {
        if (ref.shape[d] < 0 || ref.shape[d] >= kLimit || ref.strides[d] < 0 ||
            ref.strides[d] >= kLimit)
            return what + "must have shapes and strides in [0, 2^40), got dim " + text(d) + ": " +
                   text(ref.shape[d]) + " / " + text(ref.strides[d]);
    }
    const __int128 extent = extent_of(ref);
    if (!ref.region.empty() && extent > static_cast<__int128>(ref.region.bytes))
        return what + "must lie inside the region that carries it (" +
               text(static_cast<int64_t>(ref.region.bytes)) + " bytes), got an extent of " +
               text(static_cast<int64_t>(extent)) + " bytes";
    return {};
}

std::string check_dispatch_record(const DispatchRecord& rec, int64_t rank, const RecordBounds& b) {
    if (rec.ep_rank != rank)
        return "must be EP rank " + text(rank) + "'s, got EP rank " + text(rec.ep_rank) + "'s";
    if (rec.num_tokens < 0 || rec.num_tokens > MoeConfig::kMaxGlobalBs ||
        rec.num_tokens * b.top_k > INT32_MAX)
        return "BS must be in [0, " + text(MoeConfig::kMaxGlobalBs) +
               "] with BS*K <= 2^31 - 1, got " + text(rec.num_tokens);
    if (rec.top_k != b.top_k) return "K must be " + text(b.top_k) + ", got " + text(rec.top_k);
    if (rec.num_experts != b.experts)
        return "E must be " + text(b.experts) + ", got " + text(rec.num_experts);
    if (rec.bad_id != 0 && rec.bad_id != 1)
        return "its bad-id flag must be 0 or 1, got " + text(rec.bad_id);
    const int64_t bs = rec.num_tokens;
    if (rec.num_active < 0 || rec.num_active > bs ||
        (rec.active_listed != 0 && rec.active_listed != 1))
        return "its active tokens must be in [0, BS], got " + text(rec.num_active);
    if (!b.v2 && (rec.num_active != bs || rec.active_listed != 0))
        return "its tokens must all be active (V1), got " + text(rec.num_active) + " of " +
               text(bs);
    if (rec.bad_mask != 0 && rec.bad_mask != 1)
        return "its bad-mask flag must be 0 or 1, got " + text(rec.bad_mask);
    const uint64_t plan_bytes = static_cast<uint64_t>(b.experts + 1 + bs * b.top_k +
                                                      (rec.active_listed ? rec.num_active : 0)) *
                                4;
    if (!rec.plan.empty() && rec.plan.bytes != plan_bytes)
        return "its plan must be " + text(static_cast<int64_t>(plan_bytes)) + " bytes, got " +
               text(static_cast<int64_t>(rec.plan.bytes));
    if (std::string why = check_tensor_ref(rec.x, 2, b.x_dtype, "x"); !why.empty()) return why;
    if (rec.x.shape[0] != bs || rec.x.shape[1] != b.hidden)
        return "x must be (" + text(bs) + ", " + text(b.hidden) + "), got (" +
               text(rec.x.shape[0]) + ", " + text(rec.x.shape[1]) + ")";
    if (rec.scales.present()) {
        const int32_t nd = rec.scales.ndim == 2 ? 2 : 1;
        if (std::string why = check_tensor_ref(rec.scales, nd, DType::kFloat32, "scales");
            !why.empty())
            return why;
        if (nd == 2 && rec.scales.shape[1] != b.hidden)
            return "scales must have H = " + text(b.hidden) + " columns, got " +
                   text(rec.scales.shape[1]);
        if (nd == 2 && rec.scales.shape[0] > b.scale_rows)
            return "scales must have at most " + text(b.scale_rows) + " rows, got " +
                   text(rec.scales.shape[0]);
        if (nd == 1 && rec.scales.shape[0] > std::max<int64_t>(b.hidden, bs))
            return "scales must have at most max(H, BS) entries, got " + text(rec.scales.shape[0]);
    }
    if (rec.expert_scales.present()) {
        if (std::string why =
                check_tensor_ref(rec.expert_scales, 2, DType::kFloat32, "expertScales");
            !why.empty())
            return why;
        if (rec.expert_scales.shape[0] != bs || rec.expert_scales.shape[1] != b.top_k)
            return "expertScales must be (BS, K), got (" + text(rec.expert_scales.shape[0]) + ", " +
                   text(rec.expert_scales.shape[1]) + ")";
    }
    if (rec.staged_rows.present()) {
        if (std::string why = check_tensor_ref(rec.staged_rows, 2, b.expand_dtype, "staged rows");
            !why.empty())
            return why;
        if (rec.staged_rows.shape[0] != bs || rec.staged_rows.shape[1] != b.hidden)
            return "staged rows must be (BS, H), got (" + text(rec.staged_rows.shape[0]) + ", " +
                   text(rec.staged_rows.shape[1]) + ")";
    }
    if (rec.staged_scales.present()) {
        if (!rec.staged_rows.present()) return "staged scales must come with staged rows";
        const int32_t nd = rec.staged_scales.ndim == 2 ? 2 : 1;
        const DType sd = rec.staged_scales.dtype;
        if (sd != DType::kFloat32 && sd != DType::kUInt8 && sd != DType::kE8M0)
            return "staged scales must be float32, uint8 or e8m0";
        if (std::string why = check_tensor_ref(rec.staged_scales, nd, sd, "staged scales");
            !why.empty())
            return why;
        if (rec.staged_scales.shape[0] != bs ||
            (nd == 2 && rec.staged_scales.shape[1] > b.hidden + 1))
            return "staged scales must have BS rows of at most H + 1 entries";
    }
    if (b.extra_columns > 0) {
        if (std::string why = check_tensor_ref(rec.extra, 2, b.extra_dtype, "extra"); !why.empty())
            return why;
        if (rec.extra.shape[0] != bs || rec.extra.shape[1] != b.extra_columns)
            return "extra must be (BS, " + text(b.extra_columns) + "), got (" +
                   text(rec.extra.shape[0]) + ", " + text(rec.extra.shape[1]) + ")";
    } else if (rec.extra.present()) {
        return "must carry no extra (the call has none)";
    }
    if (rec.most_rows_to_one_expert < 0 || rec.most_rows_to_one_expert > bs * b.top_k)
        return "rows to one expert must be in [0, BS*K], got " + text(rec.most_rows_to_one_expert);
    if (b.world <= DispatchRecord::kRecordedRanks) {
        for (int64_t d = 0; d < b.world; ++d) {
            if (rec.rows_to[d] < 0 || rec.rows_to[d] > bs * (b.top_k + 1))
                return "rows to rank " + text(d) + " must be in [0, BS*(K + 1)], got " +
                       text(rec.rows_to[d]);
        }
    }
    for (int64_t n = 0; n < std::min<int64_t>(b.nodes, DispatchRecord::kMaxNodes); ++n) {
        if (rec.tokens_to_node[n] < 0 || rec.tokens_to_node[n] > bs)
            return "tokens to node " + text(n) + " must be in [0, BS], got " +
                   text(rec.tokens_to_node[n]);
    }
    return {};
}

std::string check_combine_record(const CombineRecord& rec, int64_t rank, const RecordBounds& b) {
    if (rec.ep_rank != rank)
        return "must be EP rank " + text(rank) + "'s, got EP rank " + text(rec.ep_rank) + "'s";
    if (rec.num_tokens < 0 || rec.num_tokens > MoeConfig::kMaxGlobalBs)
        return "BS must be in [0, " + text(MoeConfig::kMaxGlobalBs) + "], got " +
               text(rec.num_tokens);
    if (rec.tp_rank != 0 && rec.tp_rank != 1)
        return "tpRankId must be 0 or 1, got " + text(rec.tp_rank);
    if (std::string why = check_tensor_ref(rec.expand_x, 2, b.expand_dtype, "expandX");
        !why.empty())
        return why;
    if (rec.padded_stride != 0 && rec.padded_stride != b.padded_stride)
        return "padded stride must be 0 or " + text(b.padded_stride) + ", got " +
               text(rec.padded_stride);
    if (rec.expand_x.shape[1] != b.hidden)
        return "expandX must have H = " + text(b.hidden) + " columns, got " +
               text(rec.expand_x.shape[1]);
    if (std::string why = check_tensor_ref(rec.ep_send_counts, 1, DType::kInt32, "epSendCounts");
        !why.empty())
        return why;
    if (rec.ep_send_counts.shape[0] < std::min<int64_t>(b.world, b.local_blocks_moe))
        return "epSendCounts must have at least W entries, got " +
               text(rec.ep_send_counts.shape[0]);
    if (b.tp) {
        if (std::string why =
                check_tensor_ref(rec.tp_send_counts, 1, DType::kInt32, "tpSendCounts");
            !why.empty())
            return why;
        if (rec.tp_send_counts.shape[0] < 2)
            return "tpSendCounts must have 2 entries, got " + text(rec.tp_send_counts.shape[0]);
    }
    if (b.v2) {  // the triples of its own rows (the reader bounds each index by its dim 0)
        if (std::string why = check_tensor_ref(rec.assist, 1, DType::kInt32, "assistInfo");
            !why.empty())
            return why;
    } else if (rec.assist.present()) {
        return "must carry no assistInfo (V1)";
    }
    return {};
}

std::string check_plan_arrays(const int32_t* arrays,
                              int64_t experts,
                              int64_t num_tokens,
                              int64_t top_k,
                              int64_t num_active,
                              bool listed) {
    const int64_t entries = num_tokens * top_k;
    if (arrays[0] != 0) return "its plan must start at 0, got " + text(arrays[0]);
    for (int64_t e = 0; e < experts; ++e) {
        if (arrays[e + 1] < arrays[e] || arrays[e + 1] > entries)
            return "its plan's expert offsets must rise within [0, BS*K], got " +
                   text(arrays[e + 1]) + " after " + text(arrays[e]);
    }
    const int32_t* entry = arrays + experts + 1;
    for (int64_t i = 0; i < arrays[experts]; ++i) {
        if (entry[i] < 0 || entry[i] >= entries)
            return "its plan's entries must be in [0, BS*K), got " + text(entry[i]);
    }
    if (listed) {
        const int32_t* active = entry + entries;
        for (int64_t i = 0; i < num_active; ++i) {
            if (active[i] < 0 || active[i] >= num_tokens || (i > 0 && active[i] <= active[i - 1]))
                return "its active tokens must rise within [0, BS), got " + text(active[i]);
        }
    }
    return {};
}

}  // namespace moedist::core
