#include "harness/job.hpp"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"

namespace moedist::harness {
namespace {

constexpr uint8_t kGarbage = 0xAB;     // poison of every byte output before the first call
constexpr float kPoisonScale = -7.0f;  // poison of the fp32 scale outputs
constexpr int32_t kSentinel = -12345;

uint64_t mix(uint64_t x) {  // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// A value in [0, 1) that depends on every argument.
double unit(uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d = 0) {
    const uint64_t h =
        mix(mix(mix(mix(seed ^ 0x51ED2701u) ^ a) ^ b) ^ (c * 0x2545F4914F6CDD1Dull)) ^ d;
    return static_cast<double>(mix(h) >> 11) * 0x1p-53;
}

// The harness's own conversions only shape inputs and expert outputs (any deterministic function
// serves); the fast inline ones keep the expert stage cheap.
uint16_t to_bits(DType dtype, float v) {
    return dtype == DType::kBFloat16 ? quant::f32_to_bf16(v) : quant::f32_to_f16(v);
}
float from_bits(DType dtype, uint16_t b) {
    return dtype == DType::kBFloat16 ? quant::bf16_to_f32(b) : quant::f16_to_f32(b);
}

struct Layout {
    int W, T, S, E, K, H, L;
    int64_t max_bs, global_bs;
    int ranks() const { return W * T; }
    int ep_of(int g) const { return g / T; }
    int tp_of(int g) const { return g % T; }
    bool shared(int ep) const { return ep < S; }
    int local_experts(int ep) const { return shared(ep) ? 1 : L; }
};

// One global rank's moedist-side buffers.
struct RankBuffers {
    std::vector<uint16_t> x_storage;     // fp16/bf16 x
    std::vector<uint8_t> x8_storage;     // pre-quantized x
    std::vector<uint8_t> dynamic_bytes;  // MX scale bytes
    TensorView x;
    std::vector<int32_t> expert_ids;
    std::vector<float> scales;
    std::vector<float> expert_scales;
    std::vector<uint8_t> expand_x;
    std::vector<float> dynamic_scales;
    std::vector<int32_t> expand_idx;
    std::vector<int64_t> expert_token_nums;
    std::vector<int32_t> ep_recv_counts;
    std::vector<int32_t> tp_recv_counts;
    std::vector<float> expand_scales;
    std::vector<uint16_t> expert_out;
    std::vector<uint16_t> x_out;
    int64_t rows = 0;  // T*A + extra
    Status status;
    std::vector<uint8_t> junk;  // storage of the reserved inputs (C API runs)
};

// The C API's view of a rank's tensors (C API runs); destroyed with the job.
struct AclTensors {
    std::vector<aclTensor*> owned;
    aclTensor *x = nullptr, *expert_ids = nullptr, *scales = nullptr, *expert_scales = nullptr;
    aclTensor *expand_x = nullptr, *dynamic_scales = nullptr, *expand_idx = nullptr,
              *expert_token_nums = nullptr;
    aclTensor *ep_recv_counts = nullptr, *tp_recv_counts = nullptr, *expand_scales = nullptr;
    aclTensor *expert_out = nullptr, *x_out = nullptr, *combine_scales = nullptr;
    aclTensor *junk_mask = nullptr, *junk_f32 = nullptr, *junk_i32 = nullptr;
    ~AclTensors() {
        for (aclTensor* t : owned) aclDestroyTensor(t);
    }
    // `storage` is where element offset 0 is; the view starts `offset` elements later.
    aclTensor* make(const TensorView& v,
                    const void* storage,
                    int64_t offset,
                    int64_t storage_elems) {
        aclDataType dtype = ACL_FLOAT;
        switch (v.dtype) {
            case DType::kBFloat16:
                dtype = ACL_BF16;
                break;
            case DType::kFloat16:
                dtype = ACL_FLOAT16;
                break;
            case DType::kInt8:
                dtype = ACL_INT8;
                break;
            case DType::kUInt8:
                dtype = ACL_UINT8;
                break;
            case DType::kFp8E4M3:
                dtype = ACL_FLOAT8_E4M3FN;
                break;
            case DType::kFp8E5M2:
                dtype = ACL_FLOAT8_E5M2;
                break;
            case DType::kHiFloat8:
                dtype = ACL_HIFLOAT8;
                break;
            case DType::kE8M0:
                dtype = ACL_FLOAT8_E8M0;
                break;
            case DType::kInt32:
                dtype = ACL_INT32;
                break;
            case DType::kInt64:
                dtype = ACL_INT64;
                break;
            case DType::kBool:
                dtype = ACL_BOOL;
                break;
            default:
                dtype = ACL_FLOAT;
                break;
        }
        const int64_t storage_dims[1] = {storage_elems};
        aclTensor* t = aclCreateTensor(v.shape.data(),
                                       static_cast<uint64_t>(v.ndim),
                                       dtype,
                                       v.strides.data(),
                                       offset,
                                       ACL_FORMAT_ND,
                                       storage_dims,
                                       1,
                                       const_cast<void*>(storage));
        owned.push_back(t);
        return t;
    }
    aclTensor* make(const TensorView& v) { return make(v, v.data, 0, v.numel()); }
};

std::vector<int32_t> route_token(const JobSpec& spec, const Layout& lay, int g, int64_t t) {
    std::vector<int32_t> ids;
    auto pick = [&](int k, int attempt) {
        const double u = unit(spec.seed,
                              1000 + static_cast<uint64_t>(g),
                              static_cast<uint64_t>(t),
                              static_cast<uint64_t>(k),
                              static_cast<uint64_t>(attempt));
        if (spec.routing == Routing::kZipf) {
            // Popularity of expert i is proportional to 1 / (i + 1)^alpha.
            double total = 0;
            for (int i = 0; i < lay.E; ++i) total += std::pow(i + 1.0, -spec.zipf_alpha);
            double target = u * total;
            for (int i = 0; i < lay.E; ++i) {
                target -= std::pow(i + 1.0, -spec.zipf_alpha);
                if (target < 0) return i;
            }
            return lay.E - 1;
        }
        return std::min(lay.E - 1, static_cast<int>(u * lay.E));
    };
    const bool distinct = spec.routing != Routing::kDuplicates;
    for (int k = 0; k < lay.K; ++k) {
        if (spec.routing == Routing::kHot && k == 0) {
            ids.push_back(0);
            continue;
        }
        for (int attempt = 0;; ++attempt) {
            const int id = pick(k, attempt);
            const bool seen = std::find(ids.begin(), ids.end(), id) != ids.end();
            if (distinct && seen) continue;
            if (!distinct) {
                // Duplicates are fine while no rank gets more than min(L, K) rows of this token.
                const int rank = lay.S + id / lay.L;
                int same_rank = 0;
                for (int other : ids) same_rank += (lay.S + other / lay.L == rank) ? 1 : 0;
                if (same_rank + 1 > std::min(lay.L, lay.K)) continue;
            }
            ids.push_back(id);
            break;
        }
    }
    return ids;
}

// Columns of dynamicScales per row: 1 (pre-quantized x, per-token), ⌈H/128⌉ (per-group), the
// even MX block count (MX bytes), 0 when the mode makes no scales.
int64_t scale_columns(const JobSpec& spec, int64_t H) {
    if (spec.quant_mode == 2 || (spec.quant_mode == 0 && spec.pre_quantized)) return 1;
    if (spec.quant_mode == 3) return (H + 127) / 128;
    if (spec.quant_mode == 4) return 2 * (((H + 31) / 32 + 1) / 2);
    return 0;
}

float decode8(DType dtype, uint8_t code) {
    switch (dtype) {
        case DType::kFp8E4M3:
            return quant::fp8_e4m3_to_f32(code);
        case DType::kFp8E5M2:
            return quant::fp8_e5m2_to_f32(code);
        case DType::kHiFloat8:
            return quant::hifloat8_to_f32(code);
        default:
            return static_cast<float>(static_cast<int8_t>(code));
    }
}

uint8_t encode8(DType dtype, float v) {
    switch (dtype) {
        case DType::kFp8E4M3:
            return quant::f32_to_fp8_e4m3(v);
        case DType::kFp8E5M2:
            return quant::f32_to_fp8_e5m2(v);
        default:
            return quant::f32_to_hifloat8(v);
    }
}

// A rank's received rows as the expert stage reads them.
struct Received {
    const uint8_t* expand_x;
    const float* scales;       // fp32 scales per row (× columns), or null
    const uint8_t* mx_scales;  // MX scale bytes per row (× columns), or null
    const int32_t* ep_recv_counts;
    const int32_t* tp_recv_counts;
};

// Element h of row `row`, dequantized as its mode says.
float dequantize(const JobSpec& spec, int64_t H, const Received& r, int64_t row, int64_t h) {
    const DType dtype = expand_dtype(spec);
    if (dtype_size(dtype) == 2) {
        uint16_t bits;
        std::memcpy(&bits, r.expand_x + (row * H + h) * 2, 2);
        return from_bits(dtype, bits);
    }
    const float q = decode8(dtype, r.expand_x[row * H + h]);
    const int64_t columns = scale_columns(spec, H);
    float scale = 1.0f;  // static quantization: the quantized value itself
    if (spec.quant_mode == 2 || spec.quant_mode == 0) scale = r.scales[row];
    if (spec.quant_mode == 3) scale = r.scales[row * columns + h / 128];
    if (spec.quant_mode == 4) scale = quant::e8m0_to_f32(r.mx_scales[row * columns + h / 32]);
    const float product = q * scale;
    return product;
}

// The expert stage: a deterministic function of the row, its global expert id and the TP rank.
void run_experts(const JobSpec& spec, const Layout& lay, int g, const Received& r, uint16_t* out) {
    const int ep = lay.ep_of(g);
    const int tp = lay.tp_of(g);
    const int local = lay.local_experts(ep);
    const int64_t own = lay.T == 2 ? r.tp_recv_counts[tp] : r.ep_recv_counts[local * lay.W - 1];
    const int64_t total = lay.T == 2 ? own + r.tp_recv_counts[1 - tp] : own;
    const int64_t H = lay.H;
    int le = 0;
    for (int64_t row = 0; row < total; ++row) {
        if (row < own) {
            while (le + 1 < local && row >= r.ep_recv_counts[le * lay.W + lay.W - 1]) ++le;
        } else {
            le = 0;  // peer rows: T == 2 has L == 1
        }
        const int expert = lay.shared(ep) ? lay.E : (ep - lay.S) * lay.L + le;
        const float alpha =
            (0.5f + static_cast<float>(expert % 13) / 16.0f) * (tp == 0 ? 0.75f : 0.25f);
        const float beta = static_cast<float>(expert % 5 - 2) / 8.0f;
        for (int64_t h = 0; h < H; ++h) {
            const float v = dequantize(spec, H, r, row, h);
            const float scaled = v * alpha;
            out[row * H + h] = to_bits(spec.dtype, scaled + beta);
        }
    }
}

template <class T>
std::string mismatch(int g, const char* tensor, int64_t index, T got, T want) {
    std::ostringstream out;
    out << "rank " << g << " " << tensor << "[" << index << "]: got " << +got << ", want " << +want;
    return out.str();
}

}  // namespace

std::string JobSpec::describe() const {
    std::ostringstream out;
    out << "W" << ep_world_size << "_T" << tp_size << "_S" << shared_rank_num << "_E"
        << moe_expert_num << "_K" << top_k << "_H" << hidden << "_BS" << tokens
        << (uneven_bs ? "u" : "") << "_" << dtype_name(dtype) << "_q" << quant_mode
        << (quant_mode != 0 || pre_quantized ? std::string("_") + dtype_name(target)
                                             : std::string())
        << (pre_quantized ? "_pre" : "")
        << (quant_mode == 1 ? "_s" + std::to_string(static_scales) : std::string())
        << (smooth_scales ? "s" : "") << "_c" << comm_quant_mode << "_r"
        << static_cast<int>(routing) << (strided_x ? "_strided" : "") << "_t"
        << expert_token_nums_type << (c_api ? "_capi" : "") << (special_rows ? "_special" : "")
        << (zero_padding ? "_zpad" : "");
    return out.str();
}

void PrintTo(const JobSpec& spec, std::ostream* out) { *out << spec.describe(); }

DType expand_dtype(const JobSpec& spec) {
    if (spec.quant_mode == 0) return spec.pre_quantized ? spec.target : spec.dtype;
    return spec.target;
}

std::string spec_error(const JobSpec& s) {
    if (s.ep_world_size < 1) return "--ranks must be >= 1";
    if (s.shared_rank_num < 0 || s.shared_rank_num >= s.ep_world_size)
        return "--shared-ranks must be in [0, ranks)";
    if (s.tp_size != 1 && s.tp_size != 2) return "--tp must be 1 or 2";
    if (s.moe_expert_num < 1 || s.moe_expert_num % (s.ep_world_size - s.shared_rank_num) != 0) {
        return "--experts must be a positive multiple of ranks - shared-ranks";
    }
    if (s.tp_size == 2 && s.moe_expert_num != s.ep_world_size - s.shared_rank_num) {
        return "--tp 2 needs one expert per MoE rank (experts = ranks - shared-ranks)";
    }
    if (s.top_k < 1 || s.top_k > s.moe_expert_num) return "--topk must be in [1, experts]";
    if (s.hidden < 1) return "--hidden must be >= 1";
    if (s.tokens < 0) return "--tokens must be >= 0";
    if (s.quant_mode < 0 || s.quant_mode > 4) return "quant mode must be in [0, 4]";
    const bool fp8 = s.target == DType::kFp8E4M3 || s.target == DType::kFp8E5M2;
    if (s.quant_mode == 0 && s.pre_quantized && !(fp8 || s.target == DType::kHiFloat8)) {
        return "a pre-quantized x must be fp8 e4m3, e5m2 or hifloat8";
    }
    if (s.quant_mode == 1 &&
        !(s.target == DType::kInt8 || (s.target == DType::kHiFloat8 && s.static_scales == 1))) {
        return "static quantization targets int8 (any scales) or hifloat8 (one scale)";
    }
    if (s.quant_mode == 2 && !(fp8 || s.target == DType::kInt8)) {
        return "per-token quantization targets int8 or fp8";
    }
    if (s.quant_mode >= 3 && !fp8) return "per-group and MX quantization target fp8";
    if (s.comm_quant_mode != 0 && s.comm_quant_mode != 2) return "comm quant mode must be 0 or 2";
    return {};
}

struct Job::State {
    JobSpec spec;
    Layout lay{};
    moedist_ref::JobConfig cfg;
    std::vector<moedist_ref::RankInput> inputs;
    std::vector<RankBuffers> buf;
    std::vector<std::vector<Communicator>> ep_groups;
    std::vector<std::vector<Communicator>> tp_groups;
    std::vector<std::optional<MoeDistributor>> moe;
    std::vector<DispatchInputs> din;
    std::vector<DispatchOutputs> dout;
    std::vector<std::unique_ptr<AclTensors>> acl;
    std::vector<std::vector<uint8_t>> copy_src, copy_dst;
    // Per rank, last task: start and end of dispatch (or memcpy) and of combine.
    struct Stamps {
        std::chrono::steady_clock::time_point d0, d1, c0, c1;
    };
    std::vector<Stamps> stamps;
    enum class Task { kStep, kMemcpy, kStop } task = Task::kStep;
    std::unique_ptr<std::barrier<>> control;  // ranks + the driving thread
    std::unique_ptr<std::barrier<>> ranks_sync;
    std::vector<std::thread> threads;

