// Hostile rank tables: deep nesting, huge rank counts, odd, duplicate and missing rank_ids, and
// paths that are FIFOs, directories, devices, symlink loops or unterminated. The parser must stay
// bounded (no recursion, no DOM, at most 65536 ids), quote at most 40 characters of a value, never
// block on a FIFO, and leave HcclCommInitClusterInfo usable for the next valid table.
#include "runtime/rank_table.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/cluster.hpp"
#include "support.hpp"

namespace {

using hostile::recent;
using moedist::runtime::parse_rank_table;
using moedist::runtime::RankTable;

// A message quotes at most 40 characters of any value: every rejection stays short.
constexpr std::size_t kMaxMessage = 200;

struct Parsed {
    bool ok = false;
    int size = 0;
    std::string why;
};

Parsed parse(const std::string& text) {
    Parsed p;
    RankTable table;
    p.ok = parse_rank_table(text, &table, &p.why);
    p.size = table.size;
    return p;
}

std::string devices_table(const std::vector<std::string>& rank_ids) {
    std::string devices;
    for (std::size_t i = 0; i < rank_ids.size(); ++i)
        devices +=
            std::string(i ? "," : "") + "{\"device_id\":\"0\",\"rank_id\":" + rank_ids[i] + "}";
    return "{\"server_list\":[{\"server_id\":\"127.0.0.1\",\"device\":[" + devices + "]}]}";
}

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

void expect_refused(const std::string& text, const std::string& fragment) {
    const Parsed p = parse(text);
    EXPECT_FALSE(p.ok) << fragment;
    EXPECT_NE(p.why.find(fragment), std::string::npos) << p.why;
    EXPECT_NE(p.why.find(" must "), std::string::npos) << p.why;
    EXPECT_NE(p.why.find(", got "), std::string::npos) << p.why;
    EXPECT_LE(p.why.size(), kMaxMessage) << p.why.substr(0, 300);
}

// Both ranks of a valid two-rank table join, and a dispatch + combine job runs on the group.
bool valid_table_still_works(const hostile::TempDir& dir) {
    const std::string path = dir.write("valid.json", hostile::rank_table_text(2));
    std::vector<HcclComm> comms(2, nullptr);
    for (uint32_t r = 0; r < 2; ++r) {
        if (HcclCommInitClusterInfo(path.c_str(), r, &comms[r]) != HCCL_SUCCESS) return false;
    }
    hostile::Group group(std::move(comms));
    hostile::JobShape shape;
    for (const hostile::RankOutcome& o : hostile::run_job(shape, {}, &group)) {
        if (o.dispatch2 != 0 || o.combine2 != 0 || !o.x_ok) return false;
    }
    return true;
}

TEST(HostileRankTable, TheLayoutsCannWritesParse) {
    EXPECT_EQ(parse(hostile::rank_table_text(3)).size, 3);
    EXPECT_EQ(parse(devices_table({"2", "0", "1"})).size, 3);  // integers, any order
    EXPECT_EQ(parse(devices_table({"\"1\"", "0"})).size, 2);
    EXPECT_EQ(parse("{\"server_list\":[{\"device\":[{\"rank_id\":\"0\"}]},"
                    "{\"device\":[{\"rank_id\":\"1\"}]}]}")
                  .size,
              2);
    EXPECT_EQ(
        parse("{\"group_list\":[{\"instance_list\":[{\"rank_id\":\"0\"},{\"rank_id\":1}]}]}").size,
        2);
    // Unknown members are skipped, however big.
    EXPECT_EQ(parse("{\"blob\":\"" + std::string(1 << 20, 'z') +
                    "\",\"server_list\":[{\"device\":"
                    "[{\"rank_id\":\"0\",\"extra\":[1,{\"a\":null}]}]}]}")
                  .size,
              1);
}

TEST(HostileRankTable, DeepNestingStopsAtTheDepthLimit) {
    const std::string valid = "\"server_list\":[{\"device\":[{\"rank_id\":\"0\"}]}]";
    // The root object is level 1: 31 more arrays fit, 32 do not.
    EXPECT_TRUE(parse("{\"x\":" + repeat("[", 31) + repeat("]", 31) + "," + valid + "}").ok);
    expect_refused("{\"x\":" + repeat("[", 32) + repeat("]", 32) + "," + valid + "}",
                   "a rank table must nest at most 32 levels, got deeper");
    // 100,000 levels: under a skipped key, as the root, and as the value of rank_id (the issue's
    // 200 KB table).
    expect_refused("{\"x\":" + repeat("[", 100000) + repeat("]", 100000) + "}",
                   "nest at most 32 levels");
    expect_refused(repeat("{\"a\":", 100000) + "0" + repeat("}", 100000), "nest at most 32 levels");
    expect_refused("{\"server_list\":[{\"device\":[{\"rank_id\":" + repeat("[", 100000) +
                       repeat("]", 100000) + "}]}]}",
                   "rank_id must be a non-negative integer, got an array");
    // Unbalanced (truncated) deep nesting is the same.
    expect_refused(repeat("[", 100000), "a rank table must be a JSON object, got an array");
}

// {"server_list":[{"device":[{"rank_id":0},…]}]} with `n` devices, about 15 bytes each.
std::string compact_table(int n) {
    std::string devices;
    devices.reserve(static_cast<std::size_t>(n) * 16);
    for (int r = 0; r < n; ++r)
        devices += std::string(r ? "," : "") + "{\"rank_id\":" + std::to_string(r) + "}";
    return "{\"server_list\":[{\"device\":[" + devices + "]}]}";
}

TEST(HostileRankTable, RankCountsAboveTheLargestWorldSizeAreRefusedBeforeAnyRankState) {
    EXPECT_EQ(parse(compact_table(65536)).size, 65536);
    expect_refused(
        compact_table(65537),
        "a rank table must list at most 65536 ranks (the largest epWorldSize), got more");
    expect_refused(compact_table(1000000), "at most 65536 ranks");
}

TEST(HostileRankTable, DuplicateMissingAndOddRankIdsAreRefused) {
    expect_refused(devices_table({"\"0\"", "\"0\""}),
                   "rank_ids must be 0..1 each once, got rank_id 0 twice");
    expect_refused(devices_table({"\"0\"", "\"2\""}),
                   "rank_ids must be 0..1 each once, got rank_id 2");
    expect_refused(devices_table({"\"1\""}), "rank_ids must be 0..0 each once, got rank_id 1");
    expect_refused(devices_table({"18446744073709551615"}), "got rank_id 18446744073709551615");
    expect_refused("{\"server_list\":[{\"device\":[{\"device_id\":\"0\"}]}]}",
                   "every device must have a rank_id, got a device without one");
    expect_refused("{\"server_list\":[{\"device\":[{\"rank_id\":\"0\",\"rank_id\":\"1\"}]}]}",
                   "rank_id must appear once per device, got it twice");
    const std::string odd =
        "rank_id must be a non-negative integer (a JSON integer or a decimal "
        "string), got ";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"\"-1\"", "\"-1\""},
        {"\"+1\"", "\"+1\""},
        {"\" 1\"", "\" 1\""},
        {"\"1 \"", "\"1 \""},
        {"\"\"", "\"\""},
        {"\"0x1\"", "\"0x1\""},
        {"\"1.0\"", "\"1.0\""},
        {"\"99999999999999999999999\"", "\"99999999999999999999999\""},
        {"-1", "-1"},
        {"1.5", "1.5"},
        {"1e3", "1e3"},
        {"18446744073709551616", "18446744073709551616"},
        {"true", "true"},
        {"null", "null"},
    };
    for (const auto& [value, shown] : cases) {
        SCOPED_TRACE(value);
        expect_refused(devices_table({value}), odd + shown);
    }
    expect_refused(devices_table({"{}"}), "rank_id must be a non-negative integer, got an object");
    expect_refused(devices_table({"[0]"}), "rank_id must be a non-negative integer, got an array");
    // A long value is quoted to 40 characters.
    const Parsed p = parse(devices_table({"\"" + std::string(100000, '7') + "x\""}));
    EXPECT_FALSE(p.ok);
    EXPECT_NE(p.why.find(odd + "\"" + std::string(40, '7') + "...\""), std::string::npos) << p.why;
    EXPECT_LE(p.why.size(), kMaxMessage);
}

