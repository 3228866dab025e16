/* acl/acl_rt.h — CANN's runtime API (devices, contexts, streams, memory), for moedist's CPU
 * runtime.
 *
 * A "device" is a logical rank (any id >= 0) and device memory is host memory. Streams run work
 * synchronously when an operation is called; synchronizing one returns (and clears) the first error
 * an operation recorded on it. Signatures and enum values are CANN's (acl_rt.h of CANN 8.x). */
#ifndef INC_EXTERNAL_ACL_ACL_RT_H_
#define INC_EXTERNAL_ACL_ACL_RT_H_

#include <stddef.h>
#include <stdint.h>

#include "acl_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aclrtMemcpyKind {
    ACL_MEMCPY_HOST_TO_HOST = 0,
    ACL_MEMCPY_HOST_TO_DEVICE = 1,
    ACL_MEMCPY_DEVICE_TO_HOST = 2,
    ACL_MEMCPY_DEVICE_TO_DEVICE = 3,
    ACL_MEMCPY_DEFAULT = 4,
    ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE = 5,
    ACL_MEMCPY_INNER_DEVICE_TO_DEVICE = 6,
    ACL_MEMCPY_INTER_DEVICE_TO_DEVICE = 7,
} aclrtMemcpyKind;

typedef enum aclrtMemMallocPolicy {
    ACL_MEM_MALLOC_HUGE_FIRST = 0,
    ACL_MEM_MALLOC_HUGE_ONLY = 1,
    ACL_MEM_MALLOC_NORMAL_ONLY = 2,
    ACL_MEM_MALLOC_HUGE_FIRST_P2P = 3,
    ACL_MEM_MALLOC_HUGE_ONLY_P2P = 4,
    ACL_MEM_MALLOC_NORMAL_ONLY_P2P = 5,
    ACL_MEM_MALLOC_HUGE1G_ONLY = 6,
    ACL_MEM_MALLOC_HUGE1G_ONLY_P2P = 7,
    ACL_MEM_TYPE_LOW_BAND_WIDTH = 0x0100,
    ACL_MEM_TYPE_HIGH_BAND_WIDTH = 0x1000,
} aclrtMemMallocPolicy;

/* Contexts. A new context becomes the calling thread's current one. */
MOEDIST_C_API aclError aclrtCreateContext(aclrtContext *context, int32_t deviceId);
MOEDIST_C_API aclError aclrtDestroyContext(aclrtContext context);
MOEDIST_C_API aclError aclrtSetCurrentContext(aclrtContext context);
MOEDIST_C_API aclError aclrtGetCurrentContext(aclrtContext *context);

/* Devices (logical ranks). */
MOEDIST_C_API aclError aclrtSetDevice(int32_t deviceId);
MOEDIST_C_API aclError aclrtResetDevice(int32_t deviceId);
MOEDIST_C_API aclError aclrtGetDevice(int32_t *deviceId);
MOEDIST_C_API aclError aclrtSynchronizeDevice(void);

/* Memory: 64-byte aligned host memory. */
MOEDIST_C_API aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy);
MOEDIST_C_API aclError aclrtFree(void *devPtr);
MOEDIST_C_API aclError aclrtMallocHost(void **hostPtr, size_t size);
MOEDIST_C_API aclError aclrtFreeHost(void *hostPtr);
MOEDIST_C_API aclError
aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count, aclrtMemcpyKind kind);
MOEDIST_C_API aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count);
MOEDIST_C_API aclError aclrtMemcpyAsync(void *dst,
                                        size_t destMax,
                                        const void *src,
                                        size_t count,
                                        aclrtMemcpyKind kind,
                                        aclrtStream stream);
MOEDIST_C_API aclError
aclrtMemsetAsync(void *devPtr, size_t maxCount, int32_t value, size_t count, aclrtStream stream);

/* Streams. */
MOEDIST_C_API aclError aclrtCreateStream(aclrtStream *stream);
MOEDIST_C_API aclError aclrtDestroyStream(aclrtStream stream);
MOEDIST_C_API aclError aclrtSynchronizeStream(aclrtStream stream);
MOEDIST_C_API aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout);

#ifdef __cplusplus
}
#endif

#endif /* INC_EXTERNAL_ACL_ACL_RT_H_ */
