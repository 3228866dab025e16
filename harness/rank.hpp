// One global rank of a harness job: its tensors (inputs, outputs, expert outputs), its
// MoeDistributor or aclnn tensors, and the tasks the driver runs on it (a step, the floors).
// Backend-agnostic: the driver decides where ranks run (threads of this process, or forked
// processes) and hands each its communicators, an allocator and a way to meet its peers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "harness/inputs.hpp"
#include "harness/job.hpp"
#include "moedist/moedist.hpp"

namespace moedist::harness {

// Where a rank's tensors live. The default is 64-byte aligned heap memory, untouched until
// written (so untouched tails of large outputs cost no resident memory).
struct Allocator {
    void* (*allocate)(std::size_t bytes) = nullptr;
    void (*release)(void* p) = nullptr;
    static Allocator heap();
};

// An untyped block from an Allocator.
class Buffer {
public:
    Buffer() = default;
    Buffer(const Allocator& allocator, std::size_t bytes);
    Buffer(Buffer&& other) noexcept;
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer();

    template <class T>
    T* as() const {
        return static_cast<T*>(data_);
    }
    std::size_t bytes() const { return bytes_; }
    void fill(uint8_t byte);

private:
    Allocator allocator_{};
    void* data_ = nullptr;
    std::size_t bytes_ = 0;
};

// Start and end of the last task's phases on one rank (steady_clock: comparable across
// processes).
struct Stamps {
    std::chrono::steady_clock::time_point d0, d1, c0, c1;
};

// What the reference check reads of one rank after a step.
struct RankOutputs {
    int64_t num_tokens = 0;
    const uint8_t* expand_x = nullptr;
    std::size_t expand_x_bytes = 0;
    const float* dynamic_scales = nullptr;   // fp32 scales, or null
    const uint8_t* dynamic_bytes = nullptr;  // MX bytes, or null
    std::size_t scale_entries = 0;           // entries of whichever is given
    const int32_t* expand_idx = nullptr;
    const int64_t* expert_token_nums = nullptr;
    const int32_t* ep_recv_counts = nullptr;
    std::size_t ep_recv_counts_len = 0;
    const int32_t* tp_recv_counts = nullptr;
    std::size_t tp_recv_counts_len = 0;
    const float* expand_scales = nullptr;
    std::size_t expand_scales_len = 0;
    const uint16_t* x_out = nullptr;
    // V2
    const int32_t* assist_info = nullptr;
    std::size_t assist_info_len = 0;
    const uint16_t* y_out = nullptr;  // AddRmsNorm
    const float* rstd_out = nullptr;
    const int64_t* performance_info = nullptr;  // W entries, or null
};

class RankRunner {
public:
    // `poison`: fill every output with the harness's poison first (the check needs it; a timing
    // run skips it so untouched tails stay unresident).
    RankRunner(const JobSpec& spec,
               const Layout& lay,
               int g,
               const moedist_ref::RankInput& input,
               Communicator ep,
               std::optional<Communicator> tp,
               const Allocator& allocator,
               bool poison);
    ~RankRunner();
    RankRunner(const RankRunner&) = delete;
    RankRunner& operator=(const RankRunner&) = delete;

    // Dispatch, `sync()`, experts, `sync()`, combine; each phase timed alone into `stamps`. A
    // failed rank skips the work but still calls `sync()` twice, so no peer waits in vain.
    void step(Stamps* stamps, const std::function<void()>& sync);

    // The floors of the last step, timed into stamps->d0/d1, each on this rank's own buffers:
    // non-temporal stores of the bytes it received (write), a streaming read of the bytes its
    // combine read (read), a memcpy of the received bytes (memcpy), the two rounds of a call with
    // no data on the EP group (barrier).
    void floor_write(Stamps* stamps);
    void floor_read(Stamps* stamps);
    void floor_memcpy(Stamps* stamps);
    void floor_barrier(Stamps* stamps);

    // A MoE layer of two micro-batches (JobSpec::micro_batches = 2), timed into stamps->d0/d1:
    // sequential (dispatch, experts, combine, then the next) or overlapped (both dispatches in
    // flight; one micro-batch's experts run while the other's rows travel; both combines in
    // flight). The experts do JobSpec::expert_passes multiply-adds per received element.
    void layer(Stamps* stamps, const std::function<void()>& sync, bool overlapped);

    // A barrier of the whole EP group (a call's two rounds with no data); every rank takes part,
    // a failed one too (its peers then fail at once instead of waiting). A failure becomes this
    // rank's status unless it has one.
    void group_barrier();

    const Status& status() const { return status_; }
    RankOutputs outputs() const;
    // Bytes of the rows this rank received in the last dispatch, and the bytes its combine read.
    int64_t received_bytes() const;
    int64_t combine_read_bytes() const;
    // Bytes of every tensor this rank allocated (inputs, outputs, expert outputs, floors).
    int64_t allocated_bytes() const;

private:
    struct State;
    static std::unique_ptr<State> make_state(const JobSpec& spec,
                                             const Layout& lay,
                                             int g,
                                             const moedist_ref::RankInput& input,
                                             const Communicator& ep,
                                             const std::optional<Communicator>& tp,
                                             const Allocator& allocator,
                                             bool poison,
                                             Status* status);
    void experts_of(State& s);
    Status status_;
    std::unique_ptr<State> state_;
    std::unique_ptr<State> second_;  // the second micro-batch of a layer benchmark
};

// Bytes, the load table and (with `check`) the bit-for-bit comparison of every output of every
// rank with the reference, from the inputs the ranks were given.
JobReport check_job(const JobSpec& spec,
                    const std::vector<moedist_ref::RankInput>& inputs,
                    const std::vector<RankOutputs>& outputs,
                    bool check);

}  // namespace moedist::harness
