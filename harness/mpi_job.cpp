#include "harness/mpi_job.hpp"

#include <chrono>
#include <cstring>
#include <optional>

#include "core/remote.hpp"
#include "harness/inputs.hpp"
#include "harness/rank.hpp"
#include "moedist/mpi.hpp"
#include "transport/shm_arena.hpp"

namespace moedist::harness {
namespace {

void* arena_allocate(std::size_t bytes) { return transport::arena_allocate(bytes); }
void arena_release(void* p) { transport::arena_free(p); }

double since_epoch_ms(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(t.time_since_epoch()).count();
}

// Wall time of a phase over every process: first start to last end.
double span_ms(std::chrono::steady_clock::time_point begin,
               std::chrono::steady_clock::time_point end) {
    double b = since_epoch_ms(begin), e = since_epoch_ms(end), first = 0, last = 0;
    MPI_Allreduce(&b, &first, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&e, &last, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return last - first;
}

// The status of the lowest failing rank, on every rank.
Status agree(const Status& mine) {
    int world = 0, me = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    int failing = mine.ok() ? world : me, first = world;
    MPI_Allreduce(&failing, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == world) return Status::Ok();
    struct {
        int32_t code;
        char message[512];
    } m{};
    if (me == first) {
        m.code = mine.raw_code();
        std::snprintf(m.message,
                      sizeof(m.message),
                      "rank %d failed with %d: %s",
                      me,
                      m.code,
                      mine.message().c_str());
    }
    MPI_Bcast(&m, sizeof(m), MPI_BYTE, first, MPI_COMM_WORLD);
    return {static_cast<Code>(m.code), m.message};
}

}  // namespace

JobReport run_mpi_job(const JobSpec& spec, int steps, bool check, MpiTraffic* traffic) {
    JobReport report;
    int world = 0, g = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &g);
    JobSpec s = spec;
    s.checked = check;
    const Layout lay = layout_of(s);
    if (world != lay.ranks()) {
        report.ok = false;
        report.first_mismatch = "mpirun -np must be ranks x tp = " + std::to_string(lay.ranks()) +
                                ", got " + std::to_string(world);
        return report;
    }
    if (s.c_api) setenv("MOEDIST_ZERO_PADDING", s.zero_padding ? "1" : "0", 1);
    // EP group t = ranks with tp rank t (ordered by EP rank); TP group e = the ranks of EP rank e.
    MPI_Comm ep_comm = MPI_COMM_NULL, tp_comm = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, lay.tp_of(g), lay.ep_of(g), &ep_comm);
    Communicator ep, tp;
    Status joined = from_mpi(ep_comm, &ep);
    if (lay.T == 2) {
        MPI_Comm_split(MPI_COMM_WORLD, lay.ep_of(g), lay.tp_of(g), &tp_comm);
        if (joined.ok()) joined = from_mpi(tp_comm, &tp);
    }
    if (Status all = agree(joined); !all.ok()) {
        report.ok = false;
        report.first_mismatch = all.message();
        return report;
    }
    const moedist_ref::RankInput input = rank_input(s, lay, g);
    std::optional<Communicator> tp_opt;
    if (lay.T == 2) tp_opt = tp;
    RankRunner runner(
        s, lay, g, input, ep, tp_opt, Allocator{&arena_allocate, &arena_release}, check);
    for (int step = 0; step < steps; ++step) {
        Stamps stamps;
        MPI_Barrier(MPI_COMM_WORLD);
        PhaseTimes t;
        if (s.micro_batches == 2) {  // a layer benchmark: sequential, then overlapped
            const auto barrier = [] { MPI_Barrier(MPI_COMM_WORLD); };
            runner.layer(&stamps, barrier, false);
            t.layer_sequential_ms = span_ms(stamps.d0, stamps.d1);
            runner.layer(&stamps, barrier, true);
            t.layer_overlapped_ms = span_ms(stamps.d0, stamps.d1);
        } else {
            runner.step(&stamps, [] { MPI_Barrier(MPI_COMM_WORLD); });
            t.dispatch_ms = span_ms(stamps.d0, stamps.d1);
            t.combine_ms = span_ms(stamps.c0, stamps.c1);
        }
        report.steps.push_back(t);
    }
    if (traffic != nullptr) {
        const core::CrossNodeTraffic mine = core::last_cross_node_traffic();
        int64_t local[5] = {mine.dispatch_rows,
                            mine.dispatch_bytes,
                            mine.dispatch_flat_rows,
                            mine.combine_rows,
                            mine.combine_bytes};
        int64_t sums[5] = {};
        MPI_Allreduce(local, sums, 5, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        traffic->dispatch_rows = sums[0];
        traffic->dispatch_bytes = sums[1];
        traffic->dispatch_flat_rows = sums[2];
        traffic->combine_rows = sums[3];
        traffic->combine_bytes = sums[4];
        traffic->row_bytes =
            static_cast<int64_t>(lay.H) * static_cast<int64_t>(dtype_size(expand_dtype(s)));
        const char* per = std::getenv("MOEDIST_RANKS_PER_NODE");
        traffic->nodes = per != nullptr && std::atoi(per) > 0
                             ? (world / lay.T + std::atoi(per) - 1) / std::atoi(per)
                             : 1;
    }
    if (Status all = agree(runner.status()); !all.ok()) {
        report.ok = false;
        report.first_mismatch = all.message();
        return report;
    }
    // Each rank checks its own outputs against the whole job's reference; the lowest failing
    // rank's mismatch is everyone's.
    std::vector<moedist_ref::RankInput> inputs;
    if (check)
        for (int r = 0; r < world; ++r) inputs.push_back(rank_input(s, lay, r));
    std::vector<RankOutputs> outputs(static_cast<std::size_t>(world));
    outputs[static_cast<std::size_t>(g)] = runner.outputs();
    JobReport mine = check_job(s, inputs, outputs, check);
    const Status verdict =
        agree(mine.ok ? Status::Ok() : Status(Code::kRuntime, mine.first_mismatch));
    int64_t bytes[2] = {mine.dispatch_bytes, mine.combine_bytes}, totals[2] = {};
    MPI_Allreduce(bytes, totals, 2, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    report.dispatch_bytes = totals[0];
    report.combine_bytes = totals[1];
    report.ok = verdict.ok();
    report.first_mismatch = verdict.ok() ? "" : verdict.message();
    MPI_Comm_free(&ep_comm);
    if (tp_comm != MPI_COMM_NULL) MPI_Comm_free(&tp_comm);
    return report;
}

}  // namespace moedist::harness
