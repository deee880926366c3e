//===- Job.cpp - this process's rank of a multi-process job ---------------===//
//
// Job::join: the launcher's world against the plan's mesh, the job's store
// (rank 0 hosts it), the watchdog, then the communicator. Under mpirun the
// store's address is rank 0's host and a free port, broadcast by MPI; for
// torchrun- and srun-style launches it is MASTER_ADDR:MASTER_PORT.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Job.h"
#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/Store.h"
#include "loom/runtime/cuda/CudaBackend.h"

#include "Watchdog.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sched.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace loom {
namespace runtime {

struct Job::Impl {
  std::unique_ptr<StoreServer> server; // rank 0
  std::unique_ptr<Watchdog> watchdog;
  bool mpi = false;
  bool finished = false;
  std::string rank0Host; // where rank 0 (the store) runs, and its pid
  int64_t rank0Pid = 0;
};

namespace {

std::string hostName() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0)
    return "localhost";
  return name;
}

/// After a failure, how long the watchdog lets the process stop by itself.
constexpr double kGraceSeconds = 10;

std::string exePath(const std::string &pid) {
  char path[4096];
  ssize_t n =
      ::readlink(("/proc/" + pid + "/exe").c_str(), path, sizeof(path) - 1);
  return n > 0 ? std::string(path, size_t(n)) : std::string();
}

/// Whether `pid` is a stopped (SIGSTOP, or traced) loom-run of this
/// program: the same executable, so a pid of another machine or another
/// PID namespace that happens to exist here is left alone.
bool stoppedLoomRank(int64_t pid) {
  if (pid <= 0 || pid == int64_t(::getpid()))
    return false;
  std::string text = std::to_string(pid);
  FILE *f = std::fopen(("/proc/" + text + "/stat").c_str(), "r");
  if (!f)
    return false;
  char line[1024] = {0};
  size_t n = std::fread(line, 1, sizeof(line) - 1, f);
  std::fclose(f);
  std::string stat(line, n);
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size())
    return false;
  char state = stat[paren + 2];
  return (state == 'T' || state == 't') && exePath(text) == exePath("self");
}

} // namespace

Job::~Job() {
  // The communicator before the watchdog it reports to.
  comm_.reset();
  if (impl_) {
    impl_->watchdog.reset();
    impl_->server.reset();
    if (impl_->mpi && impl_->finished)
      finalizeMpi();
  }
}

CommMonitor &Job::monitor() { return *impl_->watchdog; }

