//===- NcclCommunicator.cpp - one rank per process on NCCL ----------------===//
//
// The `nccl` communicator (CudaBackend.h). Creation:
//   1. rank 0 makes NCCL's unique id; broadcastFromRank0 hands it to every
//      rank (as hex text: a store value or an MPI buffer). A rank that
//      cannot start (no GPU) still takes part in the broadcast, and rank 0
//      sends its own error instead of an id, so nobody waits for it;
//   2. the world communicator, ncclCommInitRankConfig with blocking = 0:
//      the call returns at once and ncclCommGetAsyncError is polled with the
//      timeout and the monitor's failure; on either, ncclCommAbort;
//   3. per axis longer than 1, split from the world (color = the group's
//      first member, key = the group index): one communicator for the
//      collectives and two for messages, one per direction (to a higher
//      group index, to a lower one). NCCL runs one communicator's work in
//      issue order, and a send waits on the device until its receiver
//      posts the receive: with sends and receives of both directions in one
//      communicator (or on one stream), two stages sending to each other
//      would each wait for the other's receive queued behind its own send.
//
// Device calls (DeviceCollectives) enqueue on the caller's stream and
// return. A send copies its data into stream-ordered memory on the caller's
// stream (so the caller may overwrite it at once, as Communicator::send
// allows) and sends from there on the direction's own stream; a receive
// runs on that stream and the caller's stream waits for it. The host calls
// (the session's loss sums, checkpoints' world gather and broadcast) stage
// through device scratch on an internal stream and wait for it, polling
// the stream, NCCL's asynchronous error, the abort flag and the monitor, up
// to the timeout, as the local communicator waits.
//
// abort() may come from the watchdog's thread while this rank's thread is
// inside a call: every NCCL call on these communicators holds `ncclMu_`,
// and waits poll with it released, so abort takes it, aborts every
// communicator (which ends their kernels) and marks them gone.
//
// NCCL refuses two ranks of one communicator on one GPU: a job needs a GPU
// per rank (the tests run a 1-rank world on one).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cuda/CudaBackend.h"
#include "loom/runtime/cuda/DeviceCollectives.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

