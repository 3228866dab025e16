// The generic first-phase checks of docs/validation.md (src/core/validate.cpp,
// MoeConfig::validate), one case per check id: the base call passes, each accepted mutation (the
// boundary) passes, each rejected mutation (one past it) fails with the check's code and a message
// naming the parameter. Shapes alone: the first phase never reads tensor memory.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/ops.hpp"
#include "core/profile.hpp"

namespace {

using moedist::Code;
using moedist::DType;
using moedist::TensorView;

// Aligned for every element type (the first phase checks alignment, never reads).
alignas(64) char storage[64];

TensorView shaped(DType dtype, std::initializer_list<int64_t> shape) {
    return TensorView::contiguous(storage, dtype, shape);
}

// W 4, rank 1, E 8 (L 2), K 3, BS 5, H 64, bf16, no quantization: A = 5 * 4 * 2 = 40.
struct Call {
    moedist::MoeConfig c;
    moedist::DispatchInputs din;
    moedist::DispatchOutputs dout;
    moedist::CombineInputs cin;
    TensorView x_out;
    moedist::core::CallExtras extras;

    Call() {
        c.ep_world_size = 4;
        c.ep_rank_id = 1;
        c.moe_expert_num = 8;
        c.soc = moedist::Soc::kGeneric;
        resize(5, 64, 3, 40);
    }
    // Every tensor at its minimum for BS, H, K and T*A rows.
    void resize(int64_t bs, int64_t h, int64_t k, int64_t rows) {
        din.x = shaped(DType::kBFloat16, {bs, h});
        din.expert_ids = shaped(DType::kInt32, {bs, k});
        din.expert_scales = shaped(DType::kFloat32, {bs, k});
        dout.expand_x = shaped(DType::kBFloat16, {rows, h});
        dout.expand_idx = shaped(DType::kInt32, {bs * k});
        dout.expert_token_nums = shaped(DType::kInt64, {c.local_expert_num()});
        dout.ep_recv_counts =
            shaped(DType::kInt32, {c.tp_size() * c.ep_world_size * c.local_expert_num()});
        dout.expand_scales = shaped(DType::kFloat32, {rows / c.tp_size()});
        cin.expand_x = shaped(DType::kBFloat16, {rows, h});
        cin.expert_ids = din.expert_ids;
        cin.expand_idx = dout.expand_idx;
        cin.ep_send_counts = dout.ep_recv_counts;
        cin.expert_scales = *din.expert_scales;
        x_out = shaped(DType::kBFloat16, {bs, h});
    }
    // Mode 2 to int8 with per-token scales (T*A rows).
    void per_token_int8() {
        c.quant_mode = 2;
        dout.expand_x.dtype = DType::kInt8;
        dout.dynamic_scales = shaped(DType::kFloat32, {40});
    }
    // T = 2 with one expert per MoE rank: E 4, A = 5 * 4 * 1 = 20, T*A = 40.
    void tp2() {
        c.tp_world_size = 2;
        c.moe_expert_num = 4;
        resize(5, 64, 3, 40);
        dout.tp_recv_counts = shaped(DType::kInt32, {2});
        cin.tp_send_counts = dout.tp_recv_counts;
    }
    moedist::Status dispatch() const {
        return moedist::core::check_dispatch_call(c, din, dout, extras);
    }
    moedist::Status combine() const {
        return moedist::core::check_combine_call(c, cin, x_out, extras);
    }
};

using Mutation = std::function<void(Call&)>;

struct CheckCase {
    const char* id;  // the check's id in docs/validation.md
    bool combine;    // checked through combine's first phase (else dispatch's)
    Code code;
    const char* param;  // the message must contain it
    std::vector<Mutation> accepted;
    std::vector<Mutation> rejected;
};

std::vector<CheckCase> cases() {
    const Code kNull = Code::kNullptr, kDtype = Code::kInvalidParam, kShape = Code::kInnerTiling;
    return {
        {"G.epWorldSize",
         false,
         kShape,
         "epWorldSize",
         {[](Call& k) { k.c.ep_world_size = 8, k.c.moe_expert_num = 8, k.resize(5, 64, 3, 40); }},
         {[](Call& k) { k.c.ep_world_size = 0; },
          [](Call& k) { k.c.ep_world_size = (1 << 16) + 1; }}},
        {"G.epRankId",
         false,
         kShape,
         "epRankId",
         {[](Call& k) { k.c.ep_rank_id = 3; }},
         {[](Call& k) { k.c.ep_rank_id = 4; }, [](Call& k) { k.c.ep_rank_id = -1; }}},
        {"G.sharedExpertRankNum",
         false,
         kShape,
         "sharedExpertRankNum",
         {[](Call& k) { k.c.shared_expert_rank_num = 0; }},
         {[](Call& k) { k.c.shared_expert_rank_num = 4; },
          [](Call& k) { k.c.shared_expert_rank_num = -1; }}},
        {"G.moeExpertNum",
         false,
         kShape,
         "moeExpertNum",
         {[](Call& k) { k.c.moe_expert_num = 4, k.resize(5, 64, 1, 20); }},
         {[](Call& k) { k.c.moe_expert_num = 0; },
          [](Call& k) { k.c.moe_expert_num = (1 << 20) + 4; },
          [](Call& k) { k.c.moe_expert_num = 6; }}},
        {"G.expertShardType",
         false,
         kShape,
         "expertShardType",
         {[](Call& k) { k.c.expert_shard_type = 0; }},
         {[](Call& k) { k.c.expert_shard_type = 1; }}},
        {"G.sharedExpertNum",
         false,
         kShape,
         "sharedExpertNum",
         {[](Call& k) { k.c.shared_expert_num = 3; }},  // ignored without shared ranks
         {[](Call& k) {
             k.c.shared_expert_rank_num = 1, k.c.shared_expert_num = 2, k.c.moe_expert_num = 6;
         }}},
        {"G.tpWorldSize",
         false,
         kShape,
         "tpWorldSize",
         {[](Call& k) { k.tp2(); }, [](Call& k) { k.c.tp_world_size = 1; }},
         {[](Call& k) { k.c.tp_world_size = 3; }, [](Call& k) { k.c.tp_world_size = -1; }}},
        {"G.tpRankId",
         false,
         kShape,
         "tpRankId",
         {[](Call& k) { k.tp2(), k.c.tp_rank_id = 1; }},
         {[](Call& k) { k.c.tp_rank_id = 1; }, [](Call& k) { k.tp2(), k.c.tp_rank_id = 2; }}},
        {"G.tpLocalExperts",
         false,
         kShape,
         "moeExpertNum / (epWorldSize - sharedExpertRankNum)",
         {[](Call& k) { k.tp2(); }},
         {[](Call& k) { k.tp2(), k.c.moe_expert_num = 8; }}},
        {"G.quantMode",
         false,
         kShape,
         "quantMode",
         {[](Call& k) { k.per_token_int8(); }},
         {[](Call& k) { k.c.quant_mode = 5; }, [](Call& k) { k.c.quant_mode = -1; }}},
        {"G.expertTokenNumsType",
         false,
         kShape,
         "expertTokenNumsType",
         {[](Call& k) { k.c.expert_token_nums_type = 1; }},
         {[](Call& k) { k.c.expert_token_nums_type = 2; }}},
        {"G.globalBs",
         false,
         kShape,
         "globalBs",
         {[](Call& k) { k.c.global_bs = 20; }},
         {[](Call& k) { k.c.global_bs = -1; },
          [](Call& k) { k.c.global_bs = (int64_t{1} << 31) + 4; }}},
        {"G.commQuantMode",
         true,
         kShape,
         "commQuantMode",
         {[](Call& k) { k.c.comm_quant_mode = 2; }},
         {[](Call& k) { k.c.comm_quant_mode = 1; }}},
        {"G.rowLayout",
         false,
         kShape,
         "rowLayout",
         {[](Call& k) { k.c.row_layout = moedist::RowLayout::kPacked; }},
         {[](Call& k) { k.c.row_layout = moedist::RowLayout::kExpertPadded; },  // V1
          [](Call& k) { k.c.row_layout = static_cast<moedist::RowLayout>(2); }}},
        {"G.x.dtype",
         false,
         kDtype,
         "x dtype",
         {[](Call& k) {
             k.din.x.dtype = DType::kFloat16, k.dout.expand_x.dtype = DType::kFloat16;
         }},
         {[](Call& k) { k.din.x.dtype = DType::kFloat32; },
          [](Call& k) { k.per_token_int8(), k.din.x.dtype = DType::kFp8E4M3; }}},
        {"G.expandX.dtype",
         false,
         kDtype,
         "expandX dtype",
         {[](Call& k) { k.per_token_int8(), k.dout.expand_x.dtype = DType::kFp8E5M2; }},
         {[](Call& k) { k.dout.expand_x.dtype = DType::kFloat16; },
          [](Call& k) { k.per_token_int8(), k.dout.expand_x.dtype = DType::kHiFloat8; },
          [](Call& k) { k.per_token_int8(), k.c.quant_mode = 3; }}},
        {"G.scales.required",
         false,
         kNull,
         "scales",
         {[](Call& k) {
             k.c.quant_mode = 1, k.dout.expand_x.dtype = DType::kInt8,
             k.din.scales = shaped(DType::kFloat32, {1});
         }},
         {[](Call& k) { k.c.quant_mode = 1, k.dout.expand_x.dtype = DType::kInt8; },
          [](Call& k) {
              k.din.x.dtype = k.dout.expand_x.dtype = DType::kFp8E4M3,
              k.dout.dynamic_scales = shaped(DType::kFloat32, {40});
          }}},
        {"G.scales.dtype",
         false,
         kDtype,
         "scales dtype",
         {[](Call& k) {
             k.per_token_int8(), k.din.scales = shaped(DType::kFloat32, {8, 64});
         }},
         {[](Call& k) {
             k.per_token_int8(), k.din.scales = shaped(DType::kFloat16, {8, 64});
         }}},
        {"G.dynamicScales.required",
         false,
         kNull,
         "dynamicScales",
         {[](Call& k) { k.per_token_int8(); }},
         {[](Call& k) { k.per_token_int8(), k.dout.dynamic_scales.reset(); }}},
        {"G.dynamicScales.dtype",
         false,
         kDtype,
         "dynamicScales dtype",
         {[](Call& k) {
             k.c.quant_mode = 4, k.dout.expand_x.dtype = DType::kFp8E4M3,
             k.dout.dynamic_scales = shaped(DType::kUInt8, {40, 2});
         }},
         {[](Call& k) { k.per_token_int8(), k.dout.dynamic_scales->dtype = DType::kFloat16; },
          [](Call& k) {
              k.c.quant_mode = 4, k.dout.expand_x.dtype = DType::kFp8E4M3,
              k.dout.dynamic_scales = shaped(DType::kFloat32, {40, 2});
          }}},
        {"G.indexDtypes",
         false,
         kDtype,
         "expertIds dtype",
         {[](Call& k) { k.din.expert_ids.dtype = DType::kInt32; }},
         {[](Call& k) { k.din.expert_ids.dtype = DType::kInt64; }}},
        {"G.countDtypes",
         false,
         kDtype,
         "epRecvCounts dtype",
         {[](Call& k) { k.dout.ep_recv_counts.dtype = DType::kInt32; }},
         {[](Call& k) { k.dout.ep_recv_counts.dtype = DType::kInt64; }}},
        {"G.tpRecvCounts.required",
         false,
         kNull,
         "tpRecvCounts",
         {[](Call& k) { k.tp2(); }},
         {[](Call& k) { k.tp2(), k.dout.tp_recv_counts.reset(); }}},
        {"G.rank",
         false,
         kShape,
         "x dims",
         {[](Call& k) {
             k.din.x = shaped(DType::kBFloat16, {5, 64});
         }},
         {[](Call& k) {
             k.din.x = shaped(DType::kBFloat16, {5, 64, 1});
         }}},
        {"G.extents",
         false,
         kShape,
         "expandX shape and strides",
         {[](Call& k) { k.dout.expand_x.strides[0] = 64; }},
         {[](Call& k) { k.dout.expand_x.strides[1] = -1; }}},
        {"G.extent62",
         false,
         kShape,
         "expandX extent",
         {[](Call& k) { k.dout.expand_x.strides[0] = int64_t{1} << 40; }},
         {[](Call& k) { k.dout.expand_x.strides[0] = int64_t{1} << 62; },
          [](Call& k) {  // each (dim - 1) * stride near 2^126: their sum would overflow int128
              k.dout.expand_x.shape = {INT64_MAX, INT64_MAX, 0, 0};
              k.dout.expand_x.strides = {INT64_MAX, INT64_MAX, 0, 0};
          }}},
        {"G.data",
         false,
         kNull,
         "expertScales data",
         {[](Call& k) { k.resize(0, 64, 3, 0), k.din.x.data = nullptr; }},
         {[](Call& k) { k.din.expert_scales->data = nullptr; },
          [](Call& k) {  // an element count past INT64_MAX (zero strides): numel() saturates
              k.din.expert_scales->shape = {int64_t{1} << 40, int64_t{1} << 40, 0, 0};
              k.din.expert_scales->strides = {0, 0, 0, 0};
              k.din.expert_scales->data = nullptr;
          }}},
        {"G.align",
         false,
         kShape,
         "expertIds data must be aligned to its element size (4 bytes), got an address 2 bytes",
         {[](Call& k) { k.din.expert_ids.data = storage + 4; },
          [](Call& k) { k.dout.expand_x.data = storage + 2; },
          [](Call& k) {  // an empty tensor is never read
              k.resize(0, 64, 3, 0), k.din.expert_ids.data = storage + 1;
          }},
         {[](Call& k) { k.din.expert_ids.data = storage + 2; }}},
        {"G.H",
         false,
         kShape,
         "H (x dim 1)",
         {[](Call& k) { k.resize(5, 1, 3, 40); },
          [](Call& k) { k.resize(5, int64_t{1} << 24, 3, 40); }},
         {[](Call& k) { k.resize(5, 0, 3, 40); },
          [](Call& k) { k.resize(5, (int64_t{1} << 24) + 1, 3, 40); },
          [](Call& k) {  // zero strides keep a huge H inside 2^62 bytes: the bound still holds
              k.din.x.shape[1] = k.dout.expand_x.shape[1] = INT64_MAX;
              k.din.x.strides = {0, 0, 0, 0};
              k.dout.expand_x.strides = {0, 0, 0, 0};
          }}},
        {"G.expertIds.shape",
         false,
         kShape,
         "expertIds dim 0",
         {[](Call& k) { k.din.expert_ids.shape[0] = 5; }},
         {[](Call& k) { k.din.expert_ids.shape[0] = 4; }}},
        {"G.K",
         false,
         kShape,
         "K (expertIds dim 1)",
         {[](Call& k) { k.c.moe_expert_num = 4, k.resize(5, 64, 4, 40); }},
         {[](Call& k) { k.c.moe_expert_num = 4, k.resize(5, 64, 5, 40); },
          [](Call& k) { k.resize(5, 64, 0, 40); }}},
        {"G.maxBs",
         false,
         kShape,
         "BS (x dim 0)",
         {[](Call& k) { k.c.global_bs = 20; }},
         {[](Call& k) { k.c.global_bs = 19; }}},
        {"G.capacity",
         false,
         kShape,
         "T*A",
         {[](Call& k) {
             k.c.global_bs = 2147483644, k.c.moe_expert_num = 4, k.resize(0, 64, 1, 2147483644);
         }},
         {[](Call& k) { k.c.global_bs = int64_t{1} << 31, k.resize(0, 64, 3, 0); }}},
        {"G.scales.shape",
         false,
         kShape,
         "scales shape",
         {[](Call& k) {
              k.per_token_int8(), k.din.scales = shaped(DType::kFloat32, {8, 64});
          },
          [](Call& k) {
              k.c.quant_mode = 1, k.dout.expand_x.dtype = DType::kInt8,
              k.din.scales = shaped(DType::kFloat32, {64});
          }},
         {[](Call& k) {
              k.per_token_int8(), k.din.scales = shaped(DType::kFloat32, {9, 64});
          },
          [](Call& k) {
              k.c.quant_mode = 1, k.dout.expand_x.dtype = DType::kInt8,
              k.din.scales = shaped(DType::kFloat32, {63});
          }}},
        {"G.scales.forbidden",
         false,
         kShape,
         "scales",
         {[](Call& k) { k.din.scales.reset(); }},
         {[](Call& k) {
             k.din.scales = shaped(DType::kFloat32, {8, 64});
         }}},
        {"G.dynamicScales.shape",
         false,
         kShape,
         "dynamicScales",
         {[](Call& k) {
             k.c.quant_mode = 3, k.dout.expand_x.dtype = DType::kFp8E4M3,
             k.dout.dynamic_scales = shaped(DType::kFloat32, {40, 1});
         }},
         {[](Call& k) {
              k.per_token_int8(), k.dout.dynamic_scales = shaped(DType::kFloat32, {39});
          },
          [](Call& k) {
              k.c.quant_mode = 3, k.dout.expand_x.dtype = DType::kFp8E4M3,
              k.dout.dynamic_scales = shaped(DType::kFloat32, {40, 2});
          }}},
        {"G.expertScales.shape",
         false,
         kShape,
         "expertScales shape",
         {[](Call& k) { k.din.expert_scales.reset(); }},
         {[](Call& k) {
             k.din.expert_scales = shaped(DType::kFloat32, {5, 2});
         }}},
        {"G.expandX.shape",
         false,
         kShape,
         "expandX shape",
         {[](Call& k) { k.dout.expand_x.shape[0] = 41; }},
         {[](Call& k) { k.dout.expand_x.shape[0] = 39; },
          [](Call& k) { k.dout.expand_x.shape[1] = 65; }}},
        {"G.expandIdx.shape",
         false,
         kShape,
         "expandIdx dim 0",
         {[](Call& k) { k.dout.expand_idx.shape[0] = 16; }},
         {[](Call& k) { k.dout.expand_idx.shape[0] = 14; }}},
        {"G.expertTokenNums.shape",
         false,
         kShape,
         "expertTokenNums dim 0",
         {[](Call& k) { k.dout.expert_token_nums.shape[0] = 2; }},
         {[](Call& k) { k.dout.expert_token_nums.shape[0] = 1; }}},
        {"G.epRecvCounts.shape",
         false,
         kShape,
         "epRecvCounts dim 0",
         {[](Call& k) { k.dout.ep_recv_counts.shape[0] = 8; }},
         {[](Call& k) { k.dout.ep_recv_counts.shape[0] = 7; }}},
        {"G.tpRecvCounts.shape",
         false,
         kShape,
         "tpRecvCounts dim 0",
         {[](Call& k) { k.tp2(), k.dout.tp_recv_counts->shape[0] = 3; }},
         {[](Call& k) { k.tp2(), k.dout.tp_recv_counts->shape[0] = 1; }}},
        {"G.expandScales.shape",
         false,
         kShape,
         "expandScales dim 0",
         {[](Call& k) { k.dout.expand_scales->shape[0] = 40; }},
         {[](Call& k) { k.dout.expand_scales->shape[0] = 39; }}},
        {"G.combine.expandX.dtype",
         true,
         kDtype,
         "expandX dtype",
         {[](Call& k) { k.cin.expand_x.dtype = k.x_out.dtype = DType::kFloat16; }},
         {[](Call& k) { k.cin.expand_x.dtype = DType::kInt8; }}},
        {"G.combine.x.dtype",
         true,
         kDtype,
         "x dtype",
         {[](Call& k) { k.x_out.dtype = DType::kBFloat16; }},
         {[](Call& k) { k.x_out.dtype = DType::kFloat16; }}},
        {"G.combine.expandX.shape",
         true,
         kShape,
         "expandX dim 0",
         {[](Call& k) { k.cin.expand_x.shape[0] = 40; }},
         {[](Call& k) { k.cin.expand_x.shape[0] = 39; }}},
        {"G.combine.expertScales",
         true,
         kShape,
         "expertScales shape",
         {[](Call& k) { k.cin.expert_scales.shape[1] = 3; }},
         {[](Call& k) { k.cin.expert_scales.shape[1] = 2; }}},
        {"G.combine.tpSendCounts",
         true,
         kNull,
         "tpSendCounts",
         {[](Call& k) { k.tp2(); }},
         {[](Call& k) { k.tp2(), k.cin.tp_send_counts.reset(); }}},
        {"G.combine.x.shape",
         true,
         kShape,
         "x shape",
         {[](Call& k) { k.x_out.shape[0] = 5; }},
         {[](Call& k) { k.x_out.shape[0] = 4; }}},
        {"G.combine.expandX.H",
         true,
         kShape,
         "expandX dim 1 must be H = x dim 1 = 63",
         {[](Call& k) { k.x_out.shape[1] = 64; }},
         {[](Call& k) { k.x_out.shape[1] = 63; }}},
        {"G.combine.expandIdx.shape",
         true,
         kShape,
         "expandIdx dim 0 must be BS*K = 15",
         {[](Call& k) { k.cin.expand_idx.shape[0] = 15; }},
         {[](Call& k) { k.cin.expand_idx.shape[0] = 16; },
          [](Call& k) { k.cin.expand_idx.shape[0] = 14; }}},
        // BS*K just below 2^31 (2047 * 2^20; A = 2047 * 4 * 2^18 fits int32 too), then 2^31.
        {"G.entries",
         false,
         kShape,
         "BS*K (expandIdx entries) must be <= 2147483647",
         {[](Call& k) {
             k.c.moe_expert_num = 1 << 20, k.resize(2047, 1, 1 << 20, int64_t{2047} << 20);
         }},
         {[](Call& k) { k.c.moe_expert_num = 1 << 20, k.resize(2048, 1, 1 << 20, 0); },
          [](Call& k) { k.c.moe_expert_num = 1 << 20, k.resize(4096, 1, 1 << 20, 0); }}},
        {"G.combine.entries",
         true,
         kShape,
         "BS*K (expandIdx entries) must be <= 2147483647",
         {[](Call& k) {
             k.c.moe_expert_num = 1 << 20, k.resize(2047, 1, 1 << 20, int64_t{2047} << 20);
         }},
         {[](Call& k) { k.c.moe_expert_num = 1 << 20, k.resize(2048, 1, 1 << 20, 0); }}},
        {"G.overlap",
         false,
         kShape,
         "strides must be non-overlapping",
         {[](Call& k) {
              k.dout.expand_x.strides = {1, 40, 0, 0};
          },  // column-major (40, 64)
          [](Call& k) { k.dout.expand_x.strides[0] = 1000; },
          [](Call& k) { k.dout.expert_token_nums.strides[0] = 5; },
          [](Call& k) {  // a dim of extent 1 may have any stride
              k.c.quant_mode = 3, k.dout.expand_x.dtype = DType::kFp8E4M3,
              k.dout.dynamic_scales = shaped(DType::kFloat32, {40, 1});
              k.dout.dynamic_scales->strides = {1, 0, 0, 0};
          }},
         {[](Call& k) {
              k.dout.expand_x.strides = {0, 1, 0, 0};
          },
          [](Call& k) { k.dout.expand_x.strides[0] = 63; },  // rows overlap by one element
          [](Call& k) {
              k.dout.expand_x.strides = {64, 0, 0, 0};
          },
          [](Call& k) {
              k.dout.expand_x.strides = {1, 39, 0, 0};
          },  // columns interleave
          [](Call& k) { k.dout.expand_idx.strides[0] = 0; },
          [](Call& k) { k.dout.expert_token_nums.strides[0] = 0; },
          [](Call& k) { k.dout.ep_recv_counts.strides[0] = 0; },
          [](Call& k) { k.dout.expand_scales->strides[0] = 0; },
          [](Call& k) { k.per_token_int8(), k.dout.dynamic_scales->strides[0] = 0; },
          [](Call& k) {
              k.c.quant_mode = 3, k.dout.expand_x.dtype = DType::kFp8E4M3,
              k.dout.dynamic_scales = shaped(DType::kFloat32, {40, 1});
              k.dout.dynamic_scales->strides[0] = 0;
          },
          [](Call& k) { k.tp2(), k.dout.tp_recv_counts->strides[0] = 0; }}},
        {"G.combine.overlap",
         true,
         kShape,
         "x strides must be non-overlapping",
         {[](Call& k) {
             k.x_out.strides = {1, 5, 0, 0};
         }},  // column-major (5, 64)
         {[](Call& k) {
              k.x_out.strides = {0, 1, 0, 0};
          },
          [](Call& k) {
              k.x_out.strides = {63, 1, 0, 0};
          },
          [](Call& k) {
              k.x_out.strides = {1, 4, 0, 0};
          }}},
    };
}

TEST(Validation, TheBaseCallPasses) {
    Call k;
    EXPECT_TRUE(k.dispatch().ok()) << k.dispatch().message();
    EXPECT_TRUE(k.combine().ok()) << k.combine().message();
}

TEST(Validation, EveryCheckAcceptsAtItsBoundaryAndRejectsPastIt) {
    for (const CheckCase& c : cases()) {
        SCOPED_TRACE(c.id);
        auto run = [&](const Call& k) { return c.combine ? k.combine() : k.dispatch(); };
        for (std::size_t i = 0; i < c.accepted.size(); ++i) {
            Call k;
            c.accepted[i](k);
            const moedist::Status s = run(k);
            EXPECT_TRUE(s.ok()) << "accepted case " << i << ": " << s.message();
        }
        for (std::size_t i = 0; i < c.rejected.size(); ++i) {
            Call k;
            c.rejected[i](k);
            const moedist::Status s = run(k);
            EXPECT_EQ(s.code(), c.code) << "rejected case " << i << ": " << s.message();
            EXPECT_NE(s.message().find(c.param), std::string::npos)
                << "rejected case " << i << ": " << s.message();
            EXPECT_NE(s.message().find(" must be "), std::string::npos) << s.message();
            EXPECT_NE(s.message().find(", got "), std::string::npos) << s.message();
        }
    }
}

// docs/validation.md lists each generic check by id; each has a case above.
TEST(Validation, EveryDocumentedCheckHasACase) {
    std::ifstream doc(MOEDIST_SOURCE_DIR "/docs/validation.md");
    ASSERT_TRUE(doc.good());
    std::stringstream text;
    text << doc.rdbuf();
    const std::string body = text.str();
    std::set<std::string> tested;
    for (const CheckCase& c : cases()) tested.insert(c.id);
    std::set<std::string> documented;
    // Table rows start "| `G.<id>` |" (std::regex would trip GCC 12's -Wmaybe-uninitialized
    // under ASan).
    const std::string start = "| `G.";
    for (std::size_t at = body.find(start); at != std::string::npos;
         at = body.find(start, at + 1)) {
        const std::size_t end = body.find('`', at + 3);
        if (end != std::string::npos) documented.insert(body.substr(at + 3, end - at - 3));
    }
    EXPECT_FALSE(documented.empty());
    for (const std::string& d : documented)
        EXPECT_EQ(tested.count(d), 1u) << d << " has no test case";
    for (const std::string& t : tested)
        EXPECT_EQ(documented.count(t), 1u) << t << " is not in docs/validation.md";
}

}  // namespace

