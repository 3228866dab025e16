#include "harness/inputs.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"

namespace moedist::harness {

uint64_t mix(uint64_t x) {  // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

double unit(uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    const uint64_t h =
        mix(mix(mix(mix(seed ^ 0x51ED2701u) ^ a) ^ b) ^ (c * 0x2545F4914F6CDD1Dull)) ^ d;
    return static_cast<double>(mix(h) >> 11) * 0x1p-53;
}

int64_t scale_columns(const JobSpec& spec, int64_t H) {
    if (spec.quant_mode == 2 || (spec.quant_mode == 0 && spec.pre_quantized)) return 1;
    if (spec.quant_mode == 3) return (H + 127) / 128;
    if (spec.quant_mode == 4) return 2 * (((H + 31) / 32 + 1) / 2);
    return 0;
}

namespace {

// The harness's own conversions only shape inputs and expert outputs (any deterministic function
// serves); the fast inline ones keep the expert stage cheap.
uint16_t to_bits(DType dtype, float v) {
    return dtype == DType::kBFloat16 ? quant::f32_to_bf16(v) : quant::f32_to_f16(v);
}
float from_bits(DType dtype, uint16_t b) {
    return dtype == DType::kBFloat16 ? quant::bf16_to_f32(b) : quant::f16_to_f32(b);
}

moedist_ref::Elem elem_of(DType d) {
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
}

std::vector<int32_t> route_token(const JobSpec& spec, const Layout& lay, int g, int64_t t) {
    std::vector<int32_t> ids;
    const int ids_range = lay.E + lay.specials;  // V2: special experts are picked like the others
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
        return std::min(ids_range - 1, static_cast<int>(u * ids_range));
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
            if (!distinct && id < lay.E) {
                // Duplicates are fine while no rank gets more than min(L, K) rows of this token.
                const int rank = lay.S + id / lay.L;
                int same_rank = 0;
                for (int other : ids)
                    same_rank += (other < lay.E && lay.S + other / lay.L == rank) ? 1 : 0;
                if (same_rank + 1 > std::min(lay.L, lay.K)) continue;
            }
            ids.push_back(id);
            break;
        }
    }
    return ids;
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

}  // namespace

void run_experts(const JobSpec& spec, const Layout& lay, int g, const Received& r, uint16_t* out) {
    const int ep = lay.ep_of(g);
    const int tp = lay.tp_of(g);
    const int local = lay.local_experts(ep);
    const int64_t own = lay.T == 2 ? r.tp_recv_counts[tp] : r.ep_recv_counts[local * lay.W - 1];
    const int64_t total = lay.T == 2 ? own + r.tp_recv_counts[1 - tp] : own;
    const int64_t H = lay.H;
    const DType dtype = expand_dtype(spec);
    const bool wide = dtype_size(dtype) == 2;
    std::vector<float> values(static_cast<std::size_t>(H));
    int le = 0;
    for (int64_t row = 0; row < total; ++row) {
        if (row < own) {
            while (le + 1 < local && row >= r.ep_recv_counts[le * lay.W + lay.W - 1]) ++le;
        } else {
            le = 0;  // peer rows: T == 2 has L == 1
        }
        const int expert = lay.shared(ep) ? lay.shared_expert(ep) : (ep - lay.S) * lay.L + le;
        const float alpha =
            (0.5f + static_cast<float>(expert % 13) / 16.0f) * (tp == 0 ? 0.75f : 0.25f);
        const float beta = static_cast<float>(expert % 5 - 2) / 8.0f;
        const uint16_t* bits =
            wide ? reinterpret_cast<const uint16_t*>(r.expand_x) + row * H : nullptr;
        uint16_t* o = out + row * H;
        if (wide && dtype == DType::kBFloat16 && spec.dtype == DType::kBFloat16) {
            for (int64_t h = 0; h < H; ++h) {  // the common case, vectorized
                const float scaled = quant::bf16_to_f32(bits[h]) * alpha;
                o[h] = quant::f32_to_bf16(scaled + beta);
            }
            continue;
        }
        for (int64_t h = 0; h < H; ++h) {
            values[static_cast<std::size_t>(h)] =
                wide ? from_bits(dtype, bits[h]) : dequantize(spec, H, r, row, h);
        }
        for (int64_t h = 0; h < H; ++h) {
            const float scaled = values[static_cast<std::size_t>(h)] * alpha;
            o[h] = to_bits(spec.dtype, scaled + beta);
        }
    }
}

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
        << expert_token_nums_type << (c_api ? "_capi" : "") << (split ? "_split" : "") << (special_rows ? "_special" : "")
        << (zero_padding ? "_zpad" : "") << (backend == Backend::kProcesses ? "_procs" : "");
    if (v2) {
        out << "_v2_N" << shared_expert_num << "_m" << mask;
        if (mask_inactive >= 0) out << "i" << mask_inactive;
        if (zero_experts + copy_experts + const_experts > 0)
            out << "_z" << zero_experts << "c" << copy_experts << "q" << const_experts << "a"
                << const_alpha_form;
        out << (unweighted ? "_unw" : "") << (shared_expert_x ? "_sx" : "")
            << (add_rms_norm ? "_rms" : "") << (performance_info ? "_perf" : "");
    }
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
    const int specials = s.v2 ? s.zero_experts + s.copy_experts + s.const_experts : 0;
    if (s.top_k < 1 || s.top_k > s.moe_expert_num + specials)
        return "--topk must be in [1, experts (+ special experts)]";
    if (s.v2) {
        if (s.shared_rank_num > 0 &&
            (s.shared_expert_num < 1 || s.shared_expert_num > 4 ||
             s.shared_rank_num % s.shared_expert_num != 0))
            return "--shared-experts must be in [1, 4] and divide --shared-ranks";
        if (s.zero_experts < 0 || s.copy_experts < 0 || s.const_experts < 0)
            return "special expert counts must be >= 0";
        if (s.mask < 0 || s.mask > 2) return "the mask must be 0 (none), 1 (tokens) or 2 (entries)";
        if (s.shared_expert_x && s.shared_rank_num > 0)
            return "--shared-expert-x needs --shared-ranks 0";
        if (s.dtype != DType::kBFloat16 && s.dtype != DType::kFloat16)
            return "V2 combines fp16 or bf16";
    } else if (specials + s.mask + (s.unweighted ? 1 : 0) + (s.shared_expert_x ? 1 : 0) +
                   (s.add_rms_norm ? 1 : 0) + (s.performance_info ? 1 : 0) >
               0) {
        return "masks, special experts, unweighted combine, sharedExpertX, AddRmsNorm and "
               "performanceInfo are V2's (--api v2)";
    }
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
Layout layout_of(const JobSpec& spec) {
    Layout lay;
    lay.W = spec.ep_world_size;
    lay.T = spec.tp_size;
    lay.S = spec.shared_rank_num;
    lay.E = spec.moe_expert_num;
    lay.K = spec.top_k;
    lay.H = spec.hidden;
    lay.L = spec.moe_expert_num / (spec.ep_world_size - spec.shared_rank_num);
    lay.max_bs = spec.tokens;
    lay.global_bs = (spec.uneven_bs || !spec.global_bs_zero) ? spec.tokens * spec.ep_world_size : 0;
    lay.v2 = spec.v2;
    lay.N = spec.shared_rank_num == 0 ? 0 : (spec.v2 ? spec.shared_expert_num : 1);
    lay.specials = spec.v2 ? spec.zero_experts + spec.copy_experts + spec.const_experts : 0;
    return lay;
}

moedist_ref::JobConfig reference_config(const JobSpec& spec, const Layout& lay) {
    moedist_ref::JobConfig cfg;
    cfg.ep_world_size = lay.W;
    cfg.tp_size = lay.T;
    cfg.shared_rank_num = lay.S;
    cfg.moe_expert_num = lay.E;
    cfg.top_k = lay.K;
    cfg.hidden = lay.H;
    cfg.global_bs = lay.global_bs;
    cfg.quant_mode = spec.quant_mode;
    cfg.x_elem = elem_of(spec.pre_quantized ? spec.target : spec.dtype);
    cfg.expand_elem = elem_of(expand_dtype(spec));
    cfg.combine_elem = elem_of(spec.dtype);
    cfg.static_scales = spec.quant_mode == 1 ? spec.static_scales : 0;
    cfg.has_smooth_scales = spec.smooth_scales && (spec.quant_mode == 2 || spec.quant_mode == 3);
    cfg.has_expert_scales = spec.expand_scales;
    cfg.expert_token_nums_type = spec.expert_token_nums_type;
    cfg.comm_quant_mode = spec.comm_quant_mode;
    return cfg;
}

moedist_ref::v2::JobConfig reference_config_v2(const JobSpec& spec, const Layout& lay) {
    moedist_ref::v2::JobConfig cfg;
    cfg.base = reference_config(spec, lay);
    cfg.shared_expert_num = spec.shared_expert_num;
    cfg.zero_experts = spec.zero_experts;
    cfg.copy_experts = spec.copy_experts;
    cfg.const_experts = spec.const_experts;
    cfg.mask = spec.mask == 0 ? moedist_ref::v2::Mask::kNone
                              : (spec.mask == 1 ? moedist_ref::v2::Mask::kTokens
                                                : moedist_ref::v2::Mask::kEntries);
    cfg.weighted = !spec.unweighted;
    cfg.shared_expert_x = spec.shared_expert_x;
    cfg.const_alpha_form = spec.const_alpha_form;
    cfg.add_rms_norm = spec.add_rms_norm;
    return cfg;
}

int64_t expand_rows(const JobSpec& spec, const Layout& lay, int g, int64_t bs) {
    const int64_t max_bs = lay.global_bs == 0 ? bs : lay.global_bs / lay.W;
    const int64_t capacity =
        spec.v2 ? moedist_ref::v2::capacity_rows(reference_config_v2(spec, lay), lay.ep_of(g), max_bs)
                : moedist_ref::capacity_rows(reference_config(spec, lay), lay.ep_of(g), max_bs);
    return lay.T * capacity + spec.extra_rows;
}

moedist_ref::RankInput rank_input(const JobSpec& spec, const Layout& lay, int g) {
    moedist_ref::RankInput in;
    const int64_t H = lay.H;
    int64_t bs = spec.tokens;
    if (spec.uneven_bs) {
        // Every third rank has no tokens; the others a random count up to maxBs.
        bs = (g % 3 == 1) ? 0
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
    const std::vector<uint8_t> mask = mask_of(spec, lay, g, bs);
    for (int64_t t = 0; t < bs; ++t) {
        const std::vector<int32_t> ids = route_token(spec, lay, g, t);
        for (int k = 0; k < lay.K; ++k) {
            // An inactive entry's id is never read: give it one no expert has.
            const bool active = spec.mask == 0 ||
                                (spec.mask == 1 ? mask[static_cast<std::size_t>(t)] != 0
                                                : mask[static_cast<std::size_t>(t * lay.K + k)] != 0);
            in.expert_ids.push_back(active ? ids[static_cast<std::size_t>(k)]
                                           : (k % 2 ? -1 - k : lay.E + lay.specials + 1000 + k));
        }
        for (int k = 0; k < lay.K; ++k) {
            in.expert_scales.push_back(
                static_cast<float>(0.05 + 0.9 * unit(spec.seed,
                                                     3,
                                                     static_cast<uint64_t>(g),
                                                     static_cast<uint64_t>(t),
                                                     static_cast<uint64_t>(k))));
        }
    }
    const int64_t expert_rows = lay.v2 ? lay.N + lay.E : lay.E + (lay.S > 0 ? 1 : 0);
    if (spec.smooth_scales && (spec.quant_mode == 2 || spec.quant_mode == 3)) {
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
            const double u = unit(spec.seed, 6, static_cast<uint64_t>(g), static_cast<uint64_t>(r));
            in.scales.push_back(static_cast<float>(int8 ? 5.0 + 35.0 * u : 0.5 + u));
        }
    }

    if (g == spec.bad_id_rank && !in.expert_ids.empty()) {
        const auto n = static_cast<int64_t>(in.expert_ids.size());
        in.expert_ids[static_cast<std::size_t>(((spec.bad_id_slot % n) + n) % n)] =
            spec.bad_id_value;
    }
    return in;
}

}  // namespace moedist::harness