namespace loom {
namespace runtime {
namespace cuda {

namespace {

using Clock = std::chrono::steady_clock;

std::string cudaText(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

std::string seconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

ncclDataType_t ncclType(CommDType t) {
  return t == CommDType::F32 ? ncclFloat32 : ncclFloat64;
}

std::string toHex(const void *data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<const unsigned char *>(data)[i];
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

bool fromHex(const std::string &s, void *data, size_t n) {
  if (s.size() != 2 * n)
    return false;
  auto nibble = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  for (size_t i = 0; i < n; ++i) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    static_cast<unsigned char *>(data)[i] =
        static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

/// The communicators of one axis's group (null where the axis has size 1).
struct AxisComms {
  ncclComm_t coll = nullptr, up = nullptr, down = nullptr;
  cudaStream_t upStream = nullptr, downStream = nullptr;
  cudaEvent_t upDone = nullptr, downDone = nullptr;
};

class NcclCommunicator final : public Communicator, public DeviceCollectives {
public:
  NcclCommunicator(MeshShape mesh, int64_t rank, int device,
                   ProcessCommOptions options)
      : mesh_(std::move(mesh)), rank_(rank), device_(device), options_(options),
        seq_(mesh_.sizes.size(), 0) {}
  ~NcclCommunicator() override;

  /// Steps 2 and 3 of the file comment.
  Status start(const ncclUniqueId &id);

  int64_t rank() const override { return rank_; }
  const MeshShape &mesh() const override { return mesh_; }
  DeviceCollectives *deviceCollectives() override { return this; }

  // Communicator: host memory, staged through the device.
  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op,
                   const std::string &what) override;
  Status allGather(int axis, const void *in, void *out, size_t outer,
                   size_t inner, CommDType dtype,
                   const std::string &what) override;
  Status reduceScatter(int axis, const void *in, void *out, size_t outer,
                       size_t inner, CommDType dtype,
                       const std::string &what) override;
  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, const std::string &what) override;
  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, const std::string &what) override;
  Status recv(int axis, int64_t peer, void *data, size_t count, CommDType dtype,
              int64_t tag, const std::string &what) override;
  void abort(const std::string &why) override;
  Status gatherToRoot(const std::vector<uint8_t> &mine,
                      std::vector<std::vector<uint8_t>> *atRoot,
                      const std::string &what) override;
  Status broadcastFromRoot(std::vector<uint8_t> &bytes,
                           const std::string &what) override;

  // DeviceCollectives: device memory, on the caller's stream.
  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op, void *stream,
                   const std::string &what) override;
  Status allGather(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, void *stream,
                   const std::string &what) override;
  Status reduceScatter(int axis, const void *in, void *out, size_t count,
                       CommDType dtype, void *stream,
                       const std::string &what) override;
  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, void *stream,
                   const std::string &what) override;
  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, void *stream,
              const std::string &what) override;
  Status recv(int axis, int64_t peer, void *data, size_t count, CommDType dtype,
              int64_t tag, void *stream, const std::string &what) override;

private:
  /// What a call is, for errors and the monitor: "all_reduce 'loss (dp)'
  /// #3 of the dp group".
  struct Call {
    std::string label;
    std::vector<int64_t> members; // world ranks it waits for
  };
  /// Checks the axis (and peer or root, when >= 0), tells the monitor, and
  /// numbers collectives (not messages) per axis.
  static constexpr int64_t kNoPeer = INT64_MIN;
  Result<Call> begin(const char *kind, int axis, const std::string &what,
                     bool collective, int64_t peer = kNoPeer);
  void end() {
    if (options_.monitor && !hostCall_)
      options_.monitor->left();
  }
  /// A host call: the monitor hears of it (not of the device call inside)
  /// until it has waited for its work.
  struct HostScope {
    NcclCommunicator &c;
    HostScope(NcclCommunicator &c, const std::string &label) : c(c) {
      if (c.options_.monitor)
        c.options_.monitor->entering(label);
      c.hostCall_ = true;
    }
    ~HostScope() {
      c.hostCall_ = false;
      if (c.options_.monitor)
        c.options_.monitor->left();
    }
  };
  /// The label and the members of a host call along `axis`, and its wait
  /// for the internal stream, errors naming this rank.
  Call hostLabel(const char *kind, int axis, const std::string &what) const {
    Call call{std::string(kind) + " '" + what + "'", {}};
    if (axis >= 0 && size_t(axis) < mesh_.sizes.size()) {
      call.label += " along " + mesh_.names[size_t(axis)];
      for (int64_t m : mesh_.groupMembers(rank_, axis))
        if (m != rank_)
          call.members.push_back(m);
    }
    return call;
  }
  Status hostDrain(const Call &call) {
    Status s = drain(call);
    return s.ok() ? s
                  : Status::error(mesh_.describe(rank_) + ": " + call.label +
                                  " failed: " + s.message());
  }
  /// A device collective on `axis`'s group, on `stream`: alone on the
  /// axis, `in` copied to `out` (`aloneBytes`; none for a broadcast); else
  /// `issue` on the group's communicator under the NCCL lock, its result
  /// checked as the call `name`.
  Status deviceCollective(const Call &call, int axis, const void *in,
                          void *out, size_t aloneBytes, cudaStream_t stream,
                          const char *name,
                          const std::function<ncclResult_t(ncclComm_t)> &issue);
  Status fail(const Call &call, const std::string &why) {
    end();
    return Status::error(mesh_.describe(rank_) + ": " + call.label +
                         " failed: " + why);
  }
  /// Why an NCCL call failed: its result and NCCL's last error.
  std::string ncclText(ncclResult_t r, ncclComm_t comm) const {
    std::string s = ncclGetErrorString(r);
    const char *last = comm ? ncclGetLastError(comm) : nullptr;
    if (last && *last)
      s += std::string(" (") + last + ")";
    return s;
  }
  /// Failure from elsewhere: this communicator aborted, or the monitor
  /// says the job failed. Empty while healthy.
  std::string failure() {
    if (aborted_) {
      std::lock_guard<std::mutex> lock(abortMu_);
      return abortMessage_;
    }
    if (options_.monitor)
      return options_.monitor->failure();
    return "";
  }
  /// Waits until `done` says yes (or fails), polling every 200 us with
  /// ncclMu_ released; `done` runs with it held. The timeout, an abort and
  /// the monitor's failure end the wait with an error; a timeout aborts
  /// every communicator (their kernels may wait forever) and names the
  /// members not known to have arrived.
  Status poll(const Call &call, const std::function<Result<bool>()> &done);
  /// Waits for an NCCL call on a non-blocking communicator to be enqueued
  /// (ncclInProgress until then).
  Status issued(const Call &call, ncclResult_t r, ncclComm_t comm,
                const char *fn);
  /// Waits for the internal stream (the host calls' work).
  Status drain(const Call &call);
  /// Device scratch of at least `bytes`, for the host calls.
  Result<void *> scratch(size_t bytes);
  Status current() {
    cudaError_t e = cudaSetDevice(device_);
    return e == cudaSuccess
               ? Status::success()
               : Status::error("cudaSetDevice(" + std::to_string(device_) +
                               "): " + cudaText(e));
  }
  Status cudaCheck(cudaError_t e, const char *what) {
    return e == cudaSuccess
               ? Status::success()
               : Status::error(std::string(what) + ": " + cudaText(e));
  }
  /// `waiter`'s later work runs after what `after` has queued so far
  /// (through `event`).
  Status streamFollows(cudaStream_t waiter, cudaStream_t after,
                       cudaEvent_t event) {
    if (Status st = cudaCheck(cudaEventRecord(event, after), "cudaEventRecord");
        !st.ok())
      return st;
    return cudaCheck(cudaStreamWaitEvent(waiter, event, 0),
                     "cudaStreamWaitEvent");
  }
  Status initComm(ncclComm_t *comm, const Call &call,
                  const std::function<ncclResult_t(ncclConfig_t *)> &make);
  void abortAll();

  MeshShape mesh_;
  int64_t rank_;
  int device_;
  ProcessCommOptions options_;
  std::vector<int64_t> seq_;
  bool hostCall_ = false; // inside a HostScope

  std::mutex ncclMu_; // held around every NCCL call on the comms below
  ncclComm_t world_ = nullptr;
  std::vector<AxisComms> axes_;
  cudaStream_t internal_ = nullptr; // the host calls' stream
  void *scratch_ = nullptr;
  size_t scratchBytes_ = 0;

