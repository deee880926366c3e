//===- Job.h - one rank per process: launchers, communicators, watchdog -*- C++
//-*-===//
//
// A multi-process job: loom-run started N times by a launcher, one rank of
// the plan's mesh per process (docs/distributed.md).
//
//   Result<LaunchEnvironment> env = detectLaunch();       // mpirun, srun,
//   torchrun JobOptions o; o.mesh = mesh; o.comm = "auto"; auto job =
//   Job::join(*env, o);                        // store, watchdog, comm
//   SessionOptions s; s.job = job->get();                 // the session runs
//   rank job->rank()
//   ...
//   (*job)->finish();            // or (*job)->fail(why) and exit non-zero
//
// Ranks are the launcher's: Open MPI's OMPI_COMM_WORLD_RANK, Slurm's
// SLURM_PROCID, torchrun's RANK. World rank r is mesh rank r (row-major over
// the plan's axes, the last fastest: tp neighbours are adjacent ranks, as
// Megatron places them on one node), and a process uses GPU `local rank`.
//
// The job's store (loom/runtime/Store.h) runs in rank 0: at MASTER_ADDR:
// MASTER_PORT for torchrun- and srun-style launches, at a free port that
// MPI broadcasts under mpirun. Every process runs a watchdog thread that
// reports what its rank is doing; a rank that exits, is killed or stops
// reporting for the collective timeout fails the job, and every other rank's
// collectives return an error naming it, its mesh coordinates and what it
// was in.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_JOB_H
#define LOOM_RUNTIME_JOB_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace loom {
namespace runtime {

class StoreClient;

/// Who started this process, and its place among the job's processes.
struct LaunchEnvironment {
  enum class Launcher { None, OpenMpi, Slurm, Torchrun };
  Launcher launcher = Launcher::None;
  int64_t rank = 0, worldSize = 1;
  int64_t localRank = 0, localWorldSize = 1;
  /// The rendezvous address (torchrun's MASTER_ADDR/MASTER_PORT; set by the
  /// user's sbatch script under srun): empty / 0 when not given.
  std::string masterAddr;
  int masterPort = 0;
  /// "mpirun (OMPI_COMM_WORLD_RANK 3 of OMPI_COMM_WORLD_SIZE 8)".
  std::string describe() const;
  bool multiProcess() const { return launcher != Launcher::None; }
};

/// Reads the launcher's variables from `getenv` (the process's environment
/// by default). Precedence: Open MPI's OMPI_COMM_WORLD_*, then torchrun's
/// RANK/WORLD_SIZE (which a torchrun under srun sets over Slurm's), then
/// Slurm's SLURM_PROCID/SLURM_NTASKS inside an `srun` step
/// (SLURM_STEP_NUM_TASKS set; an sbatch script's own shell is not a rank).
/// A malformed or inconsistent value is an error naming the variable, its
/// value and what it should be.
Result<LaunchEnvironment>
detectLaunch(const std::function<const char *(const char *)> &getenv = nullptr);

struct JobOptions {
  MeshShape mesh;
  /// mpi, gloo, nccl or auto: nccl for a cuda backend, else mpi under
  /// mpirun and gloo otherwise.
  std::string comm = "auto";
  std::string backend = "cpu";
  double timeoutSeconds = 300;
};

/// This process's rank of a multi-process job.
class Job {
public:
  /// Checks that the launcher's world size is the mesh's (the message says
  /// both), starts the store (rank 0) and the watchdog, and creates the
  /// communicator.
  static Result<std::unique_ptr<Job>> join(const LaunchEnvironment &env,
                                           const JobOptions &options);
  ~Job();

  int64_t rank() const { return env_.rank; }
  int64_t worldSize() const { return env_.worldSize; }
  int64_t localRank() const { return env_.localRank; }
  const LaunchEnvironment &environment() const { return env_; }
  const MeshShape &mesh() const { return options_.mesh; }
  /// "mpi", "gloo" or "nccl".
  const std::string &commName() const { return commName_; }
  Communicator &communicator() { return *comm_; }
  /// The job's store (every rank holds a client).
  StoreClient &store() { return *store_; }
  CommMonitor &monitor();

  /// This rank failed: tells the others (through the store) and fails this
  /// process's collectives. The caller then exits non-zero; under mpirun,
  /// exitAfterFailure() kills the job's other processes too.
  void fail(const std::string &why);
  /// The job's failure as the watchdog knows it (empty while healthy).
  std::string failure();
  /// A normal end: goodbye to the store; rank 0 waits (at most the timeout)
  /// for the others before its store stops.
  Status finish();
  /// Exits the process with `code` after a failure: MPI_Abort under mpirun
  /// (mpirun then kills every rank), else _exit.
  [[noreturn]] void exitAfterFailure(int code);

  struct Impl;

private:
  Job() = default;
  LaunchEnvironment env_;
  JobOptions options_;
  std::string commName_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<StoreClient> store_;
  std::unique_ptr<Communicator> comm_;
};

/// The `gloo` communicator (Debian's Gloo, PyTorch's CPU backend): one rank
/// per process over TCP, the ranks connected through the job's store.
/// Sums run in group order, as the local communicator's.
Result<std::unique_ptr<Communicator>>
createGlooCommunicator(const MeshShape &mesh, int64_t rank, StoreClient &store,
                       const ProcessCommOptions &options);
bool glooAvailable();

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_JOB_H