Result<std::unique_ptr<Job>> Job::join(const LaunchEnvironment &env,
                                       const JobOptions &options) {
  std::unique_ptr<Job> job(new Job());
  job->env_ = env;
  job->options_ = options;
  job->impl_ = std::make_unique<Impl>();
  Impl &impl = *job->impl_;
  const MeshShape &mesh = options.mesh;
  if (Status s = mesh.verify(); !s.ok())
    return s;
  std::string meshText;
  for (size_t a = 0; a < mesh.names.size(); ++a)
    meshText +=
        (a ? "," : "") + mesh.names[a] + "=" + std::to_string(mesh.sizes[a]);
  // A peer that dies mid-write must not kill this process with SIGPIPE
  // (gloo's transport writes without MSG_NOSIGNAL): the write fails and the
  // communicator reports it.
  ::signal(SIGPIPE, SIG_IGN);
  if (env.worldSize != mesh.numRanks())
    return Status::error(
        "the launcher started " + std::to_string(env.worldSize) +
        " processes (" + env.describe() + "), but the plan's mesh (" +
        meshText + ") has " + std::to_string(mesh.numRanks()) +
        " ranks: launch " + std::to_string(mesh.numRanks()) +
        " processes (mpirun -np " + std::to_string(mesh.numRanks()) +
        "), or recompile with a --mesh of " + std::to_string(env.worldSize) +
        " ranks");
  std::string comm = options.comm;
  if (comm == "auto")
    comm = options.backend == "cuda"                              ? "nccl"
           : env.launcher == LaunchEnvironment::Launcher::OpenMpi ? "mpi"
                                                                  : "gloo";
  if (comm != "mpi" && comm != "gloo" && comm != "nccl")
    return Status::error("there is no communicator '" + comm +
                         "': use mpi, gloo, nccl or auto");
  if (comm == "nccl" && options.backend != "cuda")
    return Status::error("the nccl communicator moves GPU buffers: it needs "
                         "--backend cuda (this run's backend is " +
                         options.backend + "); use --comm mpi or gloo");
  job->commName_ = comm;
  std::string self = mesh.describe(env.rank);
  // Rank 0 speaks for the job's notes (loaded kernels, caches).
  setRuntimeNotes(env.rank == 0);

  // The processes of a node share its cores, as a session's thread ranks
  // do: each gets its share of OpenMP threads (for the CPU backend's loops
  // and OpenBLAS), unless the user chose. (Measured: 4 processes on 2
  // cores, each with OpenMP's default of every core, ran a tiny GPT's steps
  // about 35x slower.)
#ifdef _OPENMP
  if (!std::getenv("OMP_NUM_THREADS")) {
    cpu_set_t cpus;
    int cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0
                    ? CPU_COUNT(&cpus)
                    : int(::sysconf(_SC_NPROCESSORS_ONLN));
    int online = int(::sysconf(_SC_NPROCESSORS_ONLN));
    // A launcher that bound this process to its cores (mpirun --bind-to,
    // srun --cpu-bind) already gave it its share; else divide the node's.
    int64_t share =
        cores < online
            ? cores
            : std::max<int64_t>(1, cores / std::max<int64_t>(
                                               1, env.localWorldSize));
    omp_set_num_threads(int(share));
  }
#endif

  // MPI, where the launcher runs it: the store's address travels over it
  // (and NCCL's id). mpirun sets OMPI_COMM_WORLD_*; srun with PMIx does not
  // before MPI_Init, so --comm mpi under srun initialises MPI too.
  bool useMpi =
      comm == "mpi" ||
      (env.launcher == LaunchEnvironment::Launcher::OpenMpi && mpiAvailable());
  if (useMpi) {
    int64_t rank = 0, size = 0;
    if (Status s = initializeMpi(&rank, &size); !s.ok())
      return Status::error(self + ": " + s.message());
    impl.mpi = true;
    if (rank != env.rank || size != env.worldSize)
      return Status::error(
          self + ": MPI says this is rank " + std::to_string(rank) + " of " +
          std::to_string(size) + ", the launcher's environment says " +
          env.describe() + ": launch with mpirun, or srun --mpi=pmix");
  }

  // The store: rank 0 listens; everyone connects.
  std::string host = env.masterAddr;
  int port = env.masterPort;
  if (impl.mpi && (host.empty() || !port)) {
    if (env.rank == 0) {
      StoreServerOptions so;
      so.hangSeconds = options.timeoutSeconds;
      so.worldSize = env.worldSize;
      Result<std::unique_ptr<StoreServer>> server =
          StoreServer::listen("0.0.0.0", 0, so);
      if (!server.ok())
        return Status::error(self + ": the job's store: " + server.message());
      impl.server = std::move(*server);
    }
    std::string address =
        env.rank == 0 ? hostName() + ":" + std::to_string(impl.server->port())
                      : std::string();
    Result<std::string> shared = mpiBroadcastFromRank0(address);
    if (!shared.ok())
      return Status::error(
          self + ": sharing the job's store address: " + shared.message());
    size_t colon = shared->rfind(':');
    host = shared->substr(0, colon);
    port = std::atoi(shared->c_str() + colon + 1);
  } else {
    if (host.empty() || !port)
      return Status::error(
          self + ": " + env.describe() +
          " without MASTER_ADDR and "
          "MASTER_PORT: set both to where rank 0's store listens (torchrun "
          "sets them; in an sbatch script, e.g. MASTER_ADDR=$(scontrol show "
          "hostnames $SLURM_NODELIST | head -n1) MASTER_PORT=29500)");
    if (env.rank == 0) {
      StoreServerOptions so;
      so.hangSeconds = options.timeoutSeconds;
      so.worldSize = env.worldSize;
      Result<std::unique_ptr<StoreServer>> server =
          StoreServer::listen("0.0.0.0", port, so);
      if (!server.ok())
        return Status::error(self + ": the job's store at MASTER_PORT=" +
                             std::to_string(port) + ": " + server.message());
      impl.server = std::move(*server);
    }
  }
  // The others may start well after rank 0 (and it after them: srun starts
  // tasks minutes apart on a busy cluster): at least 300 s to join, however
  // short the collective timeout.
  double connectTimeout = std::max(300.0, options.timeoutSeconds);
  Result<std::unique_ptr<StoreClient>> store =
      StoreClient::connect(host, port, connectTimeout);
  if (!store.ok())
    return Status::error(self + ": " + store.message());
  job->store_ = std::move(*store);
  Result<std::unique_ptr<StoreClient>> beat =
      StoreClient::connect(host, port, connectTimeout);
  if (!beat.ok())
    return Status::error(self + ": " + beat.message());
  if (Status s =
          (*beat)->hello(env.rank, self, hostName(), int64_t(::getpid()));
      !s.ok())
    return Status::error(self + ": " + s.message());
  // Heartbeats wait at most this long for the store (then it is declared
  // gone): never longer than a collective would wait.
  (*beat)->setCallTimeout(std::clamp(options.timeoutSeconds, 5.0, 30.0));
  // Where rank 0 runs: if it stops, the store stops with it, and a rank on
  // its host ends it on the way out (exitAfterFailure).
  if (env.rank == 0) {
    if (Status s = job->store_->set(
            "job/rank0", hostName() + " " + std::to_string(::getpid()));
        !s.ok())
      return Status::error(self + ": " + s.message());
  }
  Result<std::string> rank0 = job->store_->get("job/rank0", connectTimeout);
  if (!rank0.ok())
    return Status::error(self + ": " + rank0.message());
  size_t space = rank0->rfind(' ');
  impl.rank0Host = rank0->substr(0, space);
  impl.rank0Pid = std::atoll(rank0->c_str() + space + 1);
  bool underMpi = impl.mpi;
  impl.watchdog = std::make_unique<Watchdog>(
      std::move(*beat), mesh, env.rank, kGraceSeconds,
      [underMpi](const std::string &why) {
        std::fprintf(stderr, "loom-run: %s\n", why.c_str());
        std::fflush(stderr);
        if (underMpi)
          abortMpi(1);
        std::_Exit(1);
      });

  ProcessCommOptions co;
  co.timeoutSeconds = options.timeoutSeconds;
  co.monitor = impl.watchdog.get();
  auto broadcastFromRank0 =
      [&](const std::string &key,
          const std::string &valueAtRoot) -> Result<std::string> {
    if (underMpi)
      return mpiBroadcastFromRank0(valueAtRoot);
    if (env.rank == 0) {
      if (Status s = job->store_->set(key, valueAtRoot); !s.ok())
        return s;
      return valueAtRoot;
    }
    return job->store_->get(key, connectTimeout);
  };
  Result<std::unique_ptr<Communicator>> created =
      comm == "mpi" ? createMpiCommunicator(mesh, env.rank, co)
      : comm == "gloo"
          ? createGlooCommunicator(mesh, env.rank, *job->store_, co)
          : cuda::createNcclCommunicator(mesh, env.rank, int(env.localRank),
                                         broadcastFromRank0, co);
  if (!created.ok()) {
    std::string why = created.message().rfind(self, 0) == 0
                          ? created.message()
                          : self + ": " + created.message();
    impl.watchdog->reportFailure(why);
    return Status::error(why);
  }
  job->comm_ = std::move(*created);
  return job;
}