  std::atomic<bool> aborted_{false};
  std::mutex abortMu_;
  std::string abortMessage_;
};

Result<NcclCommunicator::Call>
NcclCommunicator::begin(const char *kind, int axis, const std::string &what,
                        bool collective, int64_t peer) {
  if (axis < 0 || size_t(axis) >= mesh_.sizes.size())
    return Status::error(mesh_.describe(rank_) + ": '" + what +
                         "' names mesh axis " + std::to_string(axis) +
                         ", but the mesh has " +
                         std::to_string(mesh_.sizes.size()) + " axes");
  if (peer != kNoPeer && (peer < 0 || peer >= mesh_.sizes[size_t(axis)]))
    return Status::error(
        mesh_.describe(rank_) + ": " + kind + " '" + what + "' names " +
        (collective ? "root " : "peer ") + std::to_string(peer) + ", but the " +
        mesh_.names[size_t(axis)] + " group has " +
        std::to_string(mesh_.sizes[size_t(axis)]) + " members");
  Call call;
  std::vector<int64_t> group = mesh_.groupMembers(rank_, axis);
  if (collective) {
    call.label = std::string(kind) + " '" + what + "' #" +
                 std::to_string(seq_[size_t(axis)]++) + " of the " +
                 mesh_.names[size_t(axis)] + " group";
    for (int64_t m : group)
      if (m != rank_)
        call.members.push_back(m);
  } else {
    int64_t other = group[size_t(peer)];
    call.label = std::string(kind) + " '" + what + "' " +
                 (std::strcmp(kind, "send") == 0 ? "to " : "from ") +
                 mesh_.describe(other) + " along " + mesh_.names[size_t(axis)];
    call.members.push_back(other);
  }
  if (options_.monitor && !hostCall_)
    options_.monitor->entering(call.label);
  if (std::string why = failure(); !why.empty())
    return fail(call, why);
  if (Status s = current(); !s.ok())
    return fail(call, s.message());
  return call;
}

Status NcclCommunicator::poll(const Call &call,
                              const std::function<Result<bool>()> &done) {
  double limit = options_.timeoutSeconds;
  bool forever = !(limit > 0) || limit > 1e9;
  Clock::time_point start = Clock::now();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(ncclMu_);
      if (aborted_)
        return Status::error(failure());
      Result<bool> d = done();
      if (!d.ok())
        return Status::error(d.message());
      if (*d)
        return Status::success();
    }
    if (options_.monitor)
      if (std::string why = options_.monitor->failure(); !why.empty()) {
        abortAll();
        return Status::error(why);
      }
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (!forever && waited > limit) {
      std::string late;
      if (options_.monitor)
        late = options_.monitor->explainLate(call.members);
      abortAll();
      std::string msg = "timed out after " + seconds(limit) + " s";
      if (!late.empty())
        msg += "; " + late;
      return Status::error(msg);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

Status NcclCommunicator::issued(const Call &call, ncclResult_t r,
                                ncclComm_t comm, const char *fn) {
  if (r == ncclSuccess)
    return Status::success();
  if (r != ncclInProgress)
    return Status::error(std::string(fn) + ": " + ncclText(r, comm));
  return poll(call, [&]() -> Result<bool> {
    ncclResult_t state = ncclSuccess;
    ncclResult_t got = ncclCommGetAsyncError(comm, &state);
    if (got != ncclSuccess)
      return Status::error(std::string("ncclCommGetAsyncError after ") + fn +
                           ": " + ncclText(got, comm));
    if (state == ncclInProgress)
      return false;
    if (state != ncclSuccess)
      return Status::error(std::string(fn) + ": " + ncclText(state, comm));
    return true;
  });
}

Status NcclCommunicator::drain(const Call &call) {
  return poll(call, [&]() -> Result<bool> {
    cudaError_t e = cudaStreamQuery(internal_);
    if (e == cudaErrorNotReady) {
      // A peer that died leaves NCCL's kernel waiting: its error shows here.
      for (ncclComm_t c : {world_})
        if (c) {
          ncclResult_t state = ncclSuccess;
          if (ncclCommGetAsyncError(c, &state) == ncclSuccess &&
              state != ncclSuccess && state != ncclInProgress)
            return Status::error(ncclText(state, c));
        }
      for (const AxisComms &a : axes_)
        for (ncclComm_t c : {a.coll, a.up, a.down})
          if (c) {
            ncclResult_t state = ncclSuccess;
            if (ncclCommGetAsyncError(c, &state) == ncclSuccess &&
                state != ncclSuccess && state != ncclInProgress)
              return Status::error(ncclText(state, c));
          }
      return false;
    }
    if (e != cudaSuccess)
      return Status::error("waiting for the staged transfer: " + cudaText(e));
    return true;
  });
}

Result<void *> NcclCommunicator::scratch(size_t bytes) {
  if (bytes <= scratchBytes_)
    return scratch_;
  // Nothing of the internal stream uses the old scratch after drain().
  if (scratch_)
    cudaFree(scratch_);
  scratch_ = nullptr;
  scratchBytes_ = 0;
  void *p = nullptr;
  if (Status s = cudaCheck(cudaMalloc(&p, bytes), "cudaMalloc of NCCL's "
                                                  "staging for host buffers");
      !s.ok())
    return s;
  scratch_ = p;
  scratchBytes_ = bytes;
  return p;
}

Status NcclCommunicator::initComm(
    ncclComm_t *comm, const Call &call,
    const std::function<ncclResult_t(ncclConfig_t *)> &make) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0; // returns at once: we poll, with the timeout
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> lock(ncclMu_);
    r = make(&config);
  }
  if (r != ncclSuccess && r != ncclInProgress)
    return Status::error(ncclText(r, *comm));
  return poll(call, [&]() -> Result<bool> {
    if (!*comm)
      return Status::error("NCCL made no communicator");
    ncclResult_t state = ncclSuccess;
    ncclResult_t got = ncclCommGetAsyncError(*comm, &state);
    if (got != ncclSuccess)
      return Status::error(ncclText(got, *comm));
    if (state == ncclInProgress)
      return false;
    if (state != ncclSuccess)
      return Status::error(ncclText(state, *comm));
    return true;
  });
}

