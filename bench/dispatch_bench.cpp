// Dispatch and combine on thread ranks against a memcpy of the same received bytes, interleaved
// in the same run (every iteration runs one step and one memcpy baseline) so the ratio is
// measured side by side. Time is the slowest rank's (manual time).
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <tuple>

#include "harness/job.hpp"

namespace {

using moedist::harness::Job;
using moedist::harness::JobSpec;

// Quantization choices of the last argument: {quantMode, target, pre-quantized x}.
struct QuantArg {
    int mode;
    moedist::DType target;
    bool pre;
};
constexpr QuantArg kQuant[] = {
    {0, moedist::DType::kInt8, false},     // 0: none (bf16 copy)
    {2, moedist::DType::kInt8, false},     // 1: per-token int8
    {1, moedist::DType::kInt8, false},     // 2: static int8, scales (H,)
    {2, moedist::DType::kFp8E4M3, false},  // 3: per-token fp8 e4m3
    {3, moedist::DType::kFp8E4M3, false},  // 4: per-group fp8 e4m3
    {4, moedist::DType::kFp8E4M3, false},  // 5: MX fp8 e4m3
    {0, moedist::DType::kFp8E4M3, true},   // 6: pre-quantized fp8 e4m3 x
};

// Args: W, BS, H, K, E, quant (an index into kQuant).
Job& job_for(const benchmark::State& state) {
    static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>,
                    std::unique_ptr<Job>>
        jobs;
    const auto key = std::make_tuple(state.range(0),
                                     state.range(1),
                                     state.range(2),
                                     state.range(3),
                                     state.range(4),
                                     state.range(5));
    auto& slot = jobs[key];
    if (!slot) {
        JobSpec spec;
        spec.ep_world_size = static_cast<int>(state.range(0));
        spec.tokens = state.range(1);
        spec.hidden = static_cast<int>(state.range(2));
        spec.top_k = static_cast<int>(state.range(3));
        spec.moe_expert_num = static_cast<int>(state.range(4));
        const QuantArg& q = kQuant[state.range(5)];
        spec.quant_mode = q.mode;
        spec.target = q.target;
        spec.pre_quantized = q.pre;
        spec.static_scales = 2;
        slot = std::make_unique<Job>(spec);
        slot->step();  // first touch of every buffer
        slot->floor(moedist::harness::Floor::kMemcpy);
    }
    return *slot;
}

void report(
    benchmark::State& state, double op_ms, double memcpy_ms, int64_t bytes, int64_t iterations) {
    const auto n = static_cast<double>(iterations);
    state.counters["memcpy_ms"] = memcpy_ms / n;
    state.counters["op_ms"] = op_ms / n;
    state.counters["ratio_vs_memcpy"] = op_ms / memcpy_ms;
    state.counters["MB"] = static_cast<double>(bytes) / 1e6;
    state.SetBytesProcessed(bytes * iterations);
}

void BM_Dispatch(benchmark::State& state) {
    Job& job = job_for(state);
    double op = 0, copy = 0;
    for (auto _ : state) {
        const auto t = job.step();
        copy += job.floor(moedist::harness::Floor::kMemcpy);  // expandX bytes written
        op += t.dispatch_ms;
        state.SetIterationTime(t.dispatch_ms / 1e3);
    }
    if (!job.status().ok()) state.SkipWithError(job.status().message().c_str());
    report(state, op, copy, job.check(false).dispatch_bytes, state.iterations());
}

void BM_Combine(benchmark::State& state) {
    Job& job = job_for(state);
    double op = 0, copy = 0;
    for (auto _ : state) {
        const auto t = job.step();
        copy += job.floor(moedist::harness::Floor::kRead);  // expert-output bytes read
        op += t.combine_ms;
        state.SetIterationTime(t.combine_ms / 1e3);
    }
    if (!job.status().ok()) state.SkipWithError(job.status().message().c_str());
    report(state, op, copy, job.check(false).combine_bytes, state.iterations());
}

void Shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"W", "BS", "H", "K", "E", "quant"});
    b->Args({8, 128, 7168, 8, 256, 0});  // the shape: DeepSeek-like EP8 decode, BS 128
    b->Args({8, 32, 7168, 8, 64, 0});    // `moedist run`'s default shape
    for (int64_t q = 1; q < 7; ++q) b->Args({8, 128, 7168, 8, 256, q});  // every quant mode
    b->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
}

BENCHMARK(BM_Dispatch)->Apply(Shapes);
void CombineShapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"W", "BS", "H", "K", "E", "quant"});
    b->Args({8, 128, 7168, 8, 256, 0});
    b->Args({8, 32, 7168, 8, 64, 0});
    b->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
}

BENCHMARK(BM_Combine)->Apply(CombineShapes);

}  // namespace

BENCHMARK_MAIN();
