// The naive reference of SPEC.md (see reference.hpp). Written from SPEC.md alone: scalar loops,
// whole-job view, no shared code with src/. Slow on purpose; every step mirrors one sentence of
// the SPEC so it can be checked by reading.
//
// Structure:
//   1. scalar conversions (fp16/bf16 <-> fp32)                              SPEC §1, §5
//   2. job geometry (W, S, E, L, T, maxBs, A), SPEC §5's table, input checks SPEC §1, §2, §5, §7
//   3. routing: for every global rank, the ordered list of row origins      SPEC §2, §3
//   4. dispatch outputs built from the routing; each row quantized by its   SPEC §3, §5
//      sender per destination (the quantizers are in reference_quant.cpp)
//   5. combine: TP add, optional int8 return leg, weighted sum per token    SPEC §4
//
// Floating-point discipline: every binary32 product and sum is computed into a named `float`
// variable before it is used, so no two operations can be fused (the build also uses
// -ffp-contract=off). Nothing here flushes subnormals.
#include "reference.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "reference_quant.hpp"

namespace moedist_ref {

// ---------------------------------------------------------------------------------------------
// 1. Scalar conversions
// ---------------------------------------------------------------------------------------------
namespace {

uint32_t float_bits(float v) {
    uint32_t b = 0;
    std::memcpy(&b, &v, sizeof b);
    return b;
}

float bits_float(uint32_t b) {
    float v = 0.0f;
    std::memcpy(&v, &b, sizeof v);
    return v;
}

// floor(m / 2^shift) rounded to nearest, ties to even, for shift >= 1. m < 2^25 in all callers.
uint64_t shift_right_rne(uint64_t m, int shift) {
    if (shift > 40) return 0;  // m < 2^25 <= 2^(shift-1): strictly below half an ulp
    const uint64_t q = m >> shift;
    const uint64_t rem = m & ((uint64_t{1} << shift) - 1);
    const uint64_t half = uint64_t{1} << (shift - 1);
    if (rem > half || (rem == half && (q & 1) != 0)) return q + 1;
    return q;
}

// Round a binary32 to a narrower binary format with `man_bits` explicit mantissa bits and
// exponent bias `bias` (fp16: 10, 15; bf16: 7, 127). RNE, gradual underflow, overflow -> Inf,
// NaN -> canonical quiet NaN (quiet bit only) with the NaN's sign.
uint16_t narrow_float(float value, int man_bits, int exp_bits, int bias) {
    const uint32_t b = float_bits(value);
    const uint16_t sign = static_cast<uint16_t>((b >> 31) << (man_bits + exp_bits));
    const uint32_t e = (b >> 23) & 0xFFu;
    const uint32_t frac = b & 0x7FFFFFu;
    const uint32_t exp_all_ones = (1u << exp_bits) - 1u;
    const uint32_t inf_bits = exp_all_ones << man_bits;
    if (e == 0xFFu) {
        if (frac != 0) return static_cast<uint16_t>(sign | inf_bits | (1u << (man_bits - 1)));
        return static_cast<uint16_t>(sign | inf_bits);
    }
    if (e == 0 && frac == 0) return sign;  // +-0
    // |value| = M * 2^E2 exactly, M an integer of at most 24 bits.
    const uint64_t M = (e != 0) ? (uint64_t{frac} | (uint64_t{1} << 23)) : uint64_t{frac};
    const int E2 = (e != 0) ? static_cast<int>(e) - 150 : -149;
    int width = 0;
    for (uint64_t t = M; t != 0; t >>= 1) ++width;
    int p = E2 + width - 1;     // floor(log2 |value|)
    const int emin = 1 - bias;  // exponent of the smallest normal of the target
    // Quantum (ulp) of the target at this magnitude: 2^(p - man_bits) for normals, fixed below.
    const bool sub = p < emin;
    const int qe = sub ? emin - man_bits : p - man_bits;
    const int shift = qe - E2;  // >= 1 for both targets (binary32 has more mantissa bits)
    uint64_t n = shift_right_rne(M, shift);  // |value| / 2^qe rounded
    if (sub) {
        // n in [0, 2^man_bits]; n == 2^man_bits is exactly the smallest normal's encoding.
        return static_cast<uint16_t>(sign | n);
    }
    // n in [2^man_bits, 2^(man_bits+1)]; carry into the exponent when it reaches the top.
    if (n == (uint64_t{1} << (man_bits + 1))) {
        n >>= 1;
        ++p;
    }
    const int biased = p + bias;
    if (biased >= static_cast<int>(exp_all_ones)) return static_cast<uint16_t>(sign | inf_bits);
    const uint64_t mant = n - (uint64_t{1} << man_bits);
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(biased) << man_bits) | mant);
}

}  // namespace

