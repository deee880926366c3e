//===- MpiCommunicator.cpp - one rank per process, on Open MPI ------------===//
//
// The `mpi` communicator: every mesh axis's groups are communicators split
// from MPI_COMM_WORLD (colour: the group's first member, key: the group
// index, so a group's MPI rank is its group index).
//
// Sums run in group order, as the local communicator's, so that a job of
// processes gives the bits a job of threads gives: an all-reduce is an
// all-to-all (member g receives everyone's g-th block), each member sums
// the blocks it received in group order, then an all-gather of the sums;
// a reduce-scatter is the first two. That moves what a ring all-reduce
// moves (2(n-1)/n of the data per rank) in two collective latencies.
//
// Every wait is non-blocking (MPI_Test in a loop that backs off to short
// sleeps, so oversubscribed ranks leave the cores to the ones computing),
// so it can time out, see an abort, and ask the job's watchdog whether
// another rank has failed. A failed wait cannot cancel what MPI has
// started: the job is over then, and the caller exits (abortMpi kills the
// rest of the job).
//
// Pipeline sends copy the data and complete in the background (the
// interface's sends are buffered); a receive probes the message first
// (MPI_Improbe), so a size or type the receiver did not expect is an error
// naming both, not a truncation.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Communicator.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <sstream>
#include <thread>

#ifdef LOOM_HAVE_MPI
// The C API only: Open MPI's (deprecated) C++ bindings need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace loom {
namespace runtime {

#ifndef LOOM_HAVE_MPI

bool mpiAvailable() { return false; }
Status initializeMpi(int64_t *, int64_t *) {
  return Status::error("this build of Loom has no MPI: install Open MPI "
                       "(Debian: libopenmpi-dev) and rebuild");
}
void finalizeMpi() {}
void abortMpi(int code) { std::_Exit(code); }
Result<std::string> mpiBroadcastFromRank0(const std::string &) {
  return Status::error("this build of Loom has no MPI");
}
Result<std::unique_ptr<Communicator>>
createMpiCommunicator(const MeshShape &, int64_t, const ProcessCommOptions &) {
  return Status::error("the mpi communicator: this build of Loom has no MPI "
                       "(install Open MPI, Debian's libopenmpi-dev, and "
                       "rebuild)");
}

#else

namespace {

std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, size_t(length));
}

std::string seconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

/// MPI counts are ints: collectives on more elements run in pieces of at
/// most this many.
constexpr size_t kMaxPieceElements = size_t(1) << 28;

MPI_Datatype mpiType(CommDType dtype) {
  return dtype == CommDType::F32 ? MPI_FLOAT : MPI_DOUBLE;
}

template <typename T>
void combineInto(T *acc, const T *x, size_t n, ReduceKind op) {
  if (op == ReduceKind::Sum) {
    for (size_t i = 0; i < n; ++i)
      acc[i] = acc[i] + x[i];
  } else {
    // Max, NaN wins (as the local communicator).
    for (size_t i = 0; i < n; ++i)
      acc[i] = (x[i] > acc[i] || x[i] != x[i]) ? x[i] : acc[i];
  }
}

void combineBytes(void *acc, const void *x, size_t n, CommDType dtype,
                  ReduceKind op) {
  if (dtype == CommDType::F32)
    combineInto(static_cast<float *>(acc), static_cast<const float *>(x), n,
                op);
  else
    combineInto(static_cast<double *>(acc), static_cast<const double *>(x), n,
                op);
}

class MpiCommunicator final : public Communicator {
public:
  MpiCommunicator(const MeshShape &mesh, int64_t rank,
                  const ProcessCommOptions &options)
      : mesh_(mesh), rank_(rank), options_(options), seq_(mesh.sizes.size(), 0),
        self_(mesh.describe(rank)) {}

  ~MpiCommunicator() override {
    // Sends still in flight: wait for them (bounded), so their buffers
    // outlive MPI's use of them; a failed job leaves them to MPI_Abort.
    if (aborted_)
      return; // requests may be active: leave the communicators to MPI_Abort
    (void)completeSends(/*all=*/true);
    for (MPI_Comm &c : axes_)
      if (c != MPI_COMM_NULL)
        MPI_Comm_free(&c);
    if (world_ != MPI_COMM_NULL)
      MPI_Comm_free(&world_);
  }

