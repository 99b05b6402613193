/* What the backend interface (backend.h) adds to the ops: checks the model code shares. */
#include "backend.h"

#include "util.h"

int backend_check(const backend_ref_t *bk)
{
    const char *fault = backend_fault(bk);
    if (fault) return qasr_fail("%s", fault);
    return bk->ops->op_failed(bk->be);
}
