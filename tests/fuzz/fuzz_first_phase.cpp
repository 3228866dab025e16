// The first phase on anything: random attributes (boundaries, negatives, huge values), random
// profiles, tensors of random presence, dtype, rank, extents and strides, and random
// aclCreateTensor arguments. Every call must return one of SPEC §7's first-phase codes, and the
// sanitizers must stay silent. Tensor memory is never read in the first phase: views point at a
// single byte.
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "aclnn/acl_meta.h"
#include "byte_reader.hpp"
#include "core/ops.hpp"

namespace {

using moedist::DType;
using moedist::TensorView;
using moedist::fuzz::ByteReader;

alignas(64) char storage[64];

// Attribute values where rules change, plus anything.
int64_t attribute(ByteReader& in) {
    static constexpr int64_t kInteresting[] = {0,
                                               1,
                                               2,
                                               3,
                                               4,
                                               7,
                                               8,
                                               16,
                                               24,
                                               32,
                                               64,
                                               128,
                                               144,
                                               256,
                                               288,
                                               512,
                                               7168,
                                               -1,
                                               INT32_MAX,
                                               int64_t{1} << 31,
                                               INT64_MAX,
                                               INT64_MIN,
                                               int64_t{1} << 16,
                                               (int64_t{1} << 16) + 1};
    const uint8_t how = in.u8();
    if (how < 160) return static_cast<int64_t>(in.u8() % 20);
    if (how < 240) return kInteresting[in.u8() % (sizeof(kInteresting) / sizeof(kInteresting[0]))];
    return static_cast<int64_t>(in.u64());
}

int64_t extent(ByteReader& in) {
    const uint8_t how = in.u8();
    if (how < 200) return static_cast<int64_t>(in.u8() % 40);
    if (how < 230) return static_cast<int64_t>(in.u16());
    if (how < 245) return -static_cast<int64_t>(in.u8());
    return static_cast<int64_t>(in.u64() >> (in.u8() % 64));
}

TensorView view(ByteReader& in, DType usual, int32_t usual_ndim) {
    TensorView v;
    v.data = storage;
    v.dtype = in.u8() < 200 ? usual : static_cast<DType>(in.u8() % 12);
    v.ndim = in.u8() < 220 ? usual_ndim : static_cast<int32_t>(in.u8() % 5);
    int64_t stride = 1;
    for (int32_t d = v.ndim - 1; d >= 0; --d) {
        const auto i = static_cast<std::size_t>(d);
        v.shape[i] = extent(in);
        const uint8_t how = in.u8();
        v.strides[i] = how < 200 ? stride : (how < 240 ? extent(in) : 0);
        if (v.shape[i] > 0 && v.shape[i] < (int64_t{1} << 20) && stride < (int64_t{1} << 40))
            stride *= v.shape[i];
    }
    if (in.u8() == 255) v.data = nullptr;
    return v;
}

std::optional<TensorView> maybe(ByteReader& in, DType usual, int32_t usual_ndim) {
    if (in.u8() < 100) return std::nullopt;
    return view(in, usual, usual_ndim);
}

void require_first_phase_code(const moedist::Status& s) {
    switch (s.code()) {
        case moedist::Code::kOk:
        case moedist::Code::kNullptr:
        case moedist::Code::kInvalidParam:
        case moedist::Code::kInnerTiling:
            if (!s.ok() && s.message().empty()) std::abort();  // every error has a message
            return;
        default:
            std::abort();
    }
}

void fuzz_create_tensor(ByteReader& in) {
    int64_t dims[5], strides[5], storage_dims[5];
    const auto ndim = static_cast<uint64_t>(in.u8() % 6);
    for (uint64_t d = 0; d < 5; ++d) {
        dims[d] = extent(in);
        strides[d] = extent(in);
        storage_dims[d] = extent(in);
    }
    const auto storage_ndim = static_cast<uint64_t>(in.u8() % 6);
    const int64_t offset = extent(in);
    const auto dtype = static_cast<aclDataType>(static_cast<int>(in.u8() % 40) - 1);
    aclTensor* t = aclCreateTensor(ndim ? dims : nullptr,
                                   ndim,
                                   dtype,
                                   in.flag() ? strides : nullptr,
                                   offset,
                                   ACL_FORMAT_ND,
                                   storage_ndim ? storage_dims : nullptr,
                                   storage_ndim,
                                   in.flag() ? storage : nullptr);
    if (t != nullptr) aclDestroyTensor(t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    ByteReader in(data, size);
    moedist::MoeConfig c;
    c.ep_world_size = attribute(in);
    c.ep_rank_id = attribute(in);
    c.moe_expert_num = attribute(in);
    c.tp_world_size = attribute(in);
    c.tp_rank_id = attribute(in);
    c.expert_shard_type = in.u8() < 240 ? 0 : attribute(in);
    c.shared_expert_num = attribute(in);
    c.shared_expert_rank_num = attribute(in);
    c.quant_mode = attribute(in);
    c.global_bs = attribute(in);
    c.expert_token_nums_type = attribute(in);
    c.comm_quant_mode = attribute(in);
    c.soc = static_cast<moedist::Soc>(in.u8() % 3);

    moedist::core::CallExtras extras;
    extras.x_active_mask = in.flag();
    extras.group_tp = in.flag() ? "tp" : "";
    moedist::HcclBufferEnv hccl;
    hccl.buffsize_mb = in.flag() ? 200 : attribute(in);
    hccl.intra_pcie = in.flag();
    extras.hccl = hccl;

    const DType x_dtype = in.flag() ? DType::kBFloat16 : DType::kFloat16;
    moedist::DispatchInputs din;
    moedist::DispatchOutputs dout;
    din.x = view(in, x_dtype, 2);
    din.expert_ids = view(in, DType::kInt32, 2);
    din.scales = maybe(in, DType::kFloat32, in.flag() ? 1 : 2);
    din.x_active_mask = maybe(in, DType::kBool, 1);
    din.expert_scales = maybe(in, DType::kFloat32, 2);
    dout.expand_x = view(in, x_dtype, 2);
    dout.dynamic_scales = maybe(in, DType::kFloat32, in.flag() ? 1 : 2);
    dout.expand_idx = view(in, DType::kInt32, 1);
    dout.expert_token_nums = view(in, DType::kInt64, 1);
    dout.ep_recv_counts = view(in, DType::kInt32, 1);
    dout.tp_recv_counts = maybe(in, DType::kInt32, 1);
    dout.expand_scales = maybe(in, DType::kFloat32, 1);
    require_first_phase_code(moedist::core::check_dispatch_call(c, din, dout, extras));

    moedist::CombineInputs cin;
    cin.expand_x = in.flag() ? dout.expand_x : view(in, x_dtype, 2);
    cin.expert_ids = din.expert_ids;
    cin.expand_idx = dout.expand_idx;
    cin.ep_send_counts = dout.ep_recv_counts;
    cin.expert_scales = din.expert_scales ? *din.expert_scales : view(in, DType::kFloat32, 2);
    cin.tp_send_counts = dout.tp_recv_counts;
    const TensorView x_out = in.flag() ? din.x : view(in, x_dtype, 2);
    require_first_phase_code(moedist::core::check_combine_call(c, cin, x_out, extras));

    (void)c.validate();
    fuzz_create_tensor(in);
    return 0;
}