Status NcclCommunicator::start(const ncclUniqueId &id) {
  if (Status s = current(); !s.ok())
    return s;
  Call init;
  init.label = "NCCL's initialisation (a world of " +
               std::to_string(mesh_.numRanks()) + " ranks)";
  for (int64_t r = 0; r < mesh_.numRanks(); ++r)
    if (r != rank_)
      init.members.push_back(r);
  if (options_.monitor)
    options_.monitor->entering(init.label);
  auto failed = [&](const std::string &why) {
    end();
    abortAll();
    return Status::error(mesh_.describe(rank_) + ": " + init.label +
                         " failed: " + why);
  };
  if (Status s = cudaCheck(
          cudaStreamCreateWithFlags(&internal_, cudaStreamNonBlocking),
          "cudaStreamCreateWithFlags");
      !s.ok())
    return failed(s.message());
  if (Status s = initComm(&world_, init,
                          [&](ncclConfig_t *config) {
                            return ncclCommInitRankConfig(
                                &world_, int(mesh_.numRanks()), id, int(rank_),
                                config);
                          });
      !s.ok())
    return failed("ncclCommInitRankConfig: " + s.message());
  axes_.resize(mesh_.sizes.size());
  for (size_t axis = 0; axis < mesh_.sizes.size(); ++axis) {
    if (mesh_.sizes[axis] == 1)
      continue; // nothing to exchange: the calls copy
    std::vector<int64_t> group = mesh_.groupMembers(rank_, int(axis));
    int color = int(group[0]);
    int key = int(mesh_.coordinates(rank_)[axis]);
    AxisComms &a = axes_[axis];
    // Every rank splits every axis, in the same order (a split is a
    // collective over the world).
    for (ncclComm_t *c : {&a.coll, &a.up, &a.down})
      if (Status s = initComm(c, init,
                              [&](ncclConfig_t *config) {
                                return ncclCommSplit(world_, color, key, c,
                                                     config);
                              });
          !s.ok())
        return failed("ncclCommSplit of the " + mesh_.names[axis] +
                      " groups: " + s.message());
    for (cudaStream_t *s : {&a.upStream, &a.downStream})
      if (Status st =
              cudaCheck(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking),
                        "cudaStreamCreateWithFlags");
          !st.ok())
        return failed(st.message());
    for (cudaEvent_t *e : {&a.upDone, &a.downDone})
      if (Status st =
              cudaCheck(cudaEventCreateWithFlags(e, cudaEventDisableTiming),
                        "cudaEventCreateWithFlags");
          !st.ok())
        return failed(st.message());
  }
  end();
  return Status::success();
}

void NcclCommunicator::abortAll() {
  std::lock_guard<std::mutex> lock(ncclMu_);
  for (AxisComms &a : axes_)
    for (ncclComm_t *c : {&a.coll, &a.up, &a.down})
      if (*c) {
        ncclCommAbort(*c);
        *c = nullptr;
      }
  if (world_) {
    ncclCommAbort(world_);
    world_ = nullptr;
  }
  if (!aborted_) {
    std::lock_guard<std::mutex> al(abortMu_);
    abortMessage_ = mesh_.describe(rank_) + "'s NCCL communicators were "
                                            "aborted after an error";
    aborted_ = true;
  }
}

void NcclCommunicator::abort(const std::string &why) {
  {
    std::lock_guard<std::mutex> lock(abortMu_);
    if (!aborted_)
      abortMessage_ = mesh_.describe(rank_) + " aborted the job: " + why;
    aborted_ = true;
  }
  abortAll();
}

/// A non-blocking communicator's finalize returns at once, in progress.
bool finalizing(ncclResult_t r) {
  return r == ncclSuccess || r == ncclInProgress;
}

NcclCommunicator::~NcclCommunicator() {
  cudaSetDevice(device_);
  if (!aborted_) {
    // Finish what was issued, then free; a communicator that does not
    // finalize in time (a peer gone) is aborted instead.
    bool clean = true;
    for (AxisComms &a : axes_)
      for (ncclComm_t c : {a.coll, a.up, a.down})
        if (c && !finalizing(ncclCommFinalize(c)))
          clean = false;
    if (world_ && !finalizing(ncclCommFinalize(world_)))
      clean = false;
    Call finalize;
    finalize.label = "NCCL's finalisation";
    options_.monitor = nullptr; // the job may be gone at exit
    if (options_.timeoutSeconds <= 0 || options_.timeoutSeconds > 60)
      options_.timeoutSeconds = 60;
    Status finished =
        clean ? poll(finalize,
                     [&]() -> Result<bool> {
                       std::vector<ncclComm_t> all{world_};
                       for (AxisComms &a : axes_)
                         all.insert(all.end(), {a.coll, a.up, a.down});
                       for (ncclComm_t c : all) {
                         ncclResult_t state = ncclSuccess;
                         if (!c)
                           continue;
                         if (ncclCommGetAsyncError(c, &state) != ncclSuccess)
                           return Status::error("finalize");
                         if (state == ncclInProgress)
                           return false;
                         if (state != ncclSuccess)
                           return Status::error(ncclText(state, c));
                       }
                       return true;
                     })
              : Status::error("finalize");
    if (!finished.ok()) {
      abortAll();
    } else {
      for (AxisComms &a : axes_)
        for (ncclComm_t c : {a.coll, a.up, a.down})
          if (c)
            ncclCommDestroy(c);
      if (world_)
        ncclCommDestroy(world_);
    }
  }
  for (AxisComms &a : axes_) {
    for (cudaStream_t s : {a.upStream, a.downStream})
      if (s)
        cudaStreamDestroy(s);
    for (cudaEvent_t e : {a.upDone, a.downDone})
      if (e)
        cudaEventDestroy(e);
  }
  if (internal_)
    cudaStreamDestroy(internal_);
  if (scratch_)
    cudaFree(scratch_);
}

//===----------------------------------------------------------------------===//
// Device calls
//===----------------------------------------------------------------------===//

