// The naive reference of the V2 operator family (see reference_v2.hpp), combine half. Written
// from docs/contract.md §10 alone: scalar loops, whole-job view, no code shared with src/.
//
// Structure:
//   1. the value each own row returns with: §4.1's TP add, then §4.2's int8 leg   §10.5
//   2. where each (source rank, token, slot) landed, from the routing's origins    §10.5
//   3. const experts' u                                                             §10.6
//   4. per active token: K entries (MoE / zero / copy / const), N shared rows,     §10.5, §10.7
//      sharedExpertX, then the rounding or AddRmsNorm
//
// Floating-point discipline: every binary32 product, quotient and sum is computed into a named
// `float` variable before it is used, so no two operations can be fused (the build also uses
// -ffp-contract=off). Nothing here flushes subnormals.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "reference_quant.hpp"
#include "reference_v2.hpp"
#include "reference_v2_impl.hpp"

namespace moedist_ref::v2 {

namespace {

using impl::Geometry;
using impl::Origin;

// ---------------------------------------------------------------------------------------------
// 3. Const experts (§10.6): u for token t of rank `in` and const index c, H values.
// ---------------------------------------------------------------------------------------------
std::vector<float> const_expert_u(
    const JobConfig& cfg, const Geometry& geo, const RankInput& in, size_t t, size_t c) {
    const Elem el = cfg.base.combine_elem;
    const size_t h = static_cast<size_t>(geo.H);
    std::vector<float> x(h), v(h), u(h);
    for (size_t j = 0; j < h; ++j) {
        x[j] = impl::elem_to_f32(el, in.ori_x[t * h + j]);    // x = f32(oriX[t])
        v[j] = impl::elem_to_f32(el, in.const_v[c * h + j]);  // v = f32(v[c])
    }
    if (cfg.const_alpha_form == 1) {
        // "alpha (Q,): u_h = fl32(fl32(x_h·a1) + fl32(v_h·a2)), a_i = f32(alpha_i[c])."
        const float a1 = impl::elem_to_f32(el, in.alpha1[c]);
        const float a2 = impl::elem_to_f32(el, in.alpha2[c]);
        for (size_t j = 0; j < h; ++j) {
            const float xa = x[j] * a1;  // fl32(x_h·a1)
            const float va = v[j] * a2;  // fl32(v_h·a2)
            const float sum = xa + va;   // fl32(… + …)
            u[j] = sum;
        }
        return u;
    }
    // "alpha (Q,H): l_i = Σ_h fl32(f32(alpha_i[c,h])·x_h) summed in h order from +0"
    float l1 = 0.0f;
    float l2 = 0.0f;
    for (size_t j = 0; j < h; ++j) {
        const float p1 = impl::elem_to_f32(el, in.alpha1[c * h + j]) * x[j];
        const float s1 = l1 + p1;
        l1 = s1;
        const float p2 = impl::elem_to_f32(el, in.alpha2[c * h + j]) * x[j];
        const float s2 = l2 + p2;
        l2 = s2;
    }
    // "m = max(l_1,l_2)"
    const float m = l2 > l1 ? l2 : l1;
    // "e_i = expf(l_i − m) correctly rounded": l_i − m is one binary32 subtraction; the
    // exponential is taken in binary64 and rounded once to binary32, as moedist does too.
    const float d1 = l1 - m;
    const float d2 = l2 - m;
    const float e1 = static_cast<float>(std::exp(static_cast<double>(d1)));
    const float e2 = static_cast<float>(std::exp(static_cast<double>(d2)));
    // "σ = fl32(e_1+e_2); p_i = fl32(e_i/σ)"
    const float sigma = e1 + e2;
    const float p1 = e1 / sigma;
    const float p2 = e2 / sigma;
    // "u_h = fl32(fl32(x_h·p_1) + fl32(v_h·p_2))"
    for (size_t j = 0; j < h; ++j) {
        const float xp = x[j] * p1;
        const float vp = v[j] * p2;
        const float sum = xp + vp;
        u[j] = sum;
    }
    return u;
}

}  // namespace

std::vector<CombineOutput> combine(const JobConfig& cfg,
                                   const std::vector<RankInput>& ranks,
                                   const std::vector<DispatchOutput>& dispatched,
                                   const std::vector<std::vector<uint16_t>>& expert_out,
                                   std::string* error) {
    auto fail = [&](const std::string& msg) {
        if (error != nullptr) *error = msg;
        return std::vector<CombineOutput>{};
    };
    impl::Job job;
    const std::string err = impl::plan(cfg, ranks, true, &job);
    if (!err.empty()) return fail(err);
    const Geometry& geo = job.geo;
    const Elem el = cfg.base.combine_elem;
    const std::vector<std::vector<Origin>>& rows = job.rows;
    const size_t n = rows.size();
    const size_t h = static_cast<size_t>(geo.H);
    const size_t K = static_cast<size_t>(geo.K);

    // The dispatch outputs and expert outputs must describe this same routing.
    if (dispatched.size() != n || expert_out.size() != n)
        return fail("dispatched and expert_out must hold W*T ranks");
    for (size_t g = 0; g < n; ++g) {
        const int gi = static_cast<int>(g);
        const int peer = geo.T == 2 ? geo.global(geo.ep_of(gi), 1 - geo.tp_of(gi)) : -1;
        const size_t own = rows[g].size();
        const size_t prow = peer >= 0 ? rows[static_cast<size_t>(peer)].size() : 0;
        if (dispatched[g].own_rows != static_cast<int64_t>(own) ||
            dispatched[g].peer_rows != static_cast<int64_t>(prow))
            return fail(impl::rank_name(geo, gi) +
                        ": dispatch's row counts must match this job's routing (expertIds and "
                        "mask must be dispatch's)");
        if (expert_out[g].size() < (own + prow) * h)
            return fail(impl::rank_name(geo, gi) + ": expert output must hold every real row");
    }

    // 1. "Own rows ..., after §4.1's TP step, return to slot (t, slot) of the rank src named by
    // row i's triple, with §4.2's int8 path when commQuantMode = 2 (shared rows included)."
    std::vector<std::vector<std::vector<uint16_t>>> ret(n);
    for (size_t g = 0; g < n; ++g) {
        const int gi = static_cast<int>(g);
        const int peer = geo.T == 2 ? geo.global(geo.ep_of(gi), 1 - geo.tp_of(gi)) : -1;
        // §3/§4.1: the peer's partial result for my own row i sits at its row (peer_own + i).
        const size_t peer_own = peer >= 0 ? rows[static_cast<size_t>(peer)].size() : 0;
        for (size_t i = 0; i < rows[g].size(); ++i) {
            std::vector<uint16_t> row(
                expert_out[g].begin() + static_cast<std::ptrdiff_t>(i * h),
                expert_out[g].begin() + static_cast<std::ptrdiff_t>((i + 1) * h));
            if (peer >= 0) {
                const std::vector<uint16_t>& po = expert_out[static_cast<size_t>(peer)];
                for (size_t j = 0; j < h; ++j) {
                    const float mine = impl::elem_to_f32(el, row[j]);
                    const float theirs = impl::elem_to_f32(el, po[(peer_own + i) * h + j]);
                    const float sum = mine + theirs;  // rne_dtype(fl32(f32(mine) + f32(peer)))
                    row[j] = impl::f32_to_elem(el, sum);
                }
            }
            if (cfg.base.comm_quant_mode == 2) moedist_ref::detail::comm_quant_round_trip(el, row);
            ret[g].push_back(std::move(row));
        }
    }

    // 2. Where each (source rank, token, slot) landed; slot k < K for MoE entries, K + j for
    // shared expert j. Built from the routing's origins, not from counts or assist_info.
    const size_t slots = static_cast<size_t>(geo.slots());
    std::vector<std::vector<const std::vector<uint16_t>*>> where(n);
    for (size_t g = 0; g < n; ++g)
        where[g].assign(static_cast<size_t>(ranks[g].base.num_tokens) * slots, nullptr);
    for (size_t g = 0; g < n; ++g) {
        const int tp = geo.tp_of(static_cast<int>(g));
        for (size_t i = 0; i < rows[g].size(); ++i) {
            const Origin& o = rows[g][i];
            const size_t src = static_cast<size_t>(geo.global(o.src_ep, tp));
            const std::vector<uint16_t>*& cell =
                where[src][static_cast<size_t>(o.token) * slots + static_cast<size_t>(o.slot)];
            if (cell != nullptr) return fail("reference invariant: a slot filled twice");
            cell = &ret[g][i];
        }
    }

    // 4. Per active token, in fp32 from acc = +0.0f (§10.5), then §10.7 when asked.
    const int64_t zero_end = int64_t{geo.E} + geo.Z;  // zero ids [E, E+Z)
    const int64_t copy_end = zero_end + geo.C;        // copy ids [E+Z, E+Z+C), const after
    std::vector<CombineOutput> outs(n);
    for (size_t g = 0; g < n; ++g) {
        const RankInput& in = ranks[g];
        const size_t bs = static_cast<size_t>(in.base.num_tokens);
        CombineOutput& out = outs[g];
        out.active = job.token_active[g];
        out.x.assign(bs * h, 0);  // inactive tokens' rows: untouched (zero here)
        if (cfg.add_rms_norm) {
            out.y.assign(bs * h, 0);
            out.rstd.assign(bs, 0.0f);
        }
        const std::vector<uint8_t>& act = job.entry_active[g];
        for (size_t t = 0; t < bs; ++t) {
            if (out.active[t] == 0) continue;  // "for each active token t"
            std::vector<float> acc(h, 0.0f);   // acc = +0.0f
            // "for k = 0..K−1, skipping inactive entries"
            for (size_t k = 0; k < K; ++k) {
                if (act[t * K + k] == 0) continue;
                // "s = expertScales[t,k], or 1.0f when expertScales is empty"
                const float s = cfg.weighted ? in.base.expert_scales[t * K + k] : 1.0f;
                const int64_t id = in.base.expert_ids[t * K + k];
                std::vector<float> u(h);
                if (id < geo.E) {  // "id < E: u = f32(row(t,k))"
                    const std::vector<uint16_t>* row = where[g][t * slots + k];
                    if (row == nullptr) return fail("reference invariant: a MoE slot is empty");
                    for (size_t j = 0; j < h; ++j) u[j] = impl::elem_to_f32(el, (*row)[j]);
                } else if (id < zero_end) {  // "zero id: nothing"
                    continue;
                } else if (id < copy_end) {  // "copy id: u = f32(oriX[t])"
                    for (size_t j = 0; j < h; ++j)
                        u[j] = impl::elem_to_f32(el, in.ori_x[t * h + j]);
                } else {  // "const id, c = id − (E+Z+C): u as in 10.6"
                    u = const_expert_u(cfg, geo, in, t, static_cast<size_t>(id - copy_end));
                }
                for (size_t j = 0; j < h; ++j) {
                    const float prod = u[j] * s;       // fl32(u·s)
                    const float next = acc[j] + prod;  // acc = fl32(acc + …) per element
                    acc[j] = next;
                }
            }
            // "for j = 0..N−1: acc = fl32(acc + f32(sharedRow_j(t))) (weight 1)"
            for (size_t j = 0; j < static_cast<size_t>(geo.N); ++j) {
                const std::vector<uint16_t>* row = where[g][t * slots + K + j];
                if (row == nullptr) return fail("reference invariant: a shared slot is empty");
                for (size_t e = 0; e < h; ++e) {
                    const float v = impl::elem_to_f32(el, (*row)[e]);
                    const float next = acc[e] + v;
                    acc[e] = next;
                }
            }
            // "if sharedExpertX ...: acc = fl32(acc + f32(it)) (weight 1)"
            if (cfg.shared_expert_x) {
                for (size_t e = 0; e < h; ++e) {
                    const float v = impl::elem_to_f32(el, in.shared_x[t * h + e]);
                    const float next = acc[e] + v;
                    acc[e] = next;
                }
            }
            if (!cfg.add_rms_norm) {
                // "x[t] = rne_dtype(acc)"
                for (size_t e = 0; e < h; ++e) out.x[t * h + e] = impl::f32_to_elem(el, acc[e]);
                continue;
            }
            // §10.7, "with acc from 10.5 before its rounding":
            // "s_h = fl32(acc_h + f32(residualX[t,0,h])); xOut[t,0,h] = rne(s_h)"
            std::vector<float> sh(h);
            for (size_t e = 0; e < h; ++e) {
                const float r = impl::elem_to_f32(el, in.residual_x[t * h + e]);
                const float sum = acc[e] + r;
                sh[e] = sum;
                out.x[t * h + e] = impl::f32_to_elem(el, sum);
            }
            // "ms = Σ_h fl32(fl32(s_h·s_h)·inv) summed in h order from +0, inv = fl32(1/H)"
            const float inv = 1.0f / static_cast<float>(geo.H);
            float ms = 0.0f;
            for (size_t e = 0; e < h; ++e) {
                const float sq = sh[e] * sh[e];
                const float term = sq * inv;
                const float next = ms + term;
                ms = next;
            }
            // "rstd = fl32(1/fl32(sqrt(fl32(ms+normEps))))" (IEEE sqrt, division)
            const float shifted = ms + cfg.norm_eps;
            const float root = std::sqrt(shifted);
            const float rstd = 1.0f / root;
            out.rstd[t] = rstd;
            // "yOut[t,0,h] = rne(fl32(f32(rne(fl32(s_h·rstd)))·f32(gamma_h)))"
            for (size_t e = 0; e < h; ++e) {
                const float normed = sh[e] * rstd;
                const float rounded = impl::elem_to_f32(el, impl::f32_to_elem(el, normed));
                const float gamma = impl::elem_to_f32(el, in.gamma[e]);
                const float y = rounded * gamma;
                out.y[t * h + e] = impl::f32_to_elem(el, y);
            }
        }
    }
    return outs;
}

}  // namespace moedist_ref::v2
