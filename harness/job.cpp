// A harness job: its inputs and a driver (threads or processes) that runs tasks on its ranks.
// The threads driver: one persistent thread per global rank, tasks handed out through a barrier
// of the ranks and the driving thread.
#include "harness/job.hpp"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

#include "harness/driver.hpp"
#include "harness/inputs.hpp"
#include "harness/rank.hpp"

namespace moedist::harness {

void run_task(Task task, RankRunner& runner, Stamps* stamps, const std::function<void()>& sync) {
    switch (task) {
        case Task::kStop:
            break;
        case Task::kStep:
            runner.step(stamps, sync);
            break;
        case Task::kFloorWrite:
            runner.floor_write(stamps);
            break;
        case Task::kFloorRead:
            runner.floor_read(stamps);
            break;
        case Task::kFloorMemcpy:
            runner.floor_memcpy(stamps);
            break;
        case Task::kFloorBarrier:
            runner.floor_barrier(stamps);
            break;
        case Task::kLayerSequential:
        case Task::kLayerOverlapped:
            runner.layer(stamps, sync, task == Task::kLayerOverlapped);
            break;
    }
}

namespace {

// Wall time of a phase: first rank's start to last rank's end.
template <class Member>
double span_ms(const std::vector<Stamps>& stamps, Member begin, Member end) {
    if (stamps.empty()) return 0;  // a driver that could not start its ranks
    auto first = stamps.front().*begin;
    auto last = stamps.front().*end;
    for (const auto& s : stamps) {
        first = std::min(first, s.*begin);
        last = std::max(last, s.*end);
    }
    return std::chrono::duration<double, std::milli>(last - first).count();
}

class ThreadDriver final : public JobDriver {
public:
    ThreadDriver(const JobSpec& spec,
                 const Layout& lay,
                 const std::vector<moedist_ref::RankInput>& inputs)
        : spec_(spec), lay_(lay), inputs_(inputs) {
        const int ranks = lay.ranks();
        // Groups: EP group t = ranks with tp rank t; TP group e = the two ranks of EP rank e.
        for (int t = 0; t < lay.T; ++t)
            ep_groups_.push_back(Communicator::create_local_group(lay.W, "harness_ep"));
        if (lay.T == 2) {
            for (int e = 0; e < lay.W; ++e)
                tp_groups_.push_back(Communicator::create_local_group(2, "harness_tp"));
        }
        runners_.resize(static_cast<std::size_t>(ranks));
        stamps_.resize(static_cast<std::size_t>(ranks));
        control_ = std::make_unique<std::barrier<>>(ranks + 1);
        ranks_sync_ = std::make_unique<std::barrier<>>(ranks);
        for (int g = 0; g < ranks; ++g) threads_.emplace_back([this, g] { rank_main(g); });
        control_->arrive_and_wait();  // every rank has built its tensors
    }
    ~ThreadDriver() override {
        task_ = Task::kStop;
        control_->arrive_and_wait();
        for (auto& th : threads_) th.join();
    }

    void run(Task task) override {
        task_ = task;
        control_->arrive_and_wait();  // the task is set
        control_->arrive_and_wait();  // every rank has done it
    }
    const std::vector<Stamps>& stamps() const override { return stamps_; }
    std::vector<Status> statuses() const override {
        std::vector<Status> all;
        for (const auto& r : runners_) all.push_back(r->status());
        return all;
    }
    std::vector<RankOutputs> outputs() const override {
        std::vector<RankOutputs> all;
        for (const auto& r : runners_) all.push_back(r->outputs());
        return all;
    }
    int64_t allocated_bytes() const override {
        int64_t total = 0;
        for (const auto& r : runners_) total += r->allocated_bytes();
        return total;
    }

private:
    // Every rank passes every barrier, failed or not, so a failure can never hang the job.
    void rank_main(int g) {
        const int ep = lay_.ep_of(g);
        const int tp = lay_.tp_of(g);
        std::optional<Communicator> tpc;
        if (lay_.T == 2)
            tpc = tp_groups_[static_cast<std::size_t>(ep)][static_cast<std::size_t>(tp)];
        // Built on the rank's own thread, so its tensors are first touched there.
        runners_[static_cast<std::size_t>(g)] = std::make_unique<RankRunner>(
            spec_,
            lay_,
            g,
            inputs_[static_cast<std::size_t>(g)],
            ep_groups_[static_cast<std::size_t>(tp)][static_cast<std::size_t>(ep)],
            tpc,
            Allocator::heap(),
            spec_.checked);
        RankRunner& runner = *runners_[static_cast<std::size_t>(g)];
        Stamps& mine = stamps_[static_cast<std::size_t>(g)];
        control_->arrive_and_wait();
        for (;;) {
            control_->arrive_and_wait();  // a task is set
            if (task_ == Task::kStop) return;
            run_task(task_, runner, &mine, [this] { ranks_sync_->arrive_and_wait(); });
            control_->arrive_and_wait();  // the task is done on every rank
        }
    }

