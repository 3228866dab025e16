// Provokes every error docs/errors.md quotes and prints each message on its own line,
// "MESSAGE <text>", for tests/docs/check_error_messages.py to compare with the doc. Each scenario
// is the simplest input that makes the library say it: bad attributes, shapes, views, rank
// tables, executors, ranks that never come, die, or disagree. Nothing here asserts a message's
// wording; the script does, against what the doc quotes.
//
// Linked with moedist_testing for its fault-injection hooks (an exception thrown mid-call).
// MOEDIST_TIMEOUT_MS is set to 2000 ms before the library reads it, so timeouts come quickly
// (a rank table's rendezvous needs more than a few hundred milliseconds).
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_combine_v4.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v4.h"
#include "core/test_hooks.hpp"
#include "hccl/hccl.h"
#include "moedist/moedist.hpp"

namespace {

using moedist::Communicator;
using moedist::DType;
using moedist::MoeConfig;
using moedist::MoeDistributor;
using moedist::Status;
using moedist::TensorView;

int printed = 0;

void emit(const std::string& message) {
    std::string line = message;
    for (char& c : line)
        if (c == '\n') c = ' ';
    std::printf("MESSAGE %s\n", line.c_str());
    std::fflush(stdout);
    ++printed;
}

void emit_status(const char* scenario, const Status& s) {
    if (s.ok()) {
        std::printf("NOTE %s: succeeded, no message\n", scenario);
        return;
    }
    emit(s.message());
}

void emit_acl(const char* scenario) {
    const char* m = aclGetRecentErrMsg();
    if (m == nullptr || *m == '\0') {
        std::printf("NOTE %s: no message\n", scenario);
        return;
    }
    emit(m);
}

// One rank's tensors for a small dispatch + combine: BS tokens, K ids each, H columns, bf16.
struct Rank {
    int64_t bs = 0, k = 0, h = 0;
    std::vector<uint16_t> x, expand_x, y;
    std::vector<int32_t> ids, expand_idx, recv;
    std::vector<int64_t> token_nums;
    std::vector<float> weights;
    std::vector<int32_t> tp_recv;
    std::vector<int32_t> assist;  // V2
    std::vector<uint8_t> mask;    // V2: (BS,) when non-empty
    MoeConfig config;
    moedist::DispatchShapes shapes;

    Rank(const MoeConfig& c, int64_t bs_, int64_t k_, int64_t h_)
        : bs(bs_), k(k_), h(h_), config(c) {
        shapes = config.shapes(bs, k, h);
        x.assign(static_cast<std::size_t>(bs * h), moedist::bf16_from_float(1.0f));
        ids.assign(static_cast<std::size_t>(bs * k), 0);
        for (int64_t i = 0; i < bs * k; ++i)
            ids[static_cast<std::size_t>(i)] = static_cast<int32_t>(i % config.moe_expert_num);
        weights.assign(static_cast<std::size_t>(bs * k), 0.5f);
        expand_x.assign(static_cast<std::size_t>(std::max<int64_t>(shapes.expand_x_rows, 1) * h),
                        0);
        expand_idx.assign(static_cast<std::size_t>(std::max<int64_t>(shapes.expand_idx, 1)), 0);
        recv.assign(static_cast<std::size_t>(shapes.ep_recv_counts), 0);
        token_nums.assign(static_cast<std::size_t>(shapes.expert_token_nums), 0);
        tp_recv.assign(2, 0);
        assist.assign(static_cast<std::size_t>(std::max<int64_t>(shapes.assist_info, 1)), 0);
        y.assign(static_cast<std::size_t>(std::max<int64_t>(bs, 1) * h), 0);
    }
    moedist::DispatchInputs inputs() {
        moedist::DispatchInputs in;
        in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {bs, h});
        in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {bs, k});
        if (!mask.empty())
            in.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {bs});
        return in;
    }
    moedist::DispatchOutputs outputs() {
        moedist::DispatchOutputs out;
        out.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {shapes.expand_x_rows, h});
        out.expand_idx =
            TensorView::contiguous(expand_idx.data(), DType::kInt32, {shapes.expand_idx});
        out.expert_token_nums =
            TensorView::contiguous(token_nums.data(), DType::kInt64, {shapes.expert_token_nums});
        out.ep_recv_counts =
            TensorView::contiguous(recv.data(), DType::kInt32, {shapes.ep_recv_counts});
        if (config.tp_size() == 2)
            out.tp_recv_counts = TensorView::contiguous(tp_recv.data(), DType::kInt32, {2});
        if (config.v2())
            out.assist_info =
                TensorView::contiguous(assist.data(), DType::kInt32, {shapes.assist_info});
        return out;
    }
    moedist::CombineInputs combine_inputs() {
        moedist::CombineInputs in;
        in.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {shapes.expand_x_rows, h});
        in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {bs, k});
        in.expand_idx = TensorView::contiguous(expand_idx.data(), DType::kInt32, {bs * k});
        in.ep_send_counts =
            TensorView::contiguous(recv.data(), DType::kInt32, {shapes.ep_recv_counts});
        in.expert_scales = TensorView::contiguous(weights.data(), DType::kFloat32, {bs, k});
        if (config.tp_size() == 2)
            in.tp_send_counts = TensorView::contiguous(tp_recv.data(), DType::kInt32, {2});
        if (config.v2()) {
            in.assist_info =
                TensorView::contiguous(assist.data(), DType::kInt32, {shapes.assist_info});
            if (!mask.empty())
                in.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {bs});
        }
        return in;
    }
    TensorView y_view() { return TensorView::contiguous(y.data(), DType::kBFloat16, {bs, h}); }
};