Status NcclCommunicator::deviceCollective(
    const Call &call, int axis, const void *in, void *out, size_t aloneBytes,
    cudaStream_t stream, const char *name,
    const std::function<ncclResult_t(ncclComm_t)> &issue) {
  if (mesh_.sizes[size_t(axis)] == 1) {
    end();
    if (in == out || !aloneBytes)
      return Status::success();
    Status c = cudaCheck(cudaMemcpyAsync(out, in, aloneBytes,
                                         cudaMemcpyDeviceToDevice, stream),
                         "cudaMemcpyAsync");
    return c.ok() ? c
                  : Status::error(mesh_.describe(rank_) + ": " + call.label +
                                  ": " + c.message());
  }
  ncclComm_t comm = axes_[size_t(axis)].coll;
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> lock(ncclMu_);
    if (aborted_)
      return fail(call, failure());
    r = issue(comm);
  }
  if (Status st = issued(call, r, comm, name); !st.ok())
    return fail(call, st.message());
  end();
  return Status::success();
}

Status NcclCommunicator::allReduce(int axis, const void *in, void *out,
                                   size_t count, CommDType dtype, ReduceKind op,
                                   void *stream, const std::string &what) {
  Result<Call> call = begin("all_reduce", axis, what, true);
  if (!call.ok())
    return Status::error(call.message());
  auto s = static_cast<cudaStream_t>(stream);
  // NCCL's max is fmax: a NaN on one member is lost where another has a
  // number (docs/distributed.md, "NCCL").
  return deviceCollective(
      *call, axis, in, out, count * commDTypeSize(dtype), s, "ncclAllReduce",
      [&](ncclComm_t comm) {
        return ncclAllReduce(in, out, count, ncclType(dtype),
                             op == ReduceKind::Sum ? ncclSum : ncclMax, comm,
                             s);
      });
}

Status NcclCommunicator::allGather(int axis, const void *in, void *out,
                                   size_t count, CommDType dtype, void *stream,
                                   const std::string &what) {
  Result<Call> call = begin("all_gather", axis, what, true);
  if (!call.ok())
    return Status::error(call.message());
  auto s = static_cast<cudaStream_t>(stream);
  return deviceCollective(*call, axis, in, out, count * commDTypeSize(dtype),
                          s, "ncclAllGather", [&](ncclComm_t comm) {
                            return ncclAllGather(in, out, count,
                                                 ncclType(dtype), comm, s);
                          });
}

Status NcclCommunicator::reduceScatter(int axis, const void *in, void *out,
                                       size_t count, CommDType dtype,
                                       void *stream, const std::string &what) {
  Result<Call> call = begin("reduce_scatter", axis, what, true);
  if (!call.ok())
    return Status::error(call.message());
  auto s = static_cast<cudaStream_t>(stream);
  return deviceCollective(*call, axis, in, out, count * commDTypeSize(dtype),
                          s, "ncclReduceScatter", [&](ncclComm_t comm) {
                            return ncclReduceScatter(in, out, count,
                                                     ncclType(dtype), ncclSum,
                                                     comm, s);
                          });
}

Status NcclCommunicator::broadcast(int axis, void *data, size_t count,
                                   CommDType dtype, int64_t root, void *stream,
                                   const std::string &what) {
  Result<Call> call = begin("broadcast", axis, what, true, root);
  if (!call.ok())
    return Status::error(call.message());
  auto s = static_cast<cudaStream_t>(stream);
  // Alone on the axis, the data is already everyone's.
  return deviceCollective(*call, axis, data, data, 0, s, "ncclBroadcast",
                          [&](ncclComm_t comm) {
                            return ncclBroadcast(data, data, count,
                                                 ncclType(dtype), int(root),
                                                 comm, s);
                          });
}

Status NcclCommunicator::send(int axis, int64_t peer, const void *data,
                              size_t count, CommDType dtype, int64_t,
                              void *stream, const std::string &what) {
  Result<Call> call = begin("send", axis, what, false, peer);
  if (!call.ok())
    return Status::error(call.message());
  int64_t me = mesh_.coordinates(rank_)[size_t(axis)];
  if (peer == me)
    return fail(*call, "a rank cannot send to itself through NCCL");
  AxisComms &a = axes_[size_t(axis)];
  bool up = peer > me;
  ncclComm_t comm = up ? a.up : a.down;
  cudaStream_t own = up ? a.upStream : a.downStream;
  cudaEvent_t copied = up ? a.upDone : a.downDone;
  auto s = static_cast<cudaStream_t>(stream);
  size_t bytes = count * commDTypeSize(dtype);
  // The copy on the caller's stream, in its order; the send on the
  // direction's stream, which the caller's stream never waits for.
  void *staged = nullptr;
  if (Status st = cudaCheck(cudaMallocAsync(&staged, bytes ? bytes : 1, s),
                            "cudaMallocAsync of a send's copy");
      !st.ok())
    return fail(*call, st.message());
  if (Status st = cudaCheck(
          cudaMemcpyAsync(staged, data, bytes, cudaMemcpyDeviceToDevice, s),
          "cudaMemcpyAsync of a send's copy");
      !st.ok())
    return fail(*call, st.message());
  if (Status st = streamFollows(own, s, copied); !st.ok())
    return fail(*call, st.message());
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> lock(ncclMu_);
    if (aborted_)
      return fail(*call, failure());
    r = ncclSend(staged, count, ncclType(dtype), int(peer), comm, own);
  }
  if (Status st = issued(*call, r, comm, "ncclSend"); !st.ok())
    return fail(*call, st.message());
  // Freed in the send stream's order, after the send.
  if (Status st = cudaCheck(cudaFreeAsync(staged, own), "cudaFreeAsync");
      !st.ok())
    return fail(*call, st.message());
  end();
  return Status::success();
}

