#include "harness/rank.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/call_rounds.hpp"
#include "harness/acl_calls.hpp"
#include "harness/floors.hpp"
#include "util/env.hpp"

namespace moedist::harness {
namespace {

void* heap_allocate(std::size_t bytes) {
    return std::aligned_alloc(64, std::max<std::size_t>(64, (bytes + 63) / 64 * 64));
}
void heap_release(void* p) { std::free(p); }

}  // namespace

Allocator Allocator::heap() { return {&heap_allocate, &heap_release}; }

Buffer::Buffer(const Allocator& allocator, std::size_t bytes)
    : allocator_(allocator), data_(allocator.allocate(bytes)), bytes_(bytes) {
    if (data_ == nullptr) throw std::bad_alloc();
}

Buffer::Buffer(Buffer&& other) noexcept
    : allocator_(other.allocator_), data_(other.data_), bytes_(other.bytes_) {
    other.data_ = nullptr;
    other.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
    if (this != &other) {
        if (data_ != nullptr) allocator_.release(data_);
        allocator_ = other.allocator_;
        data_ = other.data_;
        bytes_ = other.bytes_;
        other.data_ = nullptr;
        other.bytes_ = 0;
    }
    return *this;
}

Buffer::~Buffer() {
    if (data_ != nullptr) allocator_.release(data_);
}

void Buffer::fill(uint8_t byte) {
    if (bytes_ > 0) std::memset(data_, byte, bytes_);
}

template <class T>
void fill_with(Buffer& b, T value) {
    T* p = b.as<T>();
    std::fill(p, p + b.bytes() / sizeof(T), value);
}

struct RankRunner::State {
    JobSpec spec;
    Layout lay;
    int g = 0;
    int64_t bs = 0;
    int64_t rows = 0;  // T·A + extra
    Communicator ep;
    std::optional<Communicator> tp;
    std::optional<MoeDistributor> moe;
    Buffer x, expert_ids, scales, expert_scales;
    Buffer expand_x, dynamic_scales, dynamic_bytes, expand_idx, expert_token_nums;
    Buffer ep_recv_counts, tp_recv_counts, expand_scales, expert_out, x_out;
    Buffer floor_write, floor_read, copy_src, copy_dst;
    // V2
    Buffer mask, assist, performance, shared_x, ori_x, alpha1, alpha2, const_v, residual, gamma,
        y_out, rstd_out;
    std::size_t assist_len = 0;
    std::size_t ep_counts_len = 0, tp_counts_len = 0, expand_scales_len = 0, scale_entries = 0;
    DispatchInputs din;
    DispatchOutputs dout;
    std::unique_ptr<AclTensors> acl;
    std::vector<uint8_t> junk;   // storage of the reserved inputs (C API runs)
    std::vector<float> compute;  // the layer benchmark's expert scratch
    Allocator allocator;