MoeConfig config_of(const Communicator& ep, int64_t experts) {
    MoeConfig c;
    c.ep_world_size = ep.size();
    c.ep_rank_id = ep.rank();
    c.moe_expert_num = experts;
    return c;
}

// Runs body(rank) on one thread per rank and prints every failure's message.
void on_ranks(int n, const std::function<Status(int)>& body, const char* scenario) {
    std::vector<Status> results(static_cast<std::size_t>(n));
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r)
        threads.emplace_back([&, r] { results[static_cast<std::size_t>(r)] = body(r); });
    for (auto& t : threads) t.join();
    for (const Status& s : results)
        if (!s.ok()) emit_status(scenario, s);
}

// Every rank dispatches; `edit(rank, r)` changes its inputs or config first.
void dispatch_all(const std::string& name,
                  int world,
                  int64_t experts,
                  int64_t bs,
                  int64_t k,
                  const std::function<void(int, MoeConfig&, int64_t&, int64_t&)>& edit_config,
                  const std::function<void(int, Rank&)>& edit_rank,
                  const char* scenario) {
    auto group = Communicator::create_local_group(world, name);
    on_ranks(
        world,
        [&](int r) -> Status {
            MoeConfig c = config_of(group[static_cast<std::size_t>(r)], experts);
            int64_t my_bs = bs, my_k = k;
            if (edit_config) edit_config(r, c, my_bs, my_k);
            Rank rank(c, my_bs, my_k, 16);
            if (edit_rank) edit_rank(r, rank);
            std::optional<MoeDistributor> moe;
            if (Status s = MoeDistributor::create(
                    group[static_cast<std::size_t>(r)], std::nullopt, c, &moe);
                !s.ok())
                return s;
            return moe->try_dispatch(rank.inputs(), rank.outputs());
        },
        scenario);
}

// ---- first phase (C++ API) ----

void k_out_of_range() {
    auto group = Communicator::create_local_group(1);
    MoeConfig c = config_of(group[0], 64);
    Rank r(c, 1, 1, 8);
    std::vector<int32_t> ids(65, 0);
    moedist::DispatchInputs in = r.inputs();
    in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {1, 65});
    MoeDistributor moe(group[0], std::nullopt, c);
    emit_status("K", moe.try_dispatch(in, r.outputs()));
}

void expand_x_too_short() {
    auto group = Communicator::create_local_group(8);  // only rank 0 calls: its first phase fails
    MoeConfig c = config_of(group[0], 64);
    Rank r(c, 32, 8, 7168);
    std::vector<uint16_t> short_x(static_cast<std::size_t>(1024) * 7168);
    moedist::DispatchOutputs out = r.outputs();
    out.expand_x = TensorView::contiguous(short_x.data(), DType::kBFloat16, {1024, 7168});
    MoeDistributor moe(group[0], std::nullopt, c);
    emit_status("expandX", moe.try_dispatch(r.inputs(), out));
}

void overlapping_output() {
    auto group = Communicator::create_local_group(1);
    MoeConfig c = config_of(group[0], 1);
    Rank r(c, 1, 1, 8);
    moedist::DispatchOutputs out = r.outputs();
    out.expand_x.shape = {int64_t{1} << 40, 8, 0, 0};
    out.expand_x.strides = {0, 1, 0, 0};
    MoeDistributor moe(group[0], std::nullopt, c);
    emit_status("overlap", moe.try_dispatch(r.inputs(), out));
}

void misaligned_ids() {
    auto group = Communicator::create_local_group(1);
    MoeConfig c = config_of(group[0], 1);
    Rank r(c, 1, 1, 8);
    std::vector<int32_t> storage(4, 0);
    moedist::DispatchInputs in = r.inputs();
    in.expert_ids.data = reinterpret_cast<char*>(storage.data()) + 2;
    MoeDistributor moe(group[0], std::nullopt, c);
    emit_status("align", moe.try_dispatch(in, r.outputs()));
}

void too_many_entries() {
    auto group = Communicator::create_local_group(1);
    MoeConfig c = config_of(group[0], 2);
    Rank r(c, 1, 1, 1);
    const int64_t bs = int64_t{1} << 31;
    moedist::DispatchInputs in = r.inputs();
    in.x.shape = {bs, 1, 0, 0};
    in.x.strides = {0, 1, 0, 0};
    in.expert_ids.shape = {bs, 2, 0, 0};
    in.expert_ids.strides = {0, 1, 0, 0};
    std::vector<int32_t> ids(2, 0);
    in.expert_ids.data = ids.data();
    MoeDistributor moe(group[0], std::nullopt, c);
    emit_status("BS*K", moe.try_dispatch(in, r.outputs()));
}

// ---- run time (C++ API, threads) ----

void bad_expert_id() {
    dispatch_all(
        "g",
        8,
        64,
        4,
        2,
        nullptr,
        [](int r, Rank& rank) {
            if (r == 5) rank.ids[3 * 2 + 1] = 64;
        },
        "expert id");
}

void digest_mismatch() {
    dispatch_all(
        "g",
        4,
        8,
        2,
        8,
        [](int r, MoeConfig&, int64_t&, int64_t& k) {
            if (r == 3) k = 4;
        },
        nullptr,
        "digest");
}

void unequal_bs() {
    dispatch_all(
        "unequal",
        2,
        2,
        2,
        1,
        [](int r, MoeConfig&, int64_t& bs, int64_t&) {
            if (r == 1) bs = 1;
        },
        nullptr,
        "BS");
}

