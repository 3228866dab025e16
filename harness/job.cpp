// The threads driver of a harness job: one persistent thread per global rank, tasks handed out
// through a barrier of the ranks and the driving thread.
#include "harness/job.hpp"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

#include "harness/inputs.hpp"
#include "harness/rank.hpp"

namespace moedist::harness {
namespace {

enum class Task { kStep, kFloorWrite, kFloorRead, kFloorMemcpy, kFloorBarrier, kStop };

// Wall time of a phase: first rank's start to last rank's end.
template <class Member>
double span_ms(const std::vector<Stamps>& stamps, Member begin, Member end) {
    auto first = stamps.front().*begin;
    auto last = stamps.front().*end;
    for (const auto& s : stamps) {
        first = std::min(first, s.*begin);
        last = std::max(last, s.*end);
    }
    return std::chrono::duration<double, std::milli>(last - first).count();
}

}  // namespace

struct Job::State {
    JobSpec spec;
    Layout lay{};
    std::vector<moedist_ref::RankInput> inputs;
    std::vector<std::vector<Communicator>> ep_groups;  // [tp rank][ep rank]
    std::vector<std::vector<Communicator>> tp_groups;  // [ep rank][tp rank]
    std::vector<std::unique_ptr<RankRunner>> runners;
    std::vector<Stamps> stamps;
    Task task = Task::kStep;
    std::unique_ptr<std::barrier<>> control;  // ranks + the driving thread
    std::unique_ptr<std::barrier<>> ranks_sync;
    std::vector<std::thread> threads;

    void rank_main(int g);
    void run(Task t) {
        task = t;
        control->arrive_and_wait();  // the task is set
        control->arrive_and_wait();  // every rank has done it
    }
};

Job::Job(const JobSpec& spec) : state_(new State) {
    State& st = *state_;
    st.spec = spec;
    st.lay = layout_of(spec);
    const Layout& lay = st.lay;
    const int ranks = lay.ranks();
    for (int g = 0; g < ranks; ++g) st.inputs.push_back(rank_input(spec, lay, g));
    // Groups: EP group t = ranks with tp rank t; TP group e = the two ranks of EP rank e.
    for (int t = 0; t < lay.T; ++t)
        st.ep_groups.push_back(Communicator::create_local_group(lay.W, "harness_ep"));
    if (lay.T == 2) {
        for (int e = 0; e < lay.W; ++e)
            st.tp_groups.push_back(Communicator::create_local_group(2, "harness_tp"));
    }
    st.runners.resize(static_cast<std::size_t>(ranks));
    st.stamps.resize(static_cast<std::size_t>(ranks));
    st.control = std::make_unique<std::barrier<>>(ranks + 1);
    st.ranks_sync = std::make_unique<std::barrier<>>(ranks);
    // The C API reads MOEDIST_ZERO_PADDING at each first phase; set before any rank thread runs.
    if (spec.c_api) setenv("MOEDIST_ZERO_PADDING", spec.zero_padding ? "1" : "0", 1);
    for (int g = 0; g < ranks; ++g) st.threads.emplace_back([&st, g] { st.rank_main(g); });
    st.control->arrive_and_wait();  // every rank has built its tensors
}

Job::~Job() {
    state_->task = Task::kStop;
    state_->control->arrive_and_wait();
    for (auto& th : state_->threads) th.join();
    delete state_;
}

// Every rank passes every barrier, failed or not, so a failure can never hang the job.
void Job::State::rank_main(int g) {
    const int ep = lay.ep_of(g);
    const int tp = lay.tp_of(g);
    std::optional<Communicator> tpc;
    if (lay.T == 2) tpc = tp_groups[static_cast<std::size_t>(ep)][static_cast<std::size_t>(tp)];
    // Built on the rank's own thread, so its tensors are first touched there.
    runners[static_cast<std::size_t>(g)] = std::make_unique<RankRunner>(
        spec,
        lay,
        g,
        inputs[static_cast<std::size_t>(g)],
        ep_groups[static_cast<std::size_t>(tp)][static_cast<std::size_t>(ep)],
        tpc,
        Allocator::heap(),
        spec.checked);
    RankRunner& runner = *runners[static_cast<std::size_t>(g)];
    Stamps& mine = stamps[static_cast<std::size_t>(g)];
    control->arrive_and_wait();
    for (;;) {
        control->arrive_and_wait();  // a task is set
        switch (task) {
            case Task::kStop:
                return;
            case Task::kStep:
                runner.step(&mine, [this] { ranks_sync->arrive_and_wait(); });
                break;
            case Task::kFloorWrite:
                runner.floor_write(&mine);
                break;
            case Task::kFloorRead:
                runner.floor_read(&mine);
                break;
            case Task::kFloorMemcpy:
                runner.floor_memcpy(&mine);
                break;
            case Task::kFloorBarrier:
                runner.floor_barrier(&mine);
                break;
        }
        control->arrive_and_wait();  // the task is done on every rank
    }
}

PhaseTimes Job::step() {
    state_->run(Task::kStep);
    PhaseTimes wall;
    wall.dispatch_ms = span_ms(state_->stamps, &Stamps::d0, &Stamps::d1);
    wall.combine_ms = span_ms(state_->stamps, &Stamps::c0, &Stamps::c1);
    return wall;
}

double Job::floor(Floor which) {
    switch (which) {
        case Floor::kWrite:
            state_->run(Task::kFloorWrite);
            break;
        case Floor::kRead:
            state_->run(Task::kFloorRead);
            break;
        case Floor::kMemcpy:
            state_->run(Task::kFloorMemcpy);
            break;
        case Floor::kBarrier:
            state_->run(Task::kFloorBarrier);
            break;
    }
    return span_ms(state_->stamps, &Stamps::d0, &Stamps::d1);
}

Status Job::status() const {
    for (std::size_t g = 0; g < state_->runners.size(); ++g) {
        const Status& st = state_->runners[g]->status();
        if (!st.ok()) {
            return {st.code(),
                    "rank " + std::to_string(g) + " failed with " + std::to_string(st.raw_code()) +
                        ": " + st.message()};
        }
    }
    return Status::Ok();
}

std::vector<Status> Job::statuses() const {
    std::vector<Status> all;
    for (const auto& r : state_->runners) all.push_back(r->status());
    return all;
}

int64_t Job::allocated_bytes() const {
    int64_t total = 0;
    for (const auto& r : state_->runners) total += r->allocated_bytes();
    return total;
}

JobReport Job::check(bool with_reference) const {
    if (Status st = status(); !st.ok()) {
        JobReport report;
        report.ok = false;
        report.first_mismatch = st.message();
        return report;
    }
    std::vector<RankOutputs> outputs;
    for (const auto& r : state_->runners) outputs.push_back(r->outputs());
    return check_job(state_->spec, state_->inputs, outputs, with_reference && state_->spec.checked);
}

JobReport run_job(const JobSpec& spec,
                  int steps,
                  bool check,
                  const std::function<void(int)>& on_step) {
    JobSpec s = spec;
    s.checked = check;
    Job job(s);
    std::vector<PhaseTimes> times;
    for (int step = 0; step < steps; ++step) {
        times.push_back(job.step());
        if (on_step) on_step(step);
    }
    JobReport report = job.check(check);
    report.steps = std::move(times);
    return report;
}

}  // namespace moedist::harness