    JobSpec spec_;
    Layout lay_;
    const std::vector<moedist_ref::RankInput>& inputs_;
    std::vector<std::vector<Communicator>> ep_groups_;  // [tp rank][ep rank]
    std::vector<std::vector<Communicator>> tp_groups_;  // [ep rank][tp rank]
    std::vector<std::unique_ptr<RankRunner>> runners_;
    std::vector<Stamps> stamps_;
    Task task_ = Task::kStep;
    std::unique_ptr<std::barrier<>> control_;
    std::unique_ptr<std::barrier<>> ranks_sync_;
    std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<JobDriver> make_thread_driver(const JobSpec& spec,
                                              const Layout& lay,
                                              const std::vector<moedist_ref::RankInput>& inputs) {
    return std::make_unique<ThreadDriver>(spec, lay, inputs);
}

struct Job::State {
    JobSpec spec;
    Layout lay{};
    std::vector<moedist_ref::RankInput> inputs;
    std::unique_ptr<JobDriver> driver;
};

Job::Job(const JobSpec& spec) : state_(new State) {
    State& st = *state_;
    st.spec = spec;
    st.lay = layout_of(spec);
    // The C API reads MOEDIST_ZERO_PADDING at each first phase; set before any rank runs.
    if (spec.c_api) setenv("MOEDIST_ZERO_PADDING", spec.zero_padding ? "1" : "0", 1);
    // Processes build their own inputs; the driving process needs them only for the check.
    if (spec.backend == Backend::kThreads || spec.checked) {
        for (int g = 0; g < st.lay.ranks(); ++g) st.inputs.push_back(rank_input(spec, st.lay, g));
    }
    st.driver = spec.backend == Backend::kThreads ? make_thread_driver(spec, st.lay, st.inputs)
                                                  : make_process_driver(spec, st.lay);
}

Job::~Job() { delete state_; }

PhaseTimes Job::step() {
    state_->driver->run(Task::kStep);
    const auto& stamps = state_->driver->stamps();
    PhaseTimes wall;
    wall.dispatch_ms = span_ms(stamps, &Stamps::d0, &Stamps::d1);
    wall.combine_ms = span_ms(stamps, &Stamps::c0, &Stamps::c1);
    return wall;
}

double Job::layer(bool overlapped) {
    state_->driver->run(overlapped ? Task::kLayerOverlapped : Task::kLayerSequential);
    return span_ms(state_->driver->stamps(), &Stamps::d0, &Stamps::d1);
}

double Job::floor(Floor which) {
    switch (which) {
        case Floor::kWrite:
            state_->driver->run(Task::kFloorWrite);
            break;
        case Floor::kRead:
            state_->driver->run(Task::kFloorRead);
            break;
        case Floor::kMemcpy:
            state_->driver->run(Task::kFloorMemcpy);
            break;
        case Floor::kBarrier:
            state_->driver->run(Task::kFloorBarrier);
            break;
    }
    return span_ms(state_->driver->stamps(), &Stamps::d0, &Stamps::d1);
}

Status Job::status() const {
    const std::vector<Status> all = statuses();
    for (std::size_t g = 0; g < all.size(); ++g) {
        const Status& st = all[g];
        if (!st.ok()) {
            return {st.code(),
                    "rank " + std::to_string(g) + " failed with " + std::to_string(st.raw_code()) +
                        ": " + st.message()};
        }
    }
    return Status::Ok();
}

std::vector<Status> Job::statuses() const { return state_->driver->statuses(); }

int64_t Job::allocated_bytes() const { return state_->driver->allocated_bytes(); }

void Job::add_cross_host_traffic(JobReport* report) const {
    const std::array<int64_t, 5> t = state_->driver->cross_host_traffic();
    report->cross_dispatch_rows = t[0];
    report->cross_dispatch_bytes = t[1];
    report->cross_dispatch_flat_rows = t[2];
    report->cross_combine_rows = t[3];
    report->cross_combine_bytes = t[4];
}

JobReport Job::check(bool with_reference) const {
    if (Status st = status(); !st.ok()) {
        JobReport report;
        report.ok = false;
        report.first_mismatch = st.message();
        return report;
    }
    const bool reference = with_reference && state_->spec.checked;
    return check_job(state_->spec, state_->inputs, state_->driver->outputs(), reference);
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
