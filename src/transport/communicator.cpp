#include "moedist/communicator.hpp"

#include <map>
#include <mutex>

#include "transport/local_group.hpp"

namespace moedist {
namespace {

struct Registry {
    std::mutex mutex;
    std::map<std::string, std::weak_ptr<transport::LocalGroup>> groups;
    uint64_t next_id = 0;
};

Registry& registry() {
    static Registry* instance = new Registry();  // never destroyed: safe during static teardown
    return *instance;
}

}  // namespace

std::vector<Communicator> Communicator::create_local_group(int size, const std::string& name) {
    std::vector<Communicator> handles;
    if (size <= 0) return handles;
    Registry& reg = registry();
    std::shared_ptr<transport::LocalGroup> group;
    {
        std::lock_guard<std::mutex> lock(reg.mutex);
        // A name unique among live groups: the given one if free, else with a numeric suffix.
        std::string unique = name.empty() ? "moedist_comm_" + std::to_string(reg.next_id++) : name;
        for (uint64_t k = 1; !reg.groups[unique].expired(); ++k) {
            unique = (name.empty() ? "moedist_comm_" + std::to_string(reg.next_id++)
                                   : name + "#" + std::to_string(k));
        }
        group = std::make_shared<transport::LocalGroup>(size, unique);
        reg.groups[unique] = group;
        // Drop entries of groups that are gone.
        for (auto it = reg.groups.begin(); it != reg.groups.end();) {
            it = it->second.expired() ? reg.groups.erase(it) : std::next(it);
        }
    }
    handles.reserve(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r) handles.push_back(Communicator(group, r));
    return handles;
}

Status Communicator::find(const std::string& name, int rank, Communicator* out) {
    Registry& reg = registry();
    std::shared_ptr<transport::LocalGroup> group;
    {
        std::lock_guard<std::mutex> lock(reg.mutex);
        auto it = reg.groups.find(name);
        if (it != reg.groups.end()) group = it->second.lock();
    }
    if (group == nullptr) {
        return {Code::kInnerTiling, "group must name a live communicator, got '" + name + "'"};
    }
    if (rank < 0 || rank >= group->size()) {
        return {Code::kInnerTiling,
                "rank in communicator '" + name + "' must be in [0, " +
                    std::to_string(group->size()) + "), got " + std::to_string(rank)};
    }
    *out = Communicator(std::move(group), rank);
    return Status::Ok();
}

int Communicator::size() const { return group_ ? group_->size() : 0; }

const std::string& Communicator::name() const {
    static const std::string empty;
    return group_ ? group_->name() : empty;
}

}  // namespace moedist