TEST(HostileRankTable, MalformedTablesAreRefusedWithBoundedMessages) {
    expect_refused("", "a rank table must be valid JSON, got a syntax error at byte 1");
    expect_refused("{", "must be valid JSON");
    expect_refused("{\"server_list\":[]} trailing", "must be valid JSON");
    expect_refused("[]", "a rank table must be a JSON object, got an array");
    expect_refused("\"" + std::string(1000, 's') + "\"",
                   "a rank table must be a JSON object, got \"sss");
    expect_refused("7", "a rank table must be a JSON object, got 7");
    expect_refused("{}", "a rank table must have a server_list or a group_list, got neither");
    expect_refused("{\"server_list\":{}}", "server_list must be a JSON array, got an object");
    expect_refused("{\"server_list\":7}", "server_list must be a JSON array, got 7");
    expect_refused("{\"server_list\":[],\"server_list\":[]}",
                   "server_list must appear once in a rank table, got it twice");
    expect_refused("{\"server_list\":[7]}", "every server_list entry must be an object, got 7");
    expect_refused("{\"server_list\":[{}]}",
                   "every server_list entry must have a device list, got an entry without one");
    expect_refused("{\"server_list\":[{\"device\":{}}]}",
                   "device must be a JSON array, got an object");
    expect_refused("{\"server_list\":[{\"device\":[],\"device\":[]}]}",
                   "device must appear once per server_list entry, got it twice");
    expect_refused("{\"server_list\":[{\"device\":[3]}]}", "every device must be an object, got 3");
    expect_refused("{\"server_list\":[]}",
                   "a rank table must list at least one rank, got 0 in its server_list");
    expect_refused("{\"server_list\":[{\"device\":[]}]}", "at least one rank, got 0");
    expect_refused("{\"group_list\":[{\"instance_list\":[]}]}",
                   "at least one rank, got 0 in its group_list");
    expect_refused("{\"group_list\":[{\"instance_list\":[{}]}]}",
                   "every instance must have a rank_id, got an instance without one");
}

