// moedist._moedist: the C++ API for Python. Tensors cross zero-copy (tensors.hpp); every call
// that runs or waits releases the GIL; every failure is moedist.Error(code, message).
//
//   comms = _moedist.local_group(4)                    # 4 ranks as threads of this process
//   moe = _moedist.Distributor(comms[r], moe_expert_num=8)
//   moe.dispatch(x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, ...)
//   moe.combine(expert_out, expert_ids, expand_idx, ep_recv_counts, expert_scales, x_out)
//
// The V2 family (docs/contract.md §10) is the same two methods on a Distributor(..., api=2):
// expand_idx may be None, assist_info and the other V2 tensors come as keywords. The names Python
// knows are in two tables below: attributes() (the config) and dispatch_tensors() /
// combine_tensors() (the optional tensors of a call).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "acl/acl_rt.h"
#include "call.hpp"
#include "deep_ep.hpp"
#include "errors.hpp"
#include "moedist/communicator.hpp"
#include "moedist/moedist.hpp"
#include "tensors.hpp"
#include "transport/transport.hpp"
#ifdef MOEDIST_PYTHON_MPI
#include "moedist/mpi.hpp"
#endif

namespace py = pybind11;

namespace moedist::python {
namespace {

Communicator join(int rank, int size, const std::string& name, const py::function& all_gather) {
    // The callback runs with the GIL; it gets this rank's bytes and returns every rank's, in rank
    // order.
    Communicator::AllGather gather = [&all_gather](const std::vector<std::byte>& mine,
                                                   std::vector<std::byte>* all) {
        py::gil_scoped_acquire gil;
        try {
            py::bytes mine_bytes(reinterpret_cast<const char*>(mine.data()), mine.size());
            py::list parts = all_gather(mine_bytes);
            all->clear();
            for (const py::handle& part : parts) {
                std::string bytes = part.cast<py::bytes>();
                if (bytes.size() != mine.size())
                    return Status(Code::kRuntime,
                                  "all_gather must return every rank's bytes of the same length (" +
                                      std::to_string(mine.size()) + "), got " +
                                      std::to_string(bytes.size()));
                const auto* begin = reinterpret_cast<const std::byte*>(bytes.data());
                all->insert(all->end(), begin, begin + bytes.size());
            }
        } catch (py::error_already_set& e) {
            return Status(Code::kRuntime, std::string("all_gather raised: ") + e.what());
        }
        return Status::Ok();
    };
    Communicator out;
    Status s;
    {
        py::gil_scoped_release release;
        s = Communicator::join_processes(rank, size, name, gather, &out);
    }
    throw_if(s);
    return out;
}

// ---- The one place that names things for Python ----------------------------------------------
//
// Every MoeConfig attribute Python sees, by its keyword: Distributor(...) takes those with a
// default (`shown`), every one is a read-only property of the Distributor, and the constructor's
// docstring is written from this table. Adding an attribute is one line here.
struct Attribute {
    const char* name;
    const char* shown;  // the keyword's default as the docstring shows it; nullptr: not a keyword
    void (*set)(MoeConfig&, const py::handle&);
    py::object (*get)(const MoeConfig&);
};

std::string type_name_of(const py::handle& value) {
    return py::str(py::type::handle_of(value).attr("__name__")).cast<std::string>();
}

int64_t int_of(const py::handle& value, const char* name) {
    if (!py::isinstance<py::int_>(value) && !py::hasattr(value, "__index__"))
        throw py::type_error(std::string(name) + " must be an int, got " + type_name_of(value));
    try {
        return py::cast<int64_t>(value);
    } catch (const py::cast_error&) {
        throw_error(
            Code::kInnerTiling,
            std::string(name) + " must fit in int64, got " + py::str(value).cast<std::string>());
    }
}

std::string str_of(const py::handle& value, const char* name) {
    if (!py::isinstance<py::str>(value))
        throw py::type_error(std::string(name) + " must be a str, got " + type_name_of(value));
    return value.cast<std::string>();
}

// A timeout as Python gives it: None, seconds (int or float) or a datetime.timedelta.
std::optional<int64_t> timeout_ms_of(const py::handle& timeout) {
    if (timeout.is_none()) return std::nullopt;
    double seconds = 0;
    try {
        seconds = py::hasattr(timeout, "total_seconds")
                      ? timeout.attr("total_seconds")().cast<double>()
                      : timeout.cast<double>();
    } catch (const py::cast_error&) {
        throw_error(Code::kInvalidParam, "timeout must be None, seconds or a datetime.timedelta");
    }
    if (!(seconds > 0) || seconds > 1e7)
        throw_error(Code::kInnerTiling,
                    "timeout must be in (0, 1e7] seconds, got " + std::to_string(seconds));
    return std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000.0));
}

