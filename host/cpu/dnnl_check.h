/* oneDNN calls that cannot fail for a valid shape: a failure is a bug or an unusable library. */
#ifndef QASR_DNNL_CHECK_H
#define QASR_DNNL_CHECK_H

#include <oneapi/dnnl/dnnl.h>

#include "util.h"

#define DNNL_OK(call)                                                                             \
    do {                                                                                          \
        const dnnl_status_t st_ = (call);                                                         \
        if (st_ != dnnl_success) qasr_die(3, "oneDNN: %s failed (status %d)", #call, (int)st_); \
    } while (0)

#endif