class HostileClusterInfo : public ::testing::Test {
protected:
    // HcclCommInitClusterInfo(path, 0) must fail with `code` and a message containing `fragment`,
    // within a few seconds (nothing blocks), leave *comm null, and a valid table must work next.
    void expect_refused(const std::string& path, HcclResult code, const std::string& fragment) {
        HcclComm comm = reinterpret_cast<HcclComm>(&comm);
        const auto start = std::chrono::steady_clock::now();
        EXPECT_EQ(HcclCommInitClusterInfo(path.c_str(), 0, &comm), code);
        const std::string message = recent();
        EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
        EXPECT_EQ(comm, nullptr);
        EXPECT_NE(message.find(fragment), std::string::npos) << message;
        EXPECT_NE(message.find(" must "), std::string::npos) << message;
        EXPECT_TRUE(valid_table_still_works(dir_));
    }
    hostile::TempDir dir_;
};

TEST_F(HostileClusterInfo, AFifoIsRefusedWithoutBlocking) {
    const std::string path = dir_.path() + "/table.fifo";
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    expect_refused(path, HCCL_E_OPEN_FILE_FAILURE, "it is a FIFO, not a regular file");
}

TEST_F(HostileClusterInfo, DirectoriesDevicesAndSymlinkLoopsAreRefused) {
    expect_refused(dir_.path(), HCCL_E_OPEN_FILE_FAILURE, "it is a directory, not a regular file");
    expect_refused("/dev/null", HCCL_E_OPEN_FILE_FAILURE, "it is a character device");
    const std::string a = dir_.path() + "/loop_a", b = dir_.path() + "/loop_b";
    ASSERT_EQ(symlink(b.c_str(), a.c_str()), 0);
    ASSERT_EQ(symlink(a.c_str(), b.c_str()), 0);
    expect_refused(a, HCCL_E_OPEN_FILE_FAILURE, "must name a readable rank table, got '" + a + "'");
    const std::string dangling = dir_.path() + "/dangling";
    ASSERT_EQ(symlink((dir_.path() + "/nowhere").c_str(), dangling.c_str()), 0);
    expect_refused(dangling, HCCL_E_OPEN_FILE_FAILURE, "must name a readable rank table");
    expect_refused(
        dir_.path() + "/missing.json", HCCL_E_OPEN_FILE_FAILURE, "must name a readable rank table");
    // A symlink to a FIFO is a FIFO.
    const std::string fifo = dir_.path() + "/f", link = dir_.path() + "/to_fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    ASSERT_EQ(symlink(fifo.c_str(), link.c_str()), 0);
    expect_refused(link, HCCL_E_OPEN_FILE_FAILURE, "it is a FIFO");
}