  Status init() {
    int provided = 0;
    MPI_Query_thread(&provided);
    serialize_ = provided < MPI_THREAD_MULTIPLE;
    if (int e = MPI_Comm_dup(MPI_COMM_WORLD, &world_); e != MPI_SUCCESS)
      return Status::error(self_ + ": MPI_Comm_dup: " + mpiError(e));
    MPI_Comm_set_errhandler(world_, MPI_ERRORS_RETURN);
    std::vector<int64_t> coords = mesh_.coordinates(rank_);
    for (size_t a = 0; a < mesh_.sizes.size(); ++a) {
      std::vector<int64_t> members = mesh_.groupMembers(rank_, int(a));
      MPI_Comm c = MPI_COMM_NULL;
      if (int e = MPI_Comm_split(world_, int(members[0]), int(coords[a]), &c);
          e != MPI_SUCCESS)
        return Status::error(self_ + ": MPI_Comm_split for the " +
                             mesh_.names[a] + " groups: " + mpiError(e));
      MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
      axes_.push_back(c);
    }
    int ub = 0, flag = 0;
    void *value = nullptr;
    MPI_Comm_get_attr(world_, MPI_TAG_UB, &value, &flag);
    ub = flag ? *static_cast<int *>(value) : 32767;
    tagUpperBound_ = ub;
    return Status::success();
  }

