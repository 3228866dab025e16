// Combine's reduction: where each returned row of this rank's tokens lives, then x.
//
// For token t of source rank `me` and entry k with expert e on EP rank d (local expert le):
//   row   = begin(d, le·W + me) + i     begin from d's epSendCounts (running total); i is
//                                       expandIdx[t·K+k] (V1) or, V2, the entry's occurrence
//                                       among me's active entries to e (this rank's plan)
//   value = f32(d.expandX[row])                                        T == 1
//         = f32(rne(f32(d.expandX[row]) + f32(P.expandX[P.own + row])))  T == 2, P = d's TP peer
//   (commQuantMode 2: value goes through the int8 round trip of docs/contract.md §4.2)
//
//   V1: acc = Σ_k value·expertScales[t,k], then + the shared row (chunk rule; on a shared
//       rank its own row t) when S > 0; x[t] = rne(acc)
//   V2: active tokens only, active entries only, weight 1 when expertScales is empty:
//       id < E a row as above, zero experts nothing, copy experts oriX[t], const experts
//       (docs/contract.md §10.6) computed; then each shared expert j's row, at rank
//       (me mod R) + j·R, block me, index = t's index among me's active tokens; then
//       sharedExpertX[t]; x[t] = rne(acc), or AddRmsNorm's outputs (§10.7)
//
// Every index is checked against the owner's copied counts before any read. V2 also checks that
// each owner holds exactly the rows this rank's ids and mask expect of it, and that each row's
// triple (src, t, slot) names this rank's entry: a combine whose ids or mask differ from
// dispatch's fails instead of reading another token's rows.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/combine_parts.hpp"
#include "core/tensor_access.hpp"
#include "quant/combine_rows.hpp"
#include "quant/row_kernels.hpp"

namespace moedist::core {

CombineScratch& combine_scratch() {
    thread_local CombineScratch instance;
    return instance;
}

void plan_combine(const CombineOp& op, CombineScratch& s) {
    const TensorView& ids = op.in.expert_ids;
    build_send_plan(static_cast<const int32_t*>(ids.data),
                    ids.stride(0),
                    ids.stride(1),
                    op.num_tokens,
                    op.top_k,
                    op.config.moe_expert_num,
                    &s.plan,
                    entry_mask(op.config, op.in.x_active_mask),
                    op.config.v2() ? op.config.special_expert_num() : 0);
}

namespace {

// Where one returned row lives: on rank `owner` of my EP group at `row` (and, T == 2, on the
// owner's TP peer at `peer_row`).
struct RowRef {
    int64_t owner = 0;
    int64_t row = 0;
    int64_t peer_row = 0;
};

class RowLocator {
public:
    RowLocator(const CombineOp& op, const CallRounds& rounds, const CombineScratch& s)
        : op_(op), rounds_(rounds), own_(s.own_owners), peer_(s.peer_owners) {}

    int64_t blocks_of(int64_t owner) const {
        return op_.config.ep_world_size *
               (owner < op_.config.shared_expert_rank_num ? 1 : op_.config.local_moe_expert_num());
    }

    // Rows in block `block` of `owner`; false when its counts cannot say.
    bool block_size(int64_t owner, int64_t block, int64_t* begin, int64_t* size) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(owner)];
        const int64_t blocks = blocks_of(owner);
        if (block < 0 || block >= blocks || rec.ep_send_counts.data == nullptr ||
            rec.ep_send_counts.dim(0) < blocks)
            return false;
        *begin = block == 0 ? 0 : load1<int32_t>(rec.ep_send_counts, block - 1);
        *size = load1<int32_t>(rec.ep_send_counts, block) - *begin;
        return *begin >= 0 && *size >= 0;
    }