// shared_expert_num's "not given": 1 with shared ranks, else 0 (fixed up after the keywords).
constexpr int64_t kSharedExpertNumUnset = std::numeric_limits<int64_t>::min();

// clang-format off
#define MOEDIST_INT_ATTRIBUTE(field, shown)                                                   \
    Attribute {                                                                               \
        #field, shown, [](MoeConfig& c, const py::handle& v) { c.field = int_of(v, #field); }, \
            [](const MoeConfig& c) -> py::object { return py::int_(c.field); }                 \
    }
// clang-format on

const std::vector<Attribute>& attributes() {
    static const std::vector<Attribute> kAttributes = {
        // From the communicators (and the positional moe_expert_num): properties only.
        MOEDIST_INT_ATTRIBUTE(ep_world_size, nullptr),
        MOEDIST_INT_ATTRIBUTE(ep_rank_id, nullptr),
        MOEDIST_INT_ATTRIBUTE(moe_expert_num, nullptr),
        MOEDIST_INT_ATTRIBUTE(tp_world_size, nullptr),
        MOEDIST_INT_ATTRIBUTE(tp_rank_id, nullptr),
        // Keywords.
        MOEDIST_INT_ATTRIBUTE(expert_shard_type, "0"),
        MOEDIST_INT_ATTRIBUTE(shared_expert_rank_num, "0"),
        {"shared_expert_num",
         "None (1 with shared ranks, else 0)",
         [](MoeConfig& c, const py::handle& v) {
             c.shared_expert_num =
                 v.is_none() ? kSharedExpertNumUnset : int_of(v, "shared_expert_num");
         },
         [](const MoeConfig& c) -> py::object { return py::int_(c.shared_expert_num); }},
        MOEDIST_INT_ATTRIBUTE(quant_mode, "0"),
        MOEDIST_INT_ATTRIBUTE(global_bs, "0"),
        MOEDIST_INT_ATTRIBUTE(expert_token_nums_type, "0 (torch_npu's functions default to 1)"),
        MOEDIST_INT_ATTRIBUTE(comm_quant_mode, "0"),
        {"api",
         "1 (V1; 2: the V2 family, docs/contract.md §10)",
         [](MoeConfig& c, const py::handle& v) { c.api = static_cast<Api>(int_of(v, "api")); },
         [](const MoeConfig& c) -> py::object { return py::int_(static_cast<int64_t>(c.api)); }},
        {"row_layout",
         "0 (packed; 1: expert-padded [L, W·maxBs] rows, docs/contract.md §12.3)",
         [](MoeConfig& c, const py::handle& v) {
             c.row_layout = static_cast<RowLayout>(int_of(v, "row_layout"));
         },
         [](const MoeConfig& c) -> py::object {
             return py::int_(static_cast<int64_t>(c.row_layout));
         }},
        MOEDIST_INT_ATTRIBUTE(zero_expert_num, "0"),
        MOEDIST_INT_ATTRIBUTE(copy_expert_num, "0"),
        MOEDIST_INT_ATTRIBUTE(const_expert_num, "0"),
        {"comm_alg",
         "''",
         [](MoeConfig& c, const py::handle& v) { c.comm_alg = str_of(v, "comm_alg"); },
         [](const MoeConfig& c) -> py::object { return py::str(c.comm_alg); }},
        {"zero_padding",
         "None (MOEDIST_ZERO_PADDING)",
         [](MoeConfig& c, const py::handle& v) {
             if (v.is_none()) {
                 c.zero_padding.reset();
             } else if (py::isinstance<py::bool_>(v)) {
                 c.zero_padding = v.cast<bool>();
             } else {
                 throw py::type_error("zero_padding must be None or a bool, got " +
                                      type_name_of(v));
             }
         },
         [](const MoeConfig& c) -> py::object {
             return c.zero_padding ? py::object(py::bool_(*c.zero_padding))
                                   : py::object(py::none());
         }},
        {"soc",
         "None (MOEDIST_SOC)",
         [](MoeConfig& c, const py::handle& v) {
             if (v.is_none()) {
                 c.soc.reset();
                 return;
             }
             const std::string text = str_of(v, "soc");
             c.soc = parse_soc(text);
             if (!c.soc)
                 throw_error(Code::kInvalidParam,
                             "soc must be generic, A2 or A3, got '" + text + "'");
         },
         [](const MoeConfig& c) -> py::object {
             return c.soc ? py::object(py::str(soc_name(*c.soc))) : py::object(py::none());
         }},
        {"timeout",
         "None (seconds or datetime.timedelta; None: MOEDIST_TIMEOUT_MS)",
         [](MoeConfig& c, const py::handle& v) { c.timeout_ms = timeout_ms_of(v); },
         [](const MoeConfig& c) -> py::object {
             return c.timeout_ms
                        ? py::object(py::float_(static_cast<double>(*c.timeout_ms) / 1000.0))
                        : py::object(py::none());
         }},
    };
    return kAttributes;
}

