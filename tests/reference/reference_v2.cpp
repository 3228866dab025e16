// The naive reference of the V2 operator family (see reference_v2.hpp), dispatch half. Written
// from docs/contract.md §10 alone: scalar loops, whole-job view, no code shared with src/. Slow
// on purpose; every step mirrors one sentence of the contract so it can be checked by reading.
//
// Structure:
//   1. job geometry (W, S, N, R, E, L, Z, C, Q, T, maxBs, A) and input checks  §1, §10, §10.10
//   2. active entries and tokens; run-time id and mask errors                 §10.2
//   3. routing: for every global rank, the ordered list of row origins        §10.3, §10.4
//   4. dispatch outputs built from the routing; each row quantized by its     §3, §5, §10.4
//      sender per destination with §10.4's smooth rows
// Combine is in reference_v2_combine.cpp.
//
// Floating-point discipline as in reference.cpp: every binary32 product is computed into a named
// `float` before use (the build also uses -ffp-contract=off). Nothing here flushes subnormals.
#include "reference_v2.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "reference_quant.hpp"
#include "reference_v2_impl.hpp"

namespace moedist_ref::v2 {

namespace rq = moedist_ref::detail;

namespace impl {

float elem_to_f32(Elem el, uint16_t bits) {
    return el == Elem::kFloat16 ? f16_to_f32(bits) : bf16_to_f32(bits);
}
uint16_t f32_to_elem(Elem el, float value) {
    return el == Elem::kFloat16 ? f32_to_f16(value) : f32_to_bf16(value);
}

std::string rank_name(const Geometry& geo, int g) {
    return "rank " + std::to_string(g) + " (ep " + std::to_string(geo.ep_of(g)) + ", tp " +
           std::to_string(geo.tp_of(g)) + ")";
}

namespace {

bool is_16bit(Elem el) { return el == Elem::kFloat16 || el == Elem::kBFloat16; }

std::string sz(size_t n) { return std::to_string(n); }

// ---------------------------------------------------------------------------------------------
// 1. Job geometry and input checks
// ---------------------------------------------------------------------------------------------
// Entries each rank's `scales` must hold, or -1 when the mode reads none. §10.4: a scales tensor
// with one row per expert has N + E rows (shared experts first).
int64_t scales_size(const moedist_ref::JobConfig& b, const Geometry& geo) {
    const int64_t h = geo.H;
    const int64_t rows_e = int64_t{geo.N} + geo.E;
    if (b.quant_mode == 1)
        return b.static_scales == 1 ? 1 : (b.static_scales == 2 ? h : rows_e * h);
    if ((b.quant_mode == 2 || b.quant_mode == 3) && b.has_smooth_scales) return rows_e * h;
    return -1;
}

std::string check_geometry(const JobConfig& cfg, Geometry* geo) {
    const moedist_ref::JobConfig& b = cfg.base;
    Geometry& q = *geo;
    q.W = b.ep_world_size;
    q.T = b.tp_size;
    q.S = b.shared_rank_num;
    q.E = b.moe_expert_num;
    q.K = b.top_k;
    q.H = b.hidden;
    q.Z = cfg.zero_experts;
    q.C = cfg.copy_experts;
    q.Q = cfg.const_experts;
    if (q.W < 1) return "epWorldSize must be >= 1, got " + std::to_string(q.W);
    if (q.T != 1 && q.T != 2) return "tpWorldSize must be 1 or 2, got " + std::to_string(q.T);
    if (q.S < 0 || q.S >= q.W)
        return "sharedExpertRankNum must be in [0, W), got " + std::to_string(q.S);
    // §10: N := 0 whenever S = 0; S > 0 needs N in [1, 4] and S % N == 0; R = S / N.
    if (q.S > 0) {
        q.N = cfg.shared_expert_num;
        if (q.N < 1 || q.N > 4)
            return "sharedExpertNum must be in [1, 4] when S > 0, got " + std::to_string(q.N);
        if (q.S % q.N != 0)
            return "sharedExpertRankNum must be a multiple of sharedExpertNum, got " +
                   std::to_string(q.S);
        q.R = q.S / q.N;
    } else {
        q.N = 0;
        q.R = 1;
    }
    if (q.E < 1 || q.E % (q.W - q.S) != 0)
        return "moeExpertNum must be a positive multiple of W - S, got " + std::to_string(q.E);
    q.L = q.E / (q.W - q.S);
    if (q.T == 2 && q.L != 1)
        return "L must be 1 when tpWorldSize is 2, got " + std::to_string(q.L);
    if (q.Z < 0 || q.C < 0 || q.Q < 0) return "zero/copy/const expert counts must be >= 0";
    if (q.e_prime() >= std::numeric_limits<int32_t>::max())
        return "E + Z + C + Q must be < INT32_MAX, got " + std::to_string(q.e_prime());
    if (q.K < 1 || q.K > q.e_prime()) return "K must be in [1, E'], got " + std::to_string(q.K);
    if (q.H < 1) return "H must be >= 1, got " + std::to_string(q.H);
    return "";
}

// Validates what the reference relies on; "" when fine. Besides the contract's run-time errors
// it rejects jobs outside the contract so that nothing is ever indexed out of bounds.
std::string check_config(const JobConfig& cfg,
                         const std::vector<RankInput>& ranks,
                         bool for_combine,
                         Geometry* geo) {
    const moedist_ref::JobConfig& b = cfg.base;
    std::string err = check_geometry(cfg, geo);
    if (!err.empty()) return err;
    const Geometry& q = *geo;
    err = rq::check_quant(b);  // §5's table, unchanged in V2 (§10.10 generic: every quantMode)
    if (!err.empty()) return err;
    if (cfg.mask != Mask::kNone && cfg.mask != Mask::kTokens && cfg.mask != Mask::kEntries)
        return "mask kind must be none, (BS,) or (BS, K)";
    if (for_combine) {
        if (!is_16bit(b.combine_elem)) return "combine dtype must be float16 or bfloat16";
        if (b.comm_quant_mode != 0 && b.comm_quant_mode != 2)
            return "commQuantMode must be 0 or 2, got " + std::to_string(b.comm_quant_mode);
        if (cfg.shared_expert_x && q.S != 0)  // §10.5: sharedExpertX only with S = 0
            return "sharedExpertX must be null when S > 0, got a tensor";
        if (q.Q > 0 && cfg.const_alpha_form != 1 && cfg.const_alpha_form != 2)
            return "const alpha form must be 1 (Q,) or 2 (Q, H), got " +
                   std::to_string(cfg.const_alpha_form);
    }
    if (static_cast<int64_t>(ranks.size()) != q.ranks())
        return "ranks.size() must be W*T, got " + sz(ranks.size());
    if (b.global_bs < 0) return "globalBs must be >= 0, got " + std::to_string(b.global_bs);
    const bool x8 = !is_16bit(b.x_elem);  // pre-quantized x (mode 0)
    const int64_t want_scales = scales_size(b, q);
    const int64_t h = q.H, k = q.K, qn = q.Q;
    const int64_t alpha_len = cfg.const_alpha_form == 2 ? qn * h : qn;
    for (int g = 0; g < q.ranks(); ++g) {
        const RankInput& in = ranks[static_cast<size_t>(g)];
        const moedist_ref::RankInput& bi = in.base;
        const int64_t bs = bi.num_tokens;
        const std::string who = rank_name(q, g) + ": ";
        auto size_is = [](size_t n, int64_t want) { return static_cast<int64_t>(n) == want; };
        if (bs < 0) return who + "BS must be >= 0, got " + std::to_string(bs);
        if (b.global_bs == 0 && bs != ranks[0].base.num_tokens)
            return who + "BS must equal every rank's BS when globalBs is 0, got " +
                   std::to_string(bs);
        if (b.global_bs != 0 && bs > b.global_bs / q.W)
            return who + "BS must be <= maxBs, got " + std::to_string(bs);
        if (!x8 && !size_is(bi.x.size(), bs * h)) return who + "x size must be BS*H";
        if (x8 && !size_is(bi.x8.size(), bs * h)) return who + "x (8-bit) size must be BS*H";
        if (x8 && !size_is(bi.x_scales.size(), bs))
            return who + "scales (per-token, pre-quantized x) size must be BS";
        if (!size_is(bi.expert_ids.size(), bs * k)) return who + "expertIds size must be BS*K";
        const bool need_weights = for_combine ? cfg.weighted : b.has_expert_scales;
        if (need_weights && !size_is(bi.expert_scales.size(), bs * k))
            return who + "expertScales size must be BS*K, got " + sz(bi.expert_scales.size());
        if (want_scales >= 0 && !size_is(bi.scales.size(), want_scales))
            return who + "scales size must be " + std::to_string(want_scales) + ", got " +
                   sz(bi.scales.size());
        if (cfg.mask == Mask::kTokens && !size_is(in.mask.size(), bs))
            return who + "xActiveMask (BS,) size must be BS, got " + sz(in.mask.size());
        if (cfg.mask == Mask::kEntries && !size_is(in.mask.size(), bs * k))
            return who + "xActiveMask (BS, K) size must be BS*K, got " + sz(in.mask.size());
        if (!for_combine) continue;
        if (cfg.shared_expert_x && !size_is(in.shared_x.size(), bs * h))
            return who + "sharedExpertX size must be BS*H";
        if (q.C + q.Q > 0 && !size_is(in.ori_x.size(), bs * h))
            return who + "oriX size must be BS*H when C + Q > 0";
        if (q.Q > 0 &&
            (!size_is(in.alpha1.size(), alpha_len) || !size_is(in.alpha2.size(), alpha_len)))
            return who + "constExpertAlpha1/2 size must be " + std::to_string(alpha_len);
        if (q.Q > 0 && !size_is(in.const_v.size(), qn * h))
            return who + "constExpertV size must be Q*H";
        if (cfg.add_rms_norm && !size_is(in.residual_x.size(), bs * h))
            return who + "residualX size must be BS*H";
        if (cfg.add_rms_norm && !size_is(in.gamma.size(), h)) return who + "gamma size must be H";
    }
    return "";
}

// ---------------------------------------------------------------------------------------------
// 2. Active entries (§10.2)
// ---------------------------------------------------------------------------------------------
std::string find_active(const JobConfig& cfg, const std::vector<RankInput>& ranks, Job* job) {
    const Geometry& geo = job->geo;
    const size_t K = static_cast<size_t>(geo.K);
    job->entry_active.assign(ranks.size(), {});
    job->token_active.assign(ranks.size(), {});
    for (int g = 0; g < geo.ranks(); ++g) {
        const RankInput& in = ranks[static_cast<size_t>(g)];
        const size_t bs = static_cast<size_t>(in.base.num_tokens);
        std::vector<uint8_t>& entry = job->entry_active[static_cast<size_t>(g)];
        std::vector<uint8_t>& token = job->token_active[static_cast<size_t>(g)];
        entry.assign(bs * K, 0);
        token.assign(bs, 0);
        if (cfg.mask == Mask::kNone) {
            // "No mask: all active."
            entry.assign(bs * K, 1);
        } else if (cfg.mask == Mask::kTokens) {
            // "1D mask (BS,) bool: n = number of true bytes; the mask must be a prefix
            // (mask[t] ⇔ t < n), else 361001 naming the first bad index; entries (t,k) with
            // t < n are active."
            size_t n = 0;
            for (size_t t = 0; t < bs; ++t) n += in.mask[t] != 0 ? 1 : 0;
            for (size_t t = 0; t < bs; ++t) {
                const bool set = in.mask[t] != 0;
                if (set != (t < n))
                    return rank_name(geo, g) + ": xActiveMask[" + sz(t) + "] must be " +
                           (t < n ? "true" : "false") + " (the mask must be a prefix of " + sz(n) +
                           " true entries), got " + (set ? "true" : "false");
            }
            for (size_t i = 0; i < n * K; ++i) entry[i] = 1;
        } else {
            // "2D (BS,K): (t,k) active ⇔ its byte ≠ 0."
            for (size_t i = 0; i < bs * K; ++i) entry[i] = in.mask[i] != 0 ? 1 : 0;
        }
        // "A token is active ⇔ it has an active entry."
        for (size_t t = 0; t < bs; ++t)
            for (size_t k = 0; k < K; ++k)
                if (entry[t * K + k] != 0) token[t] = 1;
        // "an active entry's id outside [0, E') is 361001; the id of an inactive entry is never
        // read (any value is fine)."
        for (size_t i = 0; i < bs * K; ++i) {
            if (entry[i] == 0) continue;
            const int32_t id = in.base.expert_ids[i];
            if (id < 0 || id >= geo.e_prime())
                return rank_name(geo, g) + ": expertIds[" + sz(i) + "] must be in [0, " +
                       std::to_string(geo.e_prime()) + "), got " + std::to_string(id);
        }
    }
    return "";
}

// ---------------------------------------------------------------------------------------------
// 3. Routing (§10.3) in §10.4's row order
// ---------------------------------------------------------------------------------------------
void route(const std::vector<RankInput>& ranks, Job* job) {
    const Geometry& geo = job->geo;
    job->rows.assign(static_cast<size_t>(geo.ranks()), {});
    for (int tp = 0; tp < geo.T; ++tp) {
        for (int dst = 0; dst < geo.W; ++dst) {
            std::vector<Origin>& out = job->rows[static_cast<size_t>(geo.global(dst, tp))];
            if (geo.is_shared(dst)) {
                // "Each active token of every rank r, shared ranks included, goes once to each
                // shared expert j = 0..N−1 on rank (r mod R) + j·R." Rank dst = (dst mod R) +
                // (dst / R)·R hosts shared expert j = dst / R and hears from the r ≡ dst (mod R).
                // "Shared rank s: srcs ≡ s (mod R) ascending, each src's active tokens ascending
                // t (its own tokens sit at src = s, not first)."
                const int j = dst / geo.R;
                for (int src = 0; src < geo.W; ++src) {
                    if (src % geo.R != dst % geo.R) continue;
                    const size_t gs = static_cast<size_t>(geo.global(src, tp));
                    const std::vector<uint8_t>& act = job->token_active[gs];
                    for (size_t t = 0; t < act.size(); ++t)
                        if (act[t] != 0)
                            out.push_back(Origin{src, static_cast<int64_t>(t), geo.K + j});
                }
            } else {
                // "Each active entry with id < E goes to rank S + id/L as in §2."
                // "expandX, MoE rank: §3's order over active entries (block (local e, src),
                // inside it src's active entries in flattened (t,k) order)."
                for (int le = 0; le < geo.L; ++le) {
                    const int expert = (dst - geo.S) * geo.L + le;
                    for (int src = 0; src < geo.W; ++src) {
                        const size_t gs = static_cast<size_t>(geo.global(src, tp));
                        const moedist_ref::RankInput& in = ranks[gs].base;
                        const std::vector<uint8_t>& act = job->entry_active[gs];
                        for (int64_t t = 0; t < in.num_tokens; ++t)
                            for (int k = 0; k < geo.K; ++k) {
                                const size_t i = static_cast<size_t>(t * geo.K + k);
                                if (act[i] != 0 && in.expert_ids[i] == expert)
                                    out.push_back(Origin{src, t, k});
                            }
                    }
                }
            }
        }
    }
}

}  // namespace

std::string plan(const JobConfig& cfg,
                 const std::vector<RankInput>& ranks,
                 bool for_combine,
                 Job* job) {
    std::string err = check_config(cfg, ranks, for_combine, &job->geo);
    if (!err.empty()) return err;
    const Geometry& geo = job->geo;
    job->max_bs = cfg.base.global_bs != 0 ? cfg.base.global_bs / geo.W : ranks[0].base.num_tokens;
    err = find_active(cfg, ranks, job);
    if (!err.empty()) return err;
    route(ranks, job);
    // "more rows than A for a rank" (§7, 361001), with §10's A.
    for (int g = 0; g < geo.ranks(); ++g) {
        const int64_t a = capacity_rows(cfg, geo.ep_of(g), job->max_bs);
        const int64_t n = static_cast<int64_t>(job->rows[static_cast<size_t>(g)].size());
        if (n > a)
            return rank_name(geo, g) + ": rows received must be <= A = " + std::to_string(a) +
                   ", got " + std::to_string(n);
    }
    return "";
}

}  // namespace impl

int64_t capacity_rows(const JobConfig& cfg, int ep_rank, int64_t max_bs) {
    // §10: "MoE rank A = maxBs·W·min(L,K); shared rank A = maxBs·⌈W/R⌉."
    const int64_t W = cfg.base.ep_world_size;
    const int64_t S = cfg.base.shared_rank_num;
    if (ep_rank < S) {
        const int64_t n = cfg.shared_expert_num >= 1 ? cfg.shared_expert_num : 1;
        const int64_t R = S / n >= 1 ? S / n : 1;
        return max_bs * ((W + R - 1) / R);
    }
    const int64_t L = cfg.base.moe_expert_num / (W - S);
    const int64_t m = L < cfg.base.top_k ? L : int64_t{cfg.base.top_k};
    return max_bs * W * m;
}

// ---------------------------------------------------------------------------------------------
// 4. Dispatch
// ---------------------------------------------------------------------------------------------
namespace {

using impl::Geometry;
using impl::Origin;
using WireRow = rq::QuantRow;

// The row that `sender` puts on the wire for origin o: §5's codecs, "a row is quantized per
// destination ... always with the sender's scales tensor"; §10.4: "the smooth row is j for
// shared expert j and N + e for MoE expert e; scales is (N+E, H)" (static (N+E, H) scales too).
WireRow make_wire_row(const JobConfig& cfg,
                      const Geometry& geo,
                      const moedist_ref::RankInput& sender,
                      const Origin& o) {
    const moedist_ref::JobConfig& b = cfg.base;
    const size_t h = static_cast<size_t>(geo.H);
    const size_t base = static_cast<size_t>(o.token) * h;
    WireRow w;
    if (b.quant_mode == 0 && impl::is_16bit(b.x_elem)) {
        w.bytes.resize(2 * h);
        std::memcpy(w.bytes.data(), sender.x.data() + base, 2 * h);  // native 16-bit layout
        return w;
    }
    if (b.quant_mode == 0) {  // pre-quantized x: byte copy, the token's scale copied (bits)
        w.bytes.assign(sender.x8.begin() + static_cast<std::ptrdiff_t>(base),
                       sender.x8.begin() + static_cast<std::ptrdiff_t>(base + h));
        w.scales.resize(1);
        std::memcpy(w.scales.data(), sender.x_scales.data() + o.token, sizeof(float));
        return w;
    }
    std::vector<float> x(h);
    for (size_t j = 0; j < h; ++j) x[j] = impl::elem_to_f32(b.x_elem, sender.x[base + j]);
    size_t erow = 0;
    if (o.slot < geo.K) {
        const int e = sender.expert_ids[static_cast<size_t>(o.token * geo.K + o.slot)];
        erow = static_cast<size_t>(geo.N + e);  // MoE expert e: row N + e
    } else {
        erow = static_cast<size_t>(o.slot - geo.K);  // shared expert j: row j
    }
    if (b.quant_mode == 1) {
        const float* s = sender.scales.data() + (b.static_scales == 3 ? erow * h : 0);
        return rq::quantize_static(x, s, b.static_scales == 1, b.expand_elem);
    }
    if (b.quant_mode == 4) return rq::quantize_mx(x, b.expand_elem);
    if (b.has_smooth_scales) {
        const float* smooth = sender.scales.data() + erow * h;
        for (size_t j = 0; j < h; ++j) {
            const float prod = x[j] * smooth[j];  // fl32(x · smooth)
            x[j] = prod;
        }
    }
    return rq::quantize_dynamic(x, b.expand_elem, b.quant_mode == 2 ? h : 128);
}

}  // namespace

std::vector<DispatchOutput> dispatch(const JobConfig& cfg,
                                     const std::vector<RankInput>& ranks,
                                     std::string* error) {
    impl::Job job;
    const std::string err = impl::plan(cfg, ranks, false, &job);
    if (!err.empty()) {
        if (error != nullptr) *error = err;
        return {};
    }
    const Geometry& geo = job.geo;
    const moedist_ref::JobConfig& b = cfg.base;
    const std::vector<std::vector<Origin>>& rows = job.rows;
    const size_t h = static_cast<size_t>(geo.H);
    const size_t row_bytes = (impl::is_16bit(b.expand_elem) ? 2 : 1) * h;
    // Per-row scale entries (§3, §5): one float for a pre-quantized x and mode 2, ⌈H/128⌉ floats
    // for mode 3, 2·⌈⌈H/32⌉/2⌉ E8M0 bytes for mode 4; none otherwise.
    const bool prequantized = b.quant_mode == 0 && !impl::is_16bit(b.x_elem);
    const size_t row_scales = (prequantized || b.quant_mode == 2) ? 1
                              : b.quant_mode == 3                 ? (h + 127) / 128
                                                                  : 0;
    const size_t row_scale_bytes = b.quant_mode == 4 ? 2 * (((h + 31) / 32 + 1) / 2) : 0;
    const size_t T = static_cast<size_t>(geo.T);

    // Own rows of every rank, as their senders put them on the wire.
    std::vector<std::vector<WireRow>> wire(rows.size());
    for (int g = 0; g < geo.ranks(); ++g) {
        const int tp = geo.tp_of(g);
        for (const Origin& o : rows[static_cast<size_t>(g)]) {
            const RankInput& sender = ranks[static_cast<size_t>(geo.global(o.src_ep, tp))];
            wire[static_cast<size_t>(g)].push_back(make_wire_row(cfg, geo, sender.base, o));
        }
    }

    // Rows received by rank g (own EP group only) per (local expert, source): index le*W + src
    // on a MoE rank, src on a shared rank ("shared rank: index src, srcs ≢ s (mod R) add 0").
    auto block_counts = [&](int g) {
        const bool shared = geo.is_shared(geo.ep_of(g));
        const int nl = shared ? 1 : geo.L;
        std::vector<int32_t> per(static_cast<size_t>(nl * geo.W), 0);
        for (const Origin& o : rows[static_cast<size_t>(g)]) {
            int le = 0;
            if (!shared) {
                const RankInput& sender =
                    ranks[static_cast<size_t>(geo.global(o.src_ep, geo.tp_of(g)))];
                le = geo.expert_local(
                    sender.base.expert_ids[static_cast<size_t>(o.token * geo.K + o.slot)]);
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
        const int64_t A = capacity_rows(cfg, ep, job.max_bs);
        o.capacity_rows = A;
        o.own_rows = static_cast<int64_t>(rows[gi].size());
        o.peer_rows = peer >= 0 ? static_cast<int64_t>(rows[static_cast<size_t>(peer)].size()) : 0;
        const size_t total_rows = T * static_cast<size_t>(A);

        // expandX / dynamicScales (§3, "TP = 2 as §3"): own rows, then the peer's own rows, then
        // zeros (the tails). Scales are copied as bytes (a pre-quantized x's scale keeps its bits).
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

        // assistInfoForCombine: "for own row i, [3i, 3i+1, 3i+2] = (src epRankId, t as an index
        // into src's x, slot) ... Peer rows (T = 2) get none; entries past 3·ownRows are tails."
        o.assist_info.assign(3 * static_cast<size_t>(A), 0);
        for (size_t i = 0; i < rows[gi].size(); ++i) {
            o.assist_info[3 * i] = rows[gi][i].src_ep;
            o.assist_info[3 * i + 1] = static_cast<int32_t>(rows[gi][i].token);
            o.assist_info[3 * i + 2] = rows[gi][i].slot;
        }

        // epRecvCounts: own running totals, then (T == 2) the peer's own array verbatim.
        const std::vector<int32_t> counts = block_counts(g);
        o.ep_recv_counts = running_total(counts);
        if (peer >= 0) {
            const std::vector<int32_t> p = running_total(block_counts(peer));
            o.ep_recv_counts.insert(o.ep_recv_counts.end(), p.begin(), p.end());
        }

        // expertTokenNums: one value (all rows incl. the peer's) on a shared rank or when L == 1;
        // otherwise per-local-expert counts (type 1) or their inclusive prefix (type 0).
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
                    b.expert_token_nums_type == 1 ? c : prefix;
            }
        }

        // tpRecvCounts: [tpRankId] = own rows, [1 − tpRankId] = peer rows (T == 2 only).
        if (geo.T == 2) {
            o.tp_recv_counts.assign(2, 0);
            o.tp_recv_counts[static_cast<size_t>(tp)] = static_cast<int32_t>(o.own_rows);
            o.tp_recv_counts[static_cast<size_t>(1 - tp)] = static_cast<int32_t>(o.peer_rows);
        }

        // expandScales: "expertScales[t,k] on MoE rows, 1.0 on shared rows"; own rows only.
        if (b.has_expert_scales) {
            o.expand_scales.assign(static_cast<size_t>(A), 0.0f);
            for (size_t i = 0; i < rows[gi].size(); ++i) {
                const Origin& org = rows[gi][i];
                const RankInput& sender = ranks[static_cast<size_t>(geo.global(org.src_ep, tp))];
                o.expand_scales[i] =
                    org.slot >= geo.K
                        ? 1.0f
                        : sender.base
                              .expert_scales[static_cast<size_t>(org.token * geo.K + org.slot)];
            }
        }
    }
    return outs;
}

}  // namespace moedist_ref::v2