void over_capacity() {
    dispatch_all(
        "capacity",
        2,
        2,
        1,
        2,
        nullptr,
        [](int, Rank& rank) {
            rank.ids.assign(rank.ids.size(), 0);  // duplicates: every entry to expert 0
        },
        "capacity");
}

void padded_block_past_max_bs() {  // every entry to expert 0: 2 rows to one expert, maxBs 1
    dispatch_all(
        "padded",
        2,
        2,
        1,
        2,
        [](int, MoeConfig& c, int64_t&, int64_t&) {
            c.api = moedist::Api::kV2;
            c.row_layout = moedist::RowLayout::kExpertPadded;
        },
        [](int, Rank& rank) { rank.ids.assign(rank.ids.size(), 0); },
        "padded");
}

void first_phase_abort() {
    dispatch_all(
        "abort",
        2,
        2,
        2,
        1,
        nullptr,
        [](int r, Rank& rank) {
            if (r == 1)
                rank.shapes.expand_x_rows = 1;  // expandX too short: rank 1's first phase fails
        },
        "abort");
}

// Dispatch, then combine with `edit` applied to rank r's combine inputs.
void combine_with(const std::string& name,
                  int world,
                  int64_t experts,
                  int64_t shared_ranks,
                  const std::function<void(int, Rank&)>& edit,
                  const char* scenario) {
    auto group = Communicator::create_local_group(world, name);
    on_ranks(
        world,
        [&](int r) -> Status {
            MoeConfig c = config_of(group[static_cast<std::size_t>(r)], experts);
            c.shared_expert_rank_num = shared_ranks;
            c.shared_expert_num = shared_ranks > 0 ? 1 : 0;
            Rank rank(c, 1, 1, 16);
            rank.ids[0] = 0;
            MoeDistributor moe(group[static_cast<std::size_t>(r)], std::nullopt, c);
            if (Status s = moe.try_dispatch(rank.inputs(), rank.outputs()); !s.ok()) return s;
            edit(r, rank);
            return moe.try_combine(rank.combine_inputs(), rank.y_view());
        },
        scenario);
}

void bad_combine_index() {
    combine_with(
        "combine",
        2,
        2,
        0,
        [](int r, Rank& rank) {
            if (r == 1) rank.expand_idx[0] = 5;
        },
        "combine index");
}

void missing_shared_row() {
    combine_with(
        "shared",
        2,
        1,
        1,
        [](int r, Rank& rank) {
            if (r == 0) rank.recv.assign(rank.recv.size(), 0);  // the shared rank's counts
        },
        "shared row");
}

// ---- the V2 family (C++ API, threads) ----

// W ranks of a V2 job (S shared ranks with one shared expert each when S > 0, one zero expert),
// BS 2, K 1, every rank's one token to expert (t + r) % E; edit_dispatch runs before dispatch,
// edit_combine between dispatch and combine.
void v2_job(int world,
            int shared,
            const std::function<void(int, Rank&)>& edit_dispatch,
            const std::function<void(int, Rank&)>& edit_combine,
            const char* scenario) {
    auto group = Communicator::create_local_group(world, "v2");
    on_ranks(
        world,
        [&](int r) -> Status {
            MoeConfig c = config_of(group[static_cast<std::size_t>(r)], world - shared);
            c.api = moedist::Api::kV2;
            c.shared_expert_rank_num = shared;
            c.shared_expert_num = shared;
            c.zero_expert_num = 1;
            Rank rank(c, 2, 1, 16);
            rank.mask.assign(2, 1);
            for (int64_t t = 0; t < 2; ++t)
                rank.ids[static_cast<std::size_t>(t)] =
                    static_cast<int32_t>((t + r) % (world - shared));
            if (edit_dispatch) edit_dispatch(r, rank);
            MoeDistributor moe(group[static_cast<std::size_t>(r)], std::nullopt, c);
            if (Status s = moe.try_dispatch(rank.inputs(), rank.outputs()); !s.ok()) return s;
            if (edit_combine) edit_combine(r, rank);
            return moe.try_combine(rank.combine_inputs(), rank.y_view());
        },
        scenario);
}

void v2_runtime() {
    v2_job(
        2,
        0,
        [](int r, Rank& rank) {
            if (r == 1) rank.mask = {0, 1};
        },
        nullptr,
        "V2 prefix");
    v2_job(
        2,
        0,
        nullptr,
        [](int r, Rank& rank) {
            if (r == 1) rank.mask = {0, 1};
        },
        "V2 combine prefix");
    v2_job(
        2,
        0,
        [](int r, Rank& rank) {
            if (r == 1) rank.mask = {1, 0}, rank.ids[1] = 99;
        },
        [](int r, Rank& rank) {
            if (r == 1) rank.mask = {1, 1};
        },
        "V2 combine id");
    v2_job(
        2,
        0,
        nullptr,
        [](int r, Rank& rank) {
            if (r == 1) rank.mask = {1, 0};
        },
        "V2 combine mask");
    v2_job(
        2,
        0,
        nullptr,
        [](int r, Rank& rank) {
            if (r == 0) rank.assist[1] = 1 - rank.assist[1];
        },
        "V2 triple");
    v2_job(
        3,
        1,
        nullptr,
        [](int r, Rank& rank) {
            if (r == 0) rank.assist[1] = 1 - rank.assist[1];
        },
        "V2 shared triple");
}

