//===- kernel_registers.cpp - registers and spills of generated kernels --===//
//
//   kernel_registers PLAN [--ptxas PATH] [--sm N]
//
// Compiles every generated kernel of the plan (chunks included) to PTX with
// NVRTC, assembles the PTX with `ptxas -arch=sm_N -v` (N = 90 by default)
// and prints one markdown table row per kernel: its launch, the registers
// per thread, spill stores and loads, static shared memory and stack frame,
// as ptxas reports them. No GPU is needed. Exits non-zero, printing NVRTC's
// or ptxas's log, when a kernel does not compile.
//
// ptxas is looked for next to the toolkit: $CUDA_HOME/bin, $CUDA_PATH/bin,
// the build's toolkit, /usr/local/cuda/bin; --ptxas names it. It runs with
// posix_spawn (no shell), its output read through a pipe.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Plan.h"
#include "loom/runtime/cuda/PlanKernels.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

extern char **environ;

using namespace loom;
using namespace loom::runtime;

namespace {

std::string findPtxas() {
  std::vector<std::string> dirs;
  for (const char *variable : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *root = std::getenv(variable); root && *root)
      dirs.push_back(std::string(root) + "/bin");
  dirs.push_back(LOOM_CUDA_BIN_DIR);
  dirs.push_back("/usr/local/cuda/bin");
  for (const std::string &dir : dirs) {
    std::string path = dir + "/ptxas";
    if (access(path.c_str(), X_OK) == 0)
      return path;
  }
  return "";
}

/// Runs `argv` with stdout and stderr into one pipe; returns the exit status
/// (-1 when it could not start) and what it printed.
int runCapturing(const std::vector<std::string> &argv, std::string &output) {
  int fds[2];
  if (pipe(fds) != 0) {
    output = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<char *> args;
  for (const std::string &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int spawned =
      posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    output = "cannot run " + argv[0] + ": " + std::strerror(spawned);
    return -1;
  }
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0 ||
         (n < 0 && errno == EINTR))
    if (n > 0)
      output.append(buffer, size_t(n));
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Usage {
  long registers = -1, spillStores = -1, spillLoads = -1, shared = 0,
       stack = -1;
};

/// The number before `unit` in `line` ("12 bytes smem" -> 12), or -1.
long numberBefore(const std::string &line, const std::string &unit) {
  size_t at = line.find(unit);
  if (at == std::string::npos || at == 0)
    return -1;
  size_t end = at;
  while (end > 0 && line[end - 1] == ' ')
    --end;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(line[begin - 1])))
    --begin;
  return begin == end ? -1 : std::stol(line.substr(begin, end - begin));
}

/// The name between the first pair of single quotes after `prefix`.
std::string quotedAfter(const std::string &line, const std::string &prefix) {
  size_t at = line.find(prefix);
  if (at == std::string::npos)
    return "";
  size_t open = line.find('\'', at), close = line.find('\'', open + 1);
  if (open == std::string::npos || close == std::string::npos)
    return "";
  return line.substr(open + 1, close - open - 1);
}

/// ptxas -v, per entry function:
///   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
///   ptxas info    : Function properties for NAME
///       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
///   ptxas info    : Used 12 registers, used 1 barriers, 128 bytes smem
std::map<std::string, Usage> parsePtxas(const std::string &log) {
  std::map<std::string, Usage> usage;
  std::string entry, properties;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    if (std::string n = quotedAfter(line, "Compiling entry function");
        !n.empty()) {
      entry = n;
      usage[entry];
    } else if (size_t at = line.find("Function properties for ");
               at != std::string::npos) {
      properties = line.substr(at + std::strlen("Function properties for "));
      while (!properties.empty() &&
             std::isspace(static_cast<unsigned char>(properties.back())))
        properties.pop_back();
    } else if (line.find("bytes stack frame") != std::string::npos) {
      if (usage.count(properties)) {
        Usage &u = usage[properties];
        u.stack = numberBefore(line, "bytes stack frame");
        u.spillStores = numberBefore(line, "bytes spill stores");
        u.spillLoads = numberBefore(line, "bytes spill loads");
      }
    } else if (line.find("Used ") != std::string::npos &&
               line.find(" registers") != std::string::npos &&
               usage.count(entry)) {
      Usage &u = usage[entry];
      u.registers = numberBefore(line, "registers");
      long smem = numberBefore(line, "bytes smem");
      u.shared = smem < 0 ? 0 : smem;
    }
  }
  return usage;
}