  int64_t rank() const override { return rank_; }
  const MeshShape &mesh() const override { return mesh_; }

  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op,
                   const std::string &what) override {
    size_t esz = commDTypeSize(dtype);
    std::string sig = "'" + what + "' (all_reduce of " + std::to_string(count) +
                      " x " + commDTypeName(dtype) +
                      (op == ReduceKind::Sum ? ", sum)" : ", max)");
    Call call(*this, axis, sig);
    if (!call.ok())
      return call.status;
    if (call.n == 1) {
      if (in != out && count)
        std::memmove(out, in, count * esz);
      return Status::success();
    }
    size_t n = size_t(call.n);
    auto *src = static_cast<const unsigned char *>(in);
    auto *dst = static_cast<unsigned char *>(out);
    for (size_t start = 0; start < count; start += kMaxPieceElements) {
      size_t piece = std::min(count - start, kMaxPieceElements);
      // Member g owns elements [lo(g), lo(g + 1)) of the piece.
      std::vector<int> counts(n), displs(n);
      for (size_t g = 0; g < n; ++g) {
        size_t lo = piece * g / n, hi = piece * (g + 1) / n;
        counts[g] = int(hi - lo);
        displs[g] = int(lo);
      }
      size_t mine = size_t(counts[size_t(call.me)]);
      unsigned char *received = call.buffer(n * mine * esz);
      unsigned char *sum = call.buffer(mine * esz);
      std::vector<int> recvCounts(n, int(mine)), recvDispls(n);
      for (size_t g = 0; g < n; ++g)
        recvDispls[g] = int(g * mine);
      const unsigned char *pieceIn = src + start * esz;
      MPI_Request request;
      if (Status s = call.start("MPI_Ialltoallv",
                                [&] {
                                  return MPI_Ialltoallv(
                                      pieceIn, counts.data(), displs.data(),
                                      mpiType(dtype), received,
                                      recvCounts.data(), recvDispls.data(),
                                      mpiType(dtype), axes_[size_t(axis)],
                                      &request);
                                });
          !s.ok())
        return s;
      if (Status s = call.wait(request); !s.ok())
        return s;
      // Group order: member 0's block, then 1's, ... (the local one's order).
      if (mine) {
        std::memcpy(sum, received, mine * esz);
        for (size_t g = 1; g < n; ++g)
          combineBytes(sum, received + g * mine * esz, mine, dtype, op);
      }
      if (Status s = call.start("MPI_Iallgatherv",
                                [&] {
                                  return MPI_Iallgatherv(
                                      sum, int(mine), mpiType(dtype),
                                      dst + start * esz, counts.data(),
                                      displs.data(), mpiType(dtype),
                                      axes_[size_t(axis)], &request);
                                });
          !s.ok())
        return s;
      if (Status s = call.wait(request); !s.ok())
        return s;
      call.keep.clear(); // this piece is done
    }
    return Status::success();
  }

  Status allGather(int axis, const void *in, void *out, size_t outer,
                   size_t inner, CommDType dtype,
                   const std::string &what) override {
    size_t esz = commDTypeSize(dtype);
    Call call(
        *this, axis,
        shapedCollectiveSignature("all_gather", what, outer, inner, dtype));
    if (!call.ok())
      return call.status;
    size_t n = size_t(call.n), block = outer * inner * esz;
    bool done = false;
    if (Status s = aloneOrBounded(call, in, out, block, outer * inner, &done);
        !s.ok() || done)
      return s;
    // Gathered as [member][outer][inner], then laid out [outer][member][inner].
    unsigned char *gathered = call.buffer(n * block);
    MPI_Request request;
    if (Status s = call.start("MPI_Iallgather",
                              [&] {
                                return MPI_Iallgather(
                                    in, int(outer * inner), mpiType(dtype),
                                    gathered, int(outer * inner),
                                    mpiType(dtype), axes_[size_t(axis)],
                                    &request);
                              });
        !s.ok())
      return s;
    if (Status s = call.wait(request); !s.ok())
      return s;
    auto *d = static_cast<unsigned char *>(out);
    size_t row = inner * esz;
    for (size_t o = 0; o < outer; ++o)
      for (size_t g = 0; g < n; ++g)
        std::memcpy(d + (o * n + g) * row, gathered + g * block + o * row, row);
    return Status::success();
  }

  Status reduceScatter(int axis, const void *in, void *out, size_t outer,
                       size_t inner, CommDType dtype,
                       const std::string &what) override {
    size_t esz = commDTypeSize(dtype);
    Call call(
        *this, axis,
        shapedCollectiveSignature("reduce_scatter", what, outer, inner, dtype));
    if (!call.ok())
      return call.status;
    size_t n = size_t(call.n), row = inner * esz, block = outer * row;
    auto *src = static_cast<const unsigned char *>(in);
    bool done = false;
    if (Status s = aloneOrBounded(call, in, out, block, outer * inner, &done);
        !s.ok() || done)
      return s;
    // Member g's block of every row, packed: [member][outer][inner].
    unsigned char *packed = call.buffer(n * block);
    unsigned char *received = call.buffer(n * block);
    for (size_t g = 0; g < n; ++g)
      for (size_t o = 0; o < outer; ++o)
        std::memcpy(packed + g * block + o * row, src + (o * n + g) * row, row);
    MPI_Request request;
    if (Status s = call.start(
            "MPI_Ialltoall",
            [&] {
              return MPI_Ialltoall(packed, int(outer * inner), mpiType(dtype),
                                   received, int(outer * inner), mpiType(dtype),
                                   axes_[size_t(axis)], &request);
            });
        !s.ok())
      return s;
    if (Status s = call.wait(request); !s.ok())
      return s;
    auto *d = static_cast<unsigned char *>(out);
    if (block) {
      std::memcpy(d, received, block);
      for (size_t g = 1; g < n; ++g)
        combineBytes(d, received + g * block, outer * inner, dtype,
                     ReduceKind::Sum);
    }
    return Status::success();
  }

  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, const std::string &what) override {
    Call call(*this, axis,
              "'" + what + "' (broadcast of " + std::to_string(count) + " x " +
                  commDTypeName(dtype) + ", root " + std::to_string(root) +
                  ")");
    if (!call.ok())
      return call.status;
    if (root < 0 || root >= call.n)
      return Status::error(self_ + ": broadcast '" + what + "' names root " +
                           std::to_string(root) + ", but the " +
                           mesh_.names[size_t(axis)] + " group has " +
                           std::to_string(call.n) + " members");
    if (call.n == 1)
      return Status::success();
    auto *d = static_cast<unsigned char *>(data);
    size_t esz = commDTypeSize(dtype);
    for (size_t start = 0; start < count; start += kMaxPieceElements) {
      size_t piece = std::min(count - start, kMaxPieceElements);
      MPI_Request request;
      if (Status s = call.start("MPI_Ibcast",
                                [&] {
                                  return MPI_Ibcast(d + start * esz, int(piece),
                                                    mpiType(dtype), int(root),
                                                    axes_[size_t(axis)],
                                                    &request);
                                });
          !s.ok())
        return s;
      if (Status s = call.wait(request); !s.ok())
        return s;
    }
    return Status::success();
  }

  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, const std::string &what) override {
    if (Status s = checkPeer(axis, peer, tag, "send", what); !s.ok())
      return s;
    size_t bytes = count * commDTypeSize(dtype);
    if (bytes > size_t(INT32_MAX))
      return Status::error(self_ + ": send '" + what + "' of " +
                           std::to_string(bytes) +
                           " bytes: the mpi "
                           "communicator sends at most 2^31 - 1 bytes at once");
    if (Status s = completeSends(false); !s.ok())
      return s;
    Pending p;
    p.bytes.assign(static_cast<const unsigned char *>(data),
                   static_cast<const unsigned char *>(data) + bytes);
    p.what = "send '" + what + "' to " +
             mesh_.describe(mesh_.groupMembers(rank_, axis)[size_t(peer)]) +
             " (tag " + std::to_string(tag) + ")";
    options_.monitor ? options_.monitor->entering(p.what) : void();
    int e;
    {
      Lock lock(*this);
      e = MPI_Isend(p.bytes.data(), int(bytes), MPI_BYTE, int(peer),
                    mpiTag(tag, dtype == CommDType::F64), axes_[size_t(axis)],
                    &p.request);
    }
    options_.monitor ? options_.monitor->left() : void();
    if (e != MPI_SUCCESS)
      return Status::error(self_ + ": " + p.what +
                           ": MPI_Isend: " + mpiError(e));
    sends_.push_back(std::move(p));
    return Status::success();
  }

  Status recv(int axis, int64_t peer, void *data, size_t count, CommDType dtype,
              int64_t tag, const std::string &what) override {
    if (Status s = checkPeer(axis, peer, tag, "recv", what); !s.ok())
      return s;
    int64_t src = mesh_.groupMembers(rank_, axis)[size_t(peer)];
    std::string label = "recv '" + what + "' from " + mesh_.describe(src) +
                        " along " + mesh_.names[size_t(axis)] + ", tag " +
                        std::to_string(tag);
    if (options_.monitor)
      options_.monitor->entering(label);
    struct Leave {
      CommMonitor *m;
      ~Leave() {
        if (m)
          m->left();
      }
    } leave{options_.monitor};
    size_t bytes = count * commDTypeSize(dtype);
    MPI_Message message;
    MPI_Status status;
    // Probe both element types: a message of the other one is an error.
    int matchedTag = -1;
    if (Status s =
            poll(label, {src},
                 [&]() -> Result<bool> {
                   for (int t : {mpiTag(tag, false), mpiTag(tag, true)}) {
                     int found = 0;
                     Lock lock(*this);
                     if (int e = MPI_Improbe(int(peer), t, axes_[size_t(axis)],
                                             &found, &message, &status);
                         e != MPI_SUCCESS)
                       return Status::error("MPI_Improbe: " + mpiError(e));
                     if (found) {
                       matchedTag = t;
                       return true;
                     }
                   }
                   // Our own sends progress while we wait for the peer's.
                   if (Status s = completeSends(false); !s.ok())
                     return s;
                   return false;
                 });
        !s.ok())
      return s;
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    std::vector<unsigned char> sink;
    bool typeOk = (matchedTag & 1) == (dtype == CommDType::F64);
    bool fits = typeOk && size_t(got) == bytes;
    if (!fits)
      sink.resize(size_t(got));
    int e;
    {
      Lock lock(*this);
      e = MPI_Mrecv(fits ? data : sink.data(), got, MPI_BYTE, &message,
                    MPI_STATUS_IGNORE);
    }
    if (e != MPI_SUCCESS)
      return Status::error(self_ + ": " + label +
                           ": MPI_Mrecv: " + mpiError(e));
    if (!fits)
      return Status::error(
          self_ + ": " + label + ": expected " + std::to_string(count) + " x " +
          commDTypeName(dtype) + ", but the peer sent " +
          std::to_string(size_t(got) / ((matchedTag & 1) ? 8 : 4)) + " x " +
          ((matchedTag & 1) ? "f64" : "f32"));
    return Status::success();
  }

  /// A wait failed: the collective it waited for may still be running in
  /// MPI, so its buffers are kept, and every later call fails (pairing a
  /// new collective with the stale one would mix their data). The job is
  /// over: the caller exits.
  void giveUp(const std::string &why,
              std::vector<std::unique_ptr<std::vector<unsigned char>>> keep) {
    std::lock_guard<std::mutex> lock(abortMutex_);
    for (auto &b : keep)
      abandoned_.push_back(std::move(b));
    if (!aborted_) {
      abortMessage_ = "an earlier call failed: " + why;
      aborted_ = true;
    }
  }

  void abort(const std::string &why) override {
    std::lock_guard<std::mutex> lock(abortMutex_);
    if (!aborted_) {
      abortMessage_ = self_ + " aborted the job: " + why;
      aborted_ = true;
    }
  }

  Status gatherToRoot(const std::vector<uint8_t> &mine,
                      std::vector<std::vector<uint8_t>> *atRoot,
                      const std::string &what) override {
    Call call(*this, kWorld, "'" + what + "' (gather to rank 0)");
    if (!call.ok())
      return call.status;
    int64_t n = mesh_.numRanks();
    // Sizes first, then every rank's bytes in pieces of at most 1 GiB
    // (MPI counts are ints).
    long long size = (long long)mine.size();
    std::vector<long long> sizes(rank_ == 0 ? size_t(n) : 0);
    MPI_Request request;
    if (Status s = call.start("MPI_Igather",
                              [&] {
                                return MPI_Igather(
                                    &size, 1, MPI_LONG_LONG, sizes.data(), 1,
                                    MPI_LONG_LONG, 0, world_, &request);
                              });
        !s.ok())
      return s;
    if (Status s = call.wait(request); !s.ok())
      return s;
    constexpr size_t kPiece = size_t(1) << 30;
    constexpr int kGatherTag = 1 << 14;
    if (rank_ != 0) {
      for (size_t at = 0; at < mine.size(); at += kPiece) {
        size_t piece = std::min(kPiece, mine.size() - at);
        if (Status s = call.start("MPI_Isend",
                                  [&] {
                                    return MPI_Isend(
                                        mine.data() + at, int(piece), MPI_BYTE,
                                        0, kGatherTag, world_, &request);
                                  });
            !s.ok())
          return s;
        if (Status s = call.wait(request); !s.ok())
          return s;
      }
      return Status::success();
    }
    atRoot->assign(size_t(n), {});
    (*atRoot)[0] = mine;
    for (int64_t r = 1; r < n; ++r) {
      std::vector<uint8_t> &into = (*atRoot)[size_t(r)];
      into.resize(size_t(sizes[size_t(r)]));
      for (size_t at = 0; at < into.size(); at += kPiece) {
        size_t piece = std::min(kPiece, into.size() - at);
        if (Status s = call.start("MPI_Irecv",
                                  [&] {
                                    return MPI_Irecv(
                                        into.data() + at, int(piece), MPI_BYTE,
                                        int(r), kGatherTag, world_, &request);
                                  });
            !s.ok())
          return s;
        if (Status s = call.wait(request); !s.ok())
          return s;
      }
    }
    return Status::success();
  }

  Status broadcastFromRoot(std::vector<uint8_t> &bytes,
                           const std::string &what) override {
    Call call(*this, kWorld, "'" + what + "' (broadcast from rank 0)");
    if (!call.ok())
      return call.status;
    long long size = (long long)bytes.size();
    MPI_Request request;
    if (Status s = call.start("MPI_Ibcast",
                              [&] {
                                return MPI_Ibcast(&size, 1, MPI_LONG_LONG, 0,
                                                  world_, &request);
                              });
        !s.ok())
      return s;
    if (Status s = call.wait(request); !s.ok())
      return s;
    bytes.resize(size_t(size));
    constexpr size_t kPiece = size_t(1) << 30;
    for (size_t at = 0; at < bytes.size(); at += kPiece) {
      size_t piece = std::min(kPiece, bytes.size() - at);
      if (Status s = call.start("MPI_Ibcast",
                                [&] {
                                  return MPI_Ibcast(bytes.data() + at,
                                                    int(piece), MPI_BYTE, 0,
                                                    world_, &request);
                                });
          !s.ok())
        return s;
      if (Status s = call.wait(request); !s.ok())
        return s;
    }
    return Status::success();
  }

