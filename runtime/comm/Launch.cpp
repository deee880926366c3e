//===- Launch.cpp - which launcher started this process, and its rank -----===//
//
// detectLaunch reads the variables mpirun (Open MPI), srun (Slurm) and
// torchrun set for each process they start. Values are checked: a rank
// outside the world, a local rank outside the node, a port that is not one,
// or text where a number belongs is an error naming the variable.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Job.h"

#include <cerrno>
#include <cstdlib>

namespace loom {
namespace runtime {

namespace {

using GetEnv = std::function<const char *(const char *)>;

/// The variable as a non-negative integer (and at most `most`), or an error.
Status readCount(const GetEnv &getenv, const char *name, int64_t most,
                 int64_t *out) {
  const char *text = getenv(name);
  if (!text)
    return Status::error(std::string("the launcher did not set ") + name);
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (!*text || *end || errno || v < 0 || v > most)
    return Status::error(std::string(name) + "='" + text +
                         "' is not a whole number from 0 to " +
                         std::to_string(most) +
                         "; launch loom-run with mpirun, srun or torchrun "
                         "(or unset it for a one-process run)");
  *out = v;
  return Status::success();
}

/// rank < size and localRank < localSize, with the variables' names.
Status checkPlace(const LaunchEnvironment &e, const char *rankName,
                  const char *sizeName, const char *localName,
                  const char *localSizeName) {
  if (e.worldSize < 1)
    return Status::error(std::string(sizeName) + "=0: a job has at least one "
                                                 "process");
  if (e.rank >= e.worldSize)
    return Status::error(std::string(rankName) + "=" + std::to_string(e.rank) +
                         " is not below " + sizeName + "=" +
                         std::to_string(e.worldSize));
  if (e.localWorldSize < 1 || e.localRank >= e.localWorldSize)
    return Status::error(std::string(localName) + "=" +
                         std::to_string(e.localRank) + " is not below " +
                         localSizeName + "=" +
                         std::to_string(e.localWorldSize));
  return Status::success();
}

/// MASTER_ADDR and MASTER_PORT, when set (torchrun sets both; under srun
/// the user's script does).
Status readMaster(const GetEnv &getenv, LaunchEnvironment &e) {
  if (const char *addr = getenv("MASTER_ADDR"))
    e.masterAddr = addr;
  if (getenv("MASTER_PORT")) {
    int64_t port = 0;
    if (Status s = readCount(getenv, "MASTER_PORT", 65535, &port); !s.ok())
      return s;
    if (port == 0)
      return Status::error("MASTER_PORT=0: name the port rank 0's store "
                           "listens on (torchrun's default is 29500)");
    e.masterPort = int(port);
  }
  return Status::success();
}

} // namespace

std::string LaunchEnvironment::describe() const {
  std::string place = "rank " + std::to_string(rank) + " of " +
                      std::to_string(worldSize) + ", local rank " +
                      std::to_string(localRank) + " of " +
                      std::to_string(localWorldSize);
  switch (launcher) {
  case Launcher::None:
    return "one process";
  case Launcher::OpenMpi:
    return "mpirun (" + place + ")";
  case Launcher::Slurm:
    return "srun (" + place + ")";
  case Launcher::Torchrun:
    return "torchrun-style environment (" + place + ")";
  }
  return place;
}

Result<LaunchEnvironment> detectLaunch(const GetEnv &given) {
  GetEnv getenv = given ? given : [](const char *name) {
    return static_cast<const char *>(std::getenv(name));
  };
  LaunchEnvironment e;
  // Far more than any job: a bound that keeps rank arithmetic in range.
  constexpr int64_t kMost = int64_t(1) << 31;
  auto read = [&](const char *name, int64_t *out) {
    return readCount(getenv, name, kMost, out);
  };
  if (getenv("OMPI_COMM_WORLD_RANK") || getenv("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = LaunchEnvironment::Launcher::OpenMpi;
    for (Status s : {read("OMPI_COMM_WORLD_RANK", &e.rank),
                     read("OMPI_COMM_WORLD_SIZE", &e.worldSize),
                     read("OMPI_COMM_WORLD_LOCAL_RANK", &e.localRank),
                     read("OMPI_COMM_WORLD_LOCAL_SIZE", &e.localWorldSize)})
      if (!s.ok())
        return s;
    if (Status s = checkPlace(e, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                              "OMPI_COMM_WORLD_LOCAL_RANK",
                              "OMPI_COMM_WORLD_LOCAL_SIZE");
        !s.ok())
      return s;
    if (Status s = readMaster(getenv, e); !s.ok())
      return s;
    return e;
  }
  if (getenv("RANK") || getenv("WORLD_SIZE")) {
    e.launcher = LaunchEnvironment::Launcher::Torchrun;
    for (Status s : {read("RANK", &e.rank), read("WORLD_SIZE", &e.worldSize)})
      if (!s.ok())
        return s;
    // torchrun sets both; a hand-written launch may leave them out (one
    // process per node).
    if (getenv("LOCAL_RANK")) {
      if (Status s = read("LOCAL_RANK", &e.localRank); !s.ok())
        return s;
    }
    e.localWorldSize = e.worldSize;
    if (getenv("LOCAL_WORLD_SIZE")) {
      if (Status s = read("LOCAL_WORLD_SIZE", &e.localWorldSize); !s.ok())
        return s;
    }
    if (Status s = checkPlace(e, "RANK", "WORLD_SIZE", "LOCAL_RANK",
                              "LOCAL_WORLD_SIZE");
        !s.ok())
      return s;
    if (Status s = readMaster(getenv, e); !s.ok())
      return s;
    if (e.worldSize > 1 && (e.masterAddr.empty() || !e.masterPort))
      return Status::error(
          "RANK and WORLD_SIZE are set but MASTER_ADDR and MASTER_PORT are "
          "not: set both to the address rank 0's store listens on (as "
          "torchrun does), e.g. MASTER_ADDR=node0 MASTER_PORT=29500");
    return e;
  }
  // An sbatch script's shell has SLURM_PROCID=0 and SLURM_NTASKS but is not
  // a rank; a process srun starts has the step's variables too.
  if (getenv("SLURM_PROCID") && getenv("SLURM_STEP_NUM_TASKS")) {
    e.launcher = LaunchEnvironment::Launcher::Slurm;
    for (Status s : {read("SLURM_PROCID", &e.rank),
                     read("SLURM_STEP_NUM_TASKS", &e.worldSize),
                     read("SLURM_LOCALID", &e.localRank)})
      if (!s.ok())
        return s;
    e.localWorldSize = e.worldSize;
    if (const char *tasks = getenv("SLURM_STEP_TASKS_PER_NODE")) {
      // "4" or "4(x2)" or "3,2": the first node's count bounds the local rank
      // only when it is uniform; keep the world as the bound otherwise.
      std::string t = tasks;
      if (t.find_first_not_of("0123456789") == std::string::npos && !t.empty())
        e.localWorldSize = std::strtoll(t.c_str(), nullptr, 10);
      else if (size_t p = t.find("(x");
               p != std::string::npos && t.find(',') == std::string::npos)
        e.localWorldSize = std::strtoll(t.substr(0, p).c_str(), nullptr, 10);
    }
    if (Status s = checkPlace(e, "SLURM_PROCID", "SLURM_STEP_NUM_TASKS",
                              "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE");
        !s.ok())
      return s;
    if (Status s = readMaster(getenv, e); !s.ok())
      return s;
    return e;
  }
  return e;
}

} // namespace runtime
} // namespace loom