    int64_t own_rows() const;
    int64_t peer_rows() const;
    void make_tensors(const moedist_ref::RankInput& in, bool poison);
    void make_v2_tensors(const moedist_ref::RankInput& in, bool poison);
    CombineInputs combine_inputs() const;
    TensorView x_out_view() const;
    void make_acl_tensors();
};

int64_t RankRunner::State::own_rows() const {
    const int epr = lay.ep_of(g);
    const auto* counts = ep_recv_counts.as<int32_t>();
    const auto* tp_counts = tp_recv_counts.as<int32_t>();
    return lay.T == 2 ? tp_counts[lay.tp_of(g)] : counts[lay.W * lay.local_experts(epr) - 1];
}

int64_t RankRunner::State::peer_rows() const {
    return lay.T == 2 ? tp_recv_counts.as<int32_t>()[1 - lay.tp_of(g)] : 0;
}

void RankRunner::State::make_tensors(const moedist_ref::RankInput& in, bool poison) {
    const int64_t H = lay.H;
    const int epr = lay.ep_of(g);
    const std::size_t out_elem = dtype_size(expand_dtype(spec));
    const int64_t scale_cols = scale_columns(spec, H);
    bs = in.num_tokens;
    rows = expand_rows(spec, lay, g, bs);

    // x, possibly strided (row stride 2H+3, column stride 2, offset 5), padding poisoned.
    const int64_t row_stride = spec.strided_x ? 2 * H + 3 : H;
    const int64_t col_stride = spec.strided_x ? 2 : 1;
    const int64_t offset = spec.strided_x ? 5 : 0;
    const auto storage_elems = static_cast<std::size_t>(offset + bs * row_stride + 1);
    const std::size_t x_elem = spec.pre_quantized ? 1 : 2;
    x = Buffer(allocator, storage_elems * x_elem);
    if (spec.pre_quantized) {
        x.fill(0x7F);
    } else {
        fill_with<uint16_t>(x, 0x7E00);
    }
    for (int64_t t = 0; t < bs; ++t) {
        for (int64_t h = 0; h < H; ++h) {
            const auto at = static_cast<std::size_t>(offset + t * row_stride + h * col_stride);
            const auto from = static_cast<std::size_t>(t * H + h);
            if (spec.pre_quantized) {
                x.as<uint8_t>()[at] = in.x8[from];
            } else {
                x.as<uint16_t>()[at] = in.x[from];
            }
        }
    }
    din.x.data = x.as<uint8_t>() + static_cast<std::size_t>(offset) * x_elem;
    din.x.dtype = spec.pre_quantized ? spec.target : spec.dtype;
    din.x.ndim = 2;
    din.x.shape = {bs, H, 0, 0};
    din.x.strides = {row_stride, col_stride, 0, 0};

    auto copy_in = [&](Buffer& b, const auto& values) {
        using T = typename std::decay_t<decltype(values)>::value_type;
        b = Buffer(allocator, std::max<std::size_t>(values.size(), 1) * sizeof(T));
        if (!values.empty()) std::memcpy(b.as<T>(), values.data(), values.size() * sizeof(T));
    };
    copy_in(expert_ids, in.expert_ids);
    copy_in(scales, spec.pre_quantized ? in.x_scales : in.scales);
    copy_in(expert_scales, in.expert_scales);
    din.expert_ids = TensorView::contiguous(expert_ids.as<int32_t>(), DType::kInt32, {bs, lay.K});
    const int64_t expert_rows = lay.v2 ? lay.N + lay.E : lay.E + (lay.S > 0 ? 1 : 0);
    const bool has_scales = spec.pre_quantized ? true : !in.scales.empty();
    if (spec.pre_quantized) {
        din.scales = TensorView::contiguous(scales.as<float>(), DType::kFloat32, {bs});
    } else if (spec.quant_mode == 1 && spec.static_scales != 3) {
        din.scales = TensorView::contiguous(
            scales.as<float>(), DType::kFloat32, {spec.static_scales == 1 ? 1 : H});
    } else if (has_scales) {
        din.scales = TensorView::contiguous(scales.as<float>(), DType::kFloat32, {expert_rows, H});
    }
    if (spec.expand_scales) {
        din.expert_scales =
            TensorView::contiguous(expert_scales.as<float>(), DType::kFloat32, {bs, lay.K});
    }

    // Outputs, poisoned when checked (tails must keep the poison unless zero padding is asked).
    const int64_t capacity = (rows - spec.extra_rows) / lay.T;
    expand_x = Buffer(allocator, static_cast<std::size_t>(rows * H) * out_elem);
    scale_entries = static_cast<std::size_t>(rows * std::max<int64_t>(scale_cols, 1));
    dynamic_scales = Buffer(allocator, scale_entries * sizeof(float));
    dynamic_bytes = Buffer(allocator, scale_entries);
    expand_idx = Buffer(allocator, static_cast<std::size_t>(std::max<int64_t>(bs * lay.K, 1)) * 4);
    expert_token_nums = Buffer(allocator, static_cast<std::size_t>(lay.local_experts(epr)) * 8);
    ep_counts_len =
        static_cast<std::size_t>(lay.T * lay.W * lay.local_experts(epr) + spec.extra_rows);
    ep_recv_counts = Buffer(allocator, ep_counts_len * 4);
    tp_counts_len = static_cast<std::size_t>(2 + spec.extra_rows);
    tp_recv_counts = Buffer(allocator, tp_counts_len * 4);
    expand_scales_len = static_cast<std::size_t>(capacity + spec.extra_rows);
    expand_scales = Buffer(allocator, std::max<std::size_t>(expand_scales_len, 1) * 4);
    expert_out = Buffer(allocator, static_cast<std::size_t>(rows * H) * 2);
    x_out = Buffer(allocator, static_cast<std::size_t>(std::max<int64_t>(bs * H, 1)) * 2);
    // Counts are always poisoned: the floors and the expert stage read them only after a step.
    fill_with<int32_t>(ep_recv_counts, kSentinel);
    fill_with<int32_t>(tp_recv_counts, kSentinel);
    if (poison) {
        expand_x.fill(kGarbage);
        fill_with<float>(dynamic_scales, kPoisonScale);
        dynamic_bytes.fill(kGarbage);
        fill_with<int32_t>(expand_idx, kSentinel);
        fill_with<int64_t>(expert_token_nums, -1);
        fill_with<float>(expand_scales, kPoisonScale);
        fill_with<uint16_t>(expert_out, 0x7E00);
        fill_with<uint16_t>(x_out, 0x7E00);
    }

    dout.expand_x = TensorView::contiguous(expand_x.as<uint8_t>(), expand_dtype(spec), {rows, H});
    if (spec.quant_mode == 4) {  // E8M0 or plain uint8: both are accepted
        dout.dynamic_scales = TensorView::contiguous(dynamic_bytes.as<uint8_t>(),
                                                     spec.seed % 2 ? DType::kE8M0 : DType::kUInt8,
                                                     {rows, scale_cols});
    } else if (spec.quant_mode == 3) {
        dout.dynamic_scales =
            TensorView::contiguous(dynamic_scales.as<float>(), DType::kFloat32, {rows, scale_cols});
    } else if (scale_cols == 1) {
        dout.dynamic_scales =
            TensorView::contiguous(dynamic_scales.as<float>(), DType::kFloat32, {rows});
    }
    dout.expand_idx =
        TensorView::contiguous(expand_idx.as<int32_t>(), DType::kInt32, {lay.v2 ? 0 : bs * lay.K});
    dout.expert_token_nums = TensorView::contiguous(
        expert_token_nums.as<int64_t>(), DType::kInt64, {lay.local_experts(epr)});
    dout.ep_recv_counts = TensorView::contiguous(
        ep_recv_counts.as<int32_t>(), DType::kInt32, {static_cast<int64_t>(ep_counts_len)});
    if (lay.T == 2 || lay.v2) {  // the V2 family's products require it with or without TP
        dout.tp_recv_counts = TensorView::contiguous(
            tp_recv_counts.as<int32_t>(), DType::kInt32, {static_cast<int64_t>(tp_counts_len)});
    }
    if (spec.expand_scales) {
        dout.expand_scales = TensorView::contiguous(
            expand_scales.as<float>(), DType::kFloat32, {static_cast<int64_t>(expand_scales_len)});
    }
}

// The V2 tensors: xActiveMask, assistInfo, performanceInfo and combine's extras.
void RankRunner::State::make_v2_tensors(const moedist_ref::RankInput& in, bool poison) {
    const moedist_ref::v2::RankInput v2 = rank_input_v2(spec, lay, g, in);
    const int64_t H = lay.H;
    if (!v2.mask.empty()) {
        mask = Buffer(allocator, v2.mask.size());
        std::memcpy(mask.as<uint8_t>(), v2.mask.data(), v2.mask.size());
        din.x_active_mask =
            spec.mask == 1 ? TensorView::contiguous(mask.as<uint8_t>(), DType::kBool, {bs})
                           : TensorView::contiguous(mask.as<uint8_t>(), DType::kBool, {bs, lay.K});
    }
    // 3 entries per row (the contract's least), 128 under the A3 profile (Ascend's A·128).
    const bool a3 = util::soc_setting().soc == Soc::kA3;
    assist_len = static_cast<std::size_t>((a3 ? 128 : 3) * rows);
    assist = Buffer(allocator, std::max<std::size_t>(assist_len, 1) * 4);
    if (poison) fill_with<int32_t>(assist, kSentinel);
    dout.assist_info = TensorView::contiguous(
        assist.as<int32_t>(), DType::kInt32, {static_cast<int64_t>(assist_len)});
    if (spec.performance_info) {
        performance = Buffer(allocator, static_cast<std::size_t>(lay.W) * 8);
        fill_with<int64_t>(performance, 0);
        dout.performance_info =
            TensorView::contiguous(performance.as<int64_t>(), DType::kInt64, {lay.W});
    }
    auto copy16 = [&](Buffer& b, const std::vector<uint16_t>& v) {
        b = Buffer(allocator, std::max<std::size_t>(v.size(), 1) * 2);
        if (!v.empty()) std::memcpy(b.as<uint16_t>(), v.data(), v.size() * 2);
    };
    copy16(shared_x, v2.shared_x);
    copy16(ori_x, v2.ori_x);
    copy16(alpha1, v2.alpha1);
    copy16(alpha2, v2.alpha2);
    copy16(const_v, v2.const_v);
    copy16(residual, v2.residual_x);
    copy16(gamma, v2.gamma);
    if (spec.add_rms_norm) {
        y_out = Buffer(allocator, static_cast<std::size_t>(std::max<int64_t>(bs * H, 1)) * 2);
        rstd_out = Buffer(allocator, static_cast<std::size_t>(std::max<int64_t>(bs, 1)) * 4);
        fill_with<uint16_t>(y_out, 0x7E00);
        fill_with<float>(rstd_out, kPoisonScale);
    }
}

TensorView RankRunner::State::x_out_view() const {
    const int64_t H = lay.H;
    if (spec.add_rms_norm)
        return TensorView::contiguous(x_out.as<uint16_t>(), spec.dtype, {bs, 1, H});
    return TensorView::contiguous(x_out.as<uint16_t>(), spec.dtype, {bs, H});
}

CombineInputs RankRunner::State::combine_inputs() const {
    const int64_t H = lay.H;
    CombineInputs cin;
    cin.expand_x = TensorView::contiguous(expert_out.as<uint16_t>(), spec.dtype, {rows, H});
    cin.expert_ids = din.expert_ids;
    cin.expand_idx = dout.expand_idx;
    cin.ep_send_counts = dout.ep_recv_counts;
    cin.expert_scales = TensorView::contiguous(
        expert_scales.as<float>(), DType::kFloat32, {bs, spec.unweighted ? 0 : lay.K});
    if (lay.T == 2) cin.tp_send_counts = dout.tp_recv_counts;
    if (!lay.v2) return cin;
    cin.assist_info = dout.assist_info;
    cin.x_active_mask = din.x_active_mask;
    cin.performance_info = dout.performance_info;
    if (spec.shared_expert_x)
        cin.shared_expert_x = TensorView::contiguous(shared_x.as<uint16_t>(), spec.dtype, {bs, H});
    if (spec.copy_experts + spec.const_experts > 0)
        cin.ori_x = TensorView::contiguous(ori_x.as<uint16_t>(), spec.dtype, {bs, H});
    if (spec.const_experts > 0) {
        const int64_t q = spec.const_experts;
        if (spec.const_alpha_form == 2) {
            cin.const_alpha1 = TensorView::contiguous(alpha1.as<uint16_t>(), spec.dtype, {q, H});
            cin.const_alpha2 = TensorView::contiguous(alpha2.as<uint16_t>(), spec.dtype, {q, H});
        } else {
            cin.const_alpha1 = TensorView::contiguous(alpha1.as<uint16_t>(), spec.dtype, {q});
            cin.const_alpha2 = TensorView::contiguous(alpha2.as<uint16_t>(), spec.dtype, {q});
        }
        cin.const_v = TensorView::contiguous(const_v.as<uint16_t>(), spec.dtype, {q, H});
    }
    if (spec.add_rms_norm) {
        cin.residual_x = TensorView::contiguous(residual.as<uint16_t>(), spec.dtype, {bs, 1, H});
        cin.gamma = TensorView::contiguous(gamma.as<uint16_t>(), spec.dtype, {H});
        cin.y_out = TensorView::contiguous(y_out.as<uint16_t>(), spec.dtype, {bs, 1, H});
        cin.rstd_out = TensorView::contiguous(rstd_out.as<float>(), DType::kFloat32, {bs, 1, 1});
    }
    return cin;
}

void RankRunner::State::make_acl_tensors() {
    auto t = std::make_unique<AclTensors>();
    const int64_t H = lay.H;
    const std::size_t x_elem = spec.pre_quantized ? 1 : 2;
    const int64_t x_offset =
        (static_cast<const uint8_t*>(din.x.data) - x.as<uint8_t>()) / static_cast<int64_t>(x_elem);
    t->x = t->make(din.x, x.as<uint8_t>(), x_offset, static_cast<int64_t>(x.bytes() / x_elem));
    t->expert_ids = t->make(din.expert_ids);
    if (din.scales) t->scales = t->make(*din.scales);
    if (din.expert_scales) t->expert_scales = t->make(*din.expert_scales);
    t->expand_x = t->make(dout.expand_x);
    if (dout.dynamic_scales) t->dynamic_scales = t->make(*dout.dynamic_scales);
    t->expand_idx = t->make(dout.expand_idx);
    t->expert_token_nums = t->make(dout.expert_token_nums);
    t->ep_recv_counts = t->make(dout.ep_recv_counts);
    if (dout.tp_recv_counts) t->tp_recv_counts = t->make(*dout.tp_recv_counts);
    if (dout.expand_scales) t->expand_scales = t->make(*dout.expand_scales);
    t->expert_out =
        t->make(TensorView::contiguous(expert_out.as<uint16_t>(), spec.dtype, {rows, H}));
    t->x_out = t->make(TensorView::contiguous(x_out.as<uint16_t>(), spec.dtype, {bs, H}));
    t->combine_scales =
        t->make(TensorView::contiguous(expert_scales.as<float>(), DType::kFloat32, {bs, lay.K}));
    // Reserved inputs get tensors full of junk: they must be ignored.
    junk.resize(4096);
    for (std::size_t i = 0; i < junk.size(); ++i)
        junk[i] = static_cast<uint8_t>(mix(i + 977 * static_cast<uint64_t>(g)));
    t->junk_mask = t->make(
        TensorView::contiguous(junk.data(), DType::kBool, {std::min<int64_t>(bs + 1, 4096)}));
    t->junk_f32 = t->make(TensorView::contiguous(junk.data(), DType::kFloat32, {3, 7}));
    t->junk_i32 = t->make(TensorView::contiguous(junk.data(), DType::kInt32, {5}));
    if (lay.v2) {  // the V2 entry points: the same views the C++ path gives combine
        const CombineInputs cin = combine_inputs();
        auto optional = [&](const std::optional<TensorView>& v) -> aclTensor* {
            return v ? t->make(*v) : nullptr;
        };
        t->mask = optional(din.x_active_mask);
        t->assist = optional(dout.assist_info);
        t->performance = optional(dout.performance_info);
        t->shared_x = optional(cin.shared_expert_x);
        t->ori_x = optional(cin.ori_x);
        t->alpha1 = optional(cin.const_alpha1);
        t->alpha2 = optional(cin.const_alpha2);
        t->const_v = optional(cin.const_v);
        t->residual = optional(cin.residual_x);
        t->gamma = optional(cin.gamma);
        t->y_out = optional(cin.y_out);
        t->rstd_out = optional(cin.rstd_out);
        t->norm_eps = cin.norm_eps;
        t->combine_scales = t->make(cin.expert_scales);  // (BS, 0) when unweighted
        t->x_out = t->make(x_out_view());                // (BS, 1, H) for AddRmsNorm
    }
    acl = std::move(t);
}

RankRunner::RankRunner(const JobSpec& spec,
                       const Layout& lay,
                       int g,
                       const moedist_ref::RankInput& input,
                       Communicator ep,
                       std::optional<Communicator> tp,
                       const Allocator& allocator,
                       bool poison)
    : state_(make_state(spec, lay, g, input, ep, tp, allocator, poison, &status_)) {
    if (spec.micro_batches == 2) {
        Status second_status;
        second_ = make_state(spec, lay, g, input, ep, tp, allocator, poison, &second_status);
        if (status_.ok()) status_ = second_status;
    }
}

std::unique_ptr<RankRunner::State> RankRunner::make_state(const JobSpec& spec,
                                                          const Layout& lay,
                                                          int g,
                                                          const moedist_ref::RankInput& input,
                                                          const Communicator& ep,
                                                          const std::optional<Communicator>& tp,
                                                          const Allocator& allocator,
                                                          bool poison,
                                                          Status* status) {
    auto state = std::make_unique<State>();
    State& s = *state;
    s.spec = spec;
    s.lay = lay;
    s.g = g;
    s.ep = ep;
    s.tp = tp;
    s.allocator = allocator;
    s.make_tensors(input, poison);
    if (lay.v2) s.make_v2_tensors(input, poison);
    MoeConfig config;
    config.ep_world_size = lay.W;
    config.ep_rank_id = lay.ep_of(g);
    config.moe_expert_num = lay.E;
    config.tp_world_size = lay.T == 2 ? 2 : 0;
    config.tp_rank_id = lay.tp_of(g);
    // What each product's users pass: 1 (torch_npu's default, A3's rule) unless the job runs
    // under the A2 profile without shared ranks (A2 wants 0); the generic profile ignores it then.
    const bool a2 = util::soc_setting().soc == Soc::kA2;
    config.shared_expert_num = lay.S > 0 || !a2 ? 1 : 0;
    config.shared_expert_rank_num = lay.S;
    config.quant_mode = spec.quant_mode;
    config.global_bs = lay.global_bs;
    config.expert_token_nums_type = spec.expert_token_nums_type;
    config.comm_quant_mode = spec.comm_quant_mode;
    config.zero_padding = spec.zero_padding;
    if (lay.v2) {
        config.api = Api::kV2;
        config.shared_expert_num = lay.S > 0 ? spec.shared_expert_num : 1;
        config.zero_expert_num = spec.zero_experts;
        config.copy_expert_num = spec.copy_experts;
        config.const_expert_num = spec.const_experts;
        config.comm_alg = spec.comm_alg;
    }
    *status = MoeDistributor::create(s.ep, s.tp, config, &s.moe);
    if (spec.c_api) s.make_acl_tensors();
    return state;
}

RankRunner::~RankRunner() = default;

void RankRunner::step(Stamps* stamps, const std::function<void()>& sync) {
    State& s = *state_;
    AclGroups groups;
    if (s.spec.c_api) {
        groups.ep_name = s.ep.name();
        groups.tp_name = s.tp ? s.tp->name() : "";
        groups.ep_rank = s.lay.ep_of(s.g);
        groups.tp_rank = s.lay.tp_of(s.g);
    }
    stamps->d0 = std::chrono::steady_clock::now();
    if (status_.ok()) {
        if (s.spec.c_api) {
            status_ = acl_dispatch(s.spec, s.lay, *s.acl, groups);
        } else if (s.spec.split) {
            PendingCall pending;
            status_ = s.moe->try_dispatch_send(s.din, s.dout, &pending);
            if (status_.ok()) status_ = pending.wait();
        } else {
            status_ = s.moe->try_dispatch(s.din, s.dout);
        }
    }
    stamps->d1 = std::chrono::steady_clock::now();
    sync();  // each phase is timed alone, not overlapped with experts
    if (status_.ok()) {
        const Received received{s.expand_x.as<uint8_t>(),
                                s.dynamic_scales.as<float>(),
                                s.dynamic_bytes.as<uint8_t>(),
                                s.ep_recv_counts.as<int32_t>(),
                                s.tp_recv_counts.as<int32_t>()};
        run_experts(s.spec, s.lay, s.g, received, s.expert_out.as<uint16_t>());
    }
    const CombineInputs cin = s.combine_inputs();
    sync();
    stamps->c0 = std::chrono::steady_clock::now();
    if (status_.ok()) {
        if (s.spec.c_api) {
            status_ = acl_combine(s.spec, s.lay, *s.acl, groups);
        } else if (s.spec.split) {
            PendingCall pending;
            status_ = s.moe->try_combine_send(cin, s.x_out_view(), &pending);
            if (status_.ok()) status_ = pending.wait();
        } else {
            status_ = s.moe->try_combine(cin, s.x_out_view());
        }
    }
    stamps->c1 = std::chrono::steady_clock::now();
}

namespace {

volatile float expert_sink = 0;  // keeps the layer benchmark's expert compute

// The experts' compute of a layer benchmark: `passes` multiply-adds per element of every row
// received (on top of run_experts), kept by a checksum the compiler cannot drop.
void expert_compute(
    const uint8_t* rows, int64_t count, int64_t hidden, DType dtype, int passes, float* scratch) {
    if (passes <= 0) return;
    float sum = 0;
    for (int64_t r = 0; r < count; ++r) {
        const auto* row = rows + r * hidden * static_cast<int64_t>(dtype_size(dtype));
        for (int64_t j = 0; j < hidden; ++j) {
            uint16_t bits = 0;
            if (dtype_size(dtype) == 2) std::memcpy(&bits, row + 2 * j, 2);
            scratch[j] = static_cast<float>(bits & 0x7F) * (1.0f / 128);
        }
        for (int p = 0; p < passes; ++p)
            for (int64_t j = 0; j < hidden; ++j) scratch[j] = scratch[j] * 0.999f + 0.001f;
        sum += scratch[hidden - 1];
    }
    expert_sink = sum;
}

}  // namespace

void RankRunner::experts_of(State& s) {
    if (!status_.ok()) return;
    const Received received{s.expand_x.as<uint8_t>(),
                            s.dynamic_scales.as<float>(),
                            s.dynamic_bytes.as<uint8_t>(),
                            s.ep_recv_counts.as<int32_t>(),
                            s.tp_recv_counts.as<int32_t>()};
    run_experts(s.spec, s.lay, s.g, received, s.expert_out.as<uint16_t>());
    s.compute.resize(static_cast<std::size_t>(s.lay.H));
    expert_compute(s.expand_x.as<uint8_t>(),
                   s.own_rows() + s.peer_rows(),
                   s.lay.H,
                   expand_dtype(s.spec),
                   s.spec.expert_passes,
                   s.compute.data());
}

void RankRunner::layer(Stamps* stamps, const std::function<void()>& sync, bool overlapped) {
    State* batches[2] = {state_.get(), second_ ? second_.get() : state_.get()};
    sync();
    stamps->d0 = std::chrono::steady_clock::now();
    if (!overlapped) {  // each micro-batch: dispatch, experts, combine
        for (State* b : batches) {
            if (status_.ok()) status_ = b->moe->try_dispatch(b->din, b->dout);
            experts_of(*b);
            if (status_.ok()) status_ = b->moe->try_combine(b->combine_inputs(), b->x_out_view());
        }
    } else {  // one micro-batch's experts while the other's rows travel
        PendingCall d[2], c[2];
        for (int i = 0; i < 2 && status_.ok(); ++i)
            status_ = batches[i]->moe->try_dispatch_send(batches[i]->din, batches[i]->dout, &d[i]);
        if (status_.ok()) status_ = d[0].wait();
        experts_of(*batches[0]);
        if (status_.ok()) status_ = d[1].wait();
        if (status_.ok())
            status_ = batches[0]->moe->try_combine_send(
                batches[0]->combine_inputs(), batches[0]->x_out_view(), &c[0]);
        experts_of(*batches[1]);
        if (status_.ok())
            status_ = batches[1]->moe->try_combine_send(
                batches[1]->combine_inputs(), batches[1]->x_out_view(), &c[1]);
        for (PendingCall& p : c)
            if (p.pending() && status_.ok()) status_ = p.wait();
    }
    stamps->d1 = stamps->c0 = stamps->c1 = std::chrono::steady_clock::now();
    sync();
}

int64_t RankRunner::received_bytes() const {
    const State& s = *state_;
    if (!status_.ok()) return 0;
    return (s.own_rows() + s.peer_rows()) * s.lay.H *
           static_cast<int64_t>(dtype_size(expand_dtype(s.spec)));
}

int64_t RankRunner::combine_read_bytes() const {
    const State& s = *state_;
    return s.bs * (s.lay.K + s.lay.N) * s.lay.T * s.lay.H * 2;
}

int64_t RankRunner::allocated_bytes() const {
    const State& s = *state_;
    std::size_t total = 0;
    for (const Buffer* b : {&s.x,
                            &s.expert_ids,
                            &s.scales,
                            &s.expert_scales,
                            &s.expand_x,
                            &s.dynamic_scales,
                            &s.dynamic_bytes,
                            &s.expand_idx,
                            &s.expert_token_nums,
                            &s.ep_recv_counts,
                            &s.tp_recv_counts,
                            &s.expand_scales,
                            &s.expert_out,
                            &s.x_out,
                            &s.floor_write,
                            &s.floor_read,
                            &s.copy_src,
                            &s.copy_dst,
                            &s.mask,
                            &s.assist,
                            &s.performance,
                            &s.shared_x,
                            &s.ori_x,
                            &s.alpha1,
                            &s.alpha2,
                            &s.const_v,
                            &s.residual,
                            &s.gamma,
                            &s.y_out,
                            &s.rstd_out})
        total += b->bytes();
    return static_cast<int64_t>(total);
}

namespace {
// A floor buffer of exactly `bytes`, made (and first touched) outside the timed region.
Buffer& sized(Buffer& b, const Allocator& allocator, std::size_t bytes, uint8_t fill) {
    if (b.bytes() != bytes) {
        b = Buffer(allocator, bytes);
        b.fill(fill);
    }
    return b;
}
}  // namespace

void RankRunner::floor_write(Stamps* stamps) {
    State& s = *state_;
    const auto bytes = static_cast<std::size_t>(received_bytes());
    Buffer& dst = sized(s.floor_write, s.allocator, bytes, 1);
    stamps->d0 = std::chrono::steady_clock::now();
    nt_write(dst.as<uint8_t>(), bytes);
    stamps->d1 = std::chrono::steady_clock::now();
}

void RankRunner::floor_read(Stamps* stamps) {
    State& s = *state_;
    const auto bytes = static_cast<std::size_t>(combine_read_bytes());
    Buffer& src = sized(s.floor_read, s.allocator, bytes, 3);
    stamps->d0 = std::chrono::steady_clock::now();
    stream_read(src.as<uint8_t>(), bytes);
    stamps->d1 = std::chrono::steady_clock::now();
}

void RankRunner::floor_memcpy(Stamps* stamps) {
    State& s = *state_;
    const auto bytes = static_cast<std::size_t>(received_bytes());
    Buffer& src = sized(s.copy_src, s.allocator, bytes, 1);
    Buffer& dst = sized(s.copy_dst, s.allocator, bytes, 0);
    stamps->d0 = std::chrono::steady_clock::now();
    std::memcpy(dst.as<uint8_t>(), src.as<uint8_t>(), bytes);
    stamps->d1 = std::chrono::steady_clock::now();
}

void RankRunner::group_barrier() {
    const Status s = core::bare_call(state_->ep);
    if (status_.ok()) status_ = s;
}

void RankRunner::floor_barrier(Stamps* stamps) {
    State& s = *state_;
    stamps->d0 = std::chrono::steady_clock::now();
    if (status_.ok()) status_ = core::bare_call(s.ep);
    stamps->d1 = std::chrono::steady_clock::now();
}

RankOutputs RankRunner::outputs() const {
    const State& s = *state_;
    RankOutputs o;
    o.num_tokens = s.bs;
    o.expand_x = s.expand_x.as<uint8_t>();
    o.expand_x_bytes = s.expand_x.bytes();
    o.dynamic_scales = s.dynamic_scales.as<float>();
    o.dynamic_bytes = s.dynamic_bytes.as<uint8_t>();
    o.scale_entries = s.scale_entries;
    o.expand_idx = s.expand_idx.as<int32_t>();
    o.expert_token_nums = s.expert_token_nums.as<int64_t>();
    o.ep_recv_counts = s.ep_recv_counts.as<int32_t>();
    o.ep_recv_counts_len = s.ep_counts_len;
    o.tp_recv_counts = s.tp_recv_counts.as<int32_t>();
    o.tp_recv_counts_len = s.tp_counts_len;
    o.expand_scales = s.expand_scales.as<float>();
    o.expand_scales_len = s.expand_scales_len;
    o.x_out = s.x_out.as<uint16_t>();
    if (s.lay.v2) {
        o.assist_info = s.assist.as<int32_t>();
        o.assist_info_len = s.assist_len;
        if (s.spec.add_rms_norm) {
            o.y_out = s.y_out.as<uint16_t>();
            o.rstd_out = s.rstd_out.as<float>();
        }
        if (s.spec.performance_info) o.performance_info = s.performance.as<int64_t>();
    }
    return o;
}

}  // namespace moedist::harness
