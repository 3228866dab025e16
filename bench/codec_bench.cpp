// Each codec of src/quant over 2048 rows of 7168 values, against a memcpy of the same input
// bytes measured in the same iterations (one thread). The goal of issue 10: every codec moves
// at least 0.67 bytes of input per byte memcpy moves in the same time (ratio_vs_memcpy <= 1.5).
// Decodes write 4 bytes per input byte: they also report ratio_vs_memcpy_output (a memcpy of
// their output bytes), the bound their stores set. Codecs labelled "portable" run the fallback
// loops (what valgrind and CPUs without AVX-512 VBMI get); the others the dispatching row helpers.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "quant/dispatch_quant.hpp"
#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"
#include "quant/fused_rows.hpp"
#include "quant/row_kernels.hpp"

namespace {

using moedist::DType;
namespace quant = moedist::quant;

constexpr int64_t kRows = 2048;
constexpr int64_t kHidden = 7168;

struct Buffers {
    std::vector<uint16_t> bf16;
    std::vector<float> f32;
    std::vector<uint8_t> fp8;
    std::vector<float> scratch;
    std::vector<uint8_t> out8;
    std::vector<uint16_t> out16;
    std::vector<float> out32;
    std::vector<uint8_t> copy_dst;
    Buffers() {
        const auto n = static_cast<std::size_t>(kRows * kHidden);
        bf16.resize(n);
        f32.resize(n);
        fp8.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            const float v =
                static_cast<float>(static_cast<int64_t>((i * 2654435761u) % 2001) - 1000) / 250.0f;
            bf16[i] = quant::f32_to_bf16(v);
            f32[i] = v;
            fp8[i] = quant::f32_to_fp8_e4m3(v);
        }
        scratch.resize(static_cast<std::size_t>(kHidden));
        out8.resize(n);
        out16.resize(n);
        out32.resize(n);
        copy_dst.resize(n * 4);
    }
};

Buffers& buffers() {
    static Buffers b;
    return b;
}

// Times `codec` over every row and a memcpy of `input_bytes`, alternately (and, when
// output_bytes > 0, a memcpy of that many bytes of the output buffer too).
void run(benchmark::State& state,
         std::size_t input_bytes,
         const void* input,
         const std::function<void(int64_t row)>& codec,
         std::size_t output_bytes = 0) {
    Buffers& b = buffers();
    double codec_s = 0, copy_s = 0, copy_out_s = 0;
    for (auto _ : state) {
        auto t0 = std::chrono::steady_clock::now();
        for (int64_t r = 0; r < kRows; ++r) codec(r);
        auto t1 = std::chrono::steady_clock::now();
        std::memcpy(b.copy_dst.data(), input, input_bytes);
        auto t2 = std::chrono::steady_clock::now();
        if (output_bytes > 0) std::memcpy(b.copy_dst.data(), b.out32.data(), output_bytes);
        auto t3 = std::chrono::steady_clock::now();
        benchmark::ClobberMemory();
        codec_s += std::chrono::duration<double>(t1 - t0).count();
        copy_s += std::chrono::duration<double>(t2 - t1).count();
        copy_out_s += std::chrono::duration<double>(t3 - t2).count();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    }
    state.SetBytesProcessed(static_cast<int64_t>(input_bytes) * state.iterations());
    state.counters["memcpy_ms"] = copy_s * 1e3 / static_cast<double>(state.iterations());
    state.counters["ratio_vs_memcpy"] = codec_s / copy_s;
    if (output_bytes > 0) state.counters["ratio_vs_memcpy_output"] = codec_s / copy_out_s;
}

void BM_LoadBf16(benchmark::State& state) {
    Buffers& b = buffers();
    run(state, b.bf16.size() * 2, b.bf16.data(), [&](int64_t r) {
        quant::load_row_f32(DType::kBFloat16,
                            b.bf16.data() + r * kHidden,
                            1,
                            b.out32.data() + r * kHidden,
                            kHidden);
    });
}