#undef MOEDIST_INT_ATTRIBUTE

const Attribute* find_attribute(const std::string& name) {
    for (const Attribute& a : attributes())
        if (a.shown != nullptr && name == a.name) return &a;
    return nullptr;
}

std::string distributor_doc() {
    std::string doc = "Distributor(ep, moe_expert_num, *, tp=None";
    for (const Attribute& a : attributes())
        if (a.shown != nullptr) doc.append(", ").append(a.name).append("=").append(a.shown);
    doc +=
        ")\n\nOne rank's dispatch/combine endpoint on communicator `ep` (and a 2-rank `tp` for "
        "TP = 2) with a config validated once (docs/contract.md §1, §10). Every keyword is also a "
        "read-only property.";
    return doc;
}

MoeDistributor make_distributor(const Communicator& ep,
                                int64_t moe_expert_num,
                                const py::kwargs& kwargs) {
    if (!ep.valid()) throw_error(Code::kNullptr, "ep must be a live communicator");
    MoeConfig config;
    config.ep_world_size = ep.size();
    config.ep_rank_id = ep.rank();
    config.moe_expert_num = moe_expert_num;
    config.shared_expert_num = kSharedExpertNumUnset;
    std::optional<Communicator> tp;
    for (const auto& [key, value] : kwargs) {
        const std::string name = key.cast<std::string>();
        if (name == "tp") {
            if (value.is_none()) continue;
            if (!py::isinstance<Communicator>(value))
                throw py::type_error("tp must be None or a moedist.Communicator, got " +
                                     type_name_of(value));
            tp = value.cast<Communicator>();
            continue;
        }
        const Attribute* a = find_attribute(name);
        if (a == nullptr)
            throw py::type_error("Distributor() got an unexpected keyword argument '" + name + "'");
        a->set(config, value);
    }
    config.tp_world_size = tp ? tp->size() : 0;
    config.tp_rank_id = tp ? tp->rank() : 0;
    if (config.shared_expert_num == kSharedExpertNumUnset)
        config.shared_expert_num = config.shared_expert_rank_num > 0 ? 1 : 0;
    std::optional<MoeDistributor> out;
    throw_if(MoeDistributor::create(ep, tp, config, &out));
    return *out;
}

// The optional tensors of dispatch and combine, by keyword: where each goes and whether the call
// writes it. The methods take them as keywords and their docstrings list them from here.
template <class Call>
struct OptionalTensor {
    const char* name;
    bool written;
    std::optional<TensorView>& (*slot)(Call&);
};