float f16_to_f32(uint16_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits >> 15) << 31;
    const uint32_t e = (bits >> 10) & 0x1Fu;
    const uint32_t m = bits & 0x3FFu;
    if (e == 0x1Fu) {  // Inf or NaN (NaN made quiet, payload kept)
        return bits_float(sign | 0x7F800000u | (m != 0 ? (0x00400000u | (m << 13)) : 0u));
    }
    if (e == 0) {  // zero or subnormal: m * 2^-24, exact in binary32
        const float mag = std::ldexp(static_cast<float>(m), -24);
        return sign != 0 ? -mag : mag;
    }
    return bits_float(sign | ((e - 15u + 127u) << 23) | (m << 13));
}

float bf16_to_f32(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_f16(float value) { return narrow_float(value, 10, 5, 15); }
uint16_t f32_to_bf16(float value) { return narrow_float(value, 7, 8, 127); }

namespace {

float elem_to_f32(Elem el, uint16_t bits) {
    return el == Elem::kFloat16 ? f16_to_f32(bits) : bf16_to_f32(bits);
}
uint16_t f32_to_elem(Elem el, float v) {
    return el == Elem::kFloat16 ? f32_to_f16(v) : f32_to_bf16(v);
}

// ---------------------------------------------------------------------------------------------
// 2. Job geometry
// ---------------------------------------------------------------------------------------------
struct Geometry {
    int W = 0, T = 1, S = 0, E = 0, L = 0, K = 0, H = 0;
    int ranks() const { return W * T; }
    bool is_shared(int ep) const { return ep < S; }
    int ep_of(int g) const { return g / T; }
    int tp_of(int g) const { return g % T; }
    int global(int ep, int tp) const { return ep * T + tp; }
    int expert_rank(int e) const { return S + e / L; }
    int expert_local(int e) const { return e % L; }
};

std::string rank_name(const Geometry& geo, int g) {
    return "rank " + std::to_string(g) + " (ep " + std::to_string(geo.ep_of(g)) + ", tp " +
           std::to_string(geo.tp_of(g)) + ")";
}

bool is_16bit(Elem el) { return el == Elem::kFloat16 || el == Elem::kBFloat16; }
bool is_fp8(Elem el) { return el == Elem::kFp8E4M3 || el == Elem::kFp8E5M2; }

const char* elem_name(Elem el) {
    switch (el) {
        case Elem::kFloat16:
            return "float16";
        case Elem::kBFloat16:
            return "bfloat16";
        case Elem::kInt8:
            return "int8";
        case Elem::kFp8E4M3:
            return "float8_e4m3fn";
        case Elem::kFp8E5M2:
            return "float8_e5m2";
        case Elem::kHiFloat8:
            return "hifloat8";
    }
    return "?";
}

}  // namespace

// SPEC §5's table: the (quantMode, x dtype, expandX dtype, scales) combinations that exist.
// (Exported through reference_quant.hpp: the V2 reference applies the same table.)
std::string detail::check_quant(const JobConfig& cfg) {
    const int mode = cfg.quant_mode;
    const Elem x = cfg.x_elem, q = cfg.expand_elem;
    const std::string m = "quantMode " + std::to_string(mode);
    if (mode < 0 || mode > 4) return "quantMode must be in [0, 4], got " + std::to_string(mode);
    if (mode == 0) {
        if (x == Elem::kInt8)
            return "x dtype must be float16, bfloat16, float8_e4m3fn, float8_e5m2 or hifloat8, "
                   "got int8";
        if (q != x)
            return "expandX dtype must be x's dtype (" + std::string(elem_name(x)) + ") with " + m +
                   ", got " + elem_name(q);
    } else {
        if (!is_16bit(x))
            return "x dtype must be float16 or bfloat16 with " + m + ", got " + elem_name(x);
        const bool ok = (mode == 1 && (q == Elem::kInt8 || q == Elem::kHiFloat8)) ||
                        (mode == 2 && (q == Elem::kInt8 || is_fp8(q))) || (mode >= 3 && is_fp8(q));
        if (!ok) {
            const char* want = mode == 1   ? "int8 or hifloat8"
                               : mode == 2 ? "int8, float8_e4m3fn or float8_e5m2"
                                           : "float8_e4m3fn or float8_e5m2";
            return "expandX dtype must be " + std::string(want) + " with " + m + ", got " +
                   elem_name(q);
        }
    }
    if (mode == 1) {
        const int ss = cfg.static_scales;
        if (q == Elem::kHiFloat8 && ss != 1)
            return "scales shape must be (1,) with quantMode 1 and hifloat8, got kind " +
                   std::to_string(ss);
        if (ss < 1 || ss > 3)
            return "scales shape must be (1,), (H,) or (E+(S>0), H) with quantMode 1, got kind " +
                   std::to_string(ss);
    } else if (cfg.static_scales != 0) {
        return "static scales must be absent with " + m + ", got kind " +
               std::to_string(cfg.static_scales);
    }
    if (cfg.has_smooth_scales && mode != 2 && mode != 3)
        return "smooth scales must be null with " + m + ", got a tensor";
    return "";
}

namespace {

// Entries each rank's `scales` must hold, or -1 when the mode reads none (then it is ignored).
int64_t scales_size(const JobConfig& cfg, int64_t rows_e) {
    const int64_t h = cfg.hidden;
    if (cfg.quant_mode == 1)
        return cfg.static_scales == 1 ? 1 : (cfg.static_scales == 2 ? h : rows_e * h);
    if ((cfg.quant_mode == 2 || cfg.quant_mode == 3) && cfg.has_smooth_scales) return rows_e * h;
    return -1;
}

// Validates what the reference relies on; returns "" when fine. Besides the two run-time errors
// of SPEC §7 (checked elsewhere), it rejects configurations outside the contract (SPEC §5's
// table included) so that the reference never indexes out of bounds. `for_combine` adds combine's
// own requirements (expertScales, combine_elem, commQuantMode).
std::string check_config(const JobConfig& cfg,
                         const std::vector<RankInput>& ranks,
                         Geometry* geo,
                         bool for_combine) {
    Geometry& q = *geo;
    q.W = cfg.ep_world_size;
    q.T = cfg.tp_size;
    q.S = cfg.shared_rank_num;
    q.E = cfg.moe_expert_num;
    q.K = cfg.top_k;
    q.H = cfg.hidden;
    if (q.W < 1) return "epWorldSize must be >= 1, got " + std::to_string(q.W);
    if (q.T != 1 && q.T != 2) return "tpWorldSize must be 1 or 2, got " + std::to_string(q.T);
    if (q.S < 0 || q.S >= q.W)
        return "sharedExpertRankNum must be in [0, W), got " + std::to_string(q.S);
    if (q.E < 1 || q.E % (q.W - q.S) != 0)
        return "moeExpertNum must be a positive multiple of W - S, got " + std::to_string(q.E);
    q.L = q.E / (q.W - q.S);
    if (q.T == 2 && q.L != 1)
        return "L must be 1 when tpWorldSize is 2, got " + std::to_string(q.L);
    if (q.K < 1 || q.K > q.E) return "K must be in [1, E], got " + std::to_string(q.K);
    if (q.H < 1) return "H must be >= 1, got " + std::to_string(q.H);
    const std::string quant = detail::check_quant(cfg);
    if (!quant.empty()) return quant;
    if (for_combine && !is_16bit(cfg.combine_elem))
        return std::string("combine dtype must be float16 or bfloat16, got ") +
               elem_name(cfg.combine_elem);
    if (for_combine && cfg.comm_quant_mode != 0 && cfg.comm_quant_mode != 2)
        return "commQuantMode must be 0 or 2, got " + std::to_string(cfg.comm_quant_mode);
    if (static_cast<int64_t>(ranks.size()) != q.ranks())
        return "ranks.size() must be W*T, got " + std::to_string(ranks.size());
    if (cfg.global_bs < 0) return "globalBs must be >= 0";
    const bool x8 = !is_16bit(cfg.x_elem);  // pre-quantized x (mode 0)
    const int64_t want_scales = scales_size(cfg, int64_t{q.E + (q.S > 0 ? 1 : 0)});
    for (int g = 0; g < q.ranks(); ++g) {
        const RankInput& in = ranks[static_cast<size_t>(g)];
        const int64_t bs = in.num_tokens;
        const std::string who = rank_name(q, g);
        if (bs < 0) return who + ": BS must be >= 0";
        if (cfg.global_bs == 0 && bs != ranks[0].num_tokens)
            return who + ": BS must equal every rank's BS when globalBs is 0, got " +
                   std::to_string(bs);
        if (cfg.global_bs != 0 && bs > cfg.global_bs / q.W)
            return who + ": BS must be <= maxBs, got " + std::to_string(bs);
        if (!x8 && static_cast<int64_t>(in.x.size()) != bs * q.H)
            return who + ": x size must be BS*H, got " + std::to_string(in.x.size());
        if (x8 && static_cast<int64_t>(in.x8.size()) != bs * q.H)
            return who + ": x (8-bit) size must be BS*H, got " + std::to_string(in.x8.size());
        if (x8 && static_cast<int64_t>(in.x_scales.size()) != bs)
            return who + ": scales (per-token, pre-quantized x) size must be BS, got " +
                   std::to_string(in.x_scales.size());
        if (static_cast<int64_t>(in.expert_ids.size()) != bs * q.K)
            return who + ": expertIds size must be BS*K";
        if ((for_combine || cfg.has_expert_scales) &&
            static_cast<int64_t>(in.expert_scales.size()) != bs * q.K)
            return who + ": expertScales size must be BS*K";
        if (want_scales >= 0 && static_cast<int64_t>(in.scales.size()) != want_scales)
            return who + ": scales size must be " + std::to_string(want_scales) + ", got " +
                   std::to_string(in.scales.size());
    }
    return "";
}

int64_t max_bs_of(const JobConfig& cfg, const std::vector<RankInput>& ranks) {
    if (cfg.global_bs != 0) return cfg.global_bs / cfg.ep_world_size;
    return ranks.empty() ? 0 : ranks[0].num_tokens;  // all equal (checked)
}

// ---------------------------------------------------------------------------------------------
// 3. Routing
// ---------------------------------------------------------------------------------------------
// Where one received row came from: source EP rank (same EP group as the receiver), token and
// top-k slot of the sender; k == -1 marks a shared-expert row.
struct Origin {
    int src_ep = 0;
    int64_t token = 0;
    int k = 0;
};

// Chunk rule of SPEC §2: tokens [lo, hi) of MoE rank r (EP rank id, BS tokens) go to shared
// rank s.
void shared_chunk(int64_t bs, int S, int r, int s, int64_t* lo, int64_t* hi) {
    const int64_t base = (int64_t{r} * bs) / S;
    *lo = (int64_t{s + r} * bs) / S - base;
    *hi = (int64_t{s + r + 1} * bs) / S - base;
}

// rows[g] = the own (EP-group) rows received by global rank g, in expandX order.
// Invariant: every (src, token, k) entry appears exactly once over the EP group, and when S > 0
// every (src, token, -1) appears exactly once.
std::vector<std::vector<Origin>> route(const Geometry& geo, const std::vector<RankInput>& ranks) {
    std::vector<std::vector<Origin>> rows(static_cast<size_t>(geo.ranks()));
    for (int tp = 0; tp < geo.T; ++tp) {
        for (int dst = 0; dst < geo.W; ++dst) {
            std::vector<Origin>& out = rows[static_cast<size_t>(geo.global(dst, tp))];
            if (geo.is_shared(dst)) {
                // Source ranks ascending. Other shared ranks send nothing; the receiver's own
                // tokens are the src == dst block; MoE ranks send their chunk `dst`.
                for (int src = 0; src < geo.W; ++src) {
                    const int64_t bs = ranks[static_cast<size_t>(geo.global(src, tp))].num_tokens;
                    int64_t lo = 0, hi = 0;
                    if (src == dst) {
                        lo = 0;
                        hi = bs;
                    } else if (geo.is_shared(src)) {
                        continue;
                    } else {
                        shared_chunk(bs, geo.S, src, dst, &lo, &hi);
                    }
                    for (int64_t t = lo; t < hi; ++t) out.push_back(Origin{src, t, -1});
                }
            } else {
                // Local expert, then source rank, then the sender's flattened (token, k) order.
                for (int le = 0; le < geo.L; ++le) {
                    const int expert = (dst - geo.S) * geo.L + le;
                    for (int src = 0; src < geo.W; ++src) {
                        const RankInput& in = ranks[static_cast<size_t>(geo.global(src, tp))];
                        for (int64_t t = 0; t < in.num_tokens; ++t)
                            for (int k = 0; k < geo.K; ++k)
                                if (in.expert_ids[static_cast<size_t>(t * geo.K + k)] == expert)
                                    out.push_back(Origin{src, t, k});
                    }
                }
            }
        }
    }
    return rows;
}

// The two run-time errors of SPEC §7. Returns "" when fine.
std::string check_runtime(const Geometry& geo,
                          const std::vector<RankInput>& ranks,
                          const std::vector<std::vector<Origin>>* rows,
                          int64_t max_bs,
                          const JobConfig& cfg) {
    for (int g = 0; g < geo.ranks(); ++g) {
        const RankInput& in = ranks[static_cast<size_t>(g)];
        for (size_t i = 0; i < in.expert_ids.size(); ++i) {
            const int32_t id = in.expert_ids[i];
            if (id < 0 || id >= geo.E)
                return rank_name(geo, g) + ": expertIds[" + std::to_string(i) +
                       "] must be in [0, " + std::to_string(geo.E) + "), got " + std::to_string(id);
        }
    }
    if (rows == nullptr) return "";
    for (int g = 0; g < geo.ranks(); ++g) {
        const int64_t a = capacity_rows(cfg, geo.ep_of(g), max_bs);
        const int64_t n = static_cast<int64_t>((*rows)[static_cast<size_t>(g)].size());
        if (n > a)
            return rank_name(geo, g) + ": rows received must be <= A = " + std::to_string(a) +
                   ", got " + std::to_string(n);
    }
    return "";
}

// ---------------------------------------------------------------------------------------------
// 4. Dispatch
// ---------------------------------------------------------------------------------------------
// One row as the sender puts it on the wire: bytes in expandX's format, plus the row's scales
// (pre-quantized copy and modes 2/3: floats; mode 4: E8M0 bytes). SPEC §5.
using WireRow = detail::QuantRow;

// The row that source `sender` (global rank) sends for origin o (SPEC §5: per destination, with
// the sender's scales tensor).
WireRow make_wire_row(const JobConfig& cfg,
                      const Geometry& geo,
                      const RankInput& sender,
                      const Origin& o) {
    const size_t h = static_cast<size_t>(geo.H);
    const size_t base = static_cast<size_t>(o.token) * h;
    WireRow w;
    if (cfg.quant_mode == 0 && is_16bit(cfg.x_elem)) {
        w.bytes.resize(2 * h);
        std::memcpy(w.bytes.data(), sender.x.data() + base, 2 * h);  // native 16-bit layout
        return w;
    }
    if (cfg.quant_mode == 0) {  // pre-quantized x: byte copy, the token's scale copied (bits)
        w.bytes.assign(sender.x8.begin() + static_cast<std::ptrdiff_t>(base),
                       sender.x8.begin() + static_cast<std::ptrdiff_t>(base + h));
        w.scales.resize(1);
        std::memcpy(w.scales.data(), sender.x_scales.data() + o.token, sizeof(float));
        return w;
    }
    std::vector<float> x(h);
    for (size_t j = 0; j < h; ++j) x[j] = elem_to_f32(cfg.x_elem, sender.x[base + j]);
    // Row of an (E + (S>0), H) scales tensor: e + (S>0) for MoE expert e, 0 for shared rows.
    size_t erow = 0;
    if (o.k >= 0) {
        const int e = sender.expert_ids[static_cast<size_t>(o.token * geo.K + o.k)];
        erow = static_cast<size_t>(e + (geo.S > 0 ? 1 : 0));
    }
    if (cfg.quant_mode == 1) {
        const float* s = sender.scales.data() + (cfg.static_scales == 3 ? erow * h : 0);
        return detail::quantize_static(x, s, cfg.static_scales == 1, cfg.expand_elem);
    }
    if (cfg.quant_mode == 4) return detail::quantize_mx(x, cfg.expand_elem);
    if (cfg.has_smooth_scales) {
        const float* smooth = sender.scales.data() + erow * h;
        for (size_t j = 0; j < h; ++j) {
            const float prod = x[j] * smooth[j];  // fl32(x · smooth)
            x[j] = prod;
        }
    }
    return detail::quantize_dynamic(x, cfg.expand_elem, cfg.quant_mode == 2 ? h : 128);
}
}  // namespace

int64_t capacity_rows(const JobConfig& cfg, int ep_rank, int64_t max_bs) {
    const int64_t W = cfg.ep_world_size;
    const int64_t S = cfg.shared_rank_num;
    if (ep_rank < S) return (max_bs * W + S - 1) / S;  // ceil(maxBs*W / S)
    const int64_t L = cfg.moe_expert_num / (W - S);
    const int64_t m = L < cfg.top_k ? L : int64_t{cfg.top_k};
    return max_bs * W * m;
}

std::vector<DispatchOutput> dispatch(const JobConfig& cfg,
                                     const std::vector<RankInput>& ranks,
                                     std::string* error) {
    Geometry geo;
    std::string err = check_config(cfg, ranks, &geo, false);
    if (err.empty()) err = check_runtime(geo, ranks, nullptr, 0, cfg);  // ids before routing
    if (!err.empty()) {
        if (error != nullptr) *error = err;
        return {};
    }
    const int64_t max_bs = max_bs_of(cfg, ranks);
    const std::vector<std::vector<Origin>> rows = route(geo, ranks);
    err = check_runtime(geo, ranks, &rows, max_bs, cfg);
    if (!err.empty()) {
        if (error != nullptr) *error = err;
        return {};
    }
    const size_t h = static_cast<size_t>(geo.H);
    const size_t row_bytes = (is_16bit(cfg.expand_elem) ? 2 : 1) * h;
    // Per-row scale entries (SPEC §3, §5): one float for a pre-quantized x and mode 2, ⌈H/128⌉
    // floats for mode 3, 2·⌈⌈H/32⌉/2⌉ E8M0 bytes for mode 4; none otherwise.
    const bool prequantized = cfg.quant_mode == 0 && !is_16bit(cfg.x_elem);
    const size_t row_scales = (prequantized || cfg.quant_mode == 2) ? 1
                              : cfg.quant_mode == 3                 ? (h + 127) / 128
                                                                    : 0;
    const size_t row_scale_bytes = cfg.quant_mode == 4 ? 2 * (((h + 31) / 32 + 1) / 2) : 0;
    const size_t T = static_cast<size_t>(geo.T);

    // Own rows of every rank, as the senders put them on the wire.
    std::vector<std::vector<WireRow>> wire(rows.size());
    for (int g = 0; g < geo.ranks(); ++g) {
        const int tp = geo.tp_of(g);
        for (const Origin& o : rows[static_cast<size_t>(g)]) {
            const RankInput& sender = ranks[static_cast<size_t>(geo.global(o.src_ep, tp))];
            wire[static_cast<size_t>(g)].push_back(make_wire_row(cfg, geo, sender, o));
        }
    }

    // Rows received by rank g (own EP group only) per (local expert, source): index le*W + src.
    // On a shared rank le is always 0 and a rank's own tokens count as src = its own EP rank.
    auto block_counts = [&](int g) {
        const int nl = geo.is_shared(geo.ep_of(g)) ? 1 : geo.L;
        std::vector<int32_t> per(static_cast<size_t>(nl * geo.W), 0);
        for (const Origin& o : rows[static_cast<size_t>(g)]) {
            int le = 0;
            if (o.k >= 0) {
                const RankInput& sender =
                    ranks[static_cast<size_t>(geo.global(o.src_ep, geo.tp_of(g)))];
                le =
                    geo.expert_local(sender.expert_ids[static_cast<size_t>(o.token * geo.K + o.k)]);
            }
            ++per[static_cast<size_t>(le * geo.W + o.src_ep)];
        }
        return per;
    };
    auto running_total = [](std::vector<int32_t> v) {
        int32_t run = 0;
        for (int32_t& c : v) {
            run += c;
            c = run;  // inclusive
        }
        return v;
    };

    std::vector<DispatchOutput> outs(rows.size());
    for (int g = 0; g < geo.ranks(); ++g) {
        const size_t gi = static_cast<size_t>(g);
        const int ep = geo.ep_of(g);
        const int tp = geo.tp_of(g);
        const int peer = geo.T == 2 ? geo.global(ep, 1 - tp) : -1;
        const bool shared = geo.is_shared(ep);
        DispatchOutput& o = outs[gi];
        const int64_t A = capacity_rows(cfg, ep, max_bs);
        o.capacity_rows = A;
        o.own_rows = static_cast<int64_t>(rows[gi].size());
        o.peer_rows = peer >= 0 ? static_cast<int64_t>(rows[static_cast<size_t>(peer)].size()) : 0;
        const size_t total_rows = T * static_cast<size_t>(A);

        // expandX / dynamicScales: own rows, then the peer's own rows, then zeros. Scales are
        // copied as bytes (a pre-quantized x's scale keeps its exact bits).
        o.expand_x.assign(total_rows * row_bytes, 0);
        o.dynamic_scales.assign(total_rows * row_scales, 0.0f);
        o.dynamic_scale_bytes.assign(total_rows * row_scale_bytes, 0);
        size_t r = 0;
        auto put = [&](const WireRow& w) {
            if (w.bytes.size() != row_bytes || w.scales.size() != row_scales ||
                w.scale_bytes.size() != row_scale_bytes)
                std::abort();  // a reference bug, never an input's fault
            std::memcpy(o.expand_x.data() + r * row_bytes, w.bytes.data(), row_bytes);
            if (row_scales != 0)
                std::memcpy(o.dynamic_scales.data() + r * row_scales,
                            w.scales.data(),
                            row_scales * sizeof(float));
            if (row_scale_bytes != 0)
                std::memcpy(o.dynamic_scale_bytes.data() + r * row_scale_bytes,
                            w.scale_bytes.data(),
                            row_scale_bytes);
            ++r;
        };
        for (const WireRow& w : wire[gi]) put(w);
        if (peer >= 0)
            for (const WireRow& w : wire[static_cast<size_t>(peer)]) put(w);

        // expandIdx: occurrence index per expert over this rank's flattened (token, k) entries.
        const RankInput& in = ranks[gi];
        std::vector<int32_t> seen(static_cast<size_t>(geo.E), 0);
        o.expand_idx.resize(in.expert_ids.size());
        for (size_t i = 0; i < in.expert_ids.size(); ++i)
            o.expand_idx[i] = seen[static_cast<size_t>(in.expert_ids[i])]++;

        // epRecvCounts: own running totals, then (T == 2) the peer's own array verbatim.
        const std::vector<int32_t> counts = block_counts(g);
        o.ep_recv_counts = running_total(counts);
        if (peer >= 0) {
            const std::vector<int32_t> p = running_total(block_counts(peer));
            o.ep_recv_counts.insert(o.ep_recv_counts.end(), p.begin(), p.end());
        }

        // expertTokenNums: one value (all rows incl. peer's) on a shared rank or when L == 1;
        // otherwise (T == 1 then) per-local-expert counts (type 1) or their inclusive prefix (type
        // 0).
        if (shared || geo.L == 1) {
            o.expert_token_nums.assign(1, o.own_rows + o.peer_rows);
        } else {
            o.expert_token_nums.assign(static_cast<size_t>(geo.L), 0);
            int64_t prefix = 0;
            for (int le = 0; le < geo.L; ++le) {
                int64_t c = 0;
                for (int src = 0; src < geo.W; ++src)
                    c += counts[static_cast<size_t>(le * geo.W + src)];
                prefix += c;
                o.expert_token_nums[static_cast<size_t>(le)] =
                    cfg.expert_token_nums_type == 1 ? c : prefix;
            }
        }

        // tpRecvCounts.
        if (geo.T == 2) {
            o.tp_recv_counts.assign(2, 0);
            o.tp_recv_counts[static_cast<size_t>(tp)] = static_cast<int32_t>(o.own_rows);
            o.tp_recv_counts[static_cast<size_t>(1 - tp)] = static_cast<int32_t>(o.peer_rows);
        }

        // expandScales: own rows only; 1.0 on shared-expert rows; +0 past the own rows.
        if (cfg.has_expert_scales) {
            o.expand_scales.assign(static_cast<size_t>(A), 0.0f);
            for (size_t i = 0; i < rows[gi].size(); ++i) {
                const Origin& org = rows[gi][i];
                const RankInput& sender = ranks[static_cast<size_t>(geo.global(org.src_ep, tp))];
                o.expand_scales[i] =
                    org.k < 0
                        ? 1.0f
                        : sender.expert_scales[static_cast<size_t>(org.token * geo.K + org.k)];
            }
        }
    }
    return outs;
}

// ---------------------------------------------------------------------------------------------
// 5. Combine
// ---------------------------------------------------------------------------------------------
// SPEC §4.2 int8 round trip of one returned row (H values in dtype bits), in place.
// (Exported through reference_quant.hpp: the V2 reference returns rows the same way.)
void detail::comm_quant_round_trip(Elem el, std::vector<uint16_t>& row) {
    const float inv127 = 1.0f / 127.0f;  // fl32(1/127)
    const size_t h = row.size();
    for (size_t b0 = 0; b0 < h; b0 += 8) {
        const size_t b1 = b0 + 8 < h ? b0 + 8 : h;  // tail block holds H mod 8
        std::vector<float> v;
        for (size_t j = b0; j < b1; ++j) v.push_back(elem_to_f32(el, row[j]));
        const float m = detail::max_abs(v.data(), v.size());
        if (m == 0.0f) {  // q = 0, scale +0 -> receiver gets q*0 = +0
            for (size_t j = b0; j < b1; ++j) row[j] = f32_to_elem(el, 0.0f);
            continue;
        }
        const float s32 = m * inv127;                      // fl32(m * fl32(1/127))
        const uint16_t scale_bits = f32_to_elem(el, s32);  // travels as rne_dtype(s32)
        const float scale = elem_to_f32(el, scale_bits);
        for (size_t j = b0; j < b1; ++j) {
            const float div = v[j - b0] / s32;  // fl32(v / s32), unrounded fp32 scale
            // Rounded twice: to fp16 (the device's first cast), then to an integer.
            const int q = detail::rne_clamp(f16_to_f32(f32_to_f16(div)), -127, 127);
            const float deq = static_cast<float>(q) * scale;  // fl32(f32(q) * f32(scale))
            row[j] = f32_to_elem(el, deq);
        }
    }
}

std::vector<std::vector<uint16_t>> combine(const JobConfig& cfg,
                                           const std::vector<RankInput>& ranks,
                                           const std::vector<DispatchOutput>& dispatched,
                                           const std::vector<std::vector<uint16_t>>& expert_out) {
    Geometry geo;
    if (!check_config(cfg, ranks, &geo, true).empty()) return {};
    if (!check_runtime(geo, ranks, nullptr, 0, cfg).empty()) return {};
    const int64_t max_bs = max_bs_of(cfg, ranks);
    const std::vector<std::vector<Origin>> rows = route(geo, ranks);
    if (!check_runtime(geo, ranks, &rows, max_bs, cfg).empty()) return {};
    const size_t n = rows.size();
    const size_t h = static_cast<size_t>(geo.H);
    // The dispatch outputs and expert outputs must describe this same routing.
    if (dispatched.size() != n || expert_out.size() != n) return {};
    for (size_t g = 0; g < n; ++g) {
        const int peer = geo.T == 2 ? geo.global(geo.ep_of(static_cast<int>(g)),
                                                 1 - geo.tp_of(static_cast<int>(g)))
                                    : -1;
        const size_t own = rows[g].size();
        const size_t prow = peer >= 0 ? rows[static_cast<size_t>(peer)].size() : 0;
        if (dispatched[g].own_rows != static_cast<int64_t>(own) ||
            dispatched[g].peer_rows != static_cast<int64_t>(prow))
            return {};
        if (expert_out[g].size() < (own + prow) * h) return {};
    }

    // Step 1 + 2: the value each own row of rank g returns with (TP-added, maybe int8 round trip).
    std::vector<std::vector<std::vector<uint16_t>>> ret(n);
    for (size_t g = 0; g < n; ++g) {
        const int gi = static_cast<int>(g);
        const int peer = geo.T == 2 ? geo.global(geo.ep_of(gi), 1 - geo.tp_of(gi)) : -1;
        // The peer's partial result for my own row i sits at the peer's row (peer_own + i).
        const size_t peer_own = peer >= 0 ? rows[static_cast<size_t>(peer)].size() : 0;
        for (size_t i = 0; i < rows[g].size(); ++i) {
            std::vector<uint16_t> row(
                expert_out[g].begin() + static_cast<std::ptrdiff_t>(i * h),
                expert_out[g].begin() + static_cast<std::ptrdiff_t>((i + 1) * h));
            if (peer >= 0) {
                const std::vector<uint16_t>& po = expert_out[static_cast<size_t>(peer)];
                for (size_t j = 0; j < h; ++j) {
                    const float mine = elem_to_f32(cfg.combine_elem, row[j]);
                    const float theirs = elem_to_f32(cfg.combine_elem, po[(peer_own + i) * h + j]);
                    const float sum = mine + theirs;  // fl32(mine + peer)
                    row[j] = f32_to_elem(cfg.combine_elem, sum);
                }
            }
            if (cfg.comm_quant_mode == 2) detail::comm_quant_round_trip(cfg.combine_elem, row);
            ret[g].push_back(std::move(row));
        }
    }

    // Where each (source rank, token, slot) landed: slot k in [0, K), slot K = shared expert.
    // Built from the routing's origins, not from offset arithmetic.
    const size_t slots = static_cast<size_t>(geo.K) + 1;
    std::vector<std::vector<const std::vector<uint16_t>*>> where(n);
    for (size_t g = 0; g < n; ++g)
        where[g].assign(static_cast<size_t>(ranks[g].num_tokens) * slots, nullptr);
    for (size_t g = 0; g < n; ++g) {
        const int tp = geo.tp_of(static_cast<int>(g));
        for (size_t i = 0; i < rows[g].size(); ++i) {
            const Origin& o = rows[g][i];
            const size_t src = static_cast<size_t>(geo.global(o.src_ep, tp));
            const size_t slot = o.k < 0 ? slots - 1 : static_cast<size_t>(o.k);
            const std::vector<uint16_t>*& cell =
                where[src][static_cast<size_t>(o.token) * slots + slot];
            if (cell != nullptr) return {};  // invariant: each entry routed exactly once
            cell = &ret[g][i];
        }
    }

    // Step 3: weighted sum per token, k = 0..K-1 in order, then the shared row with weight 1.
    std::vector<std::vector<uint16_t>> x(n);
    for (size_t g = 0; g < n; ++g) {
        const RankInput& in = ranks[g];
        x[g].assign(static_cast<size_t>(in.num_tokens) * h, 0);
        for (int64_t t = 0; t < in.num_tokens; ++t) {
            const size_t tt = static_cast<size_t>(t);
            for (size_t k = 0; k < slots; ++k) {
                const bool present = k < slots - 1 || geo.S > 0;
                if (present && where[g][tt * slots + k] == nullptr) return {};  // invariant
            }
            for (size_t j = 0; j < h; ++j) {
                float acc = 0.0f;
                for (size_t k = 0; k + 1 < slots; ++k) {
                    const float v = elem_to_f32(cfg.combine_elem, (*where[g][tt * slots + k])[j]);
                    const float prod = v * in.expert_scales[tt * static_cast<size_t>(geo.K) + k];
                    const float next = acc + prod;
                    acc = next;
                }
                if (geo.S > 0) {
                    const float v =
                        elem_to_f32(cfg.combine_elem, (*where[g][tt * slots + slots - 1])[j]);
                    const float next = acc + v;
                    acc = next;
                }
                x[g][tt * h + j] = f32_to_elem(cfg.combine_elem, acc);
            }
        }
    }
    return x;
}

}  // namespace moedist_ref
