#include "errors.hpp"

#include <cctype>
#include <cstring>
#include <utility>

namespace py = pybind11;

namespace moedist::python {

std::string python_names(const std::string& message) {
    // The aclnn parameter names the core's messages use, as Python's keywords spell them.
    static const std::pair<const char*, const char*> kNames[] = {
        {"epWorldSize", "ep_world_size"},
        {"epRankId", "ep_rank_id"},
        {"moeExpertNum", "moe_expert_num"},
        {"tpWorldSize", "tp_world_size"},
        {"tpRankId", "tp_rank_id"},
        {"expertShardType", "expert_shard_type"},
        {"sharedExpertNum", "shared_expert_num"},
        {"sharedExpertRankNum", "shared_expert_rank_num"},
        {"quantMode", "quant_mode"},
        {"globalBs", "global_bs"},
        {"expertTokenNumsType", "expert_token_nums_type"},
        {"commQuantMode", "comm_quant_mode"},
        {"expandX", "expand_x"},
        {"expertIds", "expert_ids"},
        {"expandIdx", "expand_idx"},
        {"expertTokenNums", "expert_token_nums"},
        {"epRecvCounts", "ep_recv_counts"},
        {"epSendCounts", "ep_send_counts"},
        {"tpRecvCounts", "tp_recv_counts"},
        {"tpSendCounts", "tp_send_counts"},
        {"dynamicScales", "dynamic_scales"},
        {"expandScales", "expand_scales"},
        {"expertScales", "expert_scales"},
        // V2 (docs/contract.md §10)
        {"xActiveMask", "x_active_mask"},
        {"assistInfo", "assist_info"},
        {"performanceInfo", "performance_info"},
        {"sharedExpertX", "shared_expert_x"},
        {"oriX", "ori_x"},
        {"constExpertAlpha1", "const_expert_alpha_1"},
        {"constExpertAlpha2", "const_expert_alpha_2"},
        {"constExpertV", "const_expert_v"},
        {"residualX", "residual_x"},
        {"yOut", "y_out"},
        {"rstdOut", "rstd_out"},
        {"xOut", "x"},
        {"normEps", "norm_eps"},
        {"zeroExpertNum", "zero_expert_num"},
        {"copyExpertNum", "copy_expert_num"},
        {"constExpertNum", "const_expert_num"},
        {"commAlg", "comm_alg"},
        {"groupEp", "group_ep"},
        {"groupTp", "group_tp"},
    };
    auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    std::string out = message;
    for (const auto& [aclnn, python] : kNames) {
        const std::string from = aclnn;
        for (std::size_t at = out.find(from); at != std::string::npos; at = out.find(from, at)) {
            const bool whole = (at == 0 || !is_word(out[at - 1])) &&
                               (at + from.size() == out.size() || !is_word(out[at + from.size()]));
            if (!whole) {
                at += from.size();
                continue;
            }
            out.replace(at, from.size(), python);
            at += std::strlen(python);
        }
    }
    return out;
}

void register_errors(py::module_& m) {
    // moedist.Error(code, message): str() is the message; .code the aclnn code
    // (docs/contract.md §7). Shown as moedist.Error, with Python's argument names.
    static py::exception<ModuleError> error(m, "Error", PyExc_RuntimeError);
    error.attr("__module__") = "moedist";
    error.doc() =
        "A moedist failure: .code is the aclnn error code (161001, 161002, 361001, 561002), "
        ".message the one-line message \"<argument> must be <expected>, got <actual>\".";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const ModuleError& e) {
            const std::string message = python_names(e.message);
            py::object instance = py::reinterpret_borrow<py::object>(error)(message);
            instance.attr("code") = static_cast<int>(e.code);
            instance.attr("message") = py::str(message);
            PyErr_SetObject(error.ptr(), instance.ptr());
        }
    });
}

}  // namespace moedist::python
