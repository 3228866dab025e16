/* acl/acl.h — CANN's ACL entry points, for moedist's CPU runtime. Signatures as CANN's acl.h. */
#ifndef INC_EXTERNAL_ACL_ACL_H_
#define INC_EXTERNAL_ACL_ACL_H_

#include "acl_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* configPath may be NULL; its contents are ignored. Calls nest (a reference count). */
MOEDIST_C_API aclError aclInit(const char *configPath);

/* Resets the reference count and flushes stdout and stderr (callers may _exit right after). */
MOEDIST_C_API aclError aclFinalize(void);

/* Returns and clears the calling thread's last error message; NULL when there is none. The pointer
 * stays valid until the next call of this function on the same thread. */
MOEDIST_C_API const char *aclGetRecentErrMsg(void);

#ifdef __cplusplus
}
#endif

#endif /* INC_EXTERNAL_ACL_ACL_H_ */
