// `moedist bench --backend mpi`: under mpirun, each point on the mpi backend (one rank per
// process, MOEDIST_RANKS_PER_NODE for simulated nodes) and the MPI_Alltoallv baseline in the
// same processes, side by side.
#include <mpi.h>

#include "bench_command.hpp"
#include "harness/alltoallv_baseline.hpp"
#include "harness/mpi_job.hpp"

namespace moedist::cli {

BenchResult measure_mpi(const BenchOptions& o, const BenchPoint& p, bool baseline) {
    BenchResult r;
    r.point = p;
    const harness::JobSpec spec = bench_spec(o, p);
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (std::string why = harness::spec_error(spec); !why.empty()) {
        r.error = why;
        return r;
    }
    if (p.ranks * p.tp != world) {
        r.error = "mpirun -np must be ranks x tp = " + std::to_string(p.ranks * p.tp);
        return r;
    }
    harness::MpiTraffic traffic;
    const harness::JobReport report =
        harness::run_mpi_job(spec, o.warmup + o.reps, false, &traffic);
    if (!report.ok) {
        r.error = report.first_mismatch;
        return r;
    }
    std::vector<double> d, c, t;
    for (std::size_t i = static_cast<std::size_t>(o.warmup); i < report.steps.size(); ++i) {
        d.push_back(report.steps[i].dispatch_ms);
        c.push_back(report.steps[i].combine_ms);
        t.push_back(report.steps[i].dispatch_ms + report.steps[i].combine_ms);
    }
    r.dispatch = Spread::of(d);
    r.combine = Spread::of(c);
    r.total = Spread::of(t);
    r.received_bytes = report.dispatch_bytes;
    r.combine_bytes = report.combine_bytes;
    if (baseline) {
        if (p.tp != 1 || p.shared_ranks != 0) {
            r.baseline_error = "no baseline with TP or shared ranks";
        } else {
            const harness::BaselineTimes b =
                harness::run_alltoallv_baseline(spec, o.warmup, o.reps);
            r.baseline_dispatch = Spread::of(b.dispatch_ms);
            r.baseline_combine = Spread::of(b.combine_ms);
            r.has_baseline = true;
        }
    }
    return r;
}

}  // namespace moedist::cli