Status NcclCommunicator::recv(int axis, int64_t peer, void *data, size_t count,
                              CommDType dtype, int64_t, void *stream,
                              const std::string &what) {
  Result<Call> call = begin("recv", axis, what, false, peer);
  if (!call.ok())
    return Status::error(call.message());
  int64_t me = mesh_.coordinates(rank_)[size_t(axis)];
  if (peer == me)
    return fail(*call, "a rank cannot receive from itself through NCCL");
  AxisComms &a = axes_[size_t(axis)];
  // From a lower group index: that peer sent "up".
  bool up = peer < me;
  ncclComm_t comm = up ? a.up : a.down;
  cudaStream_t own = up ? a.upStream : a.downStream;
  cudaEvent_t mark = up ? a.upDone : a.downDone;
  auto s = static_cast<cudaStream_t>(stream);
  // The direction's stream writes `data` after the caller's earlier work
  // (which may still read it), and the caller's later work waits for it.
  if (Status st = streamFollows(own, s, mark); !st.ok())
    return fail(*call, st.message());
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> lock(ncclMu_);
    if (aborted_)
      return fail(*call, failure());
    r = ncclRecv(data, count, ncclType(dtype), int(peer), comm, own);
  }
  if (Status st = issued(*call, r, comm, "ncclRecv"); !st.ok())
    return fail(*call, st.message());
  if (Status st = streamFollows(s, own, mark); !st.ok())
    return fail(*call, st.message());
  end();
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Host calls: staged through the device on the internal stream
//===----------------------------------------------------------------------===//

/// Runs `device` on device copies of `in` (inBytes) into scratch after it
/// (outBytes), then copies those to `out`, and waits.
#define LOOM_NCCL_STAGE(inBytes, outBytes, hostIn, hostOut, deviceCall)        \
  do {                                                                         \
    size_t inB = (inBytes), outB = (outBytes);                                 \
    Result<void *> sp = scratch(inB + outB + 16);                              \
    if (!sp.ok())                                                              \
      return Status::error(sp.message());                                      \
    auto *din = static_cast<unsigned char *>(*sp);                             \
    unsigned char *dout = din + ((inB + 15) / 16) * 16;                        \
    if (inB)                                                                   \
      if (Status st =                                                          \
              cudaCheck(cudaMemcpyAsync(din, (hostIn), inB,                    \
                                        cudaMemcpyHostToDevice, internal_),    \
                        "cudaMemcpyAsync to the device");                      \
          !st.ok())                                                            \
        return st;                                                             \
    if (Status st = (deviceCall); !st.ok())                                    \
      return st;                                                               \
    if (outB)                                                                  \
      if (Status st =                                                          \
              cudaCheck(cudaMemcpyAsync((hostOut), dout, outB,                 \
                                        cudaMemcpyDeviceToHost, internal_),    \
                        "cudaMemcpyAsync to the host");                        \
          !st.ok())                                                            \
        return st;                                                             \
  } while (0)

Status NcclCommunicator::allReduce(int axis, const void *in, void *out,
                                   size_t count, CommDType dtype, ReduceKind op,
                                   const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  Call call = hostLabel("all_reduce", axis, what);
  HostScope scope(*this, call.label);
  size_t bytes = count * commDTypeSize(dtype);
  LOOM_NCCL_STAGE(
      bytes, bytes, in, out,
      allReduce(axis, din, dout, count, dtype, op, internal_, what));
  return hostDrain(call);
}

Status NcclCommunicator::allGather(int axis, const void *in, void *out,
                                   size_t outer, size_t inner, CommDType dtype,
                                   const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  size_t n = axis >= 0 && size_t(axis) < mesh_.sizes.size()
                 ? size_t(mesh_.sizes[size_t(axis)])
                 : 1;
  size_t esz = commDTypeSize(dtype), block = inner * esz;
  std::vector<unsigned char> gathered(n * outer * block);
  Call call = hostLabel("all_gather", axis, what);
  HostScope scope(*this, call.label);
  LOOM_NCCL_STAGE(
      outer * block, gathered.size(), in, gathered.data(),
      allGather(axis, din, dout, outer * inner, dtype, internal_, what));
  if (Status s = hostDrain(call); !s.ok())
    return s;
  // NCCL's [n, outer, inner] to the interface's [outer, n, inner].
  auto *o = static_cast<unsigned char *>(out);
  for (size_t g = 0; g < n; ++g)
    for (size_t r = 0; r < outer; ++r)
      std::memcpy(o + (r * n + g) * block,
                  gathered.data() + (g * outer + r) * block, block);
  return Status::success();
}

Status NcclCommunicator::reduceScatter(int axis, const void *in, void *out,
                                       size_t outer, size_t inner,
                                       CommDType dtype,
                                       const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  size_t n = axis >= 0 && size_t(axis) < mesh_.sizes.size()
                 ? size_t(mesh_.sizes[size_t(axis)])
                 : 1;
  size_t esz = commDTypeSize(dtype), block = inner * esz;
  // The interface's [outer, n, inner] to NCCL's [n, outer, inner].
  std::vector<unsigned char> blocks(n * outer * block);
  const auto *i = static_cast<const unsigned char *>(in);
  for (size_t g = 0; g < n; ++g)
    for (size_t r = 0; r < outer; ++r)
      std::memcpy(blocks.data() + (g * outer + r) * block,
                  i + (r * n + g) * block, block);
  Call call = hostLabel("reduce_scatter", axis, what);
  HostScope scope(*this, call.label);
  LOOM_NCCL_STAGE(
      blocks.size(), outer * block, blocks.data(), out,
      reduceScatter(axis, din, dout, outer * inner, dtype, internal_, what));
  return hostDrain(call);
}

