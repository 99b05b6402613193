/* NCCL shim of the emulation, on the real nccl.h prototypes: single-process communicators
 * (ncclCommInitAll), group calls and ncclBroadcast, the collective qasr uses to copy weights to
 * every device.
 *
 * Ranks rendezvous: the k-th collective of every rank of a clique is one operation, and it must
 * be the same call on all of them (function, count, datatype, root), as NCCL requires; a
 * mismatch is reported with both calls and fails with ncclInvalidUsage (on a GPU it hangs or
 * corrupts). Each call queues an operation on its rank's stream at its place in stream order;
 * the first of those to run waits for the work every rank queued before the collective, moves
 * the data for all ranks, and the others find it done: a collective is a barrier across the
 * ranks' streams, as on a GPU. Waiting on a collective that some rank has not issued yet is a
 * deadlock on a GPU and is reported as one here. Also as strict as NCCL:
 *  - one thread driving several ranks of a clique must issue their calls inside
 *    ncclGroupStart/ncclGroupEnd (otherwise NCCL may deadlock);
 *  - buffers must be device memory of the communicator's device, large enough for count
 *    elements, and the stream must belong to that device;
 *  - a clique destroyed with collectives issued by some ranks only is reported. */
#include "cuemu.h"

#include <nccl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

struct call_s {
    const char *fn;
    const void *send;
    void *recv;
    size_t count;
    int dtype, root;
    cudaStream_t stream;
};

/* The k-th collective of a clique: every rank's call, and whether its data has moved. */
struct collective_s {
    std::vector<call_s> calls; /* by rank; fn == nullptr until that rank issues it */
    std::vector<uint64_t> pos; /* each rank's stream position before its call */
    int issued = 0;
    bool done = false, bad = false;
};

struct clique_s {
    std::vector<int> devices;                     /* by rank */
    std::vector<std::shared_ptr<collective_s>> ops; /* by sequence number */
    std::vector<size_t> next;                     /* next sequence number of each rank */
    std::vector<std::thread::id> driver;          /* thread that issued each rank's last call */
    int live;                                     /* communicators not yet destroyed */
};

}  // namespace

struct ncclComm {
    std::shared_ptr<clique_s> clique;
    int rank;
    ncclResult_t async_error;
    char last_error[512];
};

namespace {

std::mutex mu;
thread_local int group_depth;
thread_local std::vector<std::pair<ncclComm *, call_s>> group_calls;

size_t type_size(int t)
{
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
    }
}

__attribute__((format(printf, 3, 4))) ncclResult_t fail(ncclComm *c, ncclResult_t r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuemu: nccl: %s (%s)\n", msg, ncclGetErrorString(r));
    if (c) snprintf(c->last_error, sizeof c->last_error, "%s", msg);
    return r;
}

void describe(char *buf, size_t n, const call_s &c)
{
    snprintf(buf, n, "%s(count %zu, datatype %d, root %d)", c.fn, c.count, c.dtype, c.root);
}

/* Queued on each rank's stream: the first to run moves the data of every rank. */
cudaError_t run_collective(const std::shared_ptr<clique_s> &q, const std::shared_ptr<collective_s> &op, size_t seq,
                           int rank)
{
    std::unique_lock<std::mutex> lock(mu);
    if (op->done) return cudaSuccess;
    if (op->issued < (int)q->devices.size()) {
        for (size_t r = 0; r < q->devices.size(); r++)
            if (!op->calls[r].fn)
                fprintf(stderr, "cuemu: nccl: deadlock: collective #%zu on rank %d (device %d) waits for rank %zu "
                        "(device %d), which has not issued it (with CUEMU_SYNC=eager a collective runs before the "
                        "other ranks can issue it: use the deferred mode)\n", seq, rank, q->devices[rank], r,
                        q->devices[r]);
        return cudaErrorLaunchFailure;
    }
    if (op->bad) return cudaErrorLaunchFailure; /* reported when it was issued */
    op->done = true;
    std::vector<call_s> calls = op->calls;
    std::vector<uint64_t> pos = op->pos;
    lock.unlock(); /* the ranks' earlier work may itself contain collectives */
    for (size_t r = 0; r < calls.size(); r++)
        if (cudaError_t e = cuemu::detail::run_stream_to(calls[r].stream, q->devices[r], pos[r])) return e;
    const call_s &root = calls[calls[0].root];
    const size_t bytes = calls[0].count * type_size(calls[0].dtype);
    for (auto &c : calls)
        if (c.recv != root.send && bytes) memcpy(c.recv, root.send, bytes);
    return cudaSuccess;
}

