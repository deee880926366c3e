//===- Communicator.h - collectives among the ranks of a mesh ---*- C++ -*-===//
//
// A rank's view of the job's device mesh: collectives (all-reduce,
// all-gather, reduce-scatter, broadcast) along one mesh axis, and
// point-to-point send/recv along an axis. Backends implement Communicator;
// this header also declares the `local` backend, where every rank is a
// thread of one process (tests, CPU runs of multi-rank plans).
//
//   LocalCommunicatorGroup job(mesh, /*timeoutSeconds=*/60);
//   // on rank r's thread:
//   Communicator &comm = job.forRank(r);
//   Status s = comm.allReduce(mesh.axisIndex("tp"), grad, grad, n,
//                             CommDType::F32, ReduceKind::Sum,
//                             "all_reduce layers.0.attention (tp)");
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMMUNICATOR_H
#define LOOM_RUNTIME_COMMUNICATOR_H

#include "loom/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// Collectives on device buffers, enqueued on a GPU stream (the nccl
/// communicator's; loom/runtime/cuda/DeviceCollectives.h).
class DeviceCollectives;

/// The device mesh: named axes with sizes, e.g. {"dp",2},{"pp",1},{"tp",2}.
/// Ranks are numbered row-major over the axes in order (the LAST axis varies
/// fastest, so tp ranks are adjacent as in Megatron).
struct MeshShape {
  std::vector<std::string> names;
  std::vector<int64_t> sizes;

  /// Ok when names and sizes have the same length, names are non-empty and
  /// distinct, and every size is at least 1. The other members assume this.
  Status verify() const;
  /// The product of the sizes (1 for a mesh without axes).
  int64_t numRanks() const;
  /// One coordinate per axis.
  std::vector<int64_t> coordinates(int64_t rank) const;
  int64_t rankOf(const std::vector<int64_t> &coords) const;
  /// -1 if absent.
  int axisIndex(const std::string &name) const;
  /// "rank 3 (dp=1, pp=0, tp=1)".
  std::string describe(int64_t rank) const;
  /// How far apart in rank numbers two neighbours along `axis` are.
  int64_t stride(int axis) const;
  /// The ranks of `rank`'s group along `axis` (those sharing every other
  /// coordinate), in group-index order.
  std::vector<int64_t> groupMembers(int64_t rank, int axis) const;
};

enum class CommDType { F32, F64 };
/// Max propagates NaN: a NaN on any member gives NaN.
enum class ReduceKind { Sum, Max };

/// Bytes per element of `dtype`.
size_t commDTypeSize(CommDType dtype);
/// "f32", "f64".
const char *commDTypeName(CommDType dtype);
/// How errors name an all-gather or reduce-scatter call, the same in every
/// communicator: "'what' (all_gather of [outer 3, inner 5] x f32)".
std::string shapedCollectiveSignature(const char *kind, const std::string &what,
                                      size_t outer, size_t inner,
                                      CommDType dtype);

/// One rank's handle. A collective over mesh axis `axis` runs among the ranks
/// that share every coordinate but that axis ("the group"), in the order of
/// their coordinate on `axis` (group index). Every rank of a group must call
/// the same collectives in the same order. `what` is a short label for
/// errors (e.g. "all_reduce layers.0.attention (tp)").
///
/// Threads: calls on different axes may come from different threads (the
/// CPU executor reduces dp gradient buckets on a communication thread while
/// its own thread runs the tp collectives and pp sends), one thread per
/// axis at a time; the order of the calls on an axis is what pairs them up
/// across ranks. abort() may come from any thread.
class Communicator {
public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual const MeshShape &mesh() const = 0;

  /// out[i] = reduce over the group of in[i]; in == out allowed. Sums run in
  /// group order, so every rank gets bit-identical results.
  virtual Status allReduce(int axis, const void *in, void *out, size_t count,
                           CommDType dtype, ReduceKind op,
                           const std::string &what) = 0;
  /// in is [outer, inner]; out is [outer, n*inner] with group member g's
  /// block at columns [g*inner, (g+1)*inner). (This is an all-gather along
  /// any tensor dim.)
  virtual Status allGather(int axis, const void *in, void *out, size_t outer,
                           size_t inner, CommDType dtype,
                           const std::string &what) = 0;
  /// in is [outer, n*inner]; out is [outer, inner] = the sum over the group
  /// of everyone's block g = this rank's group index. Sum in group order.
  virtual Status reduceScatter(int axis, const void *in, void *out,
                               size_t outer, size_t inner, CommDType dtype,
                               const std::string &what) = 0;
  /// Copies root's data (group index `root`) to every member.
  virtual Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                           int64_t root, const std::string &what) = 0;
  /// Point-to-point along `axis`: to/from the group member at group index
  /// `peer`. A send matches the peer's recv with the same tag (in send
  /// order); sends do not deadlock with the receiver's progress (they are
  /// buffered: the data is copied).
  virtual Status send(int axis, int64_t peer, const void *data, size_t count,
                      CommDType dtype, int64_t tag,
                      const std::string &what) = 0;
  virtual Status recv(int axis, int64_t peer, void *data, size_t count,
                      CommDType dtype, int64_t tag,
                      const std::string &what) = 0;
  /// Marks the whole job failed: every rank blocked in (or later entering) a
  /// collective returns an error naming this rank and `why`. (A process
  /// communicator fails this process's calls; the job's watchdog tells the
  /// other processes: loom/runtime/Job.h.) Safe from any thread.
  virtual void abort(const std::string &why) = 0;

  /// World-level, among every rank of the job (for the session's whole
  /// state tensors, where a block may live on any rank): rank 0 receives
  /// every rank's `mine` (of any size, in rank order) in `*atRoot`; the
  /// other ranks' `atRoot` is left empty. Every rank must call it.
  virtual Status gatherToRoot(const std::vector<uint8_t> &mine,
                              std::vector<std::vector<uint8_t>> *atRoot,
                              const std::string &what);
  /// World-level: every rank leaves with rank 0's `bytes` (any size).
  virtual Status broadcastFromRoot(std::vector<uint8_t> &bytes,
                                   const std::string &what);

  /// The same collectives on device buffers, for a device backend to
  /// enqueue on its own stream instead of staging through the host; null
  /// (the default) when this communicator moves host memory only.
  virtual DeviceCollectives *deviceCollectives() { return nullptr; }
};