void v2_first_phase() {
    auto group = Communicator::create_local_group(1, "v2one");
    MoeConfig c = config_of(group[0], 1);
    c.api = moedist::Api::kV2;
    Rank r(c, 2, 1, 8);
    MoeDistributor moe(group[0], std::nullopt, c);
    moedist::DispatchOutputs out = r.outputs();
    out.assist_info.reset();
    emit_status("V2 assist", moe.try_dispatch(r.inputs(), out));
    std::vector<uint8_t> mask(6, 1);
    moedist::DispatchInputs in = r.inputs();
    in.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {2, 3});
    emit_status("V2 mask shape", moe.try_dispatch(in, r.outputs()));
    c.copy_expert_num = 1;
    MoeDistributor copy(group[0], std::nullopt, c);
    Rank rc(c, 2, 1, 8);
    emit_status("V2 oriX", copy.try_combine(rc.combine_inputs(), rc.y_view()));
}

void one_call_at_a_time() {
    auto group = Communicator::create_local_group(2, "busy");
    MoeConfig c = config_of(group[0], 2);
    c.timeout_ms = 1000;
    Rank a(c, 1, 1, 16), b(c, 1, 1, 16);
    MoeDistributor moe(group[0], std::nullopt, c);
    std::thread first(
        [&] { (void)moe.try_dispatch(a.inputs(), a.outputs()); });  // rank 1 never comes
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    emit_status("one call", moe.try_dispatch(b.inputs(), b.outputs()));
    first.join();
}

// Split calls (contract §13): a third send half, a blocking call while calls are in flight, a
// receive half out of order (one rank: its own group).
void split_calls() {
    auto group = Communicator::create_local_group(1, "split");
    MoeConfig c = config_of(group[0], 2);
    Rank a(c, 1, 1, 16), b(c, 1, 1, 16), d(c, 1, 1, 16);
    MoeDistributor moe(group[0], std::nullopt, c);
    moedist::PendingCall first, second, third;
    (void)moe.try_dispatch_send(a.inputs(), a.outputs(), &first);
    (void)moe.try_dispatch_send(b.inputs(), b.outputs(), &second);
    emit_status("third send half", moe.try_dispatch_send(d.inputs(), d.outputs(), &third));
    emit_status("blocking while in flight", moe.try_dispatch(d.inputs(), d.outputs()));
    emit_status("out of order", second.wait());
    (void)first.wait();
    (void)second.wait();
}

void timeouts() {
    {  // MOEDIST_TIMEOUT_MS, then the broken group
        auto group = Communicator::create_local_group(2, "late");
        MoeConfig c = config_of(group[0], 2);
        Rank r(c, 1, 1, 16);
        MoeDistributor moe(group[0], std::nullopt, c);
        emit_status("arrive", moe.try_dispatch(r.inputs(), r.outputs()));
        emit_status("broken", moe.try_dispatch(r.inputs(), r.outputs()));
    }
    {  // the config's own timeout
        auto group = Communicator::create_local_group(2, "late2");
        MoeConfig c = config_of(group[0], 2);
        c.timeout_ms = 200;
        Rank r(c, 1, 1, 16);
        MoeDistributor moe(group[0], std::nullopt, c);
        emit_status("group timeout", moe.try_dispatch(r.inputs(), r.outputs()));
    }
    {  // a rank that arrives and never departs within two periods
        moedist::core::test_hooks::set_mid_call([](int ep_rank) {
            if (ep_rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(5000));
        });
        dispatch_all("stall", 2, 2, 1, 1, nullptr, nullptr, "depart");
        moedist::core::test_hooks::set_mid_call(nullptr);
    }
}

// ---- TP pairings (threads) ----

// EP groups of 2 ranks; tp_pairs lists TP groups as ((group, rank), (group, rank)).
struct Member {
    int group, rank;
};
void tp_job(int groups,
            const std::vector<std::pair<Member, Member>>& tp_pairs,
            const std::function<int64_t(int group)>& top_k,
            const char* scenario) {
    std::vector<std::vector<Communicator>> ep;
    for (int g = 0; g < groups; ++g)
        ep.push_back(Communicator::create_local_group(2, std::string("ep") + char('A' + g)));
    std::vector<std::vector<Communicator>> tp;
    for (std::size_t i = 0; i < tp_pairs.size(); ++i)
        tp.push_back(Communicator::create_local_group(2, "tp" + std::to_string(i)));
    struct Job {
        Communicator ep, tp;
        int group;
    };
    std::vector<Job> jobs;
    for (std::size_t i = 0; i < tp_pairs.size(); ++i) {
        const auto& [a, b] = tp_pairs[i];
        jobs.push_back({ep[static_cast<std::size_t>(a.group)][static_cast<std::size_t>(a.rank)],
                        tp[i][0],
                        a.group});
        jobs.push_back({ep[static_cast<std::size_t>(b.group)][static_cast<std::size_t>(b.rank)],
                        tp[i][1],
                        b.group});
    }
    on_ranks(
        static_cast<int>(jobs.size()),
        [&](int j) -> Status {
            Job& job = jobs[static_cast<std::size_t>(j)];
            MoeConfig c = config_of(job.ep, 2);
            c.tp_world_size = 2;
            c.tp_rank_id = job.tp.rank();
            c.timeout_ms = 2000;
            Rank rank(c, 1, top_k(job.group), 16);
            std::optional<MoeDistributor> moe;
            if (Status s = MoeDistributor::create(job.ep, job.tp, c, &moe); !s.ok()) return s;
            return moe->try_dispatch(rank.inputs(), rank.outputs());
        },
        scenario);
}