Status NcclCommunicator::broadcast(int axis, void *data, size_t count,
                                   CommDType dtype, int64_t root,
                                   const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  Call call = hostLabel("broadcast", axis, what);
  HostScope scope(*this, call.label);
  size_t bytes = count * commDTypeSize(dtype);
  // In place: din is where the broadcast lands, copied back from there.
  Result<void *> sp = scratch(bytes + 1);
  if (!sp.ok())
    return Status::error(sp.message());
  if (bytes)
    if (Status st =
            cudaCheck(cudaMemcpyAsync(*sp, data, bytes, cudaMemcpyHostToDevice,
                                      internal_),
                      "cudaMemcpyAsync to the device");
        !st.ok())
      return st;
  if (Status st = broadcast(axis, *sp, count, dtype, root, internal_, what);
      !st.ok())
    return st;
  if (bytes)
    if (Status st =
            cudaCheck(cudaMemcpyAsync(data, *sp, bytes, cudaMemcpyDeviceToHost,
                                      internal_),
                      "cudaMemcpyAsync to the host");
        !st.ok())
      return st;
  return hostDrain(call);
}

Status NcclCommunicator::send(int axis, int64_t peer, const void *data,
                              size_t count, CommDType dtype, int64_t tag,
                              const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  Call call = hostLabel("send", axis, what);
  HostScope scope(*this, call.label);
  size_t bytes = count * commDTypeSize(dtype);
  LOOM_NCCL_STAGE(bytes, size_t(0), data, nullptr,
                  send(axis, peer, din, count, dtype, tag, internal_, what));
  // Only the copies: the send itself runs on the direction's stream.
  return hostDrain(call);
}

Status NcclCommunicator::recv(int axis, int64_t peer, void *data, size_t count,
                              CommDType dtype, int64_t tag,
                              const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  size_t bytes = count * commDTypeSize(dtype);
  int64_t from = axis >= 0 && size_t(axis) < mesh_.sizes.size() && peer >= 0 &&
                         peer < mesh_.sizes[size_t(axis)]
                     ? mesh_.groupMembers(rank_, axis)[size_t(peer)]
                     : rank_;
  Call call{"recv '" + what + "' from " + mesh_.describe(from), {from}};
  HostScope scope(*this, call.label);
  LOOM_NCCL_STAGE(size_t(0), bytes, nullptr, data,
                  recv(axis, peer, dout, count, dtype, tag, internal_, what));
  return hostDrain(call);
}

#undef LOOM_NCCL_STAGE

Status NcclCommunicator::gatherToRoot(const std::vector<uint8_t> &mine,
                                      std::vector<std::vector<uint8_t>> *atRoot,
                                      const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  int64_t n = mesh_.numRanks();
  Call call{"gather '" + what + "' to rank 0", {}};
  for (int64_t r = 0; r < n; ++r)
    if (r != rank_)
      call.members.push_back(r);
  HostScope scope(*this, call.label);
  auto err = [&](const std::string &why) {
    return Status::error(mesh_.describe(rank_) + ": " + call.label +
                         " failed: " + why);
  };
  if (std::string why = failure(); !why.empty())
    return err(why);
  if (atRoot)
    atRoot->clear();
  // Every rank's size first (an all-gather of one int64 each), then the
  // bytes to rank 0, one send per rank in one NCCL group.
  std::vector<int64_t> sizes(size_t(n), 0);
  Result<void *> sp = scratch(size_t(n) * 8 + 8);
  if (!sp.ok())
    return Status::error(sp.message());
  int64_t own = int64_t(mine.size());
  auto *dsizes = static_cast<int64_t *>(*sp);
  if (Status st = cudaCheck(cudaMemcpyAsync(dsizes + n, &own, 8,
                                            cudaMemcpyHostToDevice, internal_),
                            "cudaMemcpyAsync");
      !st.ok())
    return err(st.message());
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> lock(ncclMu_);
    if (aborted_)
      return err(failure());
    r = ncclAllGather(dsizes + n, dsizes, 1, ncclInt64, world_, internal_);
  }
  if (Status st = issued(call, r, world_, "ncclAllGather"); !st.ok())
    return err(st.message());
  if (Status st = cudaCheck(cudaMemcpyAsync(sizes.data(), dsizes, size_t(n) * 8,
                                            cudaMemcpyDeviceToHost, internal_),
                            "cudaMemcpyAsync");
      !st.ok())
    return err(st.message());
  if (Status st = drain(call); !st.ok())
    return err(st.message());
  size_t total = 0;
  for (int64_t s : sizes)
    total += size_t(s);
  size_t need = rank_ == 0 ? total : mine.size();
  sp = scratch(need + 1);
  if (!sp.ok())
    return Status::error(sp.message());
  auto *base = static_cast<unsigned char *>(*sp);
  if (rank_ != 0 && !mine.empty())
    if (Status st =
            cudaCheck(cudaMemcpyAsync(base, mine.data(), mine.size(),
                                      cudaMemcpyHostToDevice, internal_),
                      "cudaMemcpyAsync");
        !st.ok())
      return err(st.message());
  {
    std::lock_guard<std::mutex> lock(ncclMu_);
    if (aborted_)
      return err(failure());
    r = ncclGroupStart();
    size_t at = 0;
    for (int64_t k = 0; k < n && r == ncclSuccess; ++k) {
      size_t bytes = size_t(sizes[size_t(k)]);
      if (rank_ == 0 && k != 0 && bytes)
        r = ncclRecv(base + at, bytes, ncclUint8, int(k), world_, internal_);
      at += bytes;
    }
    if (r == ncclSuccess && rank_ != 0 && !mine.empty())
      r = ncclSend(base, mine.size(), ncclUint8, 0, world_, internal_);
    ncclResult_t ended = ncclGroupEnd();
    if (r == ncclSuccess)
      r = ended;
  }
  if (Status st = issued(call, r, world_, "ncclSend/ncclRecv to rank 0");
      !st.ok())
    return err(st.message());
  std::vector<unsigned char> all(rank_ == 0 ? total : 0);
  if (rank_ == 0 && total)
    if (Status st =
            cudaCheck(cudaMemcpyAsync(all.data(), base, total,
                                      cudaMemcpyDeviceToHost, internal_),
                      "cudaMemcpyAsync");
        !st.ok())
      return err(st.message());
  if (Status st = drain(call); !st.ok())
    return err(st.message());
  if (rank_ == 0 && atRoot) {
    size_t at = 0;
    for (int64_t k = 0; k < n; ++k) {
      size_t bytes = size_t(sizes[size_t(k)]);
      if (k == 0)
        atRoot->push_back(mine);
      else
        atRoot->emplace_back(all.begin() + at, all.begin() + at + bytes);
      at += bytes;
    }
  }
  return Status::success();
}

