#include "api/boundary.hpp"

namespace moedist::api {
namespace {
std::string bytes_text(__int128 bytes) {
    if (bytes > INT64_MAX) return "more than 2^63";
    return std::to_string(static_cast<int64_t>(bytes));
}
}  // namespace

// The dispatch scratch (core/dispatch.cpp): the send plan (expandIdx and entries by expert, int32
// each, and E + 1 expert starts), one binary32 row and one byte row of H.
std::string scratch_text(const core::DispatchOp& op) {
    const __int128 entries = static_cast<__int128>(op.num_tokens) * op.top_k;
    const __int128 bytes = entries * 8 + (static_cast<__int128>(op.config.moe_expert_num) + 1) * 4 +
                           static_cast<__int128>(op.hidden) * 5;
    return "its per-call scratch (" + bytes_text(bytes) +
           " bytes: a send plan of BS*K = " + bytes_text(entries) + " entries and " +
           std::to_string(op.config.moe_expert_num) +
           " experts, rows of H = " + std::to_string(op.hidden) + ")";
}

// The combine scratch (core/combine.cpp): three binary32 rows of H.
std::string scratch_text(const core::CombineOp& op) {
    const __int128 bytes = static_cast<__int128>(op.hidden) * 12;
    return "its per-call scratch (" + bytes_text(bytes) +
           " bytes: three binary32 rows of H = " + std::to_string(op.hidden) + ")";
}

}  // namespace moedist::api