void tp_pairings() {
    auto one = [](int) -> int64_t { return 1; };
    // TP peers of different EP ranks.
    tp_job(2, {{{0, 0}, {1, 1}}, {{0, 1}, {1, 0}}}, one, "tp rank");
    // Each EP group's two ranks pair with two different groups.
    tp_job(4,
           {{{0, 0}, {1, 0}}, {{0, 1}, {2, 1}}, {{1, 1}, {3, 1}}, {{2, 0}, {3, 0}}},
           one,
           "tp groups");
    // Two paired EP groups that disagree on K.
    tp_job(
        2,
        {{{0, 0}, {1, 0}}, {{0, 1}, {1, 1}}},
        [](int g) -> int64_t { return g + 1; },
        "tp digest");
}

// ---- the C API ----

struct AclTensor {
    aclTensor* t = nullptr;
    AclTensor(std::vector<int64_t> dims,
              aclDataType dtype,
              void* data,
              const int64_t* strides = nullptr) {
        t = aclCreateTensor(
            dims.data(), dims.size(), dtype, strides, 0, ACL_FORMAT_ND, nullptr, 0, data);
    }
    ~AclTensor() { aclDestroyTensor(t); }
    AclTensor(const AclTensor&) = delete;
    AclTensor& operator=(const AclTensor&) = delete;
};

// A valid W-rank dispatch of one rank, on a group made by HcclCommInitAll: tensors on the heap.
struct CDispatch {
    Rank rank;
    AclTensor x, ids, expand_x, expand_idx, token_nums, recv;
    CDispatch(const MoeConfig& c)
        : rank(c, 1, 1, 16),
          x({1, 16}, ACL_BF16, rank.x.data()),
          ids({1, 1}, ACL_INT32, rank.ids.data()),
          expand_x({rank.shapes.expand_x_rows, 16}, ACL_BF16, rank.expand_x.data()),
          expand_idx({1}, ACL_INT32, rank.expand_idx.data()),
          token_nums({rank.shapes.expert_token_nums}, ACL_INT64, rank.token_nums.data()),
          recv({rank.shapes.ep_recv_counts}, ACL_INT32, rank.recv.data()) {}
    aclnnStatus phase_one(const char* group, const aclTensor* x_tensor, aclOpExecutor** exec) {
        uint64_t ws = 0;
        return aclnnMoeDistributeDispatchGetWorkspaceSize(x_tensor,
                                                          ids.t,
                                                          nullptr,
                                                          nullptr,
                                                          nullptr,
                                                          group,
                                                          rank.config.ep_world_size,
                                                          rank.config.ep_rank_id,
                                                          rank.config.moe_expert_num,
                                                          "",
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          expand_x.t,
                                                          nullptr,
                                                          expand_idx.t,
                                                          token_nums.t,
                                                          recv.t,
                                                          nullptr,
                                                          nullptr,
                                                          &ws,
                                                          exec);
    }
};

std::string comm_name(HcclComm comm) {
    char name[128] = {};
    HcclGetCommName(comm, name);
    return name;
}

void c_api() {
    HcclComm comm = nullptr;
    int32_t device = 0;
    if (HcclCommInitAll(1, &device, &comm) != 0) {
        emit_acl("HcclCommInitAll");
        return;
    }
    const std::string group = comm_name(comm);
    MoeConfig c;
    c.ep_world_size = 1;
    c.moe_expert_num = 1;
    {  // executors: crossed, used, null
        CDispatch d(c);
        aclOpExecutor* exec = nullptr;
        if (d.phase_one(group.c_str(), d.x.t, &exec) != 0) emit_acl("phase one");
        if (aclnnMoeDistributeCombine(nullptr, 0, exec, nullptr) != 0) emit_acl("crossed");
        if (aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr) != 0) emit_acl("dispatch");
        if (aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr) != 0) emit_acl("used");
        if (aclnnMoeDistributeDispatch(nullptr, 0, nullptr, nullptr) != 0) emit_acl("null");
    }
    {  // a group name with no NUL in its first 128 bytes
        CDispatch d(c);
        char name[128];
        std::memset(name, 'a', sizeof(name));
        aclOpExecutor* exec = nullptr;
        if (d.phase_one(name, d.x.t, &exec) != 0) emit_acl("groupEp");
    }
    {  // a view larger than its aclrtMalloc block
        CDispatch d(c);
        void* block = nullptr;
        aclrtMalloc(&block, 64, ACL_MEM_MALLOC_HUGE_FIRST);
        AclTensor big({1, 64}, ACL_BF16, block);
        aclOpExecutor* exec = nullptr;
        if (d.phase_one(group.c_str(), big.t, &exec) != 0) emit_acl("view");
        aclrtFree(block);
    }
    {  // a block freed after aclCreateTensor
        CDispatch d(c);
        void* block = nullptr;
        aclrtMalloc(&block, 64, ACL_MEM_MALLOC_HUGE_FIRST);
        AclTensor x({1, 16}, ACL_BF16, block);
        aclrtFree(block);
        aclOpExecutor* exec = nullptr;
        if (d.phase_one(group.c_str(), x.t, &exec) != 0) emit_acl("freed");
    }
    {  // an exception thrown inside the call (a test hook), of a standard and another type
        moedist::core::test_hooks::set_mid_call([](int) { throw std::runtime_error("injected"); });
        CDispatch d(c);
        aclOpExecutor* exec = nullptr;
        if (d.phase_one(group.c_str(), d.x.t, &exec) == 0 &&
            aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr) != 0)
            emit_acl("exception");
        moedist::core::test_hooks::set_mid_call([](int) { throw 42; });
        exec = nullptr;
        if (d.phase_one(group.c_str(), d.x.t, &exec) == 0 &&
            aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr) != 0)
            emit_acl("non-standard exception");
        moedist::core::test_hooks::set_mid_call(nullptr);
    }
    HcclCommDestroy(comm);
}

