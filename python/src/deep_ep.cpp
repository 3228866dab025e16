// moedist.deep_ep's low-latency calls (python/moedist/deep_ep.py) as one C++ call each. Around
// a 25 µs exchange, the dozen small torch operations and tensor conversions of a Python version
// cost as much again on one rank, and with 8 ranks on 2 cores (8 interpreters sharing caches)
// they nearly doubled the call. A _LowLatency holds one parity's reused tensors (two calls may be
// in flight; their tensors alternate) as views made once:
//
//   rows        recv_x: [L·R·T, C] bf16, expert-padded (docs/contract.md §12.3)
//   assist      [3·L·R·T] int32, (source, token, slot) per row: src_info is its middle column
//   token_nums  [L] int64   recv    epRecvCounts [L·R] int32: running totals over blocks i·R + r
//   ids32       [T, K] int32 and mask [T, K] bool: topk_idx as the core takes it (−1 slots masked)
//
//   dispatch(x, topk_idx, num_experts, split, stats, perf) -> (counts, layout_range, pending)
//       topk_idx (N, K) int64/int32, every id −1 or in [0, E) (else 161002 naming [t][k]);
//       counts int32 [L] and layout_range int64 [L, R] ((begin << 32) | count of source r's block
//       of expert i, begin from expert i's first row) are new numpy arrays, filled now, or by
//       finish() after pending.wait() when split.
//   combine(x, weights, out, split, perf) -> pending or None: y from x's expert-padded rows, the
//       ids and mask of this parity's last dispatch.
#include "deep_ep.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "call.hpp"
#include "errors.hpp"
#include "tensors.hpp"

namespace py = pybind11;

namespace moedist::python {
namespace {

// Element [i] (1-D) or [i][j] (2-D) of a view whose dtype the caller checked.
template <class T>
T& at(const TensorView& v, int64_t i, int64_t j = 0) {
    int64_t offset = i * v.stride(0) + (v.ndim > 1 ? j * v.stride(1) : 0);
    return static_cast<T*>(v.data)[offset];
}

void require(bool ok, const std::string& message) {
    if (!ok) throw_error(Code::kInvalidParam, message);
}

std::string shape_text(const TensorView& v) {
    std::string text = "(";
    for (int32_t d = 0; d < v.ndim; ++d) text += (d ? ", " : "") + std::to_string(v.dim(d));
    return text + (v.ndim == 1 ? ",)" : ")");
}

void require_shape(const TensorView& v, const char* name, int64_t rows, int64_t columns) {
    bool ok = v.ndim == 2 && v.dim(0) == rows && v.dim(1) == columns;
    require(ok,
            std::string(name) + " must be (" + std::to_string(rows) + ", " +
                std::to_string(columns) + "), got " + shape_text(v));
}

template <class Id>
bool convert_ids(const TensorView& ids,
                 int64_t experts,
                 const TensorView& out,
                 const TensorView& mask) {
    bool unused = false;
    for (int64_t t = 0; t < ids.dim(0); ++t) {
        for (int64_t k = 0; k < ids.dim(1); ++k) {
            const int64_t id = at<const Id>(ids, t, k);
            if (id < -1 || id >= experts)
                throw_error(Code::kInvalidParam,
                            "topk_idx[" + std::to_string(t) + "][" + std::to_string(k) +
                                "] must be -1 or in [0, " + std::to_string(experts) + "), got " +
                                std::to_string(id));
            at<int32_t>(out, t, k) = static_cast<int32_t>(id);
            at<bool>(mask, t, k) = id >= 0;
            unused |= id < 0;
        }
    }
    return unused;
}

struct Tables {
    TensorView counts;        // int32 [L]
    TensorView layout_range;  // int64 [L, R]
};

// counts and layout_range from expert_token_nums and epRecvCounts; stats (optional) += counts.
void fill_tables(const TensorView& token_nums,
                 const TensorView& recv,
                 const Tables& out,
                 int64_t ranks,
                 const std::optional<TensorView>& stats) {
    const int64_t local = out.counts.dim(0);
    int64_t before = 0;  // running total of the blocks before block i·R + r
    for (int64_t i = 0; i < local; ++i) {
        at<int32_t>(out.counts, i) = static_cast<int32_t>(at<const int64_t>(token_nums, i));
        const int64_t expert_begin = before;
        for (int64_t r = 0; r < ranks; ++r) {
            const int64_t running = at<const int32_t>(recv, i * ranks + r);
            at<int64_t>(out.layout_range, i, r) =
                static_cast<int64_t>(static_cast<uint64_t>(before - expert_begin) << 32) |
                (running - before);
            before = running;
        }
    }
    if (!stats) return;
    for (int64_t i = 0; i < local; ++i) {
        const int32_t n = at<int32_t>(out.counts, i);
        if (stats->dtype == DType::kInt32) {
            at<int32_t>(*stats, i) += n;
        } else {
            at<int64_t>(*stats, i) += n;
        }
    }
}

class LowLatency {
public:
    LowLatency(py::object moe,
               int64_t ranks,
               py::object rows,
               py::object assist,
               py::object token_nums,
               py::object recv,
               py::object ids32,
               py::object mask)
        : moe_(std::move(moe)), ranks_(ranks) {
        rows_ = keep(rows, "rows");
        assist_ = keep(assist, "assist");
        token_nums_ = keep(token_nums, "token_nums");
        recv_ = keep(recv, "recv");
        ids32_ = keep(ids32, "ids32");
        mask_ = keep(mask, "mask");
        local_ = token_nums_.dim(0);
        max_tokens_ = ids32_.dim(0);
        require(ranks > 0 && ids32_.dtype == DType::kInt32 && mask_.dtype == DType::kBool &&
                    ids32_.ndim == 2 && mask_.ndim == 2 && mask_.dim(0) == ids32_.dim(0) &&
                    mask_.dim(1) == ids32_.dim(1) && token_nums_.dtype == DType::kInt64 &&
                    recv_.dtype == DType::kInt32 && recv_.dim(0) >= local_ * ranks,
                "_LowLatency: the buffers do not fit together");
    }

