// Streams of the CPU runtime. Work runs synchronously when an operation is called on a stream; an
// error found while running is parked on the stream and returned (and cleared) by the next
// aclrtSynchronizeStream[WithTimeout] on it.
#pragma once

#include "acl/acl_base.h"

namespace moedist::runtime {

// Parks `code` on `stream` unless an earlier error is already parked there (the first one wins).
// code 0 does nothing; a null stream is the calling thread's default stream; an unknown stream is
// ignored. Thread-safe.
void stream_record_error(aclrtStream stream, int code);

// True for null (the default stream) and for every stream created and not yet destroyed.
bool stream_is_live(aclrtStream stream);

}  // namespace moedist::runtime