    void rank_main(int g);
    Status c_dispatch(int g);
    Status c_combine(int g);
    void run_step(int g);
    void run_memcpy(int g);
    int memcpy_elem = 2;
};

Job::Job(const JobSpec& spec) : state_(new State) {
    State& st = *state_;
    st.spec = spec;
    Layout& lay = st.lay;
    lay = Layout{spec.ep_world_size,
                 spec.tp_size,
                 spec.shared_rank_num,
                 spec.moe_expert_num,
                 spec.top_k,
                 spec.hidden,
                 spec.moe_expert_num / (spec.ep_world_size - spec.shared_rank_num),
                 spec.tokens,
                 0};
    lay.global_bs = (spec.uneven_bs || !spec.global_bs_zero) ? spec.tokens * spec.ep_world_size : 0;
    const int ranks = lay.ranks();
    const int64_t H = lay.H;
    const std::size_t out_elem = dtype_size(expand_dtype(spec));
    const int64_t scale_cols = scale_columns(spec, H);
    moedist_ref::JobConfig& cfg = st.cfg;
    std::vector<moedist_ref::RankInput>& inputs = st.inputs;
    std::vector<RankBuffers>& buf = st.buf;
    // Reference inputs and moedist buffers.
    cfg.ep_world_size = lay.W;
    cfg.tp_size = lay.T;
    cfg.shared_rank_num = lay.S;
    cfg.moe_expert_num = lay.E;
    cfg.top_k = lay.K;
    cfg.hidden = lay.H;
    cfg.global_bs = lay.global_bs;
    cfg.quant_mode = spec.quant_mode;
    auto elem = [](DType d) {
        switch (d) {
            case DType::kBFloat16:
                return moedist_ref::Elem::kBFloat16;
            case DType::kFloat16:
                return moedist_ref::Elem::kFloat16;
            case DType::kInt8:
                return moedist_ref::Elem::kInt8;
            case DType::kFp8E4M3:
                return moedist_ref::Elem::kFp8E4M3;
            case DType::kFp8E5M2:
                return moedist_ref::Elem::kFp8E5M2;
            default:
                return moedist_ref::Elem::kHiFloat8;
        }
    };
    cfg.x_elem = elem(spec.pre_quantized ? spec.target : spec.dtype);
    cfg.expand_elem = elem(expand_dtype(spec));
    cfg.combine_elem = elem(spec.dtype);
    cfg.static_scales = spec.quant_mode == 1 ? spec.static_scales : 0;
    cfg.has_smooth_scales = spec.smooth_scales && (spec.quant_mode == 2 || spec.quant_mode == 3);
    cfg.has_expert_scales = spec.expand_scales;
    cfg.expert_token_nums_type = spec.expert_token_nums_type;
    cfg.comm_quant_mode = spec.comm_quant_mode;

    inputs.resize(static_cast<std::size_t>(ranks));
    buf.resize(static_cast<std::size_t>(ranks));
    for (int g = 0; g < ranks; ++g) {
        auto& in = inputs[static_cast<std::size_t>(g)];
        auto& b = buf[static_cast<std::size_t>(g)];
        const int ep = lay.ep_of(g);
        int64_t bs = spec.tokens;
        if (spec.uneven_bs) {
            // Every third rank has no tokens; the others a random count up to maxBs.
            bs = (g % 3 == 1)
                     ? 0
                     : static_cast<int64_t>(unit(spec.seed, 7, static_cast<uint64_t>(g), 0) *
                                            static_cast<double>(spec.tokens + 1));
            if (g == 0) bs = spec.tokens;
        }
        in.num_tokens = bs;
        for (int64_t t = 0; t < bs; ++t) {
            for (int64_t h = 0; h < H; ++h) {
                const double u = unit(spec.seed,
                                      static_cast<uint64_t>(g),
                                      static_cast<uint64_t>(t),
                                      static_cast<uint64_t>(h));
                auto v = static_cast<float>(u * 8.0 - 4.0);
                if (spec.special_rows && t == 0) v = 0.0f;
                if (spec.special_rows && t == 1 && h == 3 % H)
                    v = spec.dtype == DType::kFloat16 ? 65504.0f : 1e30f;
                if (spec.special_rows && t == 2 && h == 5 % H)
                    v = std::numeric_limits<float>::quiet_NaN();
                if (spec.pre_quantized) {
                    in.x8.push_back(encode8(spec.target, v));
                } else {
                    in.x.push_back(to_bits(spec.dtype, v));
                }
            }
            if (spec.pre_quantized) {
                in.x_scales.push_back(static_cast<float>(
                    0.01 + unit(spec.seed, 9, static_cast<uint64_t>(g), static_cast<uint64_t>(t))));
            }
        }
        for (int64_t t = 0; t < bs; ++t) {
            for (int32_t id : route_token(spec, lay, g, t)) in.expert_ids.push_back(id);
            for (int k = 0; k < lay.K; ++k) {
                in.expert_scales.push_back(
                    static_cast<float>(0.05 + 0.9 * unit(spec.seed,
                                                         3,
                                                         static_cast<uint64_t>(g),
                                                         static_cast<uint64_t>(t),
                                                         static_cast<uint64_t>(k))));
            }
        }
        const int64_t expert_rows = lay.E + (lay.S > 0 ? 1 : 0);
        if (cfg.has_smooth_scales) {
            for (int64_t r = 0; r < expert_rows * H; ++r) {
                in.scales.push_back(static_cast<float>(
                    0.5 + unit(spec.seed, 5, static_cast<uint64_t>(g), static_cast<uint64_t>(r))));
            }
        }
        if (spec.quant_mode == 1) {  // int8: |x·s| reaches 4·40, so some values saturate
            const int64_t n =
                spec.static_scales == 1 ? 1 : (spec.static_scales == 2 ? H : expert_rows * H);
            const bool int8 = spec.target == DType::kInt8;
            for (int64_t r = 0; r < n; ++r) {
                const double u =
                    unit(spec.seed, 6, static_cast<uint64_t>(g), static_cast<uint64_t>(r));
                in.scales.push_back(static_cast<float>(int8 ? 5.0 + 35.0 * u : 0.5 + u));
            }
        }

        // moedist tensors: x possibly strided (row stride 2H+3, column stride 2, offset 5).
        const int64_t row_stride = spec.strided_x ? 2 * H + 3 : H;
        const int64_t col_stride = spec.strided_x ? 2 : 1;
        const int64_t offset = spec.strided_x ? 5 : 0;
        const auto storage_elems = static_cast<std::size_t>(offset + bs * row_stride + 1);
        if (spec.pre_quantized) {
            b.x8_storage.assign(storage_elems, 0x7F);
        } else {
            b.x_storage.assign(storage_elems, 0x7E00);
        }
        for (int64_t t = 0; t < bs; ++t) {
            for (int64_t h = 0; h < H; ++h) {
                const auto at = static_cast<std::size_t>(offset + t * row_stride + h * col_stride);
                const auto from = static_cast<std::size_t>(t * H + h);
                if (spec.pre_quantized) {
                    b.x8_storage[at] = in.x8[from];
                } else {
                    b.x_storage[at] = in.x[from];
                }
            }
        }
        b.x.data = spec.pre_quantized ? static_cast<void*>(b.x8_storage.data() + offset)
                                      : static_cast<void*>(b.x_storage.data() + offset);
        b.x.dtype = spec.pre_quantized ? spec.target : spec.dtype;
        b.x.ndim = 2;
        b.x.shape = {bs, H, 0, 0};
        b.x.strides = {row_stride, col_stride, 0, 0};
        if (g == spec.bad_id_rank && !in.expert_ids.empty()) {
            const auto n = static_cast<int64_t>(in.expert_ids.size());
            in.expert_ids[static_cast<std::size_t>(((spec.bad_id_slot % n) + n) % n)] =
                spec.bad_id_value;
        }
        b.expert_ids = in.expert_ids;
        b.scales = spec.pre_quantized ? in.x_scales : in.scales;
        b.expert_scales = in.expert_scales;

        const int64_t capacity =
            moedist_ref::capacity_rows(cfg, ep, lay.global_bs == 0 ? bs : lay.global_bs / lay.W);
        b.rows = lay.T * capacity + spec.extra_rows;
        b.expand_x.assign(static_cast<std::size_t>(b.rows * H) * out_elem, kGarbage);
        const auto scale_elems =
            static_cast<std::size_t>(b.rows * std::max<int64_t>(scale_cols, 1));
        b.dynamic_scales.assign(scale_elems, kPoisonScale);
        b.dynamic_bytes.assign(scale_elems, kGarbage);
        b.expand_idx.assign(static_cast<std::size_t>(bs * lay.K), kSentinel);
        b.expert_token_nums.assign(static_cast<std::size_t>(lay.local_experts(ep)), -1);
        b.ep_recv_counts.assign(
            static_cast<std::size_t>(lay.T * lay.W * lay.local_experts(ep) + spec.extra_rows),
            kSentinel);
        b.tp_recv_counts.assign(static_cast<std::size_t>(2 + spec.extra_rows), kSentinel);
        b.expand_scales.assign(static_cast<std::size_t>(capacity + spec.extra_rows), kPoisonScale);
        b.expert_out.assign(static_cast<std::size_t>(b.rows * H), 0x7E00);
        b.x_out.assign(static_cast<std::size_t>(bs * H), 0x7E00);
    }

    // Groups: EP group t = ranks with tp rank t; TP group e = the two ranks of EP rank e.
    for (int t = 0; t < lay.T; ++t)
        st.ep_groups.push_back(Communicator::create_local_group(lay.W, "harness_ep"));
    if (lay.T == 2) {
        for (int e = 0; e < lay.W; ++e)
            st.tp_groups.push_back(Communicator::create_local_group(2, "harness_tp"));
    }

    st.moe.resize(static_cast<std::size_t>(ranks));
    st.din.resize(static_cast<std::size_t>(ranks));
    st.dout.resize(static_cast<std::size_t>(ranks));
    st.acl.resize(static_cast<std::size_t>(ranks));
    st.copy_src.resize(static_cast<std::size_t>(ranks));
    st.copy_dst.resize(static_cast<std::size_t>(ranks));
    st.stamps.resize(static_cast<std::size_t>(ranks));
    st.control = std::make_unique<std::barrier<>>(ranks + 1);
    st.ranks_sync = std::make_unique<std::barrier<>>(ranks);
    // The C API reads MOEDIST_ZERO_PADDING at each first phase; set before any rank thread runs.
    if (spec.c_api) setenv("MOEDIST_ZERO_PADDING", spec.zero_padding ? "1" : "0", 1);
    for (int g = 0; g < ranks; ++g) st.threads.emplace_back([&st, g] { st.rank_main(g); });
}

Job::~Job() {
    state_->task = State::Task::kStop;
    state_->control->arrive_and_wait();
    for (auto& th : state_->threads) th.join();
    delete state_;
}

void Job::State::rank_main(int g) {
    auto& b = buf[static_cast<std::size_t>(g)];
    const int ep = lay.ep_of(g);
    const int tp = lay.tp_of(g);
    const int64_t H = lay.H;
    MoeConfig config;
    config.ep_world_size = lay.W;
    config.ep_rank_id = ep;
    config.moe_expert_num = lay.E;
    config.tp_world_size = lay.T == 2 ? 2 : 0;
    config.tp_rank_id = tp;
    config.shared_expert_num = lay.S > 0 ? 1 : 0;
    config.shared_expert_rank_num = lay.S;
    config.quant_mode = spec.quant_mode;
    config.global_bs = lay.global_bs;
    config.expert_token_nums_type = spec.expert_token_nums_type;
    config.comm_quant_mode = spec.comm_quant_mode;
    config.zero_padding = spec.zero_padding;
    std::optional<Communicator> tpc;
    if (lay.T == 2) tpc = tp_groups[static_cast<std::size_t>(ep)][static_cast<std::size_t>(tp)];
    b.status = MoeDistributor::create(
        ep_groups[static_cast<std::size_t>(tp)][static_cast<std::size_t>(ep)],
        tpc,
        config,
        &moe[static_cast<std::size_t>(g)]);
    const int64_t bs = b.x.shape[0];
    DispatchInputs& in = din[static_cast<std::size_t>(g)];
    in.x = b.x;
    in.expert_ids = TensorView::contiguous(b.expert_ids.data(), DType::kInt32, {bs, lay.K});
    const int64_t expert_rows = lay.E + (lay.S > 0 ? 1 : 0);
    if (spec.pre_quantized) {
        in.scales = TensorView::contiguous(b.scales.data(), DType::kFloat32, {bs});
    } else if (spec.quant_mode == 1 && spec.static_scales != 3) {
        in.scales = TensorView::contiguous(
            b.scales.data(), DType::kFloat32, {spec.static_scales == 1 ? 1 : H});
    } else if (!b.scales.empty()) {
        in.scales = TensorView::contiguous(b.scales.data(), DType::kFloat32, {expert_rows, H});
    }
    if (spec.expand_scales)
        in.expert_scales =
            TensorView::contiguous(b.expert_scales.data(), DType::kFloat32, {bs, lay.K});
    DispatchOutputs& out = dout[static_cast<std::size_t>(g)];
    out.expand_x = TensorView::contiguous(b.expand_x.data(), expand_dtype(spec), {b.rows, H});
    const int64_t scale_cols = scale_columns(spec, H);
    if (spec.quant_mode == 4) {  // E8M0 or plain uint8: both are accepted
        out.dynamic_scales = TensorView::contiguous(b.dynamic_bytes.data(),
                                                    spec.seed % 2 ? DType::kE8M0 : DType::kUInt8,
                                                    {b.rows, scale_cols});
    } else if (spec.quant_mode == 3) {
        out.dynamic_scales =
            TensorView::contiguous(b.dynamic_scales.data(), DType::kFloat32, {b.rows, scale_cols});
    } else if (scale_cols == 1) {
        out.dynamic_scales =
            TensorView::contiguous(b.dynamic_scales.data(), DType::kFloat32, {b.rows});
    }
    out.expand_idx = TensorView::contiguous(b.expand_idx.data(), DType::kInt32, {bs * lay.K});
    out.expert_token_nums =
        TensorView::contiguous(b.expert_token_nums.data(),
                               DType::kInt64,
                               {static_cast<int64_t>(b.expert_token_nums.size())});
    out.ep_recv_counts = TensorView::contiguous(
        b.ep_recv_counts.data(), DType::kInt32, {static_cast<int64_t>(b.ep_recv_counts.size())});
    if (lay.T == 2)
        out.tp_recv_counts =
            TensorView::contiguous(b.tp_recv_counts.data(),
                                   DType::kInt32,
                                   {static_cast<int64_t>(b.tp_recv_counts.size())});
    if (spec.expand_scales)
        out.expand_scales = TensorView::contiguous(b.expand_scales.data(),
                                                   DType::kFloat32,
                                                   {static_cast<int64_t>(b.expand_scales.size())});
    if (spec.c_api) {
        auto t = std::make_unique<AclTensors>();
        if (spec.pre_quantized) {
            const int64_t x_offset = static_cast<const uint8_t*>(b.x.data) - b.x8_storage.data();
            t->x = t->make(
                b.x, b.x8_storage.data(), x_offset, static_cast<int64_t>(b.x8_storage.size()));
        } else {
            const int64_t x_offset = static_cast<const uint16_t*>(b.x.data) - b.x_storage.data();
            t->x = t->make(
                b.x, b.x_storage.data(), x_offset, static_cast<int64_t>(b.x_storage.size()));
        }
        t->expert_ids = t->make(in.expert_ids);
        if (in.scales) t->scales = t->make(*in.scales);
        if (in.expert_scales) t->expert_scales = t->make(*in.expert_scales);
        t->expand_x = t->make(out.expand_x);
        if (out.dynamic_scales) t->dynamic_scales = t->make(*out.dynamic_scales);
        t->expand_idx = t->make(out.expand_idx);
        t->expert_token_nums = t->make(out.expert_token_nums);
        t->ep_recv_counts = t->make(out.ep_recv_counts);
        if (out.tp_recv_counts) t->tp_recv_counts = t->make(*out.tp_recv_counts);
        if (out.expand_scales) t->expand_scales = t->make(*out.expand_scales);
        t->expert_out =
            t->make(TensorView::contiguous(b.expert_out.data(), spec.dtype, {b.rows, H}));
        t->x_out = t->make(TensorView::contiguous(b.x_out.data(), spec.dtype, {bs, H}));
        t->combine_scales =
            t->make(TensorView::contiguous(b.expert_scales.data(), DType::kFloat32, {bs, lay.K}));
        // Reserved inputs get tensors full of junk: they must be ignored.
        b.junk.resize(4096);
        for (std::size_t i = 0; i < b.junk.size(); ++i)
            b.junk[i] = static_cast<uint8_t>(mix(i + 977 * static_cast<uint64_t>(g)));
        t->junk_mask = t->make(
            TensorView::contiguous(b.junk.data(), DType::kBool, {std::min<int64_t>(bs + 1, 4096)}));
        t->junk_f32 = t->make(TensorView::contiguous(b.junk.data(), DType::kFloat32, {3, 7}));
        t->junk_i32 = t->make(TensorView::contiguous(b.junk.data(), DType::kInt32, {5}));
        acl[static_cast<std::size_t>(g)] = std::move(t);
    }
    for (;;) {
        control->arrive_and_wait();  // a task is set
        if (task == Task::kStop) return;
        if (task == Task::kStep) run_step(g);
        if (task == Task::kMemcpy) run_memcpy(g);
        control->arrive_and_wait();  // the task is done on every rank
    }
}

Status from_acl(aclnnStatus code) {
    if (code == 0) return Status::Ok();
    const char* message = aclGetRecentErrMsg();
    return {static_cast<Code>(code), message != nullptr ? message : "(no message)"};
}

Status Job::State::c_dispatch(int g) {
    const AclTensors& t = *acl[static_cast<std::size_t>(g)];
    const int ep = lay.ep_of(g), tp = lay.tp_of(g);
    const std::string& ep_name =
        ep_groups[static_cast<std::size_t>(tp)][static_cast<std::size_t>(ep)].name();
    const std::string tp_name =
        lay.T == 2 ? tp_groups[static_cast<std::size_t>(ep)][static_cast<std::size_t>(tp)].name()
                   : "";
    uint64_t workspace = 0;
    aclOpExecutor* executor = nullptr;
    aclnnStatus ret = aclnnMoeDistributeDispatchGetWorkspaceSize(
        t.x,
        t.expert_ids,
        t.scales,
        t.junk_mask,
        t.expert_scales,
        ep_name.c_str(),
        lay.W,
        ep,
        lay.E,
        tp_name.c_str(),
        lay.T == 2 ? 2 : 0,
        tp,
        0,
        lay.S > 0 ? 1 : 0,
        lay.S,
        spec.quant_mode,
        lay.global_bs,
        spec.expert_token_nums_type,
        t.expand_x,
        t.dynamic_scales != nullptr ? t.dynamic_scales : t.junk_f32,  // mode 0: any tensor
        t.expand_idx,
        t.expert_token_nums,
        t.ep_recv_counts,
        t.tp_recv_counts != nullptr ? t.tp_recv_counts
                                    : t.junk_i32,  // T = 1: any tensor, never written
        t.expand_scales,
        &workspace,
        &executor);
    if (ret != 0) return from_acl(ret);
    return from_acl(aclnnMoeDistributeDispatch(nullptr, workspace, executor, nullptr));
}

Status Job::State::c_combine(int g) {
    const AclTensors& t = *acl[static_cast<std::size_t>(g)];
    const int ep = lay.ep_of(g), tp = lay.tp_of(g);
    const std::string& ep_name =
        ep_groups[static_cast<std::size_t>(tp)][static_cast<std::size_t>(ep)].name();
    const std::string tp_name =
        lay.T == 2 ? tp_groups[static_cast<std::size_t>(ep)][static_cast<std::size_t>(tp)].name()
                   : "";
    uint64_t workspace = 0;
    aclOpExecutor* executor = nullptr;
    aclnnStatus ret = aclnnMoeDistributeCombineGetWorkspaceSize(t.expert_out,
                                                                t.expert_ids,
                                                                t.expand_idx,
                                                                t.ep_recv_counts,
                                                                t.combine_scales,
                                                                t.tp_recv_counts,
                                                                t.junk_mask,
                                                                t.junk_f32,
                                                                t.junk_f32,
                                                                t.junk_i32,
                                                                t.junk_f32,
                                                                ep_name.c_str(),
                                                                lay.W,
                                                                ep,
                                                                lay.E,
                                                                tp_name.c_str(),
                                                                lay.T == 2 ? 2 : 0,
                                                                tp,
                                                                0,
                                                                lay.S > 0 ? 1 : 0,
                                                                lay.S,
                                                                lay.global_bs,
                                                                /*outDtype=*/0,
                                                                spec.comm_quant_mode,
                                                                /*groupListType=*/g % 2,
                                                                t.x_out,
                                                                &workspace,
                                                                &executor);
    if (ret != 0) return from_acl(ret);
    return from_acl(aclnnMoeDistributeCombine(nullptr, workspace, executor, nullptr));
}

// Every rank passes every barrier, failed or not, so a failure can never hang the job.
void Job::State::run_step(int g) {
    auto& b = buf[static_cast<std::size_t>(g)];
    auto& pt = stamps[static_cast<std::size_t>(g)];
    const DispatchInputs& in = din[static_cast<std::size_t>(g)];
    const DispatchOutputs& out = dout[static_cast<std::size_t>(g)];
    const int64_t bs = b.x.shape[0];
    pt.d0 = std::chrono::steady_clock::now();
    if (b.status.ok())
        b.status =
            spec.c_api ? c_dispatch(g) : moe[static_cast<std::size_t>(g)]->try_dispatch(in, out);
    pt.d1 = std::chrono::steady_clock::now();
    ranks_sync->arrive_and_wait();  // each phase is timed alone, not overlapped with experts
    if (b.status.ok()) {
        const Received received{b.expand_x.data(),
                                b.dynamic_scales.data(),
                                b.dynamic_bytes.data(),
                                b.ep_recv_counts.data(),
                                b.tp_recv_counts.data()};
        run_experts(spec, lay, g, received, b.expert_out.data());
    }
    CombineInputs cin;
    cin.expand_x = TensorView::contiguous(b.expert_out.data(), spec.dtype, {b.rows, lay.H});
    cin.expert_ids = in.expert_ids;
    cin.expand_idx = out.expand_idx;
    cin.ep_send_counts = out.ep_recv_counts;
    cin.expert_scales =
        TensorView::contiguous(b.expert_scales.data(), DType::kFloat32, {bs, lay.K});
    cin.tp_send_counts = out.tp_recv_counts;
    ranks_sync->arrive_and_wait();
    pt.c0 = std::chrono::steady_clock::now();
    if (b.status.ok()) {
        b.status = spec.c_api
                       ? c_combine(g)
                       : moe[static_cast<std::size_t>(g)]->try_combine(
                             cin, TensorView::contiguous(b.x_out.data(), spec.dtype, {bs, lay.H}));
    }
    pt.c1 = std::chrono::steady_clock::now();
}

void Job::State::run_memcpy(int g) {
    auto& b = buf[static_cast<std::size_t>(g)];
    const auto elem = static_cast<std::size_t>(memcpy_elem);
    const int ep = lay.ep_of(g);
    const int64_t own =
        lay.T == 2 ? b.tp_recv_counts[static_cast<std::size_t>(lay.tp_of(g))]
                   : b.ep_recv_counts[static_cast<std::size_t>(lay.W * lay.local_experts(ep) - 1)];
    const int64_t peer =
        lay.T == 2 ? b.tp_recv_counts[static_cast<std::size_t>(1 - lay.tp_of(g))] : 0;
    const auto bytes = static_cast<std::size_t>((own + peer) * lay.H) * elem;
    auto& src = copy_src[static_cast<std::size_t>(g)];
    auto& dst = copy_dst[static_cast<std::size_t>(g)];
    if (src.size() != bytes) {
        src.assign(bytes, 1);
        dst.assign(bytes, 0);
    }
    auto& pt = stamps[static_cast<std::size_t>(g)];
    pt.d0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    pt.d1 = std::chrono::steady_clock::now();
}

// Wall time of a phase: first rank's start to last rank's end.
template <class Stamps, class Member>
double span_ms(const std::vector<Stamps>& stamps, Member begin, Member end) {
    auto first = stamps.front().*begin;
    auto last = stamps.front().*end;
    for (const auto& s : stamps) {
        first = std::min(first, s.*begin);
        last = std::max(last, s.*end);
    }
    return std::chrono::duration<double, std::milli>(last - first).count();
}

PhaseTimes Job::step() {
    state_->task = State::Task::kStep;
    state_->control->arrive_and_wait();
    state_->control->arrive_and_wait();
    const auto& st = state_->stamps;
    PhaseTimes wall;
    wall.dispatch_ms = span_ms(st, &State::Stamps::d0, &State::Stamps::d1);
    wall.combine_ms = span_ms(st, &State::Stamps::c0, &State::Stamps::c1);
    return wall;
}

double Job::memcpy_baseline(int bytes_per_element) {
    state_->task = State::Task::kMemcpy;
    state_->memcpy_elem = bytes_per_element;
    state_->control->arrive_and_wait();
    state_->control->arrive_and_wait();
    return span_ms(state_->stamps, &State::Stamps::d0, &State::Stamps::d1);
}

Status Job::status() const {
    for (std::size_t g = 0; g < state_->buf.size(); ++g) {
        const Status& st = state_->buf[g].status;
        if (!st.ok()) {
            return {st.code(),
                    "rank " + std::to_string(g) + " failed with " + std::to_string(st.raw_code()) +
                        ": " + st.message()};
        }
    }
    return Status::Ok();
}

std::vector<Status> Job::statuses() const {
    std::vector<Status> all;
    for (const auto& b : state_->buf) all.push_back(b.status);
    return all;
}

JobReport run_job(const JobSpec& spec,
                  int steps,
                  bool check,
                  const std::function<void(int)>& on_step) {
    Job job(spec);
    std::vector<PhaseTimes> times;
    for (int step = 0; step < steps; ++step) {
        times.push_back(job.step());
        if (on_step) on_step(step);
    }
    JobReport report = job.check(check);
    report.steps = std::move(times);
    return report;
}

JobReport Job::check(bool with_reference) const {
    JobReport report;
    const JobSpec& spec = state_->spec;
    const Layout& lay = state_->lay;
    const moedist_ref::JobConfig& cfg = state_->cfg;
    const auto& inputs = state_->inputs;
    const auto& buf = state_->buf;
    const int ranks = lay.ranks();
    const int64_t H = lay.H;
    const std::size_t x_elem = 2;
    const std::size_t out_elem = dtype_size(expand_dtype(spec));
    const bool check = with_reference;
    if (Status st = status(); !st.ok()) {
        report.ok = false;
        report.first_mismatch = st.message();
        return report;
    }
    // Bytes and the load table (EP group 0).
    report.rows_per_expert.assign(static_cast<std::size_t>(lay.E + lay.S), 0);
    for (int g = 0; g < ranks; ++g) {
        const auto& b = buf[static_cast<std::size_t>(g)];
        const int ep = lay.ep_of(g);
        const int64_t own =
            lay.T == 2
                ? b.tp_recv_counts[static_cast<std::size_t>(lay.tp_of(g))]
                : b.ep_recv_counts[static_cast<std::size_t>(lay.W * lay.local_experts(ep) - 1)];
        const int64_t peer =
            lay.T == 2 ? b.tp_recv_counts[static_cast<std::size_t>(1 - lay.tp_of(g))] : 0;
        report.dispatch_bytes += (own + peer) * H * static_cast<int64_t>(out_elem);
        const int64_t tokens = b.x.shape[0];
        report.combine_bytes +=
            tokens * (lay.K + (lay.S > 0 ? 1 : 0)) * lay.T * H * static_cast<int64_t>(x_elem);
        if (lay.tp_of(g) != 0) continue;
        for (int le = 0; le < lay.local_experts(ep); ++le) {
            const int64_t end = b.ep_recv_counts[static_cast<std::size_t>(le * lay.W + lay.W - 1)];
            const int64_t begin =
                le == 0 ? 0 : b.ep_recv_counts[static_cast<std::size_t>(le * lay.W - 1)];
            const int idx = lay.shared(ep) ? lay.E + ep : (ep - lay.S) * lay.L + le;
            report.rows_per_expert[static_cast<std::size_t>(idx)] = end - begin;
        }
    }
    if (!check) return report;

    // The reference, and a bit-for-bit comparison of every output.
    std::string error;
    const auto want = moedist_ref::dispatch(cfg, inputs, &error);
    if (want.empty()) {
        report.ok = false;
        report.first_mismatch = "reference rejected the job: " + error;
        return report;
    }
    std::vector<std::vector<uint16_t>> ref_expert_out(static_cast<std::size_t>(ranks));
    for (int g = 0; g < ranks && report.ok; ++g) {
        const auto& b = buf[static_cast<std::size_t>(g)];
        const auto& w = want[static_cast<std::size_t>(g)];
        const int ep = lay.ep_of(g);
        auto fail = [&](std::string what) {
            if (report.ok) report.first_mismatch = std::move(what);
            report.ok = false;
        };
        // Real rows (own, then the TP peer's) must equal the reference; tails must be zero with
        // zero padding and keep the harness's poison without it (SPEC §3).
        const int64_t local = lay.local_experts(ep);
        const int64_t own_rows =
            lay.T == 2 ? w.tp_recv_counts[static_cast<std::size_t>(lay.tp_of(g))]
                       : w.ep_recv_counts[static_cast<std::size_t>(local * lay.W - 1)];
        const int64_t used_rows = lay.T == 2 ? w.tp_recv_counts[0] + w.tp_recv_counts[1] : own_rows;
        const auto row_bytes = static_cast<std::size_t>(H) * out_elem;
        const uint8_t tail_byte = spec.zero_padding ? 0 : kGarbage;
        const float tail_scale = spec.zero_padding ? 0.0f : kPoisonScale;
        for (std::size_t i = 0; i < b.expand_x.size() && report.ok; ++i) {
            const bool real = static_cast<int64_t>(i / row_bytes) < used_rows;
            const uint8_t wv = real ? w.expand_x[i] : tail_byte;
            if (b.expand_x[i] != wv) {
                fail(mismatch(g, "expandX byte", static_cast<int64_t>(i), b.expand_x[i], wv) +
                     " (row " + std::to_string(i / row_bytes) + (real ? ")" : ", a tail row)"));
            }
        }
        const int64_t scale_cols = scale_columns(spec, H);
        if (spec.quant_mode == 4) {
            for (std::size_t i = 0; i < b.dynamic_bytes.size() && report.ok; ++i) {
                const bool real = static_cast<int64_t>(i) / scale_cols < used_rows;
                const uint8_t wv = real ? w.dynamic_scale_bytes[i] : tail_byte;
                if (b.dynamic_bytes[i] != wv) {
                    fail(mismatch(
                        g, "dynamicScales byte", static_cast<int64_t>(i), b.dynamic_bytes[i], wv));
                }
            }
        } else if (scale_cols > 0) {
            for (std::size_t i = 0; i < b.dynamic_scales.size() && report.ok; ++i) {
                const bool real = static_cast<int64_t>(i) / scale_cols < used_rows;
                const float wv = real ? w.dynamic_scales[i] : tail_scale;
                if (std::memcmp(&b.dynamic_scales[i], &wv, 4) != 0)
                    fail(mismatch(
                        g, "dynamicScales", static_cast<int64_t>(i), b.dynamic_scales[i], wv));
            }
        }
        for (std::size_t i = 0; i < w.expand_idx.size() && report.ok; ++i) {
            if (b.expand_idx[i] != w.expand_idx[i])
                fail(mismatch(
                    g, "expandIdx", static_cast<int64_t>(i), b.expand_idx[i], w.expand_idx[i]));
        }
        for (std::size_t i = 0; i < w.expert_token_nums.size() && report.ok; ++i) {
            if (b.expert_token_nums[i] != w.expert_token_nums[i])
                fail(mismatch(g,
                              "expertTokenNums",
                              static_cast<int64_t>(i),
                              b.expert_token_nums[i],
                              w.expert_token_nums[i]));
        }
        for (std::size_t i = 0; i < b.ep_recv_counts.size() && report.ok; ++i) {
            const int32_t wv =
                i < w.ep_recv_counts.size() ? w.ep_recv_counts[i] : kSentinel;  // past: untouched
            if (b.ep_recv_counts[i] != wv)
                fail(mismatch(g, "epRecvCounts", static_cast<int64_t>(i), b.ep_recv_counts[i], wv));
        }
        if (lay.T == 2) {
            for (std::size_t i = 0; i < b.tp_recv_counts.size() && report.ok; ++i) {
                const int32_t wv = i < w.tp_recv_counts.size() ? w.tp_recv_counts[i] : kSentinel;
                if (b.tp_recv_counts[i] != wv)
                    fail(mismatch(
                        g, "tpRecvCounts", static_cast<int64_t>(i), b.tp_recv_counts[i], wv));
            }
        }
        if (spec.expand_scales) {
            for (std::size_t i = 0; i < b.expand_scales.size() && report.ok; ++i) {
                const bool real = static_cast<int64_t>(i) < own_rows;
                const float wv = real ? w.expand_scales[i] : tail_scale;
                if (std::memcmp(&b.expand_scales[i], &wv, 4) != 0)
                    fail(mismatch(
                        g, "expandScales", static_cast<int64_t>(i), b.expand_scales[i], wv));
            }
        }
        // The reference's expert outputs from the reference's own dispatch.
        auto& eo = ref_expert_out[static_cast<std::size_t>(g)];
        eo.assign(static_cast<std::size_t>(w.expand_x.size() / out_elem), 0);
        const Received received{w.expand_x.data(),
                                w.dynamic_scales.data(),
                                w.dynamic_scale_bytes.data(),
                                w.ep_recv_counts.data(),
                                w.tp_recv_counts.empty() ? nullptr : w.tp_recv_counts.data()};
        run_experts(spec, lay, g, received, eo.data());
        (void)ep;
    }
    if (!report.ok) return report;
    const auto want_x = moedist_ref::combine(cfg, inputs, want, ref_expert_out);
    for (int g = 0; g < ranks && report.ok; ++g) {
        const auto& got = buf[static_cast<std::size_t>(g)].x_out;
        const auto& wx = want_x[static_cast<std::size_t>(g)];
        for (std::size_t i = 0; i < wx.size(); ++i) {
            if (got[i] != wx[i]) {
                report.ok = false;
                report.first_mismatch =
                    mismatch(g, "combine x", static_cast<int64_t>(i), got[i], wx[i]);
                break;
            }
        }
    }
    return report;
}

}  // namespace moedist::harness
