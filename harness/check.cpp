// The bit-for-bit comparison of a job's outputs with the naive reference.
#include <cstring>
#include <sstream>
#include <string>

#include "harness/inputs.hpp"
#include "harness/rank.hpp"

namespace moedist::harness {
namespace {

template <class T>
std::string mismatch(int g, const char* tensor, int64_t index, T got, T want) {
    std::ostringstream out;
    out << "rank " << g << " " << tensor << "[" << index << "]: got " << +got << ", want " << +want;
    return out.str();
}

// The V2 reference's dispatch outputs in V1's struct (no expandIdx), for the comparisons both
// families share.
moedist_ref::DispatchOutput as_v1(const moedist_ref::v2::DispatchOutput& w) {
    moedist_ref::DispatchOutput o;
    o.capacity_rows = w.capacity_rows;
    o.own_rows = w.own_rows;
    o.peer_rows = w.peer_rows;
    o.expand_x = w.expand_x;
    o.dynamic_scales = w.dynamic_scales;
    o.dynamic_scale_bytes = w.dynamic_scale_bytes;
    o.expert_token_nums = w.expert_token_nums;
    o.ep_recv_counts = w.ep_recv_counts;
    o.tp_recv_counts = w.tp_recv_counts;
    o.expand_scales = w.expand_scales;
    return o;
}

// Combine's outputs (V2): active tokens' rows equal the reference; inactive tokens' rows keep
// the poison (zero under zero padding); AddRmsNorm's y and rstd alike.
void check_combine_v2(const JobSpec& spec,
                      const Layout& lay,
                      const moedist_ref::v2::JobConfig& cfg,
                      const std::vector<moedist_ref::v2::RankInput>& inputs,
                      const std::vector<moedist_ref::v2::DispatchOutput>& want,
                      const std::vector<std::vector<uint16_t>>& expert_out,
                      const std::vector<RankOutputs>& buf,
                      JobReport* report) {
    std::string error;
    const auto got_ref = moedist_ref::v2::combine(cfg, inputs, want, expert_out, &error);
    if (got_ref.empty()) {
        report->ok = false;
        report->first_mismatch = "reference rejected the combine: " + error;
        return;
    }
    const int64_t H = lay.H;
    const uint16_t tail16 = spec.zero_padding ? 0 : 0x7E00;
    const float tail_rstd = spec.zero_padding ? 0.0f : kPoisonScale;
    for (int g = 0; g < lay.ranks() && report->ok; ++g) {
        const auto& b = buf[static_cast<std::size_t>(g)];
        if (b.x_out == nullptr) continue;  // not checked here
        const auto& w = got_ref[static_cast<std::size_t>(g)];
        auto fail = [&](std::string what) {
            report->ok = false;
            report->first_mismatch = std::move(what);
        };
        for (int64_t t = 0; t < b.num_tokens && report->ok; ++t) {
            const bool active = w.active[static_cast<std::size_t>(t)] != 0;
            for (int64_t h = 0; h < H && report->ok; ++h) {
                const auto i = static_cast<std::size_t>(t * H + h);
                const uint16_t wx = active ? w.x[i] : tail16;
                if (b.x_out[i] != wx)
                    fail(mismatch(g, active ? "combine x" : "combine x (inactive token)",
                                  static_cast<int64_t>(i), b.x_out[i], wx));
                if (b.y_out == nullptr || !report->ok) continue;
                const uint16_t wy = active ? w.y[i] : tail16;
                if (b.y_out[i] != wy) fail(mismatch(g, "yOut", static_cast<int64_t>(i), b.y_out[i], wy));
            }
            if (b.rstd_out != nullptr && report->ok) {
                const float wr = active ? w.rstd[static_cast<std::size_t>(t)] : tail_rstd;
                if (std::memcmp(&b.rstd_out[t], &wr, 4) != 0)
                    fail(mismatch(g, "rstdOut", t, b.rstd_out[t], wr));
            }
        }
    }
}

}  // namespace

JobReport check_job(const JobSpec& spec,
                    const std::vector<moedist_ref::RankInput>& inputs,
                    const std::vector<RankOutputs>& buf,
                    bool check) {
    JobReport report;
    const Layout lay = layout_of(spec);
    const moedist_ref::JobConfig cfg = reference_config(spec, lay);
    const int ranks = lay.ranks();
    const int64_t H = lay.H;
    const std::size_t x_elem = 2;
    const std::size_t out_elem = dtype_size(expand_dtype(spec));
    // Bytes and the load table (EP group 0).
    report.rows_per_expert.assign(static_cast<std::size_t>(lay.E + lay.S), 0);
    for (int g = 0; g < ranks; ++g) {
        if (buf[static_cast<std::size_t>(g)].x_out == nullptr) continue;  // not checked here
        const auto& b = buf[static_cast<std::size_t>(g)];
        const int ep = lay.ep_of(g);
        const int64_t own =
            lay.T == 2
                ? b.tp_recv_counts[static_cast<std::size_t>(lay.tp_of(g))]
                : b.ep_recv_counts[static_cast<std::size_t>(lay.W * lay.local_experts(ep) - 1)];
        const int64_t peer =
            lay.T == 2 ? b.tp_recv_counts[static_cast<std::size_t>(1 - lay.tp_of(g))] : 0;
        report.dispatch_bytes += (own + peer) * H * static_cast<int64_t>(out_elem);
        const int64_t tokens = b.num_tokens;
        report.combine_bytes +=
            tokens * (lay.K + lay.N) * lay.T * H * static_cast<int64_t>(x_elem);
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
    std::vector<moedist_ref::DispatchOutput> want;
    std::vector<moedist_ref::v2::RankInput> inputs_v2;
    std::vector<moedist_ref::v2::DispatchOutput> want_v2;
    const moedist_ref::v2::JobConfig cfg_v2 = reference_config_v2(spec, lay);
    if (spec.v2) {
        for (int g = 0; g < ranks; ++g)
            inputs_v2.push_back(rank_input_v2(spec, lay, g, inputs[static_cast<std::size_t>(g)]));
        want_v2 = moedist_ref::v2::dispatch(cfg_v2, inputs_v2, &error);
        for (const auto& w : want_v2) want.push_back(as_v1(w));
    } else {
        want = moedist_ref::dispatch(cfg, inputs, &error);
    }
    if (want.empty()) {
        report.ok = false;
        report.first_mismatch = "reference rejected the job: " + error;
        return report;
    }
    std::vector<std::vector<uint16_t>> ref_expert_out(static_cast<std::size_t>(ranks));
    // The reference's expert outputs from the reference's own dispatch, for every rank (combine
    // reads them all).
    for (int g = 0; g < ranks; ++g) {
        const auto& w = want[static_cast<std::size_t>(g)];
        auto& eo = ref_expert_out[static_cast<std::size_t>(g)];
        eo.assign(static_cast<std::size_t>(w.expand_x.size() / out_elem), 0);
        const Received received{w.expand_x.data(),
                                w.dynamic_scales.data(),
                                w.dynamic_scale_bytes.data(),
                                w.ep_recv_counts.data(),
                                w.tp_recv_counts.empty() ? nullptr : w.tp_recv_counts.data()};
        run_experts(spec, lay, g, received, eo.data());
    }
    for (int g = 0; g < ranks && report.ok; ++g) {
        if (buf[static_cast<std::size_t>(g)].x_out == nullptr) continue;  // not checked here
        const auto& b = buf[static_cast<std::size_t>(g)];
        const auto& w = want[static_cast<std::size_t>(g)];
        const int ep = lay.ep_of(g);
        auto fail = [&](std::string what) {
            if (report.ok) report.first_mismatch = std::move(what);
            report.ok = false;
        };
        // Real rows (own, then the TP peer's) must equal the reference; tails must be zero with
        // zero padding and keep the harness's poison without it (docs/contract.md §3).
        const int64_t local = lay.local_experts(ep);
        const int64_t own_rows =
            lay.T == 2 ? w.tp_recv_counts[static_cast<std::size_t>(lay.tp_of(g))]
                       : w.ep_recv_counts[static_cast<std::size_t>(local * lay.W - 1)];
        const int64_t used_rows = lay.T == 2 ? w.tp_recv_counts[0] + w.tp_recv_counts[1] : own_rows;
        const auto row_bytes = static_cast<std::size_t>(H) * out_elem;
        const uint8_t tail_byte = spec.zero_padding ? 0 : kGarbage;
        const float tail_scale = spec.zero_padding ? 0.0f : kPoisonScale;
        for (std::size_t i = 0; i < b.expand_x_bytes && report.ok; ++i) {
            const bool real = static_cast<int64_t>(i / row_bytes) < used_rows;
            const uint8_t wv = real ? w.expand_x[i] : tail_byte;
            if (b.expand_x[i] != wv) {
                fail(mismatch(g, "expandX byte", static_cast<int64_t>(i), b.expand_x[i], wv) +
                     " (row " + std::to_string(i / row_bytes) + (real ? ")" : ", a tail row)"));
            }
        }
        const int64_t scale_cols = scale_columns(spec, H);
        if (spec.quant_mode == 4) {
            for (std::size_t i = 0; i < b.scale_entries && report.ok; ++i) {
                const bool real = static_cast<int64_t>(i) / scale_cols < used_rows;
                const uint8_t wv = real ? w.dynamic_scale_bytes[i] : tail_byte;
                if (b.dynamic_bytes[i] != wv) {
                    fail(mismatch(
                        g, "dynamicScales byte", static_cast<int64_t>(i), b.dynamic_bytes[i], wv));
                }
            }
        } else if (scale_cols > 0) {
            for (std::size_t i = 0; i < b.scale_entries && report.ok; ++i) {
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
        for (std::size_t i = 0; i < b.ep_recv_counts_len && report.ok; ++i) {
            const int32_t wv =
                i < w.ep_recv_counts.size() ? w.ep_recv_counts[i] : kSentinel;  // past: untouched
            if (b.ep_recv_counts[i] != wv)
                fail(mismatch(g, "epRecvCounts", static_cast<int64_t>(i), b.ep_recv_counts[i], wv));
        }
        if (lay.T == 2) {
            for (std::size_t i = 0; i < b.tp_recv_counts_len && report.ok; ++i) {
                const int32_t wv = i < w.tp_recv_counts.size() ? w.tp_recv_counts[i] : kSentinel;
                if (b.tp_recv_counts[i] != wv)
                    fail(mismatch(
                        g, "tpRecvCounts", static_cast<int64_t>(i), b.tp_recv_counts[i], wv));
            }
        }
        if (spec.expand_scales) {
            for (std::size_t i = 0; i < b.expand_scales_len && report.ok; ++i) {
                const bool real = static_cast<int64_t>(i) < own_rows;
                const float wv = real ? w.expand_scales[i] : tail_scale;
                if (std::memcmp(&b.expand_scales[i], &wv, 4) != 0)
                    fail(mismatch(
                        g, "expandScales", static_cast<int64_t>(i), b.expand_scales[i], wv));
            }
        }
        if (spec.v2) {  // triples of the own rows, then tails
            const auto& wa = want_v2[static_cast<std::size_t>(g)].assist_info;
            const int32_t tail = spec.zero_padding ? 0 : kSentinel;
            for (std::size_t i = 0; i < b.assist_info_len && report.ok; ++i) {
                const bool real = static_cast<int64_t>(i) < 3 * own_rows;
                const int32_t wv = real ? wa[i] : tail;
                if (b.assist_info[i] != wv)
                    fail(mismatch(g, "assistInfo", static_cast<int64_t>(i), b.assist_info[i], wv));
            }
            for (int r = 0; b.performance_info != nullptr && r < lay.W && report.ok; ++r) {
                if (b.performance_info[r] < 0)
                    fail(mismatch(g, "performanceInfo", r, b.performance_info[r], int64_t{0}));
            }
        }
    }
    if (!report.ok) return report;
    if (spec.v2) {
        check_combine_v2(spec, lay, cfg_v2, inputs_v2, want_v2, ref_expert_out, buf, &report);
        return report;
    }
    const auto want_x = moedist_ref::combine(cfg, inputs, want, ref_expert_out);
    for (int g = 0; g < ranks && report.ok; ++g) {
        if (buf[static_cast<std::size_t>(g)].x_out == nullptr) continue;  // not checked here
        const uint16_t* got = buf[static_cast<std::size_t>(g)].x_out;
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
