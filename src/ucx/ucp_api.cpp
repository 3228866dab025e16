#include "ucx/ucp_api.hpp"

#include <dlfcn.h>
#include <ucm/api/ucm.h>

#include <cstdlib>
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

// UCX's memory hooks (libucm patches brk, mmap and malloc to learn of unmapped memory, for the
// registration caches of RDMA transports) stay off unless the user asks for them with
// UCX_MEM_EVENTS / UCX_MEM_MALLOC_HOOKS: moedist's ranks allocate on their main thread while
// UCX's own thread runs, and with the hooks on a rank died in malloc now and then (a heap address
// not mapped) right after joining. Without them UCX registers memory on demand; TCP, shared
// memory and CMA never register. Set after libucm has read its environment and before any UCX
// context exists (the hooks are installed when the first one asks for memory events).
void keep_memory_hooks_off() {
    void* ucm_library = dlopen("libucm.so.0", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (ucm_library == nullptr) return;
    auto* options = static_cast<ucm_global_config_t*>(dlsym(ucm_library, "ucm_global_opts"));
    if (options != nullptr) {
        if (std::getenv("UCX_MEM_EVENTS") == nullptr) options->enable_events = 0;
        if (std::getenv("UCX_MEM_MALLOC_HOOKS") == nullptr) {
            options->enable_malloc_hooks = 0;
            options->enable_malloc_reloc = 0;
        }
    }
    dlclose(ucm_library);  // still loaded: libucp holds it
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
    keep_memory_hooks_off();
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