// The V2 family's façade: a null assistInfoForCombine, an elasticInfo, an unknown commAlg, and
// a V2 executor given to the other operation (W = 1, E = 1, BS = 1, K = 1, H = 16: A = 1).
void c_api_v2() {
    HcclComm comm = nullptr;
    int32_t device = 0;
    if (HcclCommInitAll(1, &device, &comm) != 0) {
        emit_acl("HcclCommInitAll");
        return;
    }
    const std::string group = comm_name(comm);
    std::vector<uint16_t> x(16), expand_x(16);
    std::vector<int32_t> ids(1, 0), assist(3), recv(1);
    std::vector<int64_t> token_nums(1);
    std::vector<float> weights(1, 1.0f);
    AclTensor x_t({1, 16}, ACL_BF16, x.data()), ids_t({1, 1}, ACL_INT32, ids.data());
    AclTensor expand_t({1, 16}, ACL_BF16, expand_x.data()), assist_t({3}, ACL_INT32, assist.data());
    AclTensor nums_t({1}, ACL_INT64, token_nums.data()), recv_t({1}, ACL_INT32, recv.data());
    AclTensor weights_t({1, 1}, ACL_FLOAT, weights.data()), out_t({1, 16}, ACL_BF16, x.data());
    auto dispatch = [&](aclTensor* assist_out,
                        const aclTensor* elastic,
                        const char* alg,
                        aclOpExecutor** exec) {
        uint64_t ws = 0;
        return aclnnMoeDistributeDispatchV4GetWorkspaceSize(x_t.t,
                                                            ids_t.t,
                                                            nullptr,
                                                            nullptr,
                                                            nullptr,
                                                            elastic,
                                                            nullptr,
                                                            group.c_str(),
                                                            1,
                                                            0,
                                                            1,
                                                            "",
                                                            0,
                                                            0,
                                                            0,
                                                            1,
                                                            0,
                                                            0,
                                                            0,
                                                            1,
                                                            alg,
                                                            0,
                                                            0,
                                                            0,
                                                            expand_t.t,
                                                            nullptr,
                                                            assist_out,
                                                            nums_t.t,
                                                            recv_t.t,
                                                            nullptr,
                                                            nullptr,
                                                            &ws,
                                                            exec);
    };
    aclOpExecutor* exec = nullptr;
    if (dispatch(nullptr, nullptr, "", &exec) != 0) emit_acl("null assistInfoForCombine");
    if (dispatch(assist_t.t, ids_t.t, "", &exec) != 0) emit_acl("elasticInfo");
    if (dispatch(assist_t.t, nullptr, "ring", &exec) != 0) emit_acl("commAlg");
    if (dispatch(assist_t.t, nullptr, nullptr, &exec) != 0) emit_acl("phase one");
    if (aclnnMoeDistributeCombineV4(nullptr, 0, exec, nullptr) != 0) emit_acl("crossed V4");
    if (aclnnMoeDistributeDispatchV4(nullptr, 0, exec, nullptr) != 0) emit_acl("dispatch V4");
    uint64_t ws = 0;
    exec = nullptr;
    if (aclnnMoeDistributeCombineV4GetWorkspaceSize(expand_t.t,
                                                    ids_t.t,
                                                    assist_t.t,
                                                    recv_t.t,
                                                    weights_t.t,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    nullptr,
                                                    group.c_str(),
                                                    1,
                                                    0,
                                                    1,
                                                    "",
                                                    0,
                                                    0,
                                                    0,
                                                    1,
                                                    0,
                                                    0,
                                                    2,
                                                    0,
                                                    0,
                                                    nullptr,
                                                    0,
                                                    0,
                                                    0,
                                                    out_t.t,
                                                    &ws,
                                                    &exec) != 0)
        emit_acl("outDtype");
    HcclCommDestroy(comm);
}

// Rank 1 frees its x between the phases: every rank fails, naming it.
void freed_between_phases() {
    HcclComm comms[2] = {};
    int32_t devices[2] = {0, 1};
    if (HcclCommInitAll(2, devices, comms) != 0) {
        emit_acl("HcclCommInitAll");
        return;
    }
    std::barrier sync(2);
    std::vector<std::string> messages(2);
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
        threads.emplace_back([&, r] {
            MoeConfig c;
            c.ep_world_size = 2;
            c.ep_rank_id = r;
            c.moe_expert_num = 2;
            CDispatch d(c);
            void* block = nullptr;
            aclrtMalloc(&block, 1024, ACL_MEM_MALLOC_HUGE_FIRST);
            std::memcpy(block, d.rank.x.data(), 32);
            AclTensor x({1, 16}, ACL_BF16, block);
            aclOpExecutor* exec = nullptr;
            const std::string name = comm_name(comms[r]);
            const aclnnStatus one = d.phase_one(name.c_str(), x.t, &exec);
            sync.arrive_and_wait();
            if (r == 1) aclrtFree(block);
            if (one == 0 && aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr) != 0) {
                const char* m = aclGetRecentErrMsg();
                if (m != nullptr) messages[static_cast<std::size_t>(r)] = m;
            }
            if (r == 0) aclrtFree(block);
        });
    }
    for (auto& t : threads) t.join();
    for (const std::string& m : messages)
        if (!m.empty()) emit(m);
    HcclCommDestroy(comms[0]);
    HcclCommDestroy(comms[1]);
}

