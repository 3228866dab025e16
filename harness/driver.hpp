// Where a harness job's ranks run: threads of this process, or forked processes of this host.
// A driver runs one task on every rank at a time and reports what each rank did.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "harness/inputs.hpp"
#include "harness/rank.hpp"

namespace moedist::harness {

enum class Task : uint32_t {
    kStep,
    kFloorWrite,
    kFloorRead,
    kFloorMemcpy,
    kFloorBarrier,
    kLayerSequential,
    kLayerOverlapped,
    kStop
};

// Runs `task` on `runner` (the rank side of every driver); `sync` meets the other ranks.
void run_task(Task task, RankRunner& runner, Stamps* stamps, const std::function<void()>& sync);

class JobDriver {
public:
    virtual ~JobDriver() = default;
    // Runs `task` on every rank; returns when every rank has done it (or failed).
    virtual void run(Task task) = 0;
    virtual const std::vector<Stamps>& stamps() const = 0;
    virtual std::vector<Status> statuses() const = 0;
    // What the reference check reads of every rank (valid until the next task).
    virtual std::vector<RankOutputs> outputs() const = 0;
    virtual int64_t allocated_bytes() const = 0;
    // Backend::kHosts: the sums over this host's ranks of their last step's cross-node traffic
    // (dispatch rows, bytes, flat rows; combine rows, bytes).
    virtual std::array<int64_t, 5> cross_host_traffic() const { return {}; }
};

std::unique_ptr<JobDriver> make_thread_driver(const JobSpec& spec,
                                              const Layout& lay,
                                              const std::vector<moedist_ref::RankInput>& inputs);

// Forks W·T rank processes; each joins its EP (and TP) group through a socket rendezvous and
// builds its own inputs; tensors come from the shared-memory arena.
std::unique_ptr<JobDriver> make_process_driver(const JobSpec& spec, const Layout& lay);

}  // namespace moedist::harness