std::string cell(long v) { return v < 0 ? "?" : std::to_string(v); }

int usage() {
  std::fprintf(stderr,
               "usage: kernel_registers PLAN [--ptxas PATH] [--sm N]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string planPath, ptxas;
  int sm = 90;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--ptxas" && i + 1 < argc)
      ptxas = argv[++i];
    else if (arg == "--sm" && i + 1 < argc)
      sm = std::atoi(argv[++i]);
    else if (planPath.empty() && !arg.empty() && arg[0] != '-')
      planPath = arg;
    else
      return usage();
  }
  if (planPath.empty() || sm <= 0)
    return usage();
  if (ptxas.empty())
    ptxas = findPtxas();
  if (ptxas.empty()) {
    std::fprintf(stderr, "kernel_registers: no ptxas in $CUDA_HOME/bin, "
                         "$CUDA_PATH/bin, " LOOM_CUDA_BIN_DIR
                         " or /usr/local/cuda/bin; name it with --ptxas\n");
    return 1;
  }
  auto loaded = readPlan(planPath);
  if (!loaded.ok()) {
    std::fprintf(stderr, "kernel_registers: %s\n", loaded.message().c_str());
    return 1;
  }
  const plan::PlanT &p = **loaded;
  std::vector<cuda::PlanKernelResult> results =
      cuda::compilePlanKernels(p, cuda::NvrtcOutput::Ptx, sm);
  if (results.empty()) {
    std::fprintf(stderr, "kernel_registers: %s has no generated kernels\n",
                 planPath.c_str());
    return 1;
  }
  int failed = 0;
  for (const cuda::PlanKernelResult &r : results)
    if (!r.ok) {
      ++failed;
      std::fprintf(stderr,
                   "kernel_registers: kernel %s (%s) does not compile:\n%s\n",
                   r.name.c_str(), r.family.c_str(), r.log.c_str());
    }
  if (failed)
    return 1;

  // Kernels of one NVRTC program share a PTX image: assemble each once.
  char tempPath[] = "/tmp/loom-kernel-registers-XXXXXX.ptx";
  std::map<const std::string *, std::map<std::string, Usage>> usageOf;
  for (const cuda::PlanKernelResult &r : results) {
    if (usageOf.count(r.image.get()))
      continue;
    int fd = mkstemps(tempPath, 4);
    if (fd < 0) {
      std::perror("kernel_registers: mkstemps");
      return 1;
    }
    const std::string &ptx = *r.image;
    bool written = write(fd, ptx.data(), ptx.size()) == ssize_t(ptx.size());
    close(fd);
    std::string log;
    int status = written
                     ? runCapturing({ptxas, "-arch=sm_" + std::to_string(sm),
                                     "-v", "-o", "/dev/null", tempPath},
                                    log)
                     : -1;
    unlink(tempPath);
    std::strcpy(tempPath, "/tmp/loom-kernel-registers-XXXXXX.ptx");
    if (status != 0) {
      std::fprintf(stderr,
                   "kernel_registers: %s failed on kernel %s's PTX:\n%s\n",
                   ptxas.c_str(), r.name.c_str(),
                   written ? log.c_str() : "cannot write the PTX file");
      return 1;
    }
    usageOf[r.image.get()] = parsePtxas(log);
  }

  std::printf("| kernel | family | launch | registers | spill stores | "
              "spill loads | shared bytes | stack bytes |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
  for (const cuda::PlanKernelResult &r : results) {
    const plan::PlanT &owner = r.chunk < 0 ? p : *p.chunks[size_t(r.chunk)];
    const plan::KernelT &k = *owner.kernels[size_t(r.index)];
    std::string name = r.chunk < 0
                           ? r.name
                           : "chunk " + std::to_string(r.chunk) + ": " + r.name;
    const auto &table = usageOf[r.image.get()];
    auto it = table.find(r.name);
    if (it == table.end()) {
      std::fprintf(stderr, "kernel_registers: ptxas reported nothing for %s\n",
                   r.name.c_str());
      return 1;
    }
    const Usage &u = it->second;
    std::printf("| %s | %s | %s %lld×%lld | %s | %s | %s | %s | %s |\n",
                name.c_str(), r.family.c_str(), k.launch_rule.c_str(),
                static_cast<long long>(k.grid), static_cast<long long>(k.block),
                cell(u.registers).c_str(), cell(u.spillStores).c_str(),
                cell(u.spillLoads).c_str(), cell(u.shared).c_str(),
                cell(u.stack).c_str());
  }
  return 0;
}