struct DispatchCall {
    DispatchInputs in;
    DispatchOutputs out;
};

#define MOEDIST_SLOT(Call, path) [](Call& c) -> std::optional<TensorView>& { return c.path; }

const std::vector<OptionalTensor<DispatchCall>>& dispatch_tensors() {
    static const std::vector<OptionalTensor<DispatchCall>> kTensors = {
        {"scales", false, MOEDIST_SLOT(DispatchCall, in.scales)},
        {"x_active_mask", false, MOEDIST_SLOT(DispatchCall, in.x_active_mask)},
        {"expert_scales", false, MOEDIST_SLOT(DispatchCall, in.expert_scales)},
        {"dynamic_scales", true, MOEDIST_SLOT(DispatchCall, out.dynamic_scales)},
        {"tp_recv_counts", true, MOEDIST_SLOT(DispatchCall, out.tp_recv_counts)},
        {"expand_scales", true, MOEDIST_SLOT(DispatchCall, out.expand_scales)},
        {"assist_info", true, MOEDIST_SLOT(DispatchCall, out.assist_info)},
        {"performance_info", true, MOEDIST_SLOT(DispatchCall, out.performance_info)},
        {"extra", false, MOEDIST_SLOT(DispatchCall, in.extra)},
        {"expand_extra", true, MOEDIST_SLOT(DispatchCall, out.expand_extra)},
    };
    return kTensors;
}

const std::vector<OptionalTensor<CombineInputs>>& combine_tensors() {
    static const std::vector<OptionalTensor<CombineInputs>> kTensors = {
        {"tp_send_counts", false, MOEDIST_SLOT(CombineInputs, tp_send_counts)},
        {"assist_info", false, MOEDIST_SLOT(CombineInputs, assist_info)},
        {"x_active_mask", false, MOEDIST_SLOT(CombineInputs, x_active_mask)},
        {"shared_expert_x", false, MOEDIST_SLOT(CombineInputs, shared_expert_x)},
        {"ori_x", false, MOEDIST_SLOT(CombineInputs, ori_x)},
        {"const_expert_alpha_1", false, MOEDIST_SLOT(CombineInputs, const_alpha1)},
        {"const_expert_alpha_2", false, MOEDIST_SLOT(CombineInputs, const_alpha2)},
        {"const_expert_v", false, MOEDIST_SLOT(CombineInputs, const_v)},
        {"performance_info", true, MOEDIST_SLOT(CombineInputs, performance_info)},
        {"residual_x", false, MOEDIST_SLOT(CombineInputs, residual_x)},
        {"gamma", false, MOEDIST_SLOT(CombineInputs, gamma)},
        {"y_out", true, MOEDIST_SLOT(CombineInputs, y_out)},
        {"rstd_out", true, MOEDIST_SLOT(CombineInputs, rstd_out)},
    };
    return kTensors;
}

#undef MOEDIST_SLOT

template <class Call>
std::string keywords_doc(const std::vector<OptionalTensor<Call>>& tensors) {
    std::string doc;
    for (const auto& t : tensors)
        doc.append(doc.empty() ? "" : ", ").append(t.name).append("=None");
    return doc;
}

// Puts each keyword tensor of `kwargs` in its slot; `scalar` takes the keywords that are not
// tensors (returns false for a name it does not know either).
template <class Call, class Scalar>
void take_keywords(Holder& h,
                   const std::vector<OptionalTensor<Call>>& tensors,
                   const py::kwargs& kwargs,
                   const char* method,
                   Call& call,
                   Scalar scalar) {
    for (const auto& [key, value] : kwargs) {
        const std::string name = py::cast<std::string>(key);
        const OptionalTensor<Call>* found = nullptr;
        for (const auto& t : tensors)
            if (name == t.name) found = &t;
        if (found == nullptr) {
            if (scalar(name, value)) continue;
            throw py::type_error(std::string(method) + "() got an unexpected keyword argument '" +
                                 name + "'");
        }
        found->slot(call) =
            found->written ? h.maybe_output(value, found->name) : h.maybe_input(value, found->name);
    }
}

