/* hccl/hccl.h — CANN's HCCL communicator API, for moedist's CPU runtime.
 *
 * The ranks of a communicator are threads of this process. Every communicator has a name unique in
 * the job (HcclGetCommName); moedist's dispatch/combine find theirs by that name and the caller's
 * rank id. Destroying one rank's handle never disturbs the peers. Signatures are CANN's. */
#ifndef HCCL_H_
#define HCCL_H_

#include "acl/acl.h"
#include "hccl_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Joins the communicator described by the rank table JSON file at clusterInfo (CANN's formats:
 * "server_list"[]."device"[]."rank_id", or "group_list"[]."instance_list"[]."rank_id"). Ranks of
 * one file in one process form one group, created when the first of them joins. */
MOEDIST_C_API HcclResult HcclCommInitClusterInfo(const char *clusterInfo,
                                                 uint32_t rank,
                                                 HcclComm *comm);

/* Creates one communicator of ndev ranks; comms[i] is rank i (on device devices[i]). */
MOEDIST_C_API HcclResult HcclCommInitAll(uint32_t ndev, int32_t *devices, HcclComm *comms);

/* Copies the communicator's name (shorter than COMM_NAME_MAX_LENGTH) into commName. */
MOEDIST_C_API HcclResult HcclGetCommName(HcclComm comm, char *commName);

MOEDIST_C_API HcclResult HcclGetRankSize(HcclComm comm, uint32_t *rankSize);
MOEDIST_C_API HcclResult HcclGetRankId(HcclComm comm, uint32_t *rank);

/* Releases this rank's handle only. */
MOEDIST_C_API HcclResult HcclCommDestroy(HcclComm comm);

MOEDIST_C_API const char *HcclGetErrorString(HcclResult code);

#ifdef __cplusplus
}
#endif

#endif /* HCCL_H_ */