void BM_StoreBf16(benchmark::State& state) {
    Buffers& b = buffers();
    run(state, b.f32.size() * 4, b.f32.data(), [&](int64_t r) {
        quant::store_row_f32(
            DType::kBFloat16, b.f32.data() + r * kHidden, b.out16.data() + r * kHidden, 1, kHidden);
    });
}

void BM_StoreFp16(benchmark::State& state) {
    Buffers& b = buffers();
    run(state, b.f32.size() * 4, b.f32.data(), [&](int64_t r) {
        quant::store_row_f32(
            DType::kFloat16, b.f32.data() + r * kHidden, b.out16.data() + r * kHidden, 1, kHidden);
    });
}

void BM_PerTokenInt8FromBf16(benchmark::State& state) {
    Buffers& b = buffers();
    run(state, b.bf16.size() * 2, b.bf16.data(), [&](int64_t r) {
        quant::quantize_row_int8_from(DType::kBFloat16,
                                      b.bf16.data() + r * kHidden,
                                      1,
                                      nullptr,
                                      1,
                                      b.scratch.data(),
                                      reinterpret_cast<int8_t*>(b.out8.data() + r * kHidden),
                                      1,
                                      kHidden,
                                      false);
    });
}

void BM_EncodeFromF32(benchmark::State& state) {
    Buffers& b = buffers();
    const auto target = static_cast<DType>(state.range(0));
    state.SetLabel(moedist::dtype_name(target));
    run(state, b.f32.size() * 4, b.f32.data(), [&](int64_t r) {
        quant::convert_row(
            target, b.f32.data() + r * kHidden, b.out8.data() + r * kHidden, kHidden);
    });
}

using EncodeRow = void (*)(const float*, uint8_t*, int64_t);
using DecodeRow = void (*)(const uint8_t*, float*, int64_t);

struct Codec {
    const char* label;
    EncodeRow encode;
    DecodeRow decode;
};

const Codec kCodecs[] = {
    {"float8_e4m3fn", quant::f32_row_to_fp8_e4m3, quant::fp8_e4m3_row_to_f32},
    {"float8_e5m2", quant::f32_row_to_fp8_e5m2, quant::fp8_e5m2_row_to_f32},
    {"hifloat8", quant::f32_row_to_hifloat8, quant::hifloat8_row_to_f32},
    {"float8_e4m3fn portable",
     quant::fp8_detail::f32_row_to_fp8_e4m3_portable,
     quant::fp8_detail::fp8_e4m3_row_to_f32_portable},
    {"float8_e5m2 portable",
     quant::fp8_detail::f32_row_to_fp8_e5m2_portable,
     quant::fp8_detail::fp8_e5m2_row_to_f32_portable},
    {"hifloat8 portable",
     quant::fp8_detail::f32_row_to_hifloat8_portable,
     quant::fp8_detail::hifloat8_row_to_f32_portable},
};

// The fp8 row helpers directly (Arg: index into kCodecs).
void BM_EncodeRow(benchmark::State& state) {
    Buffers& b = buffers();
    const Codec& codec = kCodecs[state.range(0)];
    state.SetLabel(codec.label);
    run(state, b.f32.size() * 4, b.f32.data(), [&](int64_t r) {
        codec.encode(b.f32.data() + r * kHidden, b.out8.data() + r * kHidden, kHidden);
    });
}

void BM_DecodeRow(benchmark::State& state) {
    Buffers& b = buffers();
    const Codec& codec = kCodecs[state.range(0)];
    state.SetLabel(codec.label);
    run(
        state,
        b.fp8.size(),
        b.fp8.data(),
        [&](int64_t r) {
            codec.decode(b.fp8.data() + r * kHidden, b.out32.data() + r * kHidden, kHidden);
        },
        b.fp8.size() * 4);
}

void BM_DecodeFp8E4M3(benchmark::State& state) {
    Buffers& b = buffers();
    run(
        state,
        b.fp8.size(),
        b.fp8.data(),
        [&](int64_t r) {
            quant::fp8_e4m3_row_to_f32(
                b.fp8.data() + r * kHidden, b.out32.data() + r * kHidden, kHidden);
        },
        b.fp8.size() * 4);
}