private:
  static constexpr int kWorld = -1000;
  /// MPI calls under a lock only when MPI gave less than
  /// MPI_THREAD_MULTIPLE (the executor's comm thread and its own thread may
  /// call on different axes at once).
  struct Lock {
    explicit Lock(MpiCommunicator &c) : c(c) {
      if (c.serialize_)
        c.mpiMutex_.lock();
    }
    ~Lock() {
      if (c.serialize_)
        c.mpiMutex_.unlock();
    }
    MpiCommunicator &c;
  };

  /// One collective call: its group, label, sequence number and the
  /// watchdog's view of it.
  struct Call {
    /// axis kWorld: every rank (gatherToRoot, broadcastFromRoot).
    Call(MpiCommunicator &c, int axis, const std::string &signature) : c(c) {
      if (c.aborted_) {
        std::lock_guard<std::mutex> lock(c.abortMutex_);
        status = Status::error(c.self_ + ": " + signature +
                               " failed: " + c.abortMessage_);
        return;
      }
      if (axis != kWorld && (axis < 0 || axis >= int(c.mesh_.sizes.size()))) {
        status = Status::error(c.self_ + ": " + signature + " along axis " +
                               std::to_string(axis) + ", but the mesh has " +
                               std::to_string(c.mesh_.sizes.size()) + " axes");
        return;
      }
      if (axis == kWorld) {
        n = c.mesh_.numRanks();
        me = c.rank_;
        for (int64_t r = 0; r < n; ++r)
          members.push_back(r);
        label =
            signature + ", world collective #" + std::to_string(c.worldSeq_++);
      } else {
        members = c.mesh_.groupMembers(c.rank_, axis);
        n = int64_t(members.size());
        me = c.mesh_.coordinates(c.rank_)[size_t(axis)];
        if (n == 1)
          return;
        std::string list;
        for (int64_t m : members)
          list += (list.empty() ? "" : ", ") + std::to_string(m);
        label = signature + ", collective #" +
                std::to_string(c.seq_[size_t(axis)]++) + " of the " +
                c.mesh_.names[size_t(axis)] + " group of ranks {" + list + "}";
      }
      if (c.options_.monitor) {
        c.options_.monitor->entering(label);
        entered = true;
      }
    }
    ~Call() {
      if (entered)
        c.options_.monitor->left();
    }
    bool ok() const { return status.ok(); }
    template <typename F> Status start(const char *name, F f) {
      int e;
      {
        Lock lock(c);
        e = f();
      }
      if (e != MPI_SUCCESS)
        return Status::error(c.self_ + ": " + label + ": " + name + ": " +
                             mpiError(e));
      return Status::success();
    }
    Status wait(MPI_Request &request) {
      std::vector<int64_t> others;
      for (int64_t m : members)
        if (m != c.rank_)
          others.push_back(m);
      Status s = c.poll(label, others, [&]() -> Result<bool> {
        int done = 0;
        Lock lock(c);
        if (int e = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
            e != MPI_SUCCESS)
          return Status::error("MPI_Test: " + mpiError(e));
        return done != 0;
      });
      if (!s.ok())
        c.giveUp(s.message(), std::move(keep));
      return s;
    }
    /// Scratch that lives as long as MPI may use it: the call, or, after a
    /// failed wait (MPI cannot cancel a started collective, and later MPI
    /// calls of any thread progress it), the communicator.
    unsigned char *buffer(size_t bytes) {
      keep.push_back(std::make_unique<std::vector<unsigned char>>(bytes));
      return keep.back()->data();
    }
    std::vector<std::unique_ptr<std::vector<unsigned char>>> keep;
    MpiCommunicator &c;
    Status status = Status::success();
    std::vector<int64_t> members;
    int64_t n = 1, me = 0;
    std::string label;
    bool entered = false;
  };

  /// Calls `test` until it gives true, an error, an abort, the job's
  /// failure (the watchdog) or the timeout. `waitingFor`: the ranks a
  /// timeout names.
  template <typename Test>
  Status poll(const std::string &label, const std::vector<int64_t> &waitingFor,
              Test test) {
    using Clock = std::chrono::steady_clock;
    auto start = Clock::now();
    double timeout = options_.timeoutSeconds;
    for (int64_t spins = 0;; ++spins) {
      Result<bool> done = test();
      if (!done.ok())
        return Status::error(self_ + ": " + label + ": " + done.message());
      if (*done)
        return Status::success();
      if (aborted_) {
        std::lock_guard<std::mutex> lock(abortMutex_);
        return Status::error(self_ + ": " + label +
                             " failed: " + abortMessage_);
      }
      if ((spins & 63) == 0 && options_.monitor) {
        std::string failure = options_.monitor->failure();
        if (!failure.empty())
          return Status::error(self_ + ": " + label + " failed: " + failure);
      }
      double waited =
          std::chrono::duration<double>(Clock::now() - start).count();
      if (timeout > 0 && waited > timeout) {
        std::string late =
            options_.monitor ? options_.monitor->explainLate(waitingFor) : "";
        std::string names;
        for (int64_t r : waitingFor)
          names += (names.empty() ? "" : ", ") + mesh_.describe(r);
        return Status::error(self_ + " timed out after " + seconds(timeout) +
                             " s in " + label + "; waiting for " + names +
                             (late.empty() ? "" : ": " + late));
      }
      // Spin briefly (a collective's peers are usually close), then yield
      // the core to ranks still computing (an oversubscribed node).
      if (spins < 200)
        continue;
      if (spins < 2000)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  Status checkPeer(int axis, int64_t peer, int64_t tag, const char *kind,
                   const std::string &what) {
    if (aborted_) {
      std::lock_guard<std::mutex> lock(abortMutex_);
      return Status::error(self_ + ": " + kind + " '" + what +
                           "' failed: " + abortMessage_);
    }
    if (axis < 0 || axis >= int(mesh_.sizes.size()))
      return Status::error(self_ + ": " + kind + " '" + what + "' along axis " +
                           std::to_string(axis) + ", but the mesh has " +
                           std::to_string(mesh_.sizes.size()) + " axes");
    if (peer < 0 || peer >= mesh_.sizes[size_t(axis)])
      return Status::error(self_ + ": " + kind + " '" + what + "' names peer " +
                           std::to_string(peer) + ", but the " +
                           mesh_.names[size_t(axis)] + " group has " +
                           std::to_string(mesh_.sizes[size_t(axis)]) +
                           " members");
    if (tag < -(int64_t(tagUpperBound_) / 4) ||
        tag > (int64_t(tagUpperBound_) - 1) / 4)
      return Status::error(self_ + ": " + kind + " '" + what + "' has tag " +
                           std::to_string(tag) +
                           "; this MPI carries tags of "
                           "magnitude up to " +
                           std::to_string((tagUpperBound_ - 1) / 4));
    return Status::success();
  }

  /// MPI tags are non-negative: the interface's tag (the pipeline's tied
  /// gradients use negative ones) zigzag-encoded, times two, plus the
  /// element type (so a receive expecting another type finds the message
  /// and reports the mismatch instead of truncating).
  static int mpiTag(int64_t tag, bool f64) {
    int64_t zigzag = tag >= 0 ? 2 * tag : -2 * tag - 1;
    return int(zigzag * 2 + (f64 ? 1 : 0));
  }

  /// An all-gather's or reduce-scatter's start: alone in its group, a copy
  /// (*done); else its block within what one MPI call moves.
  Status aloneOrBounded(const Call &call, const void *in, void *out,
                        size_t block, size_t elements, bool *done) {
    if (call.n == 1) {
      if (in != out && block)
        std::memmove(out, in, block);
      *done = true;
      return Status::success();
    }
    if (elements > kMaxPieceElements)
      return Status::error(self_ + ": " + call.label +
                           ": more than 2^28 "
                           "elements per rank; the mpi communicator moves at "
                           "most that in one call");
    return Status::success();
  }

  /// Reaps finished sends; with `all`, waits (with the timeout) for every
  /// one.
  Status completeSends(bool all) {
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      {
        Lock lock(*this);
        MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
      }
      if (!done && all) {
        MPI_Request &request = it->request;
        Status s = poll(it->what, {}, [&]() -> Result<bool> {
          int finished = 0;
          Lock lock(*this);
          MPI_Test(&request, &finished, MPI_STATUS_IGNORE);
          return finished != 0;
        });
        if (!s.ok())
          return s;
        done = 1;
      }
      it = done ? sends_.erase(it) : std::next(it);
    }
    return Status::success();
  }

  struct Pending {
    MPI_Request request = MPI_REQUEST_NULL;
    std::vector<unsigned char> bytes;
    std::string what;
  };

  MeshShape mesh_;
  int64_t rank_;
  ProcessCommOptions options_;
  std::vector<int64_t> seq_; // per axis; each axis is called from one thread
  int64_t worldSeq_ = 0;
  std::string self_;
  MPI_Comm world_ = MPI_COMM_NULL;
  std::vector<MPI_Comm> axes_;
  int tagUpperBound_ = 32767;
  bool serialize_ = true;
  std::mutex mpiMutex_;
  std::list<Pending> sends_; // the pipeline's sends come from one thread
  std::atomic<bool> aborted_{false};
  std::mutex abortMutex_;
  std::string abortMessage_;
  std::vector<std::unique_ptr<std::vector<unsigned char>>> abandoned_;
};

} // namespace