void take_dispatch(MoeDistributor& moe,
                   Holder& h,
                   DispatchCall& call,
                   const py::handle& x,
                   const py::handle& expert_ids,
                   const py::handle& expand_x,
                   const py::handle& expand_idx,
                   const py::handle& expert_token_nums,
                   const py::handle& ep_recv_counts,
                   const py::kwargs& kwargs) {
    call.in.x = h.input(x, "x");
    call.in.expert_ids = h.input(expert_ids, "expert_ids");
    call.out.expand_x = h.output(expand_x, "expand_x");
    // V2 has no expandIdx: None is fine there.
    if (moe.config().v2()) {
        call.out.expand_idx = h.maybe_output(expand_idx, "expand_idx").value_or(TensorView{});
    } else {
        call.out.expand_idx = h.output(expand_idx, "expand_idx");
    }
    call.out.expert_token_nums = h.output(expert_token_nums, "expert_token_nums");
    call.out.ep_recv_counts = h.output(ep_recv_counts, "ep_recv_counts");
    take_keywords(
        h, dispatch_tensors(), kwargs, "dispatch", call, [](const std::string&, const py::handle&) {
            return false;
        });
}

void take_combine(MoeDistributor& moe,
                  Holder& h,
                  CombineInputs& in,
                  TensorView& out,
                  const py::handle& expand_x,
                  const py::handle& expert_ids,
                  const py::handle& expand_idx,
                  const py::handle& ep_send_counts,
                  const py::handle& expert_scales,
                  const py::handle& x,
                  const py::kwargs& kwargs) {
    in.expand_x = h.input(expand_x, "expand_x");
    in.expert_ids = h.input(expert_ids, "expert_ids");
    if (moe.config().v2()) {
        in.expand_idx = h.maybe_input(expand_idx, "expand_idx").value_or(TensorView{});
    } else {
        in.expand_idx = h.input(expand_idx, "expand_idx");
    }
    in.ep_send_counts = h.input(ep_send_counts, "ep_send_counts");
    in.expert_scales = h.input(expert_scales, "expert_scales");
    take_keywords(
        h,
        combine_tensors(),
        kwargs,
        "combine",
        in,
        [&in](const std::string& name, const py::handle& value) {
            if (name != "norm_eps") return false;
            try {
                in.norm_eps = static_cast<float>(value.cast<double>());
            } catch (const py::cast_error&) {
                throw py::type_error("norm_eps must be a float, got " + type_name_of(value));
            }
            return true;
        });
    out = h.output(x, "x");
}

void dispatch(MoeDistributor& moe,
              const py::handle& x,
              const py::handle& expert_ids,
              const py::handle& expand_x,
              const py::handle& expand_idx,
              const py::handle& expert_token_nums,
              const py::handle& ep_recv_counts,
              const py::kwargs& kwargs) {
    Holder h;
    DispatchCall call;
    take_dispatch(moe,
                  h,
                  call,
                  x,
                  expert_ids,
                  expand_x,
                  expand_idx,
                  expert_token_nums,
                  ep_recv_counts,
                  kwargs);
    run_call(h, [&] { return moe.try_dispatch(call.in, call.out); });
}

void combine(MoeDistributor& moe,
             const py::handle& expand_x,
             const py::handle& expert_ids,
             const py::handle& expand_idx,
             const py::handle& ep_send_counts,
             const py::handle& expert_scales,
             const py::handle& x,
             const py::kwargs& kwargs) {
    Holder h;
    CombineInputs in;
    TensorView out;
    take_combine(moe,
                 h,
                 in,
                 out,
                 expand_x,
                 expert_ids,
                 expand_idx,
                 ep_send_counts,
                 expert_scales,
                 x,
                 kwargs);
    run_call(h, [&] { return moe.try_combine(in, out); });
}