// The per-call scratch cannot be allocated: BS·K = 2^28 entries under a tight address-space limit.
void out_of_memory() {
    HcclComm comm = nullptr;
    int32_t device = 0;
    if (HcclCommInitAll(1, &device, &comm) != 0) return;
    const std::string group = comm_name(comm);
    const int64_t bs = int64_t{1} << 28;
    auto reserve = [](std::size_t bytes) {
        void* p = mmap(nullptr,
                       bytes,
                       PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1,
                       0);
        return p == MAP_FAILED ? nullptr : p;
    };
    const std::size_t expand_bytes = static_cast<std::size_t>(bs) * 2;
    const std::size_t idx_bytes = static_cast<std::size_t>(bs) * 4;
    void* expand_x = reserve(expand_bytes);
    void* expand_idx = reserve(idx_bytes);
    if (expand_x == nullptr || expand_idx == nullptr) {
        std::printf("NOTE out of memory: no address space for the outputs\n");
        return;
    }
    uint16_t x_row = 0;
    int32_t id = 0, recv = 0;
    int64_t token_nums = 0;
    const int64_t zero_stride[2] = {0, 1};
    AclTensor x({bs, 1}, ACL_BF16, &x_row, zero_stride);
    AclTensor ids({bs, 1}, ACL_INT32, &id, zero_stride);
    AclTensor ex({bs, 1}, ACL_BF16, expand_x);
    AclTensor idx({bs}, ACL_INT32, expand_idx);
    AclTensor tn({1}, ACL_INT64, &token_nums);
    AclTensor rc({1}, ACL_INT32, &recv);
    uint64_t ws = 0;
    aclOpExecutor* exec = nullptr;
    if (aclnnMoeDistributeDispatchGetWorkspaceSize(x.t,
                                                   ids.t,
                                                   nullptr,
                                                   nullptr,
                                                   nullptr,
                                                   group.c_str(),
                                                   1,
                                                   0,
                                                   1,
                                                   "",
                                                   0,
                                                   0,
                                                   0,
                                                   0,
                                                   0,
                                                   0,
                                                   0,
                                                   0,
                                                   ex.t,
                                                   nullptr,
                                                   idx.t,
                                                   tn.t,
                                                   rc.t,
                                                   nullptr,
                                                   nullptr,
                                                   &ws,
                                                   &exec) != 0) {
        emit_acl("out of memory, phase one");
        return;
    }
    // Current address space plus 256 MiB: the send plan's 2 GiB cannot fit.
    std::size_t vm_kb = 0;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmSize:", 0) == 0) vm_kb = std::stoul(line.substr(7));
    rlimit old{};
    getrlimit(RLIMIT_AS, &old);
    rlimit tight = old;
    tight.rlim_cur = static_cast<rlim_t>(vm_kb * 1024 + (std::size_t{256} << 20));
    setrlimit(RLIMIT_AS, &tight);
    const aclnnStatus code = aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr);
    setrlimit(RLIMIT_AS, &old);
    if (code != 0) emit_acl("out of memory");
    munmap(expand_x, expand_bytes);
    munmap(expand_idx, idx_bytes);
    HcclCommDestroy(comm);
}

// ---- rank tables ----

std::string temp_dir;

