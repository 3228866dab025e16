// moedist._moedist: the C++ API for Python. Tensors cross zero-copy (tensors.hpp); every call
// that runs or waits releases the GIL; every failure is moedist.Error(code, message).
//
//   comms = _moedist.local_group(4)                    # 4 ranks as threads of this process
//   moe = _moedist.Distributor(comms[r], moe_expert_num=8)
//   moe.dispatch(x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, ...)
//   moe.combine(expert_out, expert_ids, expand_idx, ep_recv_counts, expert_scales, x_out)
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "acl/acl_rt.h"
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

// A tensor argument: a tensor, or a (tensor, "dtype name") pair reinterpreting its elements.
HeldView arg_view(const py::handle& arg, const char* name, bool writable) {
    if (py::isinstance<py::tuple>(arg)) {
        auto pair = py::reinterpret_borrow<py::tuple>(arg);
        if (pair.size() != 2 || !py::isinstance<py::str>(pair[1]))
            throw_error(Code::kInvalidParam,
                        std::string(name) + " must be a tensor or a (tensor, dtype name) pair");
        return to_view(pair[0], name, pair[1].cast<std::string>(), writable);
    }
    return to_view(arg, name, std::nullopt, writable);
}

// The tensors of one call: their views, what keeps them alive, and (after the call) the check
// that no other thread moved their memory meanwhile.
struct Holder {
    std::vector<HeldView> held;
    std::vector<const char*> names;
    TensorView input(const py::handle& arg, const char* name) { return take(arg, name, false); }
    TensorView output(const py::handle& arg, const char* name) { return take(arg, name, true); }
    std::optional<TensorView> maybe_input(const py::handle& arg, const char* name) {
        if (arg.is_none()) return std::nullopt;
        return input(arg, name);
    }
    std::optional<TensorView> maybe_output(const py::handle& arg, const char* name) {
        if (arg.is_none()) return std::nullopt;
        return output(arg, name);
    }
    void check_unmoved() const {
        for (std::size_t i = 0; i < held.size(); ++i) python::check_unmoved(held[i], names[i]);
    }

private:
    TensorView take(const py::handle& arg, const char* name, bool writable) {
        held.push_back(arg_view(arg, name, writable));
        names.push_back(name);
        return held.back().view;
    }
};

// Ctrl-C while a call waits for its peers: the wait checks for a pending signal every few
// milliseconds (transport::InterruptCheck); a KeyboardInterrupt stops it, the group is broken
// with that reason, and the interrupt is raised once the call has returned.
class SignalWatch {
public:
    SignalWatch()
        : previous_(transport::set_interrupt_check(
              {&SignalWatch::pending, this, "KeyboardInterrupt (a signal reached Python)"})) {}
    ~SignalWatch() {
        transport::set_interrupt_check(previous_);
        if (type_ != nullptr) PyErr_Restore(type_, value_, traceback_);  // not raised: dropped
    }
    SignalWatch(const SignalWatch&) = delete;
    SignalWatch& operator=(const SignalWatch&) = delete;

    // With the GIL: raises the signal's exception when one stopped the call.
    void raise_if_fired() {
        if (type_ == nullptr) return;
        PyErr_Restore(type_, value_, traceback_);
        type_ = value_ = traceback_ = nullptr;
        throw py::error_already_set();
    }

private:
    static bool pending(void* context) {
        auto* self = static_cast<SignalWatch*>(context);
        if (self->type_ != nullptr) return true;
        PyGILState_STATE gil = PyGILState_Ensure();
        if (PyErr_CheckSignals() != 0) PyErr_Fetch(&self->type_, &self->value_, &self->traceback_);
        PyGILState_Release(gil);
        return self->type_ != nullptr;
    }

    transport::InterruptCheck previous_;
    PyObject* type_ = nullptr;
    PyObject* value_ = nullptr;
    PyObject* traceback_ = nullptr;
};

// Runs `call` without the GIL, interruptible by Ctrl-C; then the tensors' check and the status.
template <class Call>
void run_call(const Holder& h, Call call) {
    SignalWatch watch;
    Status s;
    {
        py::gil_scoped_release release;
        s = call();
    }
    watch.raise_if_fired();
    h.check_unmoved();
    throw_if(s);
}

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