TEST_F(HostileClusterInfo, FilesOver64MiBAreRefusedUnread) {
    const std::string path = dir_.write("big.json", "");
    ASSERT_EQ(truncate(path.c_str(), (off_t{64} << 20) + 1), 0);  // sparse: nothing is written
    expect_refused(path, HCCL_E_OPEN_FILE_FAILURE, "it has 67108865 bytes, more than 64 MiB");
}

TEST_F(HostileClusterInfo, TheIssuesDeepAndHugeTablesAreRefused) {
    const std::string deep = "{\"server_list\":[{\"device\":[{\"rank_id\":" + repeat("[", 100000) +
                             repeat("]", 100000) + "}]}]}";
    EXPECT_GT(deep.size(), 200000u);
    expect_refused(dir_.write("deep.json", deep),
                   HCCL_E_PARA,
                   "rank_id must be a non-negative integer, got an array");
    expect_refused(dir_.write("huge.json", compact_table(1000000)),
                   HCCL_E_PARA,
                   "a rank table must list at most 65536 ranks");
    expect_refused(
        dir_.write("dup.json", devices_table({"0", "0"})), HCCL_E_PARA, "got rank_id 0 twice");
    expect_refused(
        dir_.write("none.json", "{\"server_list\":[]}"), HCCL_E_PARA, "at least one rank, got 0");
    expect_refused(dir_.write("odd.json", devices_table({"\"x\""})), HCCL_E_PARA, "got \"x\"");
}

TEST_F(HostileClusterInfo, APathWithoutATerminatorIsReadTo4096BytesOnly) {
    hostile::GuardedBuffer path(4096);
    std::memset(path.data(), 'p', 4096);
    HcclComm comm = nullptr;
    EXPECT_EQ(HcclCommInitClusterInfo(path.data(), 0, &comm), HCCL_E_PARA);
    EXPECT_EQ(recent(),
              "HcclCommInitClusterInfo clusterInfo must be a path of 1..4095 characters, got 4096 "
              "or more");
    EXPECT_TRUE(valid_table_still_works(dir_));
}

TEST(HostileHccl, InitAllRefusesMoreRanksThanTheLargestWorldSize) {
    std::vector<int32_t> devices(65537);
    for (std::size_t i = 0; i < devices.size(); ++i) devices[i] = static_cast<int32_t>(i);
    std::vector<HcclComm> comms(devices.size(), nullptr);
    EXPECT_EQ(HcclCommInitAll(65537, devices.data(), comms.data()), HCCL_E_PARA);
    EXPECT_EQ(recent(),
              "HcclCommInitAll ndev must be in [1, 65536] (the largest epWorldSize), got 65537");
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

}  // namespace

// Two tables of one layout (the two EP groups of a TP = 2 job: the same servers, the same rank
// counts) are two jobs: their fingerprints (and so their hubs) differ by the device ids. A
// device_id written as a number or a string, before or after its rank_id, is the same device.
TEST(HostileRankTable, DeviceIdsTellTablesOfOneLayoutApart) {
    auto table = [](const std::string& first, const std::string& second, bool id_first) {
        auto device = [&](const std::string& d, int rank) {
            const std::string r = "\"rank_id\":\"" + std::to_string(rank) + "\"";
            const std::string dev = "\"device_id\":" + d;
            return "{" + (id_first ? dev + "," + r : r + "," + dev) + "}";
        };
        return "{\"server_list\":[{\"server_id\":\"198.18.0.1\",\"device\":[" + device(first, 0) +
               "]},{\"server_id\":\"198.18.0.2\",\"device\":[" + device(second, 1) + "]}]}";
    };
    auto fingerprint = [](const std::string& text) {
        RankTable t;
        std::string why;
        EXPECT_TRUE(parse_rank_table(text, &t, &why)) << why;
        return moedist::runtime::table_fingerprint(t);
    };
    const uint64_t even = fingerprint(table("\"0\"", "\"2\"", true));
    const uint64_t odd = fingerprint(table("\"1\"", "\"3\"", true));
    EXPECT_NE(even, odd);
    EXPECT_EQ(even, fingerprint(table("0", "2", true)));
    EXPECT_EQ(even, fingerprint(table("\"0\"", "\"2\"", false)));
    EXPECT_NE(even, fingerprint(table("\"2\"", "\"0\"", true)));
}