    py::tuple dispatch(const py::handle& x,
                       const py::handle& topk_idx,
                       int64_t num_experts,
                       bool split,
                       const py::handle& stats,
                       const py::handle& performance_info) {
        auto pending = std::make_unique<Pending>();
        pending->what = "low_latency_dispatch";
        Holder& h = pending->held;
        DispatchInputs in;
        in.x = h.input(x, "x");
        const TensorView ids = h.input(topk_idx, "topk_idx");
        active_ = take_ids(ids, num_experts);
        in.expert_ids = ids32_;
        if (active_) in.x_active_mask = mask_;
        DispatchOutputs out;
        out.expand_x = rows_;
        out.expert_token_nums = token_nums_;
        out.ep_recv_counts = recv_;
        out.assist_info = assist_;
        out.performance_info = h.maybe_output(performance_info, "dispatch_wait_recv_cost_stats");
        MoeDistributor& moe = moe_.cast<MoeDistributor&>();
        if (split) {
            run_call(h, [&] { return moe.try_dispatch_send(in, out, &pending->call); });
            return py::make_tuple(py::array_t<int32_t>(local_),
                                  py::array_t<int64_t>({local_, ranks_}),
                                  py::cast(std::move(pending)));
        }
        run_call(h, [&] { return moe.try_dispatch(in, out); });
        py::array_t<int32_t> counts(local_);  // made after the exchange: off its critical path
        py::array_t<int64_t> layout_range({local_, ranks_});
        Tables tables{
            TensorView::contiguous(counts.mutable_data(), DType::kInt32, {local_}),
            TensorView::contiguous(layout_range.mutable_data(), DType::kInt64, {local_, ranks_})};
        HeldView held_stats;
        fill_tables(token_nums_, recv_, tables, ranks_, stats_view(stats, &held_stats));
        return py::make_tuple(counts, layout_range, py::none());
    }

    // The handle's tables once the rows arrived (after a split dispatch's wait()).
    void finish(const py::handle& counts, const py::handle& layout_range, const py::handle& stats) {
        const HeldView held_counts = to_view(counts, "counts", std::nullopt, true);
        const HeldView held_range = to_view(layout_range, "layout_range", std::nullopt, true);
        Tables out{held_counts.view, held_range.view};
        require(out.counts.ndim == 1 && out.counts.dim(0) == local_ &&
                    out.counts.dtype == DType::kInt32,
                "counts must be int32 (L,)");
        require(out.layout_range.dtype == DType::kInt64, "layout_range must be int64");
        require_shape(out.layout_range, "layout_range", local_, ranks_);
        HeldView held_stats;
        fill_tables(token_nums_, recv_, out, ranks_, stats_view(stats, &held_stats));
    }

