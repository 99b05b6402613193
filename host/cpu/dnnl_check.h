/* oneDNN calls that cannot fail for a valid shape: a failure is a bug or an unusable library,
 * so it aborts like an assertion, naming the call and oneDNN's status. */
#ifndef QASR_DNNL_CHECK_H
#define QASR_DNNL_CHECK_H

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>

#include "util.h"

#define DNNL_OK(call)                                                                             \
    do {                                                                                          \
        const dnnl_status_t st_ = (call);                                                         \
        if (st_ != dnnl_success) {                                                                \
            fprintf(stderr, "qasr: oneDNN: %s failed (status %d)\n", #call, (int)st_);          \
            QASR_ASSERT(!"oneDNN call succeeds");                                                 \
        }                                                                                         \
    } while (0)

#endif
