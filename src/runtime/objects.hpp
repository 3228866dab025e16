// The CPU "device" objects behind the opaque ACL/HCCL handles. Internal to moedist.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "hccl/hccl.h"
#include "moedist/communicator.hpp"
#include "moedist/tensor.hpp"

namespace moedist::runtime {

// One aclrtMalloc / aclrtMallocHost block as the registry knew it at one moment. A block freed
// and another allocated at the same address have different generations.
struct BlockRef {
    uintptr_t base = 0;
    std::size_t size = 0;     // bytes the caller asked for
    uint64_t generation = 0;  // unique per allocation, from 1; 0: not runtime memory
    bool found() const { return generation != 0; }
};

}  // namespace moedist::runtime

// aclCreateTensor's result: the caller's description and the view moedist reads.
struct aclTensor {
    aclDataType acl_dtype = ACL_DT_UNDEFINED;
    bool dtype_known = false;  // acl_dtype maps to a moedist::DType
    std::vector<int64_t> view_dims;
    std::vector<int64_t> strides;
    int64_t offset = 0;  // in elements
    aclFormat format = ACL_FORMAT_ND;
    std::vector<int64_t> storage_dims;
    void* storage = nullptr;
    moedist::TensorView view;  // data = storage + offset elements; dims/strides as given
    // The block `storage` (else the view's first byte) lay in when the tensor was made; not
    // found for memory the runtime did not allocate, whose bounds cannot be checked.
    moedist::runtime::BlockRef block;
};

namespace moedist::runtime {

// HcclComm points at one of these.
struct CommObject {
    moedist::Communicator comm;
};

// aclDataType -> moedist::DType; false when moedist has no such type.
bool to_moedist_dtype(aclDataType acl_dtype, moedist::DType* out);

// The message aclGetRecentErrMsg() returns next on this thread.
void set_recent_error(const std::string& message);

}  // namespace moedist::runtime