// The same decode with every row written to one L1-resident buffer: the codec's compute speed
// without the output's memory traffic (input still streams from memory).
void BM_DecodeFp8E4M3CachedOutput(benchmark::State& state) {
    Buffers& b = buffers();
    run(state, b.fp8.size(), b.fp8.data(), [&](int64_t r) {
        quant::fp8_e4m3_row_to_f32(b.fp8.data() + r * kHidden, b.scratch.data(), kHidden);
    });
}

// A whole mode's row work from bf16 input: load, then per-token / per-group / MX quantization.
void BM_ModeFromBf16(benchmark::State& state) {
    Buffers& b = buffers();
    const int mode = static_cast<int>(state.range(0));
    state.SetLabel(mode == 2 ? "per-token e4m3" : (mode == 3 ? "per-group e4m3" : "mx e4m3"));
    run(state, b.bf16.size() * 2, b.bf16.data(), [&](int64_t r) {
        float* row = b.scratch.data();
        uint8_t* q = b.out8.data() + r * kHidden;
        quant::load_row_f32(DType::kBFloat16, b.bf16.data() + r * kHidden, 1, row, kHidden);
        if (mode == 2) {
            quant::quantize_dynamic(DType::kFp8E4M3, row, q, kHidden);
        } else if (mode == 3) {
            for (int64_t g = 0; g < kHidden; g += 128)
                quant::quantize_dynamic(DType::kFp8E4M3, row + g, q + g, 128);
        } else {
            for (int64_t g = 0; g < kHidden; g += 32)
                quant::quantize_mx(DType::kFp8E4M3, row + g, q + g, 32);
        }
    });
}

// The fused row quantizers of dispatch (quant/fused_rows.hpp) from bf16 rows, and a copy of the
// same bf16 rows (what dispatch without quantization does per row) for comparison.
// Arg 1: how many distinct source rows (2048: streamed from memory; 128: one rank's BS of the
// dispatch benchmark, cache-resident, each quantized 16 times as dispatch does per destination).
void BM_FusedFromBf16(benchmark::State& state) {
    Buffers& b = buffers();
    const int mode = static_cast<int>(state.range(0));
    const int64_t source_rows = state.range(1);
    if (!quant::fused_available()) {
        state.SkipWithError("no AVX-512 (or a sanitized build)");
        return;
    }
    state.SetLabel(mode == 0   ? "bf16 row copy"
                   : mode == 2 ? "per-token e4m3"
                   : mode == 3 ? "per-group e4m3"
                               : "mx e4m3");
    float scales[kHidden / 32 + 1];
    uint8_t bytes[kHidden / 32 + 1];
    run(state, b.bf16.size() * 2, b.bf16.data(), [&](int64_t r) {
        const uint16_t* x = b.bf16.data() + (r % source_rows) * kHidden;
        uint8_t* q = b.out8.data() + r * kHidden;
        if (mode == 0) {
            std::memcpy(b.out16.data() + r * kHidden, x, kHidden * 2);
        } else if (mode == 4) {
            quant::fused_fp8_mx(DType::kBFloat16, x, DType::kFp8E4M3, kHidden, q, bytes);
        } else {
            quant::fused_fp8_dynamic(DType::kBFloat16,
                                     x,
                                     nullptr,
                                     DType::kFp8E4M3,
                                     kHidden,
                                     mode == 2 ? kHidden : 128,
                                     q,
                                     scales);
        }
    });
}

BENCHMARK(BM_LoadBf16)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreBf16)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreFp16)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PerTokenInt8FromBf16)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeFromF32)
    ->Arg(static_cast<int64_t>(DType::kInt8))
    ->Arg(static_cast<int64_t>(DType::kFp8E4M3))
    ->Arg(static_cast<int64_t>(DType::kFp8E5M2))
    ->Arg(static_cast<int64_t>(DType::kHiFloat8))
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeRow)->DenseRange(0, 5)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeFp8E4M3)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeRow)->DenseRange(0, 5)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeFp8E4M3CachedOutput)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ModeFromBf16)->Arg(2)->Arg(3)->Arg(4)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FusedFromBf16)
    ->ArgsProduct({{0, 2, 3, 4}, {kRows, 128}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