    // Locates block `block` of `owner`'s epSendCounts, row `index` inside it; false when any index
    // is outside the owner's (or its TP peer's) rows.
    bool locate(int64_t owner, int64_t block, int64_t index, RowRef* ref) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(owner)];
        int64_t begin = 0, size = 0;
        if (!block_size(owner, block, &begin, &size) || rec.expand_x.data == nullptr) return false;
        if (rec.padded_stride > 0) {  // expert-padded (no TP): expert block/W at e·W·maxBs
            const int64_t world = op_.config.ep_world_size;
            const int64_t first = block / world * world;
            const int64_t expert_begin =
                first == 0 ? 0 : load1<int32_t>(rec.ep_send_counts, first - 1);
            const int64_t row =
                padded_block_begin(block, world, rec.padded_stride, begin, expert_begin);
            if (index < 0 || index >= size || begin < expert_begin ||
                begin - expert_begin + size > world * rec.padded_stride ||
                row + size > rec.expand_x.dim(0))
                return false;
            ref->owner = owner;
            ref->row = row + index;
            return true;
        }
        int64_t own_rows = load1<int32_t>(rec.ep_send_counts, blocks_of(owner) - 1);
        if (rounds_.has_peer()) own_rows = load1<int32_t>(rec.tp_send_counts, rec.tp_rank);
        if (index < 0 || index >= size || begin + size > own_rows ||
            own_rows > rec.expand_x.dim(0)) {
            return false;
        }
        ref->owner = owner;
        ref->row = begin + index;
        if (rounds_.has_peer()) {
            const OwnerView& peer = peer_[static_cast<std::size_t>(owner)];
            if (peer.tp_send_counts.data == nullptr || peer.expand_x.data == nullptr) return false;
            const int64_t peer_own = load1<int32_t>(peer.tp_send_counts, peer.tp_rank);
            const int64_t peer_has = load1<int32_t>(peer.tp_send_counts, 1 - peer.tp_rank);
            if (peer_own < 0 || ref->row >= peer_has ||
                peer_own + peer_has > peer.expand_x.dim(0)) {
                return false;
            }
            ref->peer_row = peer_own + ref->row;
        }
        return true;
    }

    // V2: whether the owner's triple for the row of `ref` is (src, t, slot).
    bool triple_is(const RowRef& ref, int64_t src, int64_t t, int64_t slot) const {
        const TensorView& a = own_[static_cast<std::size_t>(ref.owner)].assist;
        if (a.data == nullptr || 3 * ref.row + 2 >= a.dim(0)) return false;
        return load1<int32_t>(a, 3 * ref.row) == src && load1<int32_t>(a, 3 * ref.row + 1) == t &&
               load1<int32_t>(a, 3 * ref.row + 2) == slot;
    }

    // Without TP and comm quantization a returned row is used as it is, so it can be read and
    // accumulated in one pass.
    bool direct() const { return !rounds_.has_peer() && op_.config.comm_quant_mode == 0; }

    const uint16_t* row_pointer(const RowRef& ref) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(ref.owner)];
        return reinterpret_cast<const uint16_t*>(element_ptr(rec.expand_x, ref.row, 0));
    }
    bool contiguous_rows() const {
        for (int64_t r = 0; r < op_.config.ep_world_size; ++r) {
            if (own_[static_cast<std::size_t>(r)].expand_x.stride(1) != 1) return false;
        }
        return true;
    }

    // acc += f32(row of `ref`) * weight, straight from the owner's expandX (direct() only).
    void accumulate_direct(const RowRef& ref, float weight, float* acc) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(ref.owner)];
        quant::accumulate_weighted_from(rec.expand_x.dtype,
                                        element_ptr(rec.expand_x, ref.row, 0),
                                        rec.expand_x.stride(1),
                                        weight,
                                        acc,
                                        op_.hidden);
    }

    // Loads the returned value of `ref` into `row` (binary32), TP-reduced and comm-quantized.
    void load(const RowRef& ref, float* row, float* peer_row) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(ref.owner)];
        const DType dtype = rec.expand_x.dtype;
        const int64_t hidden = op_.hidden;
        quant::load_row_f32(
            dtype, element_ptr(rec.expand_x, ref.row, 0), rec.expand_x.stride(1), row, hidden);
        if (rounds_.has_peer()) {
            const OwnerView& peer = peer_[static_cast<std::size_t>(ref.owner)];
            quant::load_row_f32(dtype,
                                element_ptr(peer.expand_x, ref.peer_row, 0),
                                peer.expand_x.stride(1),
                                peer_row,
                                hidden);
            quant::add_round_row(dtype, row, peer_row, hidden);
        }
        if (op_.config.comm_quant_mode == 2) quant::comm_quant_round_trip(dtype, row, hidden);
    }

private:
    const CombineOp& op_;
    const CallRounds& rounds_;
    const std::vector<OwnerView>& own_;
    const std::vector<OwnerView>& peer_;
};