// A timeout as Python gives it: None, seconds (int or float) or a datetime.timedelta.
std::optional<int64_t> timeout_ms_of(const py::object& timeout) {
    if (timeout.is_none()) return std::nullopt;
    double seconds = 0;
    try {
        seconds = py::hasattr(timeout, "total_seconds") ? timeout.attr("total_seconds")().cast<double>()
                                                        : timeout.cast<double>();
    } catch (const py::cast_error&) {
        throw_error(Code::kInvalidParam, "timeout must be None, seconds or a datetime.timedelta");
    }
    if (!(seconds > 0) || seconds > 1e7)
        throw_error(Code::kInnerTiling,
                    "timeout must be in (0, 1e7] seconds, got " + std::to_string(seconds));
    return std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000.0));
}

MoeDistributor make_distributor(const Communicator& ep,
                                int64_t moe_expert_num,
                                const std::optional<Communicator>& tp,
                                int64_t shared_expert_rank_num,
                                std::optional<int64_t> shared_expert_num,
                                int64_t quant_mode,
                                int64_t global_bs,
                                int64_t expert_token_nums_type,
                                int64_t comm_quant_mode,
                                std::optional<bool> zero_padding,
                                std::optional<std::string> soc,
                                const py::object& timeout) {
    if (!ep.valid()) throw_error(Code::kNullptr, "ep must be a live communicator");
    MoeConfig config;
    config.ep_world_size = ep.size();
    config.ep_rank_id = ep.rank();
    config.moe_expert_num = moe_expert_num;
    config.tp_world_size = tp ? tp->size() : 0;
    config.tp_rank_id = tp ? tp->rank() : 0;
    config.shared_expert_rank_num = shared_expert_rank_num;
    config.shared_expert_num = shared_expert_num.value_or(shared_expert_rank_num > 0 ? 1 : 0);
    config.quant_mode = quant_mode;
    config.global_bs = global_bs;
    config.expert_token_nums_type = expert_token_nums_type;
    config.comm_quant_mode = comm_quant_mode;
    config.zero_padding = zero_padding;
    config.timeout_ms = timeout_ms_of(timeout);
    if (soc) {
        config.soc = parse_soc(*soc);
        if (!config.soc)
            throw_error(Code::kInvalidParam, "soc must be generic, A2 or A3, got '" + *soc + "'");
    }
    std::optional<MoeDistributor> out;
    throw_if(MoeDistributor::create(ep, tp, config, &out));
    return *out;
}

void dispatch(MoeDistributor& moe,
              const py::handle& x,
              const py::handle& expert_ids,
              const py::handle& expand_x,
              const py::handle& expand_idx,
              const py::handle& expert_token_nums,
              const py::handle& ep_recv_counts,
              const py::handle& scales,
              const py::handle& expert_scales,
              const py::handle& dynamic_scales,
              const py::handle& tp_recv_counts,
              const py::handle& expand_scales) {
    Holder h;
    DispatchInputs in;
    DispatchOutputs out;
    in.x = h.input(x, "x");
    in.expert_ids = h.input(expert_ids, "expert_ids");
    in.scales = h.maybe_input(scales, "scales");
    in.expert_scales = h.maybe_input(expert_scales, "expert_scales");
    out.expand_x = h.output(expand_x, "expand_x");
    out.expand_idx = h.output(expand_idx, "expand_idx");
    out.expert_token_nums = h.output(expert_token_nums, "expert_token_nums");
    out.ep_recv_counts = h.output(ep_recv_counts, "ep_recv_counts");
    out.dynamic_scales = h.maybe_output(dynamic_scales, "dynamic_scales");
    out.tp_recv_counts = h.maybe_output(tp_recv_counts, "tp_recv_counts");
    out.expand_scales = h.maybe_output(expand_scales, "expand_scales");
    run_call(h, [&] { return moe.try_dispatch(in, out); });
}