std::string write_file(const std::string& name, const std::string& text) {
    const std::string path = temp_dir + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

void init_cluster(const std::string& path, const char* scenario) {
    HcclComm comm = nullptr;
    if (HcclCommInitClusterInfo(path.c_str(), 0, &comm) == 0) {
        std::printf("NOTE %s: accepted\n", scenario);
        HcclCommDestroy(comm);
        return;
    }
    emit_acl(scenario);
}

std::string table_of(const std::string& devices) {
    return "{\"server_list\":[{\"server_id\":\"127.0.0.1\",\"device\":[" + devices + "]}]}";
}

std::string device(const std::string& rank_id) {
    return "{\"device_id\":\"0\",\"rank_id\":" + rank_id + "}";
}

void rank_tables() {
    std::string deep = "{\"server_list\":[{\"device\":[{\"rank_id\":\"0\",\"extra\":";
    for (int i = 0; i < 40; ++i) deep += "[";
    for (int i = 0; i < 40; ++i) deep += "]";
    init_cluster(write_file("deep.json", deep + "}]}]}"), "deep");
    init_cluster(write_file("array_id.json", table_of(device("[[1]]"))), "array rank_id");
    std::string many;
    for (int r = 0; r <= 65536; ++r)
        many += (r ? "," : "") + device("\"" + std::to_string(r) + "\"");
    init_cluster(write_file("many.json", table_of(many)), "many");
    init_cluster(write_file("twice.json",
                            table_of(device("0") + "," + device("1") + "," + device("2") + "," +
                                     device("3") + "," + device("3"))),
                 "twice");
    init_cluster(
        write_file("gap.json", table_of(device("0") + "," + device("1") + "," + device("9"))),
        "gap");
    init_cluster(write_file("odd_id.json", table_of(device("\"+1\""))), "odd rank_id");
    init_cluster(write_file("empty.json", "{\"server_list\":[]}"), "no ranks");
    init_cluster(write_file("neither.json", "{}"), "no list");
    init_cluster(write_file("no_id.json", table_of("{\"device_id\":\"0\"}")), "no rank_id");
    init_cluster(write_file("list_twice.json", "{\"server_list\":[],\"server_list\":[]}"),
                 "list twice");
    init_cluster(write_file("not_json.json", "{\"server_list\":"), "not JSON");
    const std::string fifo = temp_dir + "/fifo.json";
    mkfifo(fifo.c_str(), 0600);
    init_cluster(fifo, "FIFO");
    const std::string big = write_file("big.json", "");
    if (truncate(big.c_str(), (off_t{65} << 20)) == 0) init_cluster(big, "big");
    const std::string loop_a = temp_dir + "/loop_a", loop_b = temp_dir + "/loop_b";
    if (symlink(loop_b.c_str(), loop_a.c_str()) == 0 &&
        symlink(loop_a.c_str(), loop_b.c_str()) == 0)
        init_cluster(loop_a, "loop");
    // Across hosts: a rank whose server is another host's; a hub whose other host never comes
    // (rank 0 here, rank 1 on an address nobody answers), and a member whose hub never answers.
    init_cluster(write_file("remote.json",
                            "{\"server_list\":[{\"server_id\":\"10.255.1.2\",\"device\":[" +
                                device("\"0\"") + "]}]}"),
                 "remote server");
    {
        const char* saved = std::getenv("MOEDIST_TIMEOUT_MS");
        const std::string restore = saved != nullptr ? saved : "";
        setenv("MOEDIST_TIMEOUT_MS", "1000", 1);
        const std::string two_hosts =
            "{\"server_list\":[{\"server_id\":\"127.0.0.1\",\"device\":[" + device("\"0\"") +
            "]},{\"server_id\":\"10.255.1.3\",\"device\":[" + device("\"1\"") + "]}]}";
        const std::string path = write_file("two_hosts.json", two_hosts);
        for (int rank : {0}) {
            Communicator comm;
            Status s = Communicator::from_rank_table(path, rank, &comm);
            if (s.ok()) {
                MoeConfig c = config_of(comm, 2);
                Rank r(c, 0, 1, 16);
                MoeDistributor moe(comm, std::nullopt, c);
                s = moe.try_dispatch(r.inputs(), r.outputs());
            }
            if (!s.ok()) emit_status("hub without its other host", s);
        }
        setenv("MOEDIST_SERVER_ID", "10.255.1.3", 1);  // this host plays the second server
        {
            Communicator comm;
            Status s = Communicator::from_rank_table(path, 1, &comm);
            if (s.ok()) {
                MoeConfig c = config_of(comm, 2);
                Rank r(c, 1, 1, 16);
                MoeDistributor moe(comm, std::nullopt, c);
                s = moe.try_dispatch(r.inputs(), r.outputs());
            }
            if (!s.ok()) emit_status("member without its hub", s);
        }
        unsetenv("MOEDIST_SERVER_ID");
        if (restore.empty())
            unsetenv("MOEDIST_TIMEOUT_MS");
        else
            setenv("MOEDIST_TIMEOUT_MS", restore.c_str(), 1);
    }
    std::vector<char> long_path(4096, 'a');
    HcclComm comm = nullptr;
    if (HcclCommInitClusterInfo(long_path.data(), 0, &comm) != 0) emit_acl("long path");
    int32_t devices[1] = {0};
    HcclComm comms[1] = {};
    if (HcclCommInitAll(0, devices, comms) != 0) emit_acl("ndev");
}

// Rank 1 of a rank table's group (a forked process) makes one call with rank 0 and exits: rank
// 0's next call names it. Runs first, before this process starts any thread.
void dead_peer() {
    const std::string path =
        write_file("pair.json", table_of(device("\"0\"") + "," + device("\"1\"")));
    setenv("MOEDIST_JOB_ID", ("doc-errors-" + std::to_string(getpid())).c_str(), 1);
    auto one_call = [](const Communicator& comm) {
        MoeConfig c = config_of(comm, 2);
        Rank r(c, 1, 1, 16);
        MoeDistributor moe(comm, std::nullopt, c);
        return moe.try_dispatch(r.inputs(), r.outputs());
    };
    const pid_t child = fork();
    if (child == 0) {
        Communicator comm;
        Status s = Communicator::from_rank_table(path, 1, &comm);
        if (s.ok()) s = one_call(comm);  // the join completes in the first call
        if (!s.ok()) std::fprintf(stderr, "rank 1: %s\n", s.message().c_str());
        _exit(s.ok() ? 0 : 1);
    }
    Communicator comm;
    Status s = Communicator::from_rank_table(path, 0, &comm);
    if (s.ok()) s = one_call(comm);
    int child_status = 0;
    waitpid(child, &child_status, 0);
    if (!s.ok()) {
        emit_status("rank table job", s);
        return;
    }
    emit_status("dead peer", one_call(comm));
}

}  // namespace

int main() {
    setenv("MOEDIST_TIMEOUT_MS", "2000", 1);  // read once, at the library's first use
    char dir[] = "/tmp/moedist_doc_errors_XXXXXX";
    if (mkdtemp(dir) == nullptr) return 2;
    temp_dir = dir;

    dead_peer();
    rank_tables();
    k_out_of_range();
    expand_x_too_short();
    overlapping_output();
    misaligned_ids();
    too_many_entries();
    bad_expert_id();
    digest_mismatch();
    unequal_bs();
    over_capacity();
    padded_block_past_max_bs();
    first_phase_abort();
    bad_combine_index();
    missing_shared_row();
    v2_runtime();
    v2_first_phase();
    one_call_at_a_time();
    split_calls();
    timeouts();
    tp_pairings();
    c_api();
    c_api_v2();
    freed_between_phases();
    out_of_memory();

    std::string cleanup = "rm -rf '" + temp_dir + "'";
    if (std::system(cleanup.c_str()) != 0) std::printf("NOTE could not remove %s\n", dir);
    std::printf("%d messages\n", printed);
    return printed > 0 ? 0 : 1;
}