// One addend of a token's sum: a returned row, a row of oriX or sharedExpertX (`view`), or a
// const expert's output (computed).
struct Term {
    enum Kind { kReturned, kView, kConst } kind = kReturned;
    RowRef ref;
    const std::byte* view = nullptr;  // element 0 of the row
    int64_t view_stride = 1;
    int64_t const_index = 0;
    bool weighted = true;
    float weight = 1.0f;
};

// The addends of each of this rank's tokens, in the order they are added.
class TokenTerms {
public:
    TokenTerms(const CombineOp& op, const RowLocator& locator, const SendPlan& plan)
        : op_(op),
          locator_(locator),
          plan_(plan),
          topo_(topology_of(op.config)),
          me_(op.config.ep_rank_id),
          mask_(entry_mask(op.config, op.in.x_active_mask)) {}

    int64_t max_terms() const { return op_.top_k + std::max<int64_t>(topo_.shared_experts, 1) + 1; }
    bool active(int64_t t) const { return !topo_.v2 || plan_.index_of_active(t) >= 0; }

    // Fills terms[0, *count) for token t; false (and `why`) when a row is not where it must be.
    bool of(int64_t t, Term* terms, int64_t* count, std::string* why) const {
        return topo_.v2 ? of_v2(t, terms, count, why) : of_v1(t, terms, count, why);
    }

    // V2: whether every owner holds exactly the rows of this rank its ids and mask expect.
    bool owners_agree(std::string* why) const {
        for (int64_t d = 0; d < topo_.world_size; ++d) {
            for (int64_t le = 0; le < topo_.local_experts(d); ++le) {
                const int64_t expected =
                    topo_.is_shared(d)
                        ? (shared_receives_from(topo_, d, me_) ? plan_.num_active() : 0)
                        : plan_.rows_for_expert(topo_.first_expert(d) + le);
                int64_t begin = 0, held = 0;
                const int64_t block = le * topo_.world_size + me_;
                if (!locator_.block_size(d, block, &begin, &held) || held != expected) {
                    *why = "must match dispatch's: rank " + std::to_string(d) + " holds " +
                           std::to_string(held) + " rows of this rank's tokens in block " +
                           std::to_string(block) + ", these expertIds and xActiveMask give " +
                           std::to_string(expected);
                    return false;
                }
            }
        }
        return true;
    }

private:
    bool returned(int64_t owner, int64_t block, int64_t index, Term* term) const {
        term->kind = Term::kReturned;
        return locator_.locate(owner, block, index, &term->ref);
    }

    bool of_v1(int64_t t, Term* terms, int64_t* count, std::string* why) const {
        int64_t n = 0;
        for (int64_t k = 0; k < op_.top_k; ++k, ++n) {
            const int64_t expert = load2<int32_t>(op_.in.expert_ids, t, k);
            const int64_t index = load1<int32_t>(op_.in.expand_idx, t * op_.top_k + k);
            Term& term = terms[n];
            term.weight = load2<float>(op_.in.expert_scales, t, k);
            term.weighted = true;
            if (expert < 0 || expert >= topo_.moe_expert_num ||
                !returned(topo_.rank_of_expert(expert),
                          topo_.local_index(expert) * topo_.world_size + me_,
                          index,
                          &term)) {
                *why = "must name rows their experts' ranks received, got token " +
                       std::to_string(t) + ", k " + std::to_string(k) + ": expert " +
                       std::to_string(expert) + ", expandIdx " + std::to_string(index);
                return false;
            }
        }
        if (topo_.shared_rank_num > 0) {
            // On a shared rank its own row t, else row t − lo of the chunk the chunk rule names.
            const int64_t S = topo_.shared_rank_num;
            const int64_t owner =
                topo_.is_shared(me_) ? me_ : shared_rank_of_token(me_, op_.num_tokens, S, t);
            const int64_t lo =
                topo_.is_shared(me_) ? 0 : shared_chunk(me_, op_.num_tokens, S, owner).lo;
            Term& term = terms[n++];
            term.weighted = false;
            if (!returned(owner, me_, t - lo, &term)) {
                *why = "must match shared rank " + std::to_string(owner) +
                       "'s epSendCounts, got no row for token " + std::to_string(t);
                return false;
            }
        }
        *count = n;
        return true;
    }

