#include "ucx/ucp_api.hpp"

#include <dlfcn.h>

#include <mutex>

namespace moedist::ucx {
namespace {

UcpApi api{};
std::string failure;

template <class F>
bool resolve(void* library, const char* name, F* out) {
    *out = reinterpret_cast<F>(dlsym(library, name));
    if (*out != nullptr) return true;
    failure = std::string("UCX must provide ") + name + ", got none";
    return false;
}

bool load() {
    // libucp's own dependencies (libucs, libuct, libucm) come with it.
    void* ucp_library = dlopen("libucp.so.0", RTLD_NOW | RTLD_LOCAL);
    void* ucs_library =
        ucp_library != nullptr ? dlopen("libucs.so.0", RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (ucp_library == nullptr || ucs_library == nullptr) {
        const char* error = dlerror();
        failure = std::string(
                      "UCX (libucp.so.0, Debian's libucx0) must be installed for a job "
                      "across hosts, got: ") +
                  (error != nullptr ? error : "not found");
        return false;
    }
    return resolve(ucp_library, "ucp_config_read", &api.ucp_config_read) &&
           resolve(ucp_library, "ucp_config_modify", &api.ucp_config_modify) &&
           resolve(ucp_library, "ucp_config_release", &api.ucp_config_release) &&
           resolve(ucp_library, "ucp_init_version", &api.ucp_init_version) &&
           resolve(ucp_library, "ucp_cleanup", &api.ucp_cleanup) &&
           resolve(ucp_library, "ucp_worker_create", &api.ucp_worker_create) &&
           resolve(ucp_library, "ucp_worker_destroy", &api.ucp_worker_destroy) &&
           resolve(ucp_library, "ucp_worker_get_address", &api.ucp_worker_get_address) &&
           resolve(ucp_library, "ucp_worker_release_address", &api.ucp_worker_release_address) &&
           resolve(ucp_library, "ucp_worker_progress", &api.ucp_worker_progress) &&
           resolve(ucp_library, "ucp_worker_flush_nbx", &api.ucp_worker_flush_nbx) &&
           resolve(ucp_library, "ucp_ep_create", &api.ucp_ep_create) &&
           resolve(ucp_library, "ucp_ep_close_nbx", &api.ucp_ep_close_nbx) &&
           resolve(ucp_library, "ucp_tag_send_nbx", &api.ucp_tag_send_nbx) &&
           resolve(ucp_library, "ucp_tag_recv_nbx", &api.ucp_tag_recv_nbx) &&
           resolve(ucp_library, "ucp_request_check_status", &api.ucp_request_check_status) &&
           resolve(ucp_library, "ucp_request_free", &api.ucp_request_free) &&
           resolve(ucp_library, "ucp_request_cancel", &api.ucp_request_cancel) &&
           resolve(ucs_library, "ucs_status_string", &api.ucs_status_string);
}

}  // namespace

const UcpApi* load_ucp(std::string* why) {
    static std::once_flag once;
    static bool loaded = false;
    std::call_once(once, [] { loaded = load(); });
    if (!loaded && why != nullptr) *why = failure;
    return loaded ? &api : nullptr;
}

const UcpApi& ucp() { return api; }

}  // namespace moedist::ucx