/* Issue one rank's call: validate it, queue it on its stream, match it with the other ranks'. */
ncclResult_t issue(ncclComm *c, const call_s &call)
{
    clique_s &q = *c->clique;
    const int nranks = (int)q.devices.size();
    const size_t bytes = call.count * type_size(call.dtype);
    if (call.root < 0 || call.root >= nranks)
        return fail(c, ncclInvalidArgument, "%s: root %d outside [0, %d)", call.fn, call.root, nranks);
    if (!type_size(call.dtype)) return fail(c, ncclInvalidArgument, "%s: datatype %d", call.fn, call.dtype);
    char what[128];
    snprintf(what, sizeof what, "%s on rank %d: recvbuff", call.fn, c->rank);
    if (bytes && !cuemu::detail::device_range(call.recv, bytes, what))
        return fail(c, ncclInvalidArgument, "%s: recvbuff is not %zu bytes of device memory", call.fn, bytes);
    snprintf(what, sizeof what, "%s on rank %d: sendbuff", call.fn, c->rank);
    if (c->rank == call.root && bytes && !cuemu::detail::device_range(call.send, bytes, what))
        return fail(c, ncclInvalidArgument, "%s: sendbuff is not %zu bytes of device memory", call.fn, bytes);

    std::unique_lock<std::mutex> lock(mu);
    const size_t seq = q.next[c->rank]++;
    if (q.ops.size() <= seq) q.ops.push_back(std::make_shared<collective_s>());
    auto op = q.ops[seq];
    if (op->calls.empty()) {
        op->calls.assign(nranks, call_s{});
        op->pos.assign(nranks, 0);
    }
    op->calls[c->rank] = call;
    op->issued++;
    auto clique = c->clique;
    const int rank = c->rank;
    uint64_t *pos = &op->pos[rank]; /* written and read under the runtime's lock */
    lock.unlock();
    cudaError_t e = cuemu::detail::enqueue_on(
        call.stream, q.devices[rank], [clique, op, seq, rank] { return run_collective(clique, op, seq, rank); }, pos);
    lock.lock();
    if (e != cudaSuccess) { /* not issued after all */
        q.next[rank]--;
        op->calls[rank] = call_s{};
        op->issued--;
        return fail(c, ncclUnhandledCudaError, "%s on rank %d: the stream cannot take it: %s", call.fn, rank,
                    cudaGetErrorString(e));
    }
    /* compare with the ranks that issued #seq already */
    for (int r = 0; r < nranks; r++) {
        const call_s &o = op->calls[r];
        if (!o.fn || r == rank) continue;
        if (strcmp(o.fn, call.fn) || o.count != call.count || o.dtype != call.dtype || o.root != call.root) {
            char a[160], b[160];
            describe(a, sizeof a, o);
            describe(b, sizeof b, call);
            op->bad = true;
            c->async_error = ncclInvalidUsage;
            return fail(c, ncclInvalidUsage, "collective #%zu does not match across ranks: rank %d called %s, rank %d %s",
                        seq, r, a, rank, b);
        }
    }
    return ncclSuccess;
}

/* Outside a group, one thread may drive only one rank of a clique. */
ncclResult_t check_driver(ncclComm *c, const char *fn)
{
    std::lock_guard<std::mutex> lock(mu);
    clique_s &q = *c->clique;
    const auto me = std::this_thread::get_id();
    for (size_t r = 0; r < q.driver.size(); r++)
        if ((int)r != c->rank && q.driver[r] == me)
            return fail(c, ncclInvalidUsage, "%s on rank %d outside ncclGroupStart/End from the thread that also drives "
                        "rank %zu: a thread driving several ranks must group their calls (NCCL may deadlock)",
                        fn, c->rank, r);
    q.driver[c->rank] = me;
    return ncclSuccess;
}

}  // namespace

