//===- Job.cpp - this process's rank of a multi-process job ---------------===//
//
// Job::join: the launcher's world against the plan's mesh, the job's store
// (rank 0 hosts it), the watchdog, then the communicator. Under mpirun the
// store's address is rank 0's host and a free port, broadcast by MPI; for
// torchrun- and srun-style launches it is MASTER_ADDR:MASTER_PORT.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Job.h"
#include "loom/runtime/Store.h"
#include "loom/runtime/cuda/CudaBackend.h"

#include "Watchdog.h"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace loom {
namespace runtime {

struct Job::Impl {
  std::unique_ptr<StoreServer> server; // rank 0
  std::unique_ptr<Watchdog> watchdog;
  bool mpi = false;
  bool finished = false;
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
    meshText += (a ? "," : "") + mesh.names[a] + "=" +
                std::to_string(mesh.sizes[a]);
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
  bool cuda = options.backend.rfind("cuda", 0) == 0;
  if (comm == "auto")
    comm = cuda && options.backend == "cuda" ? "nccl"
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

  // MPI, where the launcher runs it: the store's address travels over it
  // (and NCCL's id). mpirun sets OMPI_COMM_WORLD_*; srun with PMIx does not
  // before MPI_Init, so --comm mpi under srun initialises MPI too.
  bool useMpi = comm == "mpi" ||
                (env.launcher == LaunchEnvironment::Launcher::OpenMpi &&
                 mpiAvailable());
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
      return Status::error(self + ": sharing the job's store address: " +
                           shared.message());
    size_t colon = shared->rfind(':');
    host = shared->substr(0, colon);
    port = std::atoi(shared->c_str() + colon + 1);
  } else {
    if (host.empty() || !port)
      return Status::error(
          self + ": " + env.describe() + " without MASTER_ADDR and "
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
  // The others may start well after rank 0 (and it after them): wait as
  // long as a collective would.
  double connectTimeout =
      options.timeoutSeconds > 0 ? options.timeoutSeconds : 300;
  Result<std::unique_ptr<StoreClient>> store =
      StoreClient::connect(host, port, connectTimeout);
  if (!store.ok())
    return Status::error(self + ": " + store.message());
  job->store_ = std::move(*store);
  Result<std::unique_ptr<StoreClient>> beat =
      StoreClient::connect(host, port, connectTimeout);
  if (!beat.ok())
    return Status::error(self + ": " + beat.message());
  if (Status s = (*beat)->hello(env.rank, self, hostName(), int64_t(::getpid()));
      !s.ok())
    return Status::error(self + ": " + s.message());
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
  auto broadcastFromRank0 = [&](const std::string &key,
                                const std::string &valueAtRoot)
      -> Result<std::string> {
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
    impl_->server->waitForFinish(options_.timeoutSeconds > 0
                                     ? options_.timeoutSeconds
                                     : 300);
  impl_->finished = true;
  return s;
}

void Job::exitAfterFailure(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
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