    bool of_v2(int64_t t, Term* terms, int64_t* count, std::string* why) const {
        const int64_t E = topo_.moe_expert_num;
        const int64_t first_copy = E + op_.config.zero_expert_num;
        const int64_t first_const = first_copy + op_.config.copy_expert_num;
        int64_t n = 0;
        for (int64_t k = 0; k < op_.top_k; ++k) {
            if (!entry_active(mask_, plan_, t, k)) continue;
            const int64_t id = load2<int32_t>(op_.in.expert_ids, t, k);
            if (id >= E && id < first_copy) continue;  // a zero expert adds nothing
            Term& term = terms[n++];
            term.weighted = true;
            term.weight = op_.weighted ? load2<float>(op_.in.expert_scales, t, k) : 1.0f;
            if (id >= first_const) {
                term.kind = Term::kConst;
                term.const_index = id - first_const;
            } else if (id >= first_copy) {
                term.kind = Term::kView;
                term.view = reinterpret_cast<const std::byte*>(element_ptr(*op_.in.ori_x, t, 0));
                term.view_stride = op_.in.ori_x->stride(1);
            } else {
                const int64_t index = plan_.expand_idx[static_cast<std::size_t>(t * op_.top_k + k)];
                const int64_t owner = topo_.rank_of_expert(id);
                if (!returned(
                        owner, topo_.local_index(id) * topo_.world_size + me_, index, &term) ||
                    !locator_.triple_is(term.ref, me_, t, k)) {
                    *why = "must match dispatch's: rank " + std::to_string(owner) +
                           " holds no row of token " + std::to_string(t) + ", k " +
                           std::to_string(k) + " (expert " + std::to_string(id) + ")";
                    return false;
                }
            }
        }
        const int64_t index = plan_.index_of_active(t);
        for (int64_t j = 0; j < topo_.shared_experts; ++j) {
            const int64_t owner = topo_.shared_rank_for(me_, j);
            Term& term = terms[n++];
            term.weighted = false;
            if (!returned(owner, me_, index, &term) ||
                !locator_.triple_is(term.ref, me_, t, op_.top_k + j)) {
                *why = "must match dispatch's: shared rank " + std::to_string(owner) +
                       " holds no row of token " + std::to_string(t) + " for shared expert " +
                       std::to_string(j);
                return false;
            }
        }
        if (op_.shared_x.data != nullptr) {
            Term& term = terms[n++];
            term.kind = Term::kView;
            term.weighted = false;
            term.view = reinterpret_cast<const std::byte*>(element_ptr(op_.shared_x, t, 0));
            term.view_stride = op_.shared_x.stride(1);
        }
        *count = n;
        return true;
    }

    const CombineOp& op_;
    const RowLocator& locator_;
    const SendPlan& plan_;
    Topology topo_;
    int64_t me_;
    EntryMask mask_;
};

// Const expert c's output for token t into u (docs/contract.md §10.6); x, v, a1, a2 are H-float
// work rows. alpha (Q,): u = x·a1 + v·a2 elementwise; alpha (Q, H): a two-way softmax gate of
// the dot products of alpha1[c] and alpha2[c] with x mixes x and v.
void const_expert(const CombineOp& op, int64_t c, int64_t t, float* u, float* work) {
    const int64_t H = op.hidden;
    const DType dtype = op.in.expand_x.dtype;
    float* x = work;
    float* v = work + H;
    const TensorView& ori = *op.in.ori_x;
    const TensorView& alpha1 = *op.in.const_alpha1;
    const TensorView& alpha2 = *op.in.const_alpha2;
    const TensorView& cv = *op.in.const_v;
    quant::load_row_f32(dtype, element_ptr(ori, t, 0), ori.stride(1), x, H);
    quant::load_row_f32(dtype, element_ptr(cv, c, 0), cv.stride(1), v, H);
    float p1 = 0.0f, p2 = 0.0f;
    if (alpha1.ndim == 1) {
        quant::load_row_f32(dtype, element_ptr(alpha1, c), 1, &p1, 1);
        quant::load_row_f32(dtype, element_ptr(alpha2, c), 1, &p2, 1);
    } else {
        float* a = work + 2 * H;
        float l[2] = {0.0f, 0.0f};
        const TensorView* alphas[2] = {&alpha1, &alpha2};
        for (int i = 0; i < 2; ++i) {
            const TensorView& al = *alphas[i];
            quant::load_row_f32(dtype, element_ptr(al, c, 0), al.stride(1), a, H);
            for (int64_t h = 0; h < H; ++h) l[i] = l[i] + a[h] * x[h];  // h order, from +0
        }
        const float m = std::max(l[0], l[1]);
        // exp in double, rounded once to binary32 (correctly rounded but for ties closer than
        // 2^-29 ulp; see docs/contract.md §10.6).
        const auto e1 = static_cast<float>(std::exp(static_cast<double>(l[0] - m)));
        const auto e2 = static_cast<float>(std::exp(static_cast<double>(l[1] - m)));
        const float sigma = e1 + e2;
        p1 = e1 / sigma;
        p2 = e2 / sigma;
    }
    for (int64_t h = 0; h < H; ++h) {
        const float xa = x[h] * p1;
        const float va = v[h] * p2;
        u[h] = xa + va;
    }
}