ncclResult_t ncclGetVersion(int *version)
{
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm) { return comm ? comm->last_error : ""; }

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist)
{
    int count = 0;
    cudaGetDeviceCount(&count);
    if (!comms || ndev < 1) return fail(nullptr, ncclInvalidArgument, "ncclCommInitAll: %d devices", ndev);
    auto q = std::make_shared<clique_s>();
    for (int r = 0; r < ndev; r++) {
        const int d = devlist ? devlist[r] : r;
        if (d < 0 || d >= count)
            return fail(nullptr, ncclInvalidArgument, "ncclCommInitAll: device %d does not exist (%d devices)", d, count);
        for (int x : q->devices)
            if (x == d) return fail(nullptr, ncclInvalidUsage, "ncclCommInitAll: device %d listed twice", d);
        q->devices.push_back(d);
    }
    q->next.assign(ndev, 0);
    q->driver.assign(ndev, std::thread::id());
    q->live = ndev;
    for (int r = 0; r < ndev; r++) comms[r] = new ncclComm{q, r, ncclSuccess, ""};
    return ncclSuccess;
}

static ncclResult_t release(ncclComm_t comm, bool check)
{
    if (!comm) return ncclInvalidArgument;
    ncclResult_t res = ncclSuccess;
    {
        std::lock_guard<std::mutex> lock(mu);
        clique_s &q = *comm->clique;
        if (--q.live == 0 && check) {
            size_t lo = q.next[0], hi = q.next[0];
            for (size_t n : q.next) lo = std::min(lo, n), hi = std::max(hi, n);
            if (lo != hi) {
                char counts[256] = "";
                for (size_t r = 0; r < q.next.size(); r++)
                    snprintf(counts + strlen(counts), sizeof counts - strlen(counts), "%s rank %zu: %zu", r ? "," : "", r,
                             q.next[r]);
                res = fail(comm, ncclInvalidUsage, "communicators destroyed with collectives some ranks never issued "
                           "(issued by%s): on a GPU they hang", counts);
            }
        }
    }
    delete comm;
    return res;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) { return release(comm, true); }
ncclResult_t ncclCommAbort(ncclComm_t comm) { return release(comm, false); }

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count)
{
    if (!comm || !count) return ncclInvalidArgument;
    *count = (int)comm->clique->devices.size();
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device)
{
    if (!comm || !device) return ncclInvalidArgument;
    *device = comm->clique->devices[comm->rank];
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank)
{
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = comm->rank;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *err)
{
    if (!comm || !err) return ncclInvalidArgument;
    std::lock_guard<std::mutex> lock(mu);
    *err = comm->async_error;
    return ncclSuccess;
}

ncclResult_t ncclGroupStart()
{
    group_depth++;
    return ncclSuccess;
}

/* The outermost end issues the group's calls in order (each rank's in its own order). */
ncclResult_t ncclGroupEnd()
{
    if (group_depth == 0) return fail(nullptr, ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
    if (--group_depth > 0) return ncclSuccess;
    auto calls = std::move(group_calls);
    group_calls.clear();
    ncclResult_t res = ncclSuccess;
    for (auto &gc : calls) {
        ncclResult_t r = issue(gc.first, gc.second);
        if (res == ncclSuccess) res = r;
    }
    return res;
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream)
{
    if (!comm) return fail(nullptr, ncclInvalidArgument, "ncclBroadcast: comm is NULL");
    const call_s call{"ncclBroadcast", sendbuff, recvbuff, count, cuemu::detail::enum_value(datatype), root, stream};
    if (group_depth > 0) {
        group_calls.push_back({comm, call});
        return ncclSuccess;
    }
    if (ncclResult_t r = check_driver(comm, "ncclBroadcast")) return r;
    return issue(comm, call);
}