void Job::fail(const std::string &why) {
  if (impl_ && impl_->watchdog)
    impl_->watchdog->reportFailure(why);
  if (comm_)
    comm_->abort(why);
}

std::string Job::failure() {
  return impl_ && impl_->watchdog ? impl_->watchdog->failure() : "";
}

Status Job::finish() {
  Status s = impl_->watchdog->finish();
  // Rank 0's store serves the others until they have all said goodbye.
  if (impl_->server)
    impl_->server->waitForFinish(
        options_.timeoutSeconds > 0 ? options_.timeoutSeconds : 300);
  impl_->finished = true;
  return s;
}

void Job::exitAfterFailure(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // No stopped rank of this host is left behind (under mpirun, MPI_Abort
  // kills every process): those the store knows, and rank 0 if the store
  // no longer answers because it is the one stopped.
  if (impl_ && !impl_->mpi && store_) {
    std::string here = hostName();
    store_->setCallTimeout(2);
    Result<std::vector<StoreRankState>> states = store_->ranks();
    if (states.ok()) {
      for (const StoreRankState &s : *states)
        if (!s.finished && !s.lost && s.host == here && stoppedLoomRank(s.pid))
          ::kill(pid_t(s.pid), SIGKILL);
    } else if (impl_->rank0Host == here && stoppedLoomRank(impl_->rank0Pid)) {
      ::kill(pid_t(impl_->rank0Pid), SIGKILL);
    }
  }
  // Rank 0's store tells the others why (their next heartbeats) before it
  // goes; else they would only learn that rank 0 is gone.
  if (impl_ && impl_->server && !impl_->mpi)
    ::usleep(1500 * 1000);
  if (impl_ && impl_->mpi)
    abortMpi(code);
  std::_Exit(code);
}

} // namespace runtime
} // namespace loom