std::unique_ptr<Pending> dispatch_send(MoeDistributor& moe,
                                       const py::handle& x,
                                       const py::handle& expert_ids,
                                       const py::handle& expand_x,
                                       const py::handle& expand_idx,
                                       const py::handle& expert_token_nums,
                                       const py::handle& ep_recv_counts,
                                       const py::kwargs& kwargs) {
    auto pending = std::make_unique<Pending>();
    pending->what = "dispatch";
    DispatchCall call;
    take_dispatch(moe,
                  pending->held,
                  call,
                  x,
                  expert_ids,
                  expand_x,
                  expand_idx,
                  expert_token_nums,
                  ep_recv_counts,
                  kwargs);
    run_call(pending->held,
             [&] { return moe.try_dispatch_send(call.in, call.out, &pending->call); });
    return pending;
}

std::unique_ptr<Pending> combine_send(MoeDistributor& moe,
                                      const py::handle& expand_x,
                                      const py::handle& expert_ids,
                                      const py::handle& expand_idx,
                                      const py::handle& ep_send_counts,
                                      const py::handle& expert_scales,
                                      const py::handle& x,
                                      const py::kwargs& kwargs) {
    auto pending = std::make_unique<Pending>();
    pending->what = "combine";
    CombineInputs in;
    TensorView out;
    take_combine(moe,
                 pending->held,
                 in,
                 out,
                 expand_x,
                 expert_ids,
                 expand_idx,
                 ep_send_counts,
                 expert_scales,
                 x,
                 kwargs);
    run_call(pending->held, [&] { return moe.try_combine_send(in, out, &pending->call); });
    return pending;
}

py::dict shapes_of(const MoeDistributor& moe,
                   int64_t num_tokens,
                   int64_t top_k,
                   int64_t hidden,
                   const std::string& x_dtype) {
    DType dtype;
    if (!parse_dtype(x_dtype, &dtype))
        throw_error(Code::kInvalidParam,
                    "x_dtype must be a dtype name moedist knows, got '" + x_dtype + "'");
    if (num_tokens < 0 || top_k < 1 || hidden < 1)
        throw_error(Code::kInnerTiling,
                    "num_tokens, top_k and hidden must be >= 0, >= 1 and >= 1, got " +
                        std::to_string(num_tokens) + ", " + std::to_string(top_k) + " and " +
                        std::to_string(hidden));
    const DispatchShapes s = moe.config().shapes(num_tokens, top_k, hidden, dtype);
    py::dict d;
    d["capacity"] = s.capacity;
    d["expand_x_rows"] = s.expand_x_rows;
    d["hidden"] = s.hidden;
    d["makes_scales"] = s.makes_scales;
    d["scale_columns"] = s.scale_columns;
    d["expand_idx"] = s.expand_idx;
    d["assist_info"] = s.assist_info;
    d["expert_token_nums"] = s.expert_token_nums;
    d["ep_recv_counts"] = s.ep_recv_counts;
    d["tp_recv_counts"] = s.tp_recv_counts;
    d["expand_scales"] = s.expand_scales;
    return d;
}

// Bytes from the shared-memory arena (aclrtMalloc): peers of a process group read and write them
// in place, where other memory is staged once per call. Freed when the returned buffer goes.
struct SharedBuffer {
    void* data = nullptr;
    std::size_t bytes = 0;
    ~SharedBuffer() {
        if (data != nullptr) (void)aclrtFree(data);
    }
};

}  // namespace
}  // namespace moedist::python