// AddRmsNorm's outputs for token t from acc (docs/contract.md §10.7); work holds 2·H floats and
// `narrow` H 16-bit values.
void add_rms_norm(const CombineOp& op, int64_t t, const float* acc, float* work, uint16_t* narrow) {
    const int64_t H = op.hidden;
    const DType dtype = op.x_out.dtype;
    float* sum = work;
    float* gamma = work + H;
    quant::load_row_f32(dtype, element_ptr(op.residual, t, 0), op.residual.stride(1), sum, H);
    for (int64_t h = 0; h < H; ++h) sum[h] = acc[h] + sum[h];
    quant::store_row_f32(dtype, sum, element_ptr(op.x_out, t, 0), op.x_out.stride(1), H);
    const float inv = 1.0f / static_cast<float>(H);
    float ms = 0.0f;
    for (int64_t h = 0; h < H; ++h) {
        const float sq = sum[h] * sum[h];
        ms = ms + sq * inv;
    }
    const float rstd = 1.0f / std::sqrt(ms + op.in.norm_eps);
    store1<float>(op.rstd_out, t, rstd);
    for (int64_t h = 0; h < H; ++h) sum[h] = sum[h] * rstd;
    quant::store_row_f32(dtype, sum, narrow, 1, H);  // rne to the 16-bit type ...
    quant::load_row_f32(dtype, narrow, 1, sum, H);   // ... and back
    quant::load_row_f32(dtype, element_ptr(op.gamma, 0), op.gamma.stride(0), gamma, H);
    for (int64_t h = 0; h < H; ++h) sum[h] = sum[h] * gamma[h];
    quant::store_row_f32(dtype, sum, element_ptr(op.y_out, t, 0), op.y_out.stride(1), H);
}

// A token no mask lets through: its outputs stay as they are, or are zeroed under zero padding.
void inactive_token(const CombineOp& op, int64_t t, CombineScratch& s) {
    if (!op.zero_padding) return;
    std::fill(s.acc.begin(), s.acc.end(), 0.0f);
    quant::store_row_f32(
        op.x_out.dtype, s.acc.data(), element_ptr(op.x_out, t, 0), op.x_out.stride(1), op.hidden);
    if (op.add_rms_norm) {
        quant::store_row_f32(op.y_out.dtype,
                             s.acc.data(),
                             element_ptr(op.y_out, t, 0),
                             op.y_out.stride(1),
                             op.hidden);
        store1<float>(op.rstd_out, t, 0.0f);
    }
}

// Token t in registers (quant/combine_rows): every addend a contiguous 16-bit row used as it is.
bool reduce_in_registers(const CombineOp& op,
                         const RowLocator& locator,
                         const Term* terms,
                         int64_t count,
                         int64_t t,
                         CombineScratch& s) {
    int64_t weighted = 0, unweighted = 0;
    for (int64_t i = 0; i < count; ++i) {
        const Term& term = terms[i];
        const uint16_t* row = nullptr;
        if (term.kind == Term::kReturned) {
            row = locator.row_pointer(term.ref);
        } else if (term.kind == Term::kView && term.view_stride == 1) {
            row = reinterpret_cast<const uint16_t*>(term.view);
        } else {
            return false;
        }
        if (term.weighted) {
            s.rows[static_cast<std::size_t>(weighted)] = row;
            s.weights[static_cast<std::size_t>(weighted++)] = term.weight;
        } else {
            s.unweighted[static_cast<std::size_t>(unweighted++)] = row;
        }
    }
    quant::combine_rows(op.x_out.dtype,
                        s.rows.data(),
                        s.weights.data(),
                        weighted,
                        s.unweighted.data(),
                        unweighted,
                        reinterpret_cast<uint16_t*>(element_ptr(op.x_out, t, 0)),
                        op.hidden);
    return true;
}