void combine(MoeDistributor& moe,
             const py::handle& expand_x,
             const py::handle& expert_ids,
             const py::handle& expand_idx,
             const py::handle& ep_send_counts,
             const py::handle& expert_scales,
             const py::handle& x,
             const py::handle& tp_send_counts) {
    Holder h;
    CombineInputs in;
    in.expand_x = h.input(expand_x, "expand_x");
    in.expert_ids = h.input(expert_ids, "expert_ids");
    in.expand_idx = h.input(expand_idx, "expand_idx");
    in.ep_send_counts = h.input(ep_send_counts, "ep_send_counts");
    in.expert_scales = h.input(expert_scales, "expert_scales");
    in.tp_send_counts = h.maybe_input(tp_send_counts, "tp_send_counts");
    TensorView out = h.output(x, "x");
    run_call(h, [&] { return moe.try_combine(in, out); });
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

    py::class_<MoeDistributor>(
        m,
        "Distributor",
        "One rank's dispatch/combine endpoint: an EP communicator, an optional TP one, and a "
        "validated config (docs/contract.md §1). Outputs are the caller's tensors; nothing is allocated per "
        "call.")
        .def(py::init(&make_distributor),
             py::arg("ep"),
             py::arg("moe_expert_num"),
             py::kw_only(),
             py::arg("tp") = std::nullopt,
             py::arg("shared_expert_rank_num") = 0,
             py::arg("shared_expert_num") = std::nullopt,
             py::arg("quant_mode") = 0,
             py::arg("global_bs") = 0,
             py::arg("expert_token_nums_type") = 0,
             py::arg("comm_quant_mode") = 0,
             py::arg("zero_padding") = std::nullopt,
             py::arg("soc") = std::nullopt,
             py::arg("timeout") = py::none(),
             "Distributor(ep, moe_expert_num, *, tp=None, shared_expert_rank_num=0, "
             "shared_expert_num=None (1 with shared ranks), quant_mode=0, global_bs=0, "
             "expert_token_nums_type=0 (torch_npu's functions default to 1), comm_quant_mode=0, "
             "zero_padding=None (MOEDIST_ZERO_PADDING), soc=None (MOEDIST_SOC), timeout=None "
             "(seconds or datetime.timedelta; None: MOEDIST_TIMEOUT_MS))")
        .def(
            "capacity_rows",
            [](const MoeDistributor& d, int64_t num_tokens, int64_t top_k) {
                return d.config().capacity_rows(num_tokens, top_k);
            },
            py::arg("num_tokens"),
            py::arg("top_k"),
            "A (docs/contract.md §1): rows one TP half of this rank can receive.")
        .def_property_readonly(
            "local_expert_num",
            [](const MoeDistributor& d) { return d.config().local_expert_num(); })
        .def_property_readonly("is_shared_rank",
                               [](const MoeDistributor& d) { return d.config().is_shared_rank(); })
        .def_property_readonly("tp_size",
                               [](const MoeDistributor& d) { return d.config().tp_size(); })
        .def_property_readonly("ep_world_size",
                               [](const MoeDistributor& d) { return d.config().ep_world_size; })
        .def_property_readonly("ep_rank_id",
                               [](const MoeDistributor& d) { return d.config().ep_rank_id; })
        .def_property_readonly("quant_mode",
                               [](const MoeDistributor& d) { return d.config().quant_mode; })
        .def_property_readonly("moe_expert_num",
                               [](const MoeDistributor& d) { return d.config().moe_expert_num; })
        .def("dispatch",
             &dispatch,
             py::arg("x"),
             py::arg("expert_ids"),
             py::arg("expand_x"),
             py::arg("expand_idx"),
             py::arg("expert_token_nums"),
             py::arg("ep_recv_counts"),
             py::kw_only(),
             py::arg("scales") = py::none(),
             py::arg("expert_scales") = py::none(),
             py::arg("dynamic_scales") = py::none(),
             py::arg("tp_recv_counts") = py::none(),
             py::arg("expand_scales") = py::none(),
             "Dispatch into the caller's outputs (docs/contract.md §3). A tensor may be a (tensor, dtype name) "
             "pair, "
             "e.g. (uint8 tensor, 'float8_e4m3fn').")
        .def("combine",
             &combine,
             py::arg("expand_x"),
             py::arg("expert_ids"),
             py::arg("expand_idx"),
             py::arg("ep_send_counts"),
             py::arg("expert_scales"),
             py::arg("x"),
             py::kw_only(),
             py::arg("tp_send_counts") = py::none(),
             "Combine into the caller's x (BS, H) (docs/contract.md §4).");

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