namespace moedist::harness {

std::vector<uint8_t> mask_of(const JobSpec& spec, const Layout& lay, int g, int64_t bs) {
    std::vector<uint8_t> mask;
    if (!spec.v2 || spec.mask == 0) return mask;
    const auto rank = static_cast<uint64_t>(g);
    if (spec.mask == 1) {  // a prefix of n tokens, n in [BS/2, BS]
        const double keep = spec.mask_inactive >= 0 ? 1 - spec.mask_inactive
                                                    : 0.5 + 0.5 * unit(spec.seed, 30, rank, 0);
        const auto n = static_cast<int64_t>(static_cast<double>(bs) * keep + 0.5);
        for (int64_t t = 0; t < bs; ++t) mask.push_back(t < n ? 1 : 0);
        return mask;
    }
    // Entries: about 70% active (1 - mask_inactive when given); without mask_inactive every
    // token t ≡ 3 (mod 7) is wholly inactive.
    for (int64_t t = 0; t < bs; ++t) {
        for (int k = 0; k < lay.K; ++k) {
            const bool given = spec.mask_inactive >= 0;
            const double keep = given ? 1 - spec.mask_inactive : 0.7;
            const bool on = (given || t % 7 != 3) &&
                            unit(spec.seed, 31, rank, static_cast<uint64_t>(t),
                                 static_cast<uint64_t>(k)) < keep;
            mask.push_back(on ? 1 : 0);
        }
    }
    return mask;
}

moedist_ref::v2::RankInput rank_input_v2(const JobSpec& spec,
                                         const Layout& lay,
                                         int g,
                                         const moedist_ref::RankInput& base) {
    moedist_ref::v2::RankInput in;
    in.base = base;
    const int64_t bs = base.num_tokens, H = lay.H;
    const auto rank = static_cast<uint64_t>(g);
    in.mask = mask_of(spec, lay, g, bs);
    // Values in [lo, lo + span) as the job's 16-bit type, a function of (what, rank, i).
    auto values = [&](uint64_t what, int64_t n, double lo, double span) {
        std::vector<uint16_t> v;
        for (int64_t i = 0; i < n; ++i) {
            const double u = unit(spec.seed, what, rank, static_cast<uint64_t>(i));
            v.push_back(to_bits(spec.dtype, static_cast<float>(lo + span * u)));
        }
        return v;
    };
    if (spec.shared_expert_x) in.shared_x = values(40, bs * H, -2.0, 4.0);
    if (spec.copy_experts + spec.const_experts > 0) in.ori_x = values(41, bs * H, -3.0, 6.0);
    if (spec.const_experts > 0) {
        const int64_t q = spec.const_experts;
        const int64_t n = spec.const_alpha_form == 2 ? q * H : q;
        // (Q, H) alphas gate through a softmax of dot products with oriX: keep them small.
        const double span = spec.const_alpha_form == 2 ? 0.02 : 2.0;
        in.alpha1 = values(42, n, -span / 2, span);
        in.alpha2 = values(43, n, -span / 2, span);
        in.const_v = values(44, q * H, -1.0, 2.0);
    }
    if (spec.add_rms_norm) {
        in.residual_x = values(45, bs * H, -1.0, 2.0);
        in.gamma = values(46, H, 0.5, 1.0);
    }
    return in;
}

}  // namespace moedist::harness