// acc = Σ addends in order, each fl32(u·w) (or u as it is, unweighted), from +0.
void accumulate_terms(const CombineOp& op,
                      const RowLocator& locator,
                      const Term* terms,
                      int64_t count,
                      int64_t t,
                      CombineScratch& s) {
    const int64_t hidden = op.hidden;
    const DType dtype = op.in.expand_x.dtype;
    std::fill(s.acc.begin(), s.acc.end(), 0.0f);
    for (int64_t i = 0; i < count; ++i) {
        const Term& term = terms[i];
        const float weight = term.weighted ? term.weight : 1.0f;  // fl32(u · 1) = u
        switch (term.kind) {
            case Term::kReturned:
                if (locator.direct()) {
                    locator.accumulate_direct(term.ref, weight, s.acc.data());
                    continue;
                }
                locator.load(term.ref, s.row.data(), s.peer_row.data());
                break;
            case Term::kView:
                quant::accumulate_weighted_from(
                    dtype, term.view, term.view_stride, weight, s.acc.data(), hidden);
                continue;
            case Term::kConst:
                const_expert(op, term.const_index, t, s.row.data(), s.special.data());
                break;
        }
        if (term.weighted) {
            quant::accumulate_weighted(s.acc.data(), s.row.data(), weight, hidden);
        } else {
            quant::accumulate(s.acc.data(), s.row.data(), hidden);
        }
    }
}

}  // namespace

Status gather_and_reduce(const CombineOp& op, const CallRounds& rounds, CombineScratch& s) {
    const RowLocator locator(op, rounds, s);
    const TokenTerms tokens(op, locator, s.plan);
    const auto fail = [&](const std::string& why) -> Status {
        return {Code::kRuntime,
                "expertIds/" + std::string(op.config.v2() ? "xActiveMask" : "expandIdx") +
                    " of rank " + std::to_string(op.config.ep_rank_id) + " of '" +
                    rounds.ep_name() + "' " + why};
    };
    if (op.config.v2()) {
        const SendPlan& plan = s.plan;
        const std::string where = " of rank " + std::to_string(op.config.ep_rank_id) + " of '" +
                                  rounds.ep_name() + "' (combine)";
        if (plan.has_bad_mask) {
            return {Code::kRuntime,
                    "xActiveMask" + where +
                        " must be a prefix (true for tokens [0, n) only), got "
                        "token " +
                        std::to_string(plan.bad_mask_token) + " out of order"};
        }
        if (plan.has_bad_id) {
            return {Code::kRuntime,
                    "expertIds[" + std::to_string(plan.bad_token) + "][" +
                        std::to_string(plan.bad_k) + "]" + where + " must be in [0, " +
                        std::to_string(op.config.moe_expert_num + op.config.special_expert_num()) +
                        "), got " + std::to_string(plan.bad_id)};
        }
    }
    thread_local std::vector<Term> terms;
    terms.resize(static_cast<std::size_t>(tokens.max_terms()));
    std::string why;
    if (op.config.v2() && !tokens.owners_agree(&why)) return fail(why);
    int64_t count = 0;
    for (int64_t t = 0; t < op.num_tokens; ++t) {  // every row located before any is read
        if (tokens.active(t) && !tokens.of(t, terms.data(), &count, &why)) return fail(why);
    }
    const bool registers = locator.direct() && quant::combine_rows_available() &&
                           op.x_out.stride(1) == 1 && locator.contiguous_rows() && !op.add_rms_norm;
    for (int64_t t = 0; t < op.num_tokens; ++t) {
        if (!tokens.active(t)) {
            inactive_token(op, t, s);
            continue;
        }
        tokens.of(t, terms.data(), &count, &why);
        if (registers && reduce_in_registers(op, locator, terms.data(), count, t, s)) continue;
        accumulate_terms(op, locator, terms.data(), count, t, s);
        if (op.add_rms_norm) {
            add_rms_norm(op, t, s.acc.data(), s.special.data(), s.narrow.data());
        } else {
            quant::store_row_f32(op.x_out.dtype,
                                 s.acc.data(),
                                 element_ptr(op.x_out, t, 0),
                                 op.x_out.stride(1),
                                 op.hidden);
        }
    }
    return Status::Ok();
}

}  // namespace moedist::core
