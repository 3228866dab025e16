/* hccl/hccl_types.h — CANN's HCCL result codes and communicator handle (values as CANN 8.x). */
#ifndef HCCL_TYPES_H_
#define HCCL_TYPES_H_

#include <stdint.h>

#ifndef MOEDIST_C_API
#define MOEDIST_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    HCCL_SUCCESS = 0,              /* success */
    HCCL_E_PARA = 1,               /* parameter error */
    HCCL_E_PTR = 2,                /* empty pointer */
    HCCL_E_MEMORY = 3,             /* memory error */
    HCCL_E_INTERNAL = 4,           /* internal error */
    HCCL_E_NOT_SUPPORT = 5,        /* not support feature */
    HCCL_E_NOT_FOUND = 6,          /* not found specific resource */
    HCCL_E_UNAVAIL = 7,            /* resource unavailable */
    HCCL_E_SYSCALL = 8,            /* call system interface error */
    HCCL_E_TIMEOUT = 9,            /* timeout */
    HCCL_E_OPEN_FILE_FAILURE = 10, /* open file fail */
    HCCL_E_TCP_CONNECT = 11,       /* tcp connect fail */
    HCCL_E_ROCE_CONNECT = 12,      /* roce connect fail */
    HCCL_E_TCP_TRANSFER = 13,      /* tcp transfer fail */
    HCCL_E_ROCE_TRANSFER = 14,     /* roce transfer fail */
    HCCL_E_RUNTIME = 15,           /* call runtime api fail */
    HCCL_E_DRV = 16,               /* call driver api fail */
    HCCL_E_PROFILING = 17,         /* call profiling api fail */
    HCCL_E_CCE = 18,               /* call cce api fail */
    HCCL_E_NETWORK = 19,           /* call network api fail */
    HCCL_E_AGAIN = 20,             /* try again */
    HCCL_E_REMOTE = 21,            /* error cqe */
    HCCL_E_SUSPENDING = 22,        /* error communicator suspending */
    HCCL_E_RESERVED                /* reserved */
} HcclResult;

typedef void *HcclComm;

/* Longest communicator name, terminator included (HcclGetCommName's buffer). */
static const uint32_t COMM_NAME_MAX_LENGTH = 128;

#ifdef __cplusplus
}
#endif

#endif /* HCCL_TYPES_H_ */