    py::object combine(const py::handle& x,
                       const py::handle& weights,
                       const py::handle& out,
                       bool split,
                       const py::handle& performance_info) {
        auto pending = std::make_unique<Pending>();
        pending->what = "low_latency_combine";
        Holder& h = pending->held;
        CombineInputs in;
        in.expand_x = rows_of(h.input(x, "x"));
        in.expert_ids = ids32_;
        in.ep_send_counts = recv_;
        in.expert_scales = h.input(weights, "topk_weights");
        in.assist_info = assist_;
        if (active_) in.x_active_mask = mask_;
        in.performance_info = h.maybe_output(performance_info, "combine_wait_recv_cost_stats");
        const TensorView result = h.output(out, "out");
        MoeDistributor& moe = moe_.cast<MoeDistributor&>();
        if (split) {
            run_call(h, [&] { return moe.try_combine_send(in, result, &pending->call); });
            return py::cast(std::move(pending));
        }
        run_call(h, [&] { return moe.try_combine(in, result); });
        return py::none();
    }

    bool masked() const { return active_; }

private:
    // cumulative_local_expert_recv_stats (None, or int32/int64 (L,)), held in *held.
    std::optional<TensorView> stats_view(const py::handle& stats, HeldView* held) const {
        if (stats.is_none()) return std::nullopt;
        *held = to_view(stats, "cumulative_local_expert_recv_stats", std::nullopt, true);
        const TensorView& sum = held->view;
        require(sum.ndim == 1 && sum.dim(0) == local_ &&
                    (sum.dtype == DType::kInt32 || sum.dtype == DType::kInt64),
                "cumulative_local_expert_recv_stats must be int32 or int64 (" +
                    std::to_string(local_) + ",), got " + shape_text(sum));
        return sum;
    }

    // [L, R·T, H] as the [L·R·T, H] rows the core reads, when its first two dims are one run.
    static TensorView rows_of(TensorView x) {
        if (x.ndim == 3 && x.stride(0) == x.dim(1) * x.stride(1)) {
            x.shape = {x.dim(0) * x.dim(1), x.dim(2), 0, 0};
            x.strides = {x.stride(1), x.stride(2), 0, 0};
            x.ndim = 2;
        }
        return x;
    }

    TensorView keep(const py::object& tensor, const char* name) {
        kept_.push_back(to_view(tensor, name, std::nullopt, true));
        return kept_.back().view;
    }

    // ids32 and mask (their first N rows) from topk_idx; whether any slot is −1.
    bool take_ids(const TensorView& ids, int64_t experts) {
        require(ids.ndim == 2 && (ids.dtype == DType::kInt64 || ids.dtype == DType::kInt32),
                "topk_idx must be a 2-D int64 tensor");
        require(ids.dim(0) <= max_tokens_ && ids.dim(1) == ids32_.dim(1),
                "topk_idx must be (N <= " + std::to_string(max_tokens_) + ", " +
                    std::to_string(ids32_.dim(1)) + "), got " + shape_text(ids));
        ids32_.shape[0] = mask_.shape[0] = ids.dim(0);
        if (ids.dtype == DType::kInt64) return convert_ids<int64_t>(ids, experts, ids32_, mask_);
        return convert_ids<int32_t>(ids, experts, ids32_, mask_);
    }

    py::object moe_;
    int64_t ranks_;
    int64_t local_ = 0;
    int64_t max_tokens_ = 0;      // ids32's and mask's rows: the most tokens a dispatch may bring
    std::vector<HeldView> kept_;  // the buffers' views and their owners, for the object's life
    TensorView rows_, assist_, token_nums_, recv_, ids32_, mask_;
    bool active_ = false;  // the last dispatch had −1 slots: its mask goes to combine too
};

}  // namespace

void register_deep_ep(py::module_& m) {
    py::class_<LowLatency>(m,
                           "_LowLatency",
                           py::dynamic_attr(),
                           "One parity of moedist.deep_ep's low-latency calls: its reused tensors "
                           "and the dispatch/combine calls over them (deep_ep.cpp).")
        .def(py::init<py::object,
                      int64_t,
                      py::object,
                      py::object,
                      py::object,
                      py::object,
                      py::object,
                      py::object>(),
             py::arg("moe"),
             py::arg("ranks"),
             py::arg("rows"),
             py::arg("assist"),
             py::arg("token_nums"),
             py::arg("recv"),
             py::arg("ids32"),
             py::arg("mask"))
        .def("dispatch",
             &LowLatency::dispatch,
             py::arg("x"),
             py::arg("topk_idx"),
             py::arg("num_experts"),
             py::arg("split"),
             py::arg("stats"),
             py::arg("performance_info"))
        .def("finish",
             &LowLatency::finish,
             py::arg("counts"),
             py::arg("layout_range"),
             py::arg("stats"))
        .def("combine",
             &LowLatency::combine,
             py::arg("x"),
             py::arg("weights"),
             py::arg("out"),
             py::arg("split"),
             py::arg("performance_info"))
        .def_property_readonly("masked", &LowLatency::masked);
}

}  // namespace moedist::python