/// What a process communicator (mpi, gloo, nccl) tells the job's watchdog
/// and asks of it (loom/runtime/Job.h). The communicator names what it is
/// in, so that if this rank hangs or dies there the others can say so; and
/// while waiting it asks whether the job has failed elsewhere, and who is
/// late, so that a timeout names the rank that caused it.
class CommMonitor {
public:
  virtual ~CommMonitor() = default;
  /// The collective or send this rank is entering ("all_reduce 'bucket 0
  /// (dp)' #12 of the dp group"), until left().
  virtual void entering(const std::string &what) = 0;
  virtual void left() = 0;
  /// Empty while the job is healthy; else why it failed ("rank 3 (dp=1,
  /// tp=1) exited (killed by signal 9) while in send 'activation'").
  virtual std::string failure() = 0;
  /// For a timeout's message: what the watchdog knows of `ranks` (world
  /// ranks a collective waits for), e.g. "rank 3 (...) not heard from for
  /// 12 s, last in 'send ...'"; empty when it knows nothing.
  virtual std::string explainLate(const std::vector<int64_t> &ranks) = 0;
};

/// How a process communicator behaves: its timeout (as the local one's; a
/// non-positive one waits forever) and the job's watchdog (may be null).
struct ProcessCommOptions {
  double timeoutSeconds = 300;
  CommMonitor *monitor = nullptr;
};

/// The `mpi` communicator (Open MPI): one rank per process, started by
/// mpirun (or srun with PMIx). `rank` must be MPI_COMM_WORLD's rank and the
/// world's size the mesh's. Call after initializeMpi(). Sums run in group
/// order (an all-to-all, then every member's block summed in group order,
/// then an all-gather), so results are bit-identical to the local
/// communicator's. Null when this build has no MPI (mpiAvailable()).
Result<std::unique_ptr<Communicator>>
createMpiCommunicator(const MeshShape &mesh, int64_t rank,
                      const ProcessCommOptions &options);
/// Whether this build has the mpi communicator.
bool mpiAvailable();
/// MPI_Init_thread (once per process; MPI_THREAD_MULTIPLE), and the world's
/// rank and size. finalizeMpi() at a normal exit; abortMpi() on failure
/// (every process of the job is killed).
Status initializeMpi(int64_t *rank, int64_t *size);
void finalizeMpi();
[[noreturn]] void abortMpi(int code);
/// MPI_Bcast over MPI_COMM_WORLD from rank 0 (an address, NCCL's unique
/// id): every rank returns rank 0's `valueAtRoot`.
Result<std::string> mpiBroadcastFromRank0(const std::string &valueAtRoot);

/// The `local` communicator: every rank of `mesh` is a thread of this
/// process. Create one LocalCommunicatorGroup per job; hand rank r the
/// handle forRank(r) (used by one thread per mesh axis at a time).
///
/// A collective that waits longer than `timeoutSeconds` for the group's
/// other members returns an error that names the waiting rank (with
/// coordinates), the collective (`what`), its sequence number in that group,
/// and which group members had not arrived; members arriving later at that
/// collective get an error too (nobody reads a buffer whose owner gave up).
/// A non-positive timeout waits forever. A rank calling a different
/// collective kind or size than its peers in the same slot gets an error
/// naming both, and so do its peers. In a group of size 1, collectives copy
/// in to out without waiting.
class LocalCommunicatorGroup {
public:
  /// `mesh` must verify() ok.
  LocalCommunicatorGroup(MeshShape mesh, double timeoutSeconds);
  ~LocalCommunicatorGroup();
  LocalCommunicatorGroup(const LocalCommunicatorGroup &) = delete;
  LocalCommunicatorGroup &operator=(const LocalCommunicatorGroup &) = delete;

  /// Requires 0 <= rank < mesh.numRanks().
  Communicator &forRank(int64_t rank);
  const MeshShape &mesh() const;

  struct State; // shared by the ranks' handles (LocalCommunicator.cpp)

private:
  std::unique_ptr<State> state_;
  std::vector<std::unique_ptr<Communicator>> ranks_;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_COMMUNICATOR_H
