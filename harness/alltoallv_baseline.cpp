#include "harness/alltoallv_baseline.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "harness/inputs.hpp"
#include "quant/float_bits.hpp"

namespace moedist::harness {
namespace {

double slowest(double seconds) {
    double max = 0;
    MPI_Allreduce(&seconds, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return max * 1e3;
}

class Baseline {
public:
    Baseline(const JobSpec& spec, int rank, int world)
        : spec_(spec), world_(world), H_(spec.hidden), K_(spec.top_k) {
        const moedist::harness::Layout lay = moedist::harness::layout_of(spec);
        L_ = lay.L;
        input_ = moedist::harness::rank_input(spec, lay, rank);
        bs_ = input_.num_tokens;
        row_bytes_ = static_cast<std::size_t>(H_) * 2;
        // The permutation of my entries by (destination, local expert), stable (sender order).
        const int64_t entries = bs_ * K_;
        send_counts_.assign(static_cast<std::size_t>(world_ * L_), 0);
        for (int64_t i = 0; i < entries; ++i) ++send_counts_[slot_of(i)];
        std::vector<int64_t> next(send_counts_.size() + 1, 0);
        for (std::size_t s = 0; s < send_counts_.size(); ++s)
            next[s + 1] = next[s] + send_counts_[s];
        order_.resize(static_cast<std::size_t>(entries));
        for (int64_t i = 0; i < entries; ++i)
            order_[static_cast<std::size_t>(next[slot_of(i)]++)] = i;
        send_.resize(static_cast<std::size_t>(entries) * row_bytes_);
        back_.resize(send_.size());
        out_.resize(static_cast<std::size_t>(bs_ * H_));
    }

    double dispatch() {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        // Pack (index_select by the permutation).
        const auto* x = reinterpret_cast<const uint8_t*>(input_.x.data());
        for (std::size_t j = 0; j < order_.size(); ++j) {
            const int64_t token = order_[j] / K_;
            std::memcpy(send_.data() + j * row_bytes_,
                        x + static_cast<std::size_t>(token) * row_bytes_,
                        row_bytes_);
        }
        // Counts per (rank, local expert), then the rows.
        recv_counts_.assign(send_counts_.size(), 0);
        MPI_Alltoall(
            send_counts_.data(), L_, MPI_INT, recv_counts_.data(), L_, MPI_INT, MPI_COMM_WORLD);
        rows_v(send_counts_, &send_bytes_, &send_displs_);
        rows_v(recv_counts_, &recv_bytes_, &recv_displs_);
        const std::size_t received =
            static_cast<std::size_t>(recv_displs_.back() + recv_bytes_.back());
        recv_.resize(received);
        expert_major_.resize(received);
        MPI_Alltoallv(send_.data(),
                      send_bytes_.data(),
                      send_displs_.data(),
                      MPI_BYTE,
                      recv_.data(),
                      recv_bytes_.data(),
                      recv_displs_.data(),
                      MPI_BYTE,
                      MPI_COMM_WORLD);
        // Unpack: [source][local expert] → [local expert][source].
        std::size_t at = 0;
        for (int le = 0; le < L_; ++le) {
            for (int src = 0; src < world_; ++src) {
                const std::size_t n = static_cast<std::size_t>(
                                          recv_counts_[static_cast<std::size_t>(src * L_ + le)]) *
                                      row_bytes_;
                std::memcpy(expert_major_.data() + at, recv_.data() + block_offset(src, le), n);
                at += n;
            }
        }
        return slowest(MPI_Wtime() - t0);
    }

    double combine() {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        // The expert outputs (here: the received rows themselves) back to [source][expert].
        std::size_t at = 0;
        for (int le = 0; le < L_; ++le) {
            for (int src = 0; src < world_; ++src) {
                const std::size_t n = static_cast<std::size_t>(
                                          recv_counts_[static_cast<std::size_t>(src * L_ + le)]) *
                                      row_bytes_;
                std::memcpy(recv_.data() + block_offset(src, le), expert_major_.data() + at, n);
                at += n;
            }
        }
        MPI_Alltoallv(recv_.data(),
                      recv_bytes_.data(),
                      recv_displs_.data(),
                      MPI_BYTE,
                      back_.data(),
                      send_bytes_.data(),
                      send_displs_.data(),
                      MPI_BYTE,
                      MPI_COMM_WORLD);
        // back_ row j is entry order_[j]: weighted sum per token in k order, fp32, then bf16.
        std::vector<float> acc(static_cast<std::size_t>(bs_ * H_), 0.0f);
        std::vector<int64_t> position(order_.size());
        for (std::size_t j = 0; j < order_.size(); ++j)
            position[static_cast<std::size_t>(order_[j])] = static_cast<int64_t>(j);
        for (int64_t t = 0; t < bs_; ++t) {
            float* a = acc.data() + t * H_;
            for (int k = 0; k < K_; ++k) {
                const int64_t i = t * K_ + k;
                const float w = input_.expert_scales[static_cast<std::size_t>(i)];
                const auto* row = reinterpret_cast<const uint16_t*>(
                    back_.data() +
                    static_cast<std::size_t>(position[static_cast<std::size_t>(i)]) * row_bytes_);
                for (int h = 0; h < H_; ++h) a[h] += moedist::quant::bf16_to_f32(row[h]) * w;
            }
            for (int h = 0; h < H_; ++h)
                out_[static_cast<std::size_t>(t * H_ + h)] = moedist::quant::f32_to_bf16(a[h]);
        }
        return slowest(MPI_Wtime() - t0);
    }

private:
    std::size_t slot_of(int64_t entry) const {
        const int32_t e = input_.expert_ids[static_cast<std::size_t>(entry)];
        return static_cast<std::size_t>((e / L_) * L_ + e % L_);  // S = 0: rank e / L
    }
    // Byte counts and displacements per rank from per-(rank, expert) row counts.
    void rows_v(const std::vector<int>& counts,
                std::vector<int>* bytes,
                std::vector<int>* displs) const {
        bytes->assign(static_cast<std::size_t>(world_), 0);
        displs->assign(static_cast<std::size_t>(world_), 0);
        for (int r = 0; r < world_; ++r) {
            int rows = 0;
            for (int le = 0; le < L_; ++le) rows += counts[static_cast<std::size_t>(r * L_ + le)];
            (*bytes)[static_cast<std::size_t>(r)] = rows * static_cast<int>(row_bytes_);
            if (r > 0)
                (*displs)[static_cast<std::size_t>(r)] =
                    (*displs)[static_cast<std::size_t>(r - 1)] +
                    (*bytes)[static_cast<std::size_t>(r - 1)];
        }
    }
    std::size_t block_offset(int src, int le) const {
        std::size_t at = static_cast<std::size_t>(recv_displs_[static_cast<std::size_t>(src)]);
        for (int e = 0; e < le; ++e)
            at += static_cast<std::size_t>(recv_counts_[static_cast<std::size_t>(src * L_ + e)]) *
                  row_bytes_;
        return at;
    }

    JobSpec spec_;
    int world_, H_, K_, L_ = 1;
    int64_t bs_ = 0;
    std::size_t row_bytes_ = 0;
    moedist_ref::RankInput input_;
    std::vector<int> send_counts_, recv_counts_, send_bytes_, send_displs_, recv_bytes_,
        recv_displs_;
    std::vector<int64_t> order_;
    std::vector<uint8_t> send_, recv_, expert_major_, back_;
    std::vector<uint16_t> out_;
};

}  // namespace

BaselineTimes run_alltoallv_baseline(const JobSpec& spec, int warmup, int reps) {
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    Baseline baseline(spec, rank, world);
    BaselineTimes times;
    for (int i = 0; i < warmup + reps; ++i) {
        const double d = baseline.dispatch();
        const double c = baseline.combine();
        if (i >= warmup) {
            times.dispatch_ms.push_back(d);
            times.combine_ms.push_back(c);
        }
    }
    return times;
}

}  // namespace moedist::harness
