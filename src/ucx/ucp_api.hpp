// The UCX functions the ucx engine calls, resolved from libucp / libucs when the first job
// across hosts starts (dlopen), never at load time: a process that stays on one host never maps
// UCX, so UCX's memory hooks (libucm patches mmap and madvise when it loads) stay out of every
// such process, sanitizers included.
#pragma once

#include <ucp/api/ucp.h>

#include <string>

namespace moedist::ucx {

struct UcpApi {
    decltype(&::ucp_config_read) ucp_config_read;
    decltype(&::ucp_config_modify) ucp_config_modify;
    decltype(&::ucp_config_release) ucp_config_release;
    decltype(&::ucp_init_version) ucp_init_version;
    decltype(&::ucp_cleanup) ucp_cleanup;
    decltype(&::ucp_worker_create) ucp_worker_create;
    decltype(&::ucp_worker_destroy) ucp_worker_destroy;
    decltype(&::ucp_worker_get_address) ucp_worker_get_address;
    decltype(&::ucp_worker_release_address) ucp_worker_release_address;
    decltype(&::ucp_worker_progress) ucp_worker_progress;
    decltype(&::ucp_worker_flush_nbx) ucp_worker_flush_nbx;
    decltype(&::ucp_ep_create) ucp_ep_create;
    decltype(&::ucp_ep_close_nbx) ucp_ep_close_nbx;
    decltype(&::ucp_tag_send_nbx) ucp_tag_send_nbx;
    decltype(&::ucp_tag_recv_nbx) ucp_tag_recv_nbx;
    decltype(&::ucp_request_check_status) ucp_request_check_status;
    decltype(&::ucp_request_free) ucp_request_free;
    decltype(&::ucp_request_cancel) ucp_request_cancel;
    decltype(&::ucs_status_string) ucs_status_string;
};

// The functions, loaded once; null (and *why) when UCX cannot be loaded.
const UcpApi* load_ucp(std::string* why);

// The loaded functions (load_ucp succeeded before).
const UcpApi& ucp();

}  // namespace moedist::ucx