PYBIND11_MODULE(_moedist, m) {
    using namespace moedist;
    using namespace moedist::python;
    m.doc() = "moedist: MoE expert-parallel dispatch and combine (aclnnMoeDistribute*) on CPUs";
    m.attr("__version__") = MOEDIST_VERSION;
    register_errors(m);
    register_deep_ep(m);

    py::class_<Communicator>(m, "Communicator", "One rank's membership of a moedist group.")
        .def_property_readonly("rank", &Communicator::rank)
        .def_property_readonly("size", &Communicator::size)
        .def_property_readonly("name",
                               &Communicator::name,
                               "The group name dispatch and combine take as group_ep / group_tp.")
        .def_static(
            "find",
            [](const std::string& name, int rank) {
                Communicator out;
                throw_if(Communicator::find(name, rank, &out));
                return out;
            },
            py::arg("name"),
            py::arg("rank"),
            "The handle of `rank` in the group called `name` that this process holds.")
        .def("__repr__", [](const Communicator& c) {
            return "<moedist.Communicator '" + c.name() + "' rank " + std::to_string(c.rank()) +
                   " of " + std::to_string(c.size()) + ">";
        });

    m.def(
        "local_group",
        [](int size, const std::string& name) {
            if (size < 1 || size > MoeConfig::kMaxWorldSize)
                throw_error(Code::kInnerTiling,
                            "local_group size must be in [1, 65536], got " + std::to_string(size));
            return Communicator::create_local_group(size, name);
        },
        py::arg("size"),
        py::arg("name") = "",
        "`size` communicators of one group whose ranks are threads of this process.");
    m.def(
        "from_rank_table",
        [](const std::string& path, int rank) {
            Communicator out;
            Status s;
            {
                py::gil_scoped_release release;
                s = Communicator::from_rank_table(path, rank, &out);
            }
            throw_if(s);
            return out;
        },
        py::arg("path"),
        py::arg("rank"),
        "Rank `rank` of the group an HCCL rank table lists (as HcclCommInitClusterInfo).");
    m.def("join",
          &join,
          py::arg("rank"),
          py::arg("size"),
          py::arg("name"),
          py::arg("all_gather"),
          "Rank `rank` of a group of processes of this host, bootstrapped over all_gather(bytes) "
          "-> list[bytes] "
          "(called twice by every member). `name` is the same on every member and unique on the "
          "host.");
#ifdef MOEDIST_PYTHON_MPI
    m.def(
        "_from_mpi_fortran",
        [](int64_t fortran_handle) {
            Communicator out;
            MPI_Comm comm = MPI_Comm_f2c(static_cast<MPI_Fint>(fortran_handle));
            Status s;
            {
                py::gil_scoped_release release;
                s = from_mpi(comm, &out);
            }
            throw_if(s);
            return out;
        },
        py::arg("fortran_handle"));
    m.attr("has_mpi") = true;
#else
    m.attr("has_mpi") = false;
#endif

    static const std::string kDistributorDoc = distributor_doc();
    static const std::string kDispatchDoc =
        "dispatch(x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, *, " +
        keywords_doc(dispatch_tensors()) +
        ")\n\nDispatch into the caller's outputs (docs/contract.md §3; api=2: §10, where "
        "expand_idx "
        "may be None and assist_info is required). A tensor may be a (tensor, dtype name) pair, "
        "e.g. (uint8 tensor, 'float8_e4m3fn'); masks are bool tensors.";
    static const std::string kCombineDoc =
        "combine(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x, *, " +
        keywords_doc(combine_tensors()) +
        ", norm_eps=1e-6)\n\nCombine into the caller's x (BS, H) (docs/contract.md §4; api=2: §10, "
        "where expand_idx may be None, an expert_scales with a 0 dim asks for an unweighted sum, "
        "and residual_x with gamma makes it CombineAddRmsNorm: x (BS, 1, H) gets the residual "
        "sum, y_out and rstd_out the norm).";
    py::class_<MoeDistributor> distributor(m, "Distributor", kDistributorDoc.c_str());
    distributor
        .def(py::init(&make_distributor),
             py::arg("ep"),
             py::arg("moe_expert_num"),
             kDistributorDoc.c_str())
        .def(
            "capacity_rows",
            [](const MoeDistributor& d, int64_t num_tokens, int64_t top_k) {
                return d.config().capacity_rows(num_tokens, top_k);
            },
            py::arg("num_tokens"),
            py::arg("top_k"),
            "A (docs/contract.md §1, §10): rows one TP half of this rank can receive.")
        .def("shapes",
             &shapes_of,
             py::arg("num_tokens"),
             py::arg("top_k"),
             py::arg("hidden"),
             py::arg("x_dtype") = "bfloat16",
             "The least shapes of dispatch's outputs for BS = num_tokens, K = top_k, H = hidden "
             "(MoeConfig::shapes): a dict with capacity (A), expand_x_rows (T*A), hidden, "
             "makes_scales, scale_columns, expand_idx, assist_info (V2: 3*A), expert_token_nums, "
             "ep_recv_counts, tp_recv_counts and expand_scales.")
        .def_property_readonly(
            "local_expert_num",
            [](const MoeDistributor& d) { return d.config().local_expert_num(); })
        .def_property_readonly("is_shared_rank",
                               [](const MoeDistributor& d) { return d.config().is_shared_rank(); })
        .def_property_readonly("tp_size",
                               [](const MoeDistributor& d) { return d.config().tp_size(); })
        .def("dispatch",
             &dispatch,
             py::arg("x"),
             py::arg("expert_ids"),
             py::arg("expand_x"),
             py::arg("expand_idx"),
             py::arg("expert_token_nums"),
             py::arg("ep_recv_counts"),
             kDispatchDoc.c_str())
        .def("combine",
             &combine,
             py::arg("expand_x"),
             py::arg("expert_ids"),
             py::arg("expand_idx"),
             py::arg("ep_send_counts"),
             py::arg("expert_scales"),
             py::arg("x"),
             kCombineDoc.c_str())
        .def("dispatch_send",
             &dispatch_send,
             py::arg("x"),
             py::arg("expert_ids"),
             py::arg("expand_x"),
             py::arg("expand_idx"),
             py::arg("expert_token_nums"),
             py::arg("ep_recv_counts"),
             "dispatch's send half (docs/contract.md §13): the same arguments as dispatch(); "
             "returns "
             "a Pending whose wait() is the receive half. At most 2 calls in flight per group; "
             "receive halves in call order; the tensors must stay untouched until wait() returns.")
        .def("combine_send",
             &combine_send,
             py::arg("expand_x"),
             py::arg("expert_ids"),
             py::arg("expand_idx"),
             py::arg("ep_send_counts"),
             py::arg("expert_scales"),
             py::arg("x"),
             "combine's send half: the same arguments as combine(); returns a Pending whose "
             "wait() is the receive half.");
    py::class_<Pending>(
        m, "Pending", "A split dispatch or combine between its send and receive halves.")
        .def("wait",
             &Pending::wait,
             "The receive half: waits for the peers, moves the rows, completes the call; raises "
             "moedist.Error as the blocking call would (361001 when an earlier call of the group "
             "is still pending: this one then stays pending).")
        .def_property_readonly("pending", &Pending::pending, "The receive half has not completed.")
        .def("__repr__", [](const Pending& p) {
            return "<moedist.Pending " + p.what + (p.pending() ? " (pending)>" : " (done)>");
        });
    py::list keywords;
    for (const Attribute& a : attributes())
        if (a.shown != nullptr) keywords.append(a.name);
    distributor.attr("keywords") = py::tuple(keywords);  // the constructor's config keywords
    for (const Attribute& a : attributes()) {
        auto get = a.get;
        distributor.def_property_readonly(
            a.name, [get](const MoeDistributor& d) { return get(d.config()); });
    }

    m.def(
        "_shared_array",
        [](std::size_t bytes) {
            auto* buffer = new SharedBuffer;
            if (aclrtMalloc(&buffer->data, bytes > 0 ? bytes : 1, ACL_MEM_MALLOC_HUGE_FIRST) != 0) {
                delete buffer;
                throw_error(
                    Code::kRuntime,
                    "shared memory of " + std::to_string(bytes) + " bytes could not be allocated");
            }
            buffer->bytes = bytes;
            py::capsule owner(buffer, [](void* p) { delete static_cast<SharedBuffer*>(p); });
            return py::array(py::dtype("uint8"),
                             {static_cast<py::ssize_t>(bytes)},
                             {py::ssize_t{1}},
                             buffer->data,
                             owner);
        },
        py::arg("bytes"),
        "A uint8 numpy array of `bytes` bytes in the shared arena (aclrtMalloc), freed with the "
        "array.");
}
