//===- HostCompiler.cpp - host C++ to a cached, loaded shared object ------===//
//
// The cache entry of key K in directory D:
//   D/K.cpp     the source (written first, compiled from, kept for people)
//   D/K.so      the object (compiled to D/K.so.tmp.PID, renamed)
//   D/K.sha256  the object's SHA-256 (D/K.sha256.tmp.PID, renamed, last)
//   D/K.lock    flock'ed by whoever compiles K; never removed
// An entry is valid when K.so's SHA-256 is K.sha256's and dlopen takes it.
// Renames make each file appear whole, and the checksum appears only after
// the object, so a reader without the lock sees a valid entry or one that
// looks damaged; it acts on damage only under the lock, after looking
// again. The checksum, not fsync, guards against a crash mid-write: a torn
// object fails the comparison and is rebuilt.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cpu/HostCompiler.h"

#include "loom/runtime/Files.h"
#include "loom/runtime/Sha256.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <pwd.h>
#include <spawn.h>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace loom {
namespace runtime {
namespace cpu {

/// Builds HostModules; the constructor is private so that only a loaded
/// handle makes one.
struct HostModuleAccess {
  static std::shared_ptr<HostModule> make(void *handle, std::string path) {
    return std::shared_ptr<HostModule>(new HostModule(handle, std::move(path)));
  }
};

HostModule::~HostModule() {
  if (handle_)
    ::dlclose(handle_);
}

void *HostModule::symbol(const std::string &name) const {
  return ::dlsym(handle_, name.c_str());
}

std::vector<std::string> defaultHostFlags() {
  // -ffp-contract=off: no fused multiply-adds the source does not write (the
  // reference kernels, built for baseline x86-64, have none), so a generated
  // kernel differs from them only where it reassociates a sum.
  return {"-O3",   "-march=native", "-fno-math-errno", "-ffp-contract=off",
          "-fopenmp", "-fPIC", "-shared", "-std=c++17"};
}

namespace {
/// Bumped when the entry's layout or the key's inputs change, so an old
/// cache is never read with new rules.
constexpr const char *kFormatVersion = "loom-host-kernel-cache-1";

/// How many lines of the compiler's output a failure carries.
constexpr int kDiagnosticLines = 40;

/// The most output kept from a child (the rest is read and dropped, so the
/// child never blocks on a full pipe).
constexpr size_t kMaxCapturedBytes = 1 << 20;

std::string errnoText() { return std::strerror(errno); }

/// Closes a descriptor when it goes out of scope.
struct Descriptor {
  int fd = -1;
  Descriptor() = default;
  explicit Descriptor(int fd) : fd(fd) {}
  Descriptor(const Descriptor &) = delete;
  Descriptor &operator=(const Descriptor &) = delete;
  ~Descriptor() {
    if (fd >= 0)
      ::close(fd);
  }
};

std::vector<std::string> splitWords(const std::string &text) {
  std::vector<std::string> words;
  std::istringstream stream(text);
  for (std::string word; stream >> word;)
    words.push_back(word);
  return words;
}

std::string joinWords(const std::vector<std::string> &words) {
  std::string joined;
  for (const std::string &word : words)
    joined += (joined.empty() ? "" : " ") + word;
  return joined;
}

bool isExecutableFile(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

/// The program `word` names: itself when it holds a '/', else the first
/// executable of that name on PATH.
Result<std::string> resolveProgram(const std::string &word,
                                   const std::string &origin) {
  std::string hint = "; set LOOM_CXX to a C++ compiler (the CPU backend "
                     "runs its reference kernels without one)";
  if (word.find('/') != std::string::npos) {
    if (isExecutableFile(word))
      return word;
    return Status::error("the host C++ compiler '" + word + "' (" + origin +
                         ") is not an executable file" + hint);
  }
  const char *pathVariable = std::getenv("PATH");
  std::string path =
      pathVariable ? pathVariable : "/usr/local/bin:/usr/bin:/bin";
  std::istringstream directories(path);
  for (std::string directory; std::getline(directories, directory, ':');) {
    std::string candidate = (directory.empty() ? "." : directory) + "/" + word;
    if (isExecutableFile(candidate))
      return candidate;
  }
  return Status::error("the host C++ compiler '" + word + "' (" + origin +
                       ") is not on PATH" + hint);
}

/// The compiler's command words, the program resolved to its path.
Result<std::vector<std::string>>
compilerCommand(const HostCompilerOptions &options) {
  std::string text = options.compiler, origin = "HostCompilerOptions::compiler";
  if (text.empty()) {
    if (const char *loomCxx = std::getenv("LOOM_CXX"); loomCxx && *loomCxx)
      text = loomCxx, origin = "$LOOM_CXX";
    else if (const char *cxx = std::getenv("CXX"); cxx && *cxx)
      text = cxx, origin = "$CXX";
    else
      text = "c++", origin = "the default";
  }
  std::vector<std::string> words = splitWords(text);
  if (words.empty())
    return Status::error("the host C++ compiler (" + origin +
                         ") is blank; set LOOM_CXX to a C++ compiler");
  Result<std::string> program = resolveProgram(words[0], origin);
  if (!program.ok())
    return Status::error(program.message());
  words[0] = *program;
  return words;
}

/// What a child process did: its exit code (-1 when a signal ended it, with
/// `how` saying which) and its stdout and stderr together.
struct ProcessResult {
  int exitCode = -1;
  std::string how;
  std::string output;
};

/// Runs `argv` (argv[0] a path) with stdin from /dev/null and stdout and
/// stderr into one pipe. posix_spawn, not system(): no shell parses the
/// source path or the flags.
Result<ProcessResult> runProcess(const std::vector<std::string> &argv) {
  int pipeEnds[2];
  if (::pipe2(pipeEnds, O_CLOEXEC) != 0)
    return Status::error("cannot create a pipe for '" + argv[0] +
                         "': " + errnoText());
  Descriptor readEnd(pipeEnds[0]), writeEnd(pipeEnds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  // dup2 clears close-on-exec on the copies, so only 1 and 2 reach the
  // child; every other descriptor of ours (the lock among them) is
  // O_CLOEXEC.
  posix_spawn_file_actions_adddup2(&actions, writeEnd.fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, writeEnd.fd, STDERR_FILENO);

  std::vector<char *> args;
  for (const std::string &arg : argv)
    args.push_back(const_cast<char *>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int spawnError = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr,
                                 args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawnError != 0)
    return Status::error("cannot run '" + argv[0] +
                         "': " + std::strerror(spawnError));
  ::close(writeEnd.fd);
  writeEnd.fd = -1;

  ProcessResult result;
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(readEnd.fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    size_t keep =
        std::min(size_t(n), kMaxCapturedBytes - std::min(kMaxCapturedBytes,
                                                         result.output.size()));
    result.output.append(chunk, keep);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return Status::error("cannot wait for '" + argv[0] + "': " + errnoText());
  }
  if (WIFEXITED(status)) {
    result.exitCode = WEXITSTATUS(status);
    result.how = "exit " + std::to_string(result.exitCode);
  } else if (WIFSIGNALED(status)) {
    result.how = std::string("killed by signal ") + strsignal(WTERMSIG(status));
  } else {
    result.how = "stopped";
  }
  return result;
}


/// The lines of /proc/cpuinfo that say which instructions -march=native
/// picks: the first "model name" and "flags" (x86), "Features", "CPU
/// implementer", "CPU part" (Arm). A machine without them gives "unknown",
/// which still differs from every machine that has them.
std::string hostCpuIdentity() {
  static const char *const kKeys[] = {"model name", "flags",
                                      "Features",   "CPU implementer",
                                      "CPU part",   "CPU architecture"};
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string identity;
  std::vector<bool> seen(std::size(kKeys), false);
  for (std::string line; std::getline(cpuinfo, line);) {
    size_t colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    std::string key =
        line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    for (size_t i = 0; i < std::size(kKeys); ++i) {
      if (!seen[i] && key == kKeys[i]) {
        seen[i] = true;
        identity += line + "\n";
      }
    }
  }
  return identity.empty() ? "unknown" : identity;
}

/// Whether the flags make the object depend on the machine compiling it.
bool tunesForHost(const std::vector<std::string> &flags) {
  for (const std::string &flag : flags)
    if (flag.size() > 7 && flag.compare(flag.size() - 7, 7, "=native") == 0)
      return true;
  return false;
}

/// Adds one named, length-prefixed field to the key, so that no two
/// different inputs concatenate to the same bytes.
void addField(Sha256 &hash, const std::string &name, const std::string &value) {
  hash.update(name);
  hash.update("\0", 1);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = uint8_t(uint64_t(value.size()) >> (8 * i));
  hash.update(length, sizeof length);
  hash.update(value);
}

std::vector<std::string> effectiveFlags(const HostCompilerOptions &options) {
  return options.flags.empty() ? defaultHostFlags() : options.flags;
}

std::string keyOf(const std::string &source, const std::string &identity,
                  const std::vector<std::string> &flags) {
  Sha256 hash;
  addField(hash, "format", kFormatVersion);
  addField(hash, "compiler", identity);
  addField(hash, "flag count", std::to_string(flags.size()));
  for (const std::string &flag : flags)
    addField(hash, "flag", flag);
  addField(hash, "cpu", tunesForHost(flags) ? hostCpuIdentity() : "");
  addField(hash, "source", source);
  return hash.hexDigest();
}

/// Where the cache is, before it is created, and what chose it.
std::string selectedCacheDir(const HostCompilerOptions &options,
                             std::string &origin) {
  if (!options.cacheDir.empty()) {
    origin = "chosen by HostCompilerOptions::cacheDir";
    return options.cacheDir;
  }
  if (const char *dir = std::getenv("LOOM_KERNEL_CACHE"); dir && *dir) {
    origin = "chosen by $LOOM_KERNEL_CACHE";
    return dir;
  }
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    origin = "under $XDG_CACHE_HOME";
    return std::string(xdg) + "/loom/kernels";
  }
  origin = "the default, under the home directory";
  const char *home = std::getenv("HOME");
  if (!home || !*home) {
    const struct passwd *user = ::getpwuid(::getuid());
    home = user ? user->pw_dir : nullptr;
  }
  return std::string(home ? home : ".") + "/.cache/loom/kernels";
}

/// mkdir -p, each missing directory with mode 0700 (compiled code is loaded
/// from here: other users must not be able to plant an object).
Status makeDirectories(const std::string &path, const std::string &hint) {
  std::string prefix;
  size_t at = 0;
  while (at <= path.size()) {
    size_t slash = path.find('/', at);
    if (slash == std::string::npos)
      slash = path.size();
    prefix = path.substr(0, slash);
    at = slash + 1;
    if (prefix.empty())
      continue; // the root of an absolute path
    struct stat st;
    if (::stat(prefix.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::error("the kernel cache '" + path +
                             "' cannot be used: '" + prefix +
                             "' is not a directory" + hint);
      continue;
    }
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::error("cannot create the kernel cache directory '" +
                           prefix + "': " + errnoText() + hint);
  }
  return Status::success();
}

/// The files of one cache entry.
struct Entry {
  std::string source, object, checksum, lock;
};

Entry entryOf(const std::string &dir, const std::string &key) {
  std::string base = dir + "/" + key;
  return {base + ".cpp", base + ".so", base + ".sha256", base + ".lock"};
}

bool exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

/// A file's SHA-256, or an error.
Result<std::string> fileSha256(const std::string &path,
                               const std::string &what) {
  Result<std::vector<uint8_t>> bytes = readWholeFile(path, what);
  if (!bytes.ok())
    return Status::error(bytes.message());
  return sha256Hex(bytes->data(), bytes->size());
}

/// What looking at an entry found.
enum class EntryState { Missing, Damaged, Loaded };
struct Lookup {
  EntryState state = EntryState::Missing;
  std::string why;        // when damaged
  void *handle = nullptr; // when loaded
};

/// Checks the entry's object against its checksum and loads it.
Lookup lookUp(const Entry &entry) {
  if (!exists(entry.object) && !exists(entry.checksum))
    return {EntryState::Missing, "", nullptr};
  if (!exists(entry.checksum))
    return {EntryState::Damaged, "its checksum file is missing", nullptr};
  Result<std::string> actual = fileSha256(entry.object, "the cached kernels");
  if (!actual.ok())
    return {EntryState::Damaged, actual.message(), nullptr};
  Result<std::vector<uint8_t>> recorded =
      readWholeFile(entry.checksum, "the cached kernels' checksum", 4096);
  if (!recorded.ok())
    return {EntryState::Damaged, recorded.message(), nullptr};
  std::string expected(recorded->begin(), recorded->end());
  expected.erase(expected.find_last_not_of(" \n") + 1);
  if (expected != *actual)
    return {EntryState::Damaged,
            "the object's SHA-256 is " + *actual + ", its checksum file says " +
                expected,
            nullptr};
  void *handle = ::dlopen(entry.object.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = ::dlerror();
    return {EntryState::Damaged,
            std::string("dlopen refuses it: ") +
                (why ? why : "no reason given"),
            nullptr};
  }
  return {EntryState::Loaded, "", handle};
}

/// Removes the entry's object and checksum (the source and the lock stay),
/// the checksum first, so that no reader pairs it with a new object.
void removeObject(const Entry &entry) {
  ::unlink(entry.checksum.c_str());
  ::unlink(entry.object.c_str());
}

/// Writes `bytes` to `path` through `path.tmp.PID` and a rename, so that a
/// reader never sees part of it.
Status writeThroughRename(const std::string &path, const std::string &bytes) {
  std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    Descriptor out(::open(temporary.c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (out.fd < 0)
      return Status::error("cannot write '" + temporary + "': " + errnoText());
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(out.fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        std::string why = n < 0 ? errnoText() : "nothing written";
        ::unlink(temporary.c_str());
        return Status::error("cannot write '" + temporary + "': " + why);
      }
      done += size_t(n);
    }
    if (::close(out.fd) != 0) {
      out.fd = -1;
      std::string why = errnoText();
      ::unlink(temporary.c_str());
      return Status::error("cannot write '" + temporary + "': " + why);
    }
    out.fd = -1;
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    std::string why = errnoText();
    ::unlink(temporary.c_str());
    return Status::error("cannot rename '" + temporary + "' to '" + path +
                         "': " + why);
  }
  return Status::success();
}

/// Compiles the entry's source (already written) into its object and writes
/// its checksum. On failure no object, checksum or temporary is left.
Status compileEntry(const Entry &entry, const std::vector<std::string> &command,
                    const std::vector<std::string> &flags) {
  std::string temporary = entry.object + ".tmp." + std::to_string(::getpid());
  std::vector<std::string> argv = command;
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"-o", temporary, entry.source});
  Result<ProcessResult> run = runProcess(argv);
  if (!run.ok()) {
    ::unlink(temporary.c_str());
    return Status::error(run.message());
  }
  if (run->exitCode != 0) {
    ::unlink(temporary.c_str());
    return Status::error("the host C++ compiler failed (" + run->how +
                         ") on '" + entry.source + "':\n" +
                         firstLines(run->output, kDiagnosticLines) +
                         "command: " + joinWords(argv));
  }
  Result<std::string> checksum = fileSha256(temporary, "the compiled kernels");
  if (!checksum.ok()) {
    ::unlink(temporary.c_str());
    return Status::error("the host C++ compiler succeeded but left no usable "
                         "object (" +
                         checksum.message() + "); command: " + joinWords(argv));
  }
  if (::rename(temporary.c_str(), entry.object.c_str()) != 0) {
    std::string why = errnoText();
    ::unlink(temporary.c_str());
    return Status::error("cannot rename '" + temporary + "' to '" +
                         entry.object + "': " + why);
  }
  Status written = writeThroughRename(entry.checksum, *checksum + "\n");
  if (!written.ok())
    ::unlink(entry.object.c_str());
  return written;
}

/// hostCompilerIdentity of the resolved `command`.
Result<std::string> identityOf(const std::vector<std::string> &command) {
  std::vector<std::string> argv = command;
  argv.push_back("--version");
  Result<ProcessResult> run = runProcess(argv);
  if (!run.ok())
    return Status::error(run.message());
  if (run->exitCode != 0)
    return Status::error("the host C++ compiler '" + joinWords(command) +
                         "' fails to say its version (" + run->how + "):\n" +
                         firstLines(run->output, 5) +
                         "set LOOM_CXX to a working C++ compiler");
  std::string identity = joinWords(command);
  // A link (c++ -> g++-12 through the alternatives) can be switched to
  // another compiler whose --version line may not show it.
  if (char *real = ::realpath(command[0].c_str(), nullptr)) {
    if (command[0] != real)
      identity += " (" + std::string(real) + ")";
    std::free(real);
  }
  return identity + "\n" + run->output.substr(0, run->output.find('\n'));
}
} // namespace

Result<std::string> hostCompilerIdentity(const HostCompilerOptions &options) {
  Result<std::vector<std::string>> command = compilerCommand(options);
  if (!command.ok())
    return Status::error(command.message());
  return identityOf(*command);
}

Result<std::string> hostKernelCacheDir(const HostCompilerOptions &options) {
  std::string origin;
  std::string dir = selectedCacheDir(options, origin);
  std::string hint =
      " (" + origin + "); set LOOM_KERNEL_CACHE to a writable directory";
  if (Status made = makeDirectories(dir, hint); !made.ok())
    return made;
  // Probe with a file, not access(): root passes access() on a read-only
  // file system.
  std::string probe = dir + "/.loom-probe-XXXXXX";
  int fd = ::mkstemp(probe.data());
  if (fd < 0)
    return Status::error("the kernel cache '" + dir +
                         "' does not take new files: " + errnoText() + hint);
  ::close(fd);
  ::unlink(probe.c_str());
  // Absolute, so that dlopen takes the object's path as a path (a name
  // without a '/' is searched for on the library path).
  char *real = ::realpath(dir.c_str(), nullptr);
  if (!real)
    return Status::error("cannot resolve the kernel cache '" + dir +
                         "': " + errnoText() + hint);
  std::string absolute = real;
  std::free(real);
  return absolute;
}

Result<std::string> hostCacheKey(const std::string &source,
                                 const HostCompilerOptions &options) {
  Result<std::string> identity = hostCompilerIdentity(options);
  if (!identity.ok())
    return identity;
  return keyOf(source, *identity, effectiveFlags(options));
}

Result<std::shared_ptr<HostModule>>
compileHostModule(const std::string &source, const HostCompilerOptions &options,
                  HostCompileReport *report) {
  auto start = std::chrono::steady_clock::now();
  HostCompileReport local;
  HostCompileReport &out = report ? *report : local;
  out = HostCompileReport();
  auto finish = [&](void *handle, const Entry &entry) {
    out.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    return HostModuleAccess::make(handle, entry.object);
  };

  Result<std::vector<std::string>> command = compilerCommand(options);
  if (!command.ok())
    return Status::error(command.message());
  Result<std::string> identity = identityOf(*command);
  if (!identity.ok())
    return Status::error(identity.message());
  Result<std::string> dir = hostKernelCacheDir(options);
  if (!dir.ok())
    return Status::error(dir.message());
  std::vector<std::string> flags = effectiveFlags(options);
  out.key = keyOf(source, *identity, flags);
  Entry entry = entryOf(*dir, out.key);
  out.objectPath = entry.object;

  // Warm, without the lock: entries change only under it, checksum last on
  // the way in and first on the way out, so what this sees unlocked is a
  // whole valid entry or something it does not load.
  Lookup found = lookUp(entry);
  if (found.state == EntryState::Loaded) {
    out.cacheHit = true;
    return finish(found.handle, entry);
  }

  CacheLock lock;
  if (Status locked = lockCacheEntry(entry.lock, lock); !locked.ok())
    return locked;
  // Another process may have compiled it while this one waited, or may
  // have been between the object's rename and the checksum's.
  found = lookUp(entry);
  if (found.state == EntryState::Loaded) {
    out.cacheHit = true;
    return finish(found.handle, entry);
  }
  if (found.state == EntryState::Damaged) {
    removeObject(entry);
    out.rebuilt = true;
  }

  if (Status written = writeThroughRename(entry.source, source); !written.ok())
    return Status::error(written.message() +
                         "; set LOOM_KERNEL_CACHE to a writable directory");
  if (Status compiled = compileEntry(entry, *command, flags); !compiled.ok())
    return compiled;
  found = lookUp(entry);
  if (found.state != EntryState::Loaded) {
    removeObject(entry);
    return Status::error("the kernels compiled from '" + entry.source +
                         "' do not load: " + found.why);
  }
  return finish(found.handle, entry);
}

CacheLock::~CacheLock() {
  if (fd_ >= 0)
    ::close(fd_);
}

Status lockCacheEntry(const std::string &path, CacheLock &lock) {
  lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock.fd_ < 0)
    return Status::error("cannot open the kernel cache's lock '" + path +
                         "': " + std::strerror(errno) +
                         "; set LOOM_KERNEL_CACHE to a writable directory");
  while (::flock(lock.fd_, LOCK_EX) != 0) {
    if (errno != EINTR)
      return Status::error("cannot lock '" + path +
                           "': " + std::strerror(errno));
  }
  return Status::success();
}

/// The first `count` lines of `text`, with a note of how many were left out.
std::string firstLines(const std::string &text, int count) {
  size_t at = 0;
  for (int line = 0; line < count && at < text.size(); ++line) {
    size_t end = text.find('\n', at);
    at = end == std::string::npos ? text.size() : end + 1;
  }
  std::string head = text.substr(0, at);
  if (at < text.size()) {
    size_t more = 0;
    for (size_t i = at; i < text.size(); ++i)
      more += text[i] == '\n';
    head += "... (" + std::to_string(more) + " more lines)\n";
  }
  return head;
}

} // namespace cpu
} // namespace runtime
} // namespace loom
