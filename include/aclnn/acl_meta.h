/* aclnn/acl_meta.h — CANN's aclnn handle types, status codes and tensor descriptors.
 *
 * aclCreateTensor's signature and the aclnnStatus codes are CANN's (acl_meta.h, opdev/op_errno.h).
 * moedist accepts views of at most 4 dimensions. Usable from C (C11) and C++. */
#ifndef OP_API_OP_API_COMMON_INC_EXTERNAL_ACL_META_H
#define OP_API_OP_API_COMMON_INC_EXTERNAL_ACL_META_H

#include <stddef.h>
#include <stdint.h>

#include "acl/acl_base.h"

#ifndef MOEDIST_C_API
#define MOEDIST_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ACLNN_META
#define ACLNN_META
/* aclOpExecutor comes from acl/acl_base.h. */
typedef struct aclTensor aclTensor;

typedef int32_t aclnnStatus;
#ifdef __cplusplus
constexpr aclnnStatus OK = 0;
#endif
#endif

#ifndef ACLNN_SUCCESS
#define ACLNN_SUCCESS 0
#endif
#ifndef ACLNN_ERR_PARAM_NULLPTR
#define ACLNN_ERR_PARAM_NULLPTR 161001
#endif
#ifndef ACLNN_ERR_PARAM_INVALID
#define ACLNN_ERR_PARAM_INVALID 161002
#endif
#ifndef ACLNN_ERR_RUNTIME_ERROR
#define ACLNN_ERR_RUNTIME_ERROR 361001
#endif
#ifndef ACLNN_ERR_INNER
#define ACLNN_ERR_INNER 561000
#endif
#ifndef ACLNN_ERR_INNER_INFERSHAPE_ERROR
#define ACLNN_ERR_INNER_INFERSHAPE_ERROR 561001
#endif
#ifndef ACLNN_ERR_INNER_TILING_ERROR
#define ACLNN_ERR_INNER_TILING_ERROR 561002
#endif
#ifndef ACLNN_ERR_INNER_FIND_KERNEL_ERROR
#define ACLNN_ERR_INNER_FIND_KERNEL_ERROR 561003
#endif
#ifndef ACLNN_ERR_INNER_CREATE_EXECUTOR
#define ACLNN_ERR_INNER_CREATE_EXECUTOR 561101
#endif
#ifndef ACLNN_ERR_INNER_NOT_TRANS_EXECUTOR
#define ACLNN_ERR_INNER_NOT_TRANS_EXECUTOR 561102
#endif
#ifndef ACLNN_ERR_INNER_NULLPTR
#define ACLNN_ERR_INNER_NULLPTR 561103
#endif
#ifndef ACLNN_ERR_INNER_WRONG_ATTR_INFO_SIZE
#define ACLNN_ERR_INNER_WRONG_ATTR_INFO_SIZE 561104
#endif

/* A view of viewDimsNum (<= 4) dims with element strides `stride` (NULL: row-major contiguous),
 * starting `offset` elements into tensorData. When storageDims are given the view must lie inside
 * them. Returns NULL (and sets the message of aclGetRecentErrMsg) on invalid arguments. */
MOEDIST_C_API aclTensor *aclCreateTensor(const int64_t *viewDims,
                                         uint64_t viewDimsNum,
                                         aclDataType dataType,
                                         const int64_t *stride,
                                         int64_t offset,
                                         aclFormat format,
                                         const int64_t *storageDims,
                                         uint64_t storageDimsNum,
                                         void *tensorData);

/* Frees the descriptor only (never tensorData). NULL is accepted. */
MOEDIST_C_API aclnnStatus aclDestroyTensor(const aclTensor *tensor);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_OP_API_COMMON_INC_EXTERNAL_ACL_META_H */