Status NcclCommunicator::broadcastFromRoot(std::vector<uint8_t> &bytes,
                                           const std::string &what) {
  if (Status s = current(); !s.ok())
    return s;
  Call call{"broadcast '" + what + "' from rank 0", {0}};
  HostScope scope(*this, call.label);
  auto err = [&](const std::string &why) {
    return Status::error(mesh_.describe(rank_) + ": " + call.label +
                         " failed: " + why);
  };
  if (std::string why = failure(); !why.empty())
    return err(why);
  int64_t size = int64_t(bytes.size());
  for (int pass = 0; pass < 2; ++pass) {
    size_t n = pass == 0 ? 8 : size_t(size);
    Result<void *> sp = scratch(n + 1);
    if (!sp.ok())
      return Status::error(sp.message());
    if (pass == 1 && rank_ != 0)
      bytes.resize(size_t(size));
    void *host = pass == 0 ? static_cast<void *>(&size) : bytes.data();
    if (!n)
      break;
    if (rank_ == 0)
      if (Status st = cudaCheck(
              cudaMemcpyAsync(*sp, host, n, cudaMemcpyHostToDevice, internal_),
              "cudaMemcpyAsync");
          !st.ok())
        return err(st.message());
    ncclResult_t r;
    {
      std::lock_guard<std::mutex> lock(ncclMu_);
      if (aborted_)
        return err(failure());
      r = ncclBroadcast(*sp, *sp, n, ncclUint8, 0, world_, internal_);
    }
    if (Status st = issued(call, r, world_, "ncclBroadcast"); !st.ok())
      return err(st.message());
    if (rank_ != 0)
      if (Status st = cudaCheck(
              cudaMemcpyAsync(host, *sp, n, cudaMemcpyDeviceToHost, internal_),
              "cudaMemcpyAsync");
          !st.ok())
        return err(st.message());
    if (Status st = drain(call); !st.ok())
      return err(st.message());
  }
  return Status::success();
}

/// "" when GPU `device` can be used; else why not.
std::string gpuProblem(int device) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return "no usable GPU: cudaGetDeviceCount fails with " + cudaText(e) +
           " (no NVIDIA driver, or none this CUDA runtime can use)";
  }
  if (count <= 0)
    return "no usable GPU: the CUDA driver sees no device";
  if (device < 0 || device >= count)
    return "there is no GPU " + std::to_string(device) + ": this machine has " +
           std::to_string(count);
  if (cudaError_t set = cudaSetDevice(device); set != cudaSuccess)
    return "cannot use GPU " + std::to_string(device) + ": " + cudaText(set);
  return "";
}

} // namespace

bool ncclAvailable() { return true; }

Result<std::unique_ptr<Communicator>> createNcclCommunicator(
    const MeshShape &mesh, int64_t rank, int device,
    const std::function<Result<std::string>(
        const std::string &, const std::string &)> &broadcastFromRank0,
    const ProcessCommOptions &options) {
  auto error = [&](const std::string &why) {
    return Status::error(
        "the nccl communicator (" +
        (mesh.verify().ok() && rank >= 0 && rank < mesh.numRanks()
             ? mesh.describe(rank)
             : "rank " + std::to_string(rank)) +
        ", GPU " + std::to_string(device) + "): " + why);
  };
  if (Status s = mesh.verify(); !s.ok())
    return error(s.message());
  if (rank < 0 || rank >= mesh.numRanks())
    return error("the mesh has " + std::to_string(mesh.numRanks()) + " ranks");
  if (!broadcastFromRank0)
    return error("no way to hand NCCL's unique id to the other ranks");
  // Every rank takes part in the broadcast, even one that cannot start, so
  // nobody waits for it there (the file comment, step 1).
  std::string problem = gpuProblem(device);
  std::string value;
  if (rank == 0) {
    ncclUniqueId id;
    ncclResult_t r = problem.empty() ? ncclGetUniqueId(&id) : ncclSuccess;
    if (!problem.empty())
      value = "error:rank 0 cannot start NCCL: " + problem;
    else if (r != ncclSuccess)
      value = "error:ncclGetUniqueId on rank 0: " +
              std::string(ncclGetErrorString(r));
    else
      value = "id:" + toHex(&id, sizeof id);
  }
  Result<std::string> got = broadcastFromRank0("loom/nccl/unique-id", value);
  if (!got.ok())
    return error("handing out NCCL's unique id: " + got.message());
  if (!problem.empty())
    return error(problem);
  if (got->rfind("error:", 0) == 0)
    return error(got->substr(6));
  ncclUniqueId id;
  if (got->rfind("id:", 0) != 0 || !fromHex(got->substr(3), &id, sizeof id))
    return error("rank 0 sent no NCCL unique id (got " +
                 std::to_string(got->size()) + " bytes)");
  auto comm = std::make_unique<NcclCommunicator>(mesh, rank, device, options);
  if (Status s = comm->start(id); !s.ok())
    return error(s.message());
  return std::unique_ptr<Communicator>(std::move(comm));
}

} // namespace cuda
} // namespace runtime
} // namespace loom