namespace {

// Combine takes expandIdx as its BS*K entries in 1-D, or as a contiguous (BS, K) tensor (what
// Ascend's own A2 tests pass, and the A2 tiling accepts); the A3 profile wants 1-D.
TEST(Validation, CombineTakesAContiguousBsByKExpandIdxExceptUnderA3) {
    Call call;
    call.cin.expand_idx = shaped(DType::kInt32, {5, 3});
    EXPECT_TRUE(call.combine().ok()) << call.combine().message();
    call.c.soc = moedist::Soc::kA2;
    const moedist::Status a2 = call.combine();
    EXPECT_EQ(a2.message().find("expandIdx"), std::string::npos) << a2.message();
    // The A3 rule on its own (this call breaks A3's earlier rules: W 4, H 64).
    moedist::core::ProfileFacts facts;
    facts.combine = true;
    facts.expand_idx_ndim = 2;
    bool found = false;
    for (const auto& rule : moedist::core::profile_rules()) {
        if (std::string(rule.id) != "A3.expandIdx") continue;
        found = true;
        const moedist::Status a3 = rule.check(facts);
        EXPECT_FALSE(a3.ok());
        EXPECT_NE(a3.message().find("expandIdx dims must be 1"), std::string::npos) << a3.message();
        facts.expand_idx_ndim = 1;
        EXPECT_TRUE(rule.check(facts).ok());
    }
    EXPECT_TRUE(found);
    call.c.soc = moedist::Soc::kGeneric;
    call.cin.expand_idx = shaped(DType::kInt32, {3, 5});  // K and BS swapped
    EXPECT_EQ(call.combine().code(), Code::kInnerTiling);
    TensorView strided = shaped(DType::kInt32, {5, 3});
    strided.strides = {4, 1};  // not contiguous
    call.cin.expand_idx = strided;
    EXPECT_EQ(call.combine().code(), Code::kInnerTiling);
}

}  // namespace