bool mpiAvailable() { return true; }

Status initializeMpi(int64_t *rank, int64_t *size) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (int e =
            MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
        e != MPI_SUCCESS)
      return Status::error("MPI_Init_thread failed: " + mpiError(e));
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int r = 0, n = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  *rank = r;
  *size = n;
  return Status::success();
}

void finalizeMpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized)
    MPI_Finalize();
}

Result<std::string> mpiBroadcastFromRank0(const std::string &valueAtRoot) {
  // Before any communicator exists, so a blocking call: rank 0 is alive
  // (it is what every rank is waiting for).
  long long size = (long long)valueAtRoot.size();
  if (int e = MPI_Bcast(&size, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
      e != MPI_SUCCESS)
    return Status::error("MPI_Bcast: " + mpiError(e));
  std::string value = valueAtRoot;
  value.resize(size_t(size));
  if (size && MPI_Bcast(value.data(), int(size), MPI_CHAR, 0, MPI_COMM_WORLD) !=
                  MPI_SUCCESS)
    return Status::error("MPI_Bcast of " + std::to_string(size) +
                         " bytes "
                         "failed");
  return value;
}

void abortMpi(int code) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

Result<std::unique_ptr<Communicator>>
createMpiCommunicator(const MeshShape &mesh, int64_t rank,
                      const ProcessCommOptions &options) {
  if (Status s = mesh.verify(); !s.ok())
    return s;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    return Status::error("the mpi communicator: call initializeMpi first");
  int size = 0, worldRank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  if (size != mesh.numRanks() || worldRank != rank)
    return Status::error("the mpi communicator: MPI_COMM_WORLD has " +
                         std::to_string(size) + " ranks (this is " +
                         std::to_string(worldRank) + "); the mesh has " +
                         std::to_string(mesh.numRanks()) +
                         " and this rank "
                         "was given as " +
                         std::to_string(rank));
  auto comm = std::make_unique<MpiCommunicator>(mesh, rank, options);
  if (Status s = comm->init(); !s.ok())
    return s;
  return std::unique_ptr<Communicator>(std::move(comm));
}

#endif // LOOM_HAVE_MPI

} // namespace runtime
} // namespace loom
