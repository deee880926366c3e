//===- HostCompilerTest.cpp - the CPU backend's compiler and its cache ----===//
//
// Each test has its own cache directory. Real compiles take 0.5-1 s each
// here, so the tests share them: about ten in all.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cpu/HostCompiler.h"

#include "loom/runtime/Sha256.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace loom::runtime;
using namespace loom::runtime::cpu;

namespace {

const char *const kAddSource =
    "extern \"C\" int loom_test_add(int a, int b) { return a + b; }\n";

using AddFunction = int (*)(int, int);

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> filesIn(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..")
        names.push_back(name);
    }
    ::closedir(d);
  }
  return names;
}

std::string realPath(const std::string &path) {
  char buffer[PATH_MAX];
  return ::realpath(path.c_str(), buffer) ? buffer : path;
}

/// Sets (or, with null, unsets) an environment variable for one scope.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name_(name) {
    if (const char *old = std::getenv(name))
      old_ = old, hadOld_ = true;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (hadOld_)
      ::setenv(name_.c_str(), old_.c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

private:
  std::string name_, old_;
  bool hadOld_ = false;
};

class HostCompilerTest : public TempDir {
protected:
  HostCompilerOptions options() {
    HostCompilerOptions o;
    o.cacheDir = dir + "/cache";
    return o;
  }
  std::string cache() { return realPath(dir + "/cache"); }

  /// A compiler that counts its compiles in `counter` (a line each) and
  /// takes half a second longer, so that concurrent compiles overlap.
  std::string countingCompiler(const std::string &counter) {
    std::string path = write("counting-c++", "#!/bin/sh\n"
                                             "for arg in \"$@\"; do\n"
                                             "  if [ \"$arg\" = -o ]; then\n"
                                             "    echo compile >> '" +
                                                 counter +
                                                 "'\n"
                                                 "    sleep 0.5\n"
                                                 "  fi\n"
                                                 "done\n"
                                                 "exec c++ \"$@\"\n");
    EXPECT_EQ(::chmod(path.c_str(), 0755), 0);
    return path;
  }

  /// Compiles `kAddSource`, expecting success, and checks the entry point.
  std::shared_ptr<HostModule> compileAdd(const HostCompilerOptions &o,
                                         HostCompileReport &report) {
    Result<std::shared_ptr<HostModule>> module =
        compileHostModule(kAddSource, o, &report);
    EXPECT_TRUE(module.ok()) << module.message();
    if (!module.ok())
      return nullptr;
    auto add =
        reinterpret_cast<AddFunction>((*module)->symbol("loom_test_add"));
    EXPECT_NE(add, nullptr);
    if (add) {
      EXPECT_EQ(add(40, 2), 42);
    }
    return *module;
  }
};

TEST_F(HostCompilerTest, ColdCompileThenWarmHit) {
  // The cache from the environment when the options name none.
  ScopedEnv env("LOOM_KERNEL_CACHE", (dir + "/env-cache").c_str());
  HostCompilerOptions o;
  HostCompileReport cold;
  std::shared_ptr<HostModule> module = compileAdd(o, cold);
  ASSERT_NE(module, nullptr);
  EXPECT_FALSE(cold.cacheHit);
  EXPECT_FALSE(cold.rebuilt);
  EXPECT_GT(cold.seconds, 0);
  ASSERT_EQ(cold.key.size(), 64u);
  Result<std::string> key = hostCacheKey(kAddSource, o);
  ASSERT_TRUE(key.ok()) << key.message();
  EXPECT_EQ(cold.key, *key);

  std::string base = realPath(dir + "/env-cache") + "/" + cold.key;
  EXPECT_EQ(cold.objectPath, base + ".so");
  EXPECT_EQ(module->path(), base + ".so");
  EXPECT_EQ(readFile(base + ".cpp"), kAddSource);
  EXPECT_EQ(readFile(base + ".sha256"),
            sha256Hex(readFile(base + ".so")) + "\n");
  EXPECT_EQ(module->symbol("loom_test_absent"), nullptr);
  module.reset();

  HostCompileReport warm;
  module = compileAdd(o, warm);
  ASSERT_NE(module, nullptr);
  EXPECT_TRUE(warm.cacheHit);
  EXPECT_FALSE(warm.rebuilt);
  EXPECT_EQ(warm.key, cold.key);
  EXPECT_EQ(warm.objectPath, cold.objectPath);
}

TEST_F(HostCompilerTest, KeyFollowsSourceFlagsAndCompiler) {
  HostCompilerOptions o = options();
  auto keyOf = [](const std::string &source, const HostCompilerOptions &o) {
    Result<std::string> key = hostCacheKey(source, o);
    EXPECT_TRUE(key.ok()) << key.message();
    return key.ok() ? *key : std::string();
  };
  std::string base = keyOf(kAddSource, o);
  ASSERT_EQ(base.size(), 64u);
  EXPECT_EQ(keyOf(kAddSource, o), base);
  EXPECT_NE(keyOf(std::string(kAddSource) + " ", o), base);

  // The defaults, spelled out, are the defaults.
  HostCompilerOptions spelled = o;
  spelled.flags = defaultHostFlags();
  EXPECT_EQ(keyOf(kAddSource, spelled), base);

  HostCompilerOptions otherFlags = o;
  otherFlags.flags = defaultHostFlags();
  otherFlags.flags[0] = "-O2";
  EXPECT_NE(keyOf(kAddSource, otherFlags), base);
  // Each flag is its own field: two flags are not their concatenation.
  HostCompilerOptions split = o, joined = o;
  split.flags = {"-fPIC", "-shared"};
  joined.flags = {"-fPIC -shared"};
  EXPECT_NE(keyOf(kAddSource, split), keyOf(kAddSource, joined));

  // Another compiler path (the same compiler behind a script) is another key.
  HostCompilerOptions wrapped = o;
  wrapped.compiler = countingCompiler(dir + "/unused-counter");
  EXPECT_NE(keyOf(kAddSource, wrapped), base);
}

TEST_F(HostCompilerTest, CorruptedObjectIsRebuilt) {
  HostCompilerOptions o = options();
  HostCompileReport first;
  ASSERT_NE(compileAdd(o, first), nullptr);
  std::string object = readFile(first.objectPath);
  ASSERT_GT(object.size(), 100u);
  object[object.size() / 2] ^= 0x5a;
  writeFile(first.objectPath, object);

  HostCompileReport second;
  ASSERT_NE(compileAdd(o, second), nullptr);
  EXPECT_TRUE(second.rebuilt);
  EXPECT_FALSE(second.cacheHit);
  EXPECT_EQ(second.key, first.key);
  EXPECT_EQ(readFile(cache() + "/" + first.key + ".sha256"),
            sha256Hex(readFile(first.objectPath)) + "\n");
}

// A truncated object whose checksum file agrees with it (as if both were
// cut by a crash the checksum does not see): dlopen refuses it, and that too
// is a damaged entry.
TEST_F(HostCompilerTest, TruncatedObjectThatDlopenRefusesIsRebuilt) {
  HostCompilerOptions o = options();
  HostCompileReport first;
  ASSERT_NE(compileAdd(o, first), nullptr);
  std::string truncated = readFile(first.objectPath).substr(0, 64);
  writeFile(first.objectPath, truncated);
  writeFile(cache() + "/" + first.key + ".sha256", sha256Hex(truncated) + "\n");

  HostCompileReport second;
  ASSERT_NE(compileAdd(o, second), nullptr);
  EXPECT_TRUE(second.rebuilt);
  EXPECT_FALSE(second.cacheHit);
  EXPECT_GT(readFile(first.objectPath).size(), 64u);
}

TEST_F(HostCompilerTest, MissingChecksumIsRebuilt) {
  HostCompilerOptions o = options();
  HostCompileReport first;
  ASSERT_NE(compileAdd(o, first), nullptr);
  std::string checksum = cache() + "/" + first.key + ".sha256";
  ASSERT_EQ(::unlink(checksum.c_str()), 0);

  HostCompileReport second;
  ASSERT_NE(compileAdd(o, second), nullptr);
  EXPECT_TRUE(second.rebuilt);
  EXPECT_FALSE(second.cacheHit);
  EXPECT_EQ(readFile(checksum), sha256Hex(readFile(first.objectPath)) + "\n");
}

TEST_F(HostCompilerTest, CompileErrorCarriesTheCompilersMessage) {
  HostCompilerOptions o = options();
  HostCompileReport report;
  Result<std::shared_ptr<HostModule>> module = compileHostModule(
      "extern \"C\" int loom_test_broken() { return loom_undeclared_name; }\n",
      o, &report);
  ASSERT_FALSE(module.ok());
  std::string source = cache() + "/" + report.key + ".cpp";
  EXPECT_NE(module.message().find("loom_undeclared_name"), std::string::npos)
      << module.message();
  EXPECT_NE(module.message().find("error"), std::string::npos)
      << module.message();
  EXPECT_NE(module.message().find("'" + source + "'"), std::string::npos)
      << module.message();
  // The source stays for the person reading the message; no object, no
  // checksum and no temporary do.
  EXPECT_TRUE(exists(source));
  for (const std::string &name : filesIn(cache())) {
    EXPECT_EQ(name.find(".so"), std::string::npos) << name;
    EXPECT_EQ(name.find(".sha256"), std::string::npos) << name;
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  }
}

// A compiler that writes part of its output before it fails: the partial
// object goes too.
TEST_F(HostCompilerTest, FailedCompileLeavesNoPartialObject) {
  HostCompilerOptions o = options();
  o.compiler =
      write("failing-c++",
            "#!/bin/sh\n"
            "if [ \"$1\" = --version ]; then echo 'failing 1.0'; exit 0; fi\n"
            "while [ \"$1\" != -o ]; do shift; done\n"
            "echo partial > \"$2\"\n"
            "echo 'loom-fake-failure' >&2\n"
            "exit 1\n");
  ASSERT_EQ(::chmod(o.compiler.c_str(), 0755), 0);
  Result<std::shared_ptr<HostModule>> module =
      compileHostModule(kAddSource, o, nullptr);
  ASSERT_FALSE(module.ok());
  EXPECT_NE(module.message().find("loom-fake-failure"), std::string::npos)
      << module.message();
  EXPECT_NE(module.message().find("exit 1"), std::string::npos)
      << module.message();
  for (const std::string &name : filesIn(cache())) {
    EXPECT_EQ(name.find(".so"), std::string::npos) << name;
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  }
}

TEST_F(HostCompilerTest, LongCompilerOutputIsCutToFortyLines) {
  std::string source;
  for (int i = 0; i < 100; ++i)
    source += "int loom_bad_" + std::to_string(i) + " = loom_undeclared;\n";
  Result<std::shared_ptr<HostModule>> module =
      compileHostModule(source, options(), nullptr);
  ASSERT_FALSE(module.ok());
  std::string message = module.message();
  size_t lines = std::count(message.begin(), message.end(), '\n');
  EXPECT_LE(lines, 43u) << message;
  EXPECT_NE(message.find("more lines)"), std::string::npos) << message;
}

TEST_F(HostCompilerTest, MissingCompilerIsAnErrorNamingIt) {
  HostCompilerOptions o = options();
  o.compiler = "/nonexistent/c++";
  Result<std::string> identity = hostCompilerIdentity(o);
  ASSERT_FALSE(identity.ok());
  EXPECT_NE(identity.message().find("'/nonexistent/c++'"), std::string::npos)
      << identity.message();
  Result<std::shared_ptr<HostModule>> module =
      compileHostModule(kAddSource, o, nullptr);
  ASSERT_FALSE(module.ok());
  EXPECT_NE(module.message().find("'/nonexistent/c++'"), std::string::npos)
      << module.message();

  o.compiler = "loom-no-such-compiler";
  identity = hostCompilerIdentity(o);
  ASSERT_FALSE(identity.ok());
  EXPECT_NE(identity.message().find("'loom-no-such-compiler'"),
            std::string::npos)
      << identity.message();
  EXPECT_NE(identity.message().find("PATH"), std::string::npos)
      << identity.message();

  // LOOM_CXX chooses the compiler when the options do not, and wins over CXX.
  ScopedEnv loomCxx("LOOM_CXX", "/nonexistent/loom-cxx");
  ScopedEnv cxx("CXX", "c++");
  o.compiler.clear();
  identity = hostCompilerIdentity(o);
  ASSERT_FALSE(identity.ok());
  EXPECT_NE(identity.message().find("'/nonexistent/loom-cxx' ($LOOM_CXX)"),
            std::string::npos)
      << identity.message();
}

TEST_F(HostCompilerTest, UnusableCacheDirIsAClearError) {
  HostCompilerOptions o = options();
  o.cacheDir = write("not-a-directory", "bytes");
  Result<std::shared_ptr<HostModule>> module =
      compileHostModule(kAddSource, o, nullptr);
  ASSERT_FALSE(module.ok());
  EXPECT_NE(module.message().find("'" + o.cacheDir + "'"), std::string::npos)
      << module.message();
  EXPECT_NE(module.message().find("LOOM_KERNEL_CACHE"), std::string::npos)
      << module.message();

  // A file on the way to the directory.
  o.cacheDir += "/kernels";
  Result<std::string> cacheDir = hostKernelCacheDir(o);
  ASSERT_FALSE(cacheDir.ok());
  EXPECT_NE(cacheDir.message().find("is not a directory"), std::string::npos)
      << cacheDir.message();

  // A directory that takes no files, even from root.
  o.cacheDir = "/proc/self";
  cacheDir = hostKernelCacheDir(o);
  ASSERT_FALSE(cacheDir.ok());
  EXPECT_NE(cacheDir.message().find("'/proc/self'"), std::string::npos)
      << cacheDir.message();
  EXPECT_NE(cacheDir.message().find("LOOM_KERNEL_CACHE"), std::string::npos)
      << cacheDir.message();
}

TEST_F(HostCompilerTest, DefaultCacheDirsAreCreatedPrivate) {
  ScopedEnv noCache("LOOM_KERNEL_CACHE", nullptr);
  HostCompilerOptions o;
  {
    ScopedEnv xdg("XDG_CACHE_HOME", (dir + "/xdg").c_str());
    Result<std::string> cacheDir = hostKernelCacheDir(o);
    ASSERT_TRUE(cacheDir.ok()) << cacheDir.message();
    EXPECT_EQ(*cacheDir, realPath(dir) + "/xdg/loom/kernels");
  }
  ScopedEnv noXdg("XDG_CACHE_HOME", nullptr);
  ScopedEnv home("HOME", (dir + "/home").c_str());
  Result<std::string> cacheDir = hostKernelCacheDir(o);
  ASSERT_TRUE(cacheDir.ok()) << cacheDir.message();
  EXPECT_EQ(*cacheDir, realPath(dir) + "/home/.cache/loom/kernels");
  for (const char *created : {"/home", "/home/.cache", "/home/.cache/loom",
                              "/home/.cache/loom/kernels"}) {
    struct stat st;
    ASSERT_EQ(::stat((dir + created).c_str(), &st), 0) << created;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << created;
  }
}

// Two processes load the same new kernels at once: the second waits on the
// entry's lock, then finds the first one's object. One compile in all.
TEST_F(HostCompilerTest, TwoProcessesCompileOnce) {
  HostCompilerOptions o = options();
  std::string counter = dir + "/compiles";
  o.compiler = countingCompiler(counter);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t children[2];
  for (pid_t &child : children) {
    child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Exit 10: loaded from the cache; 20: compiled; anything else failed.
      ::close(go[1]);
      char byte;
      if (::read(go[0], &byte, 1) != 1)
        ::_exit(1);
      HostCompileReport report;
      Result<std::shared_ptr<HostModule>> module =
          compileHostModule(kAddSource, o, &report);
      if (!module.ok())
        ::_exit(2);
      auto add =
          reinterpret_cast<AddFunction>((*module)->symbol("loom_test_add"));
      if (!add || add(1, 2) != 3)
        ::_exit(3);
      ::_exit(report.cacheHit ? 10 : 20);
    }
  }
  ::close(go[0]);
  ASSERT_EQ(::write(go[1], "gg", 2), 2);
  ::close(go[1]);
  std::vector<int> codes;
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    codes.push_back(WEXITSTATUS(status));
  }
  std::sort(codes.begin(), codes.end());
  EXPECT_EQ(codes, (std::vector<int>{10, 20}));
  EXPECT_EQ(readFile(counter), "compile\n");

  HostCompileReport warm;
  ASSERT_NE(compileAdd(o, warm), nullptr);
  EXPECT_TRUE(warm.cacheHit);
  EXPECT_EQ(readFile(counter), "compile\n");
}

// Ranks are threads of one process: they exclude each other too (an fcntl
// lock, owned by the process, would let both compile).
TEST_F(HostCompilerTest, TwoThreadsCompileOnce) {
  HostCompilerOptions o = options();
  std::string counter = dir + "/compiles";
  o.compiler = countingCompiler(counter);
  HostCompileReport reports[2];
  bool loaded[2] = {false, false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      Result<std::shared_ptr<HostModule>> module =
          compileHostModule(kAddSource, o, &reports[i]);
      loaded[i] = module.ok() && (*module)->symbol("loom_test_add");
    });
  for (std::thread &thread : threads)
    thread.join();
  EXPECT_TRUE(loaded[0]);
  EXPECT_TRUE(loaded[1]);
  EXPECT_NE(reports[0].cacheHit, reports[1].cacheHit);
  EXPECT_EQ(readFile(counter), "compile\n");
}

TEST_F(HostCompilerTest, OpenMpReductionRuns) {
  const char *source = R"(
    extern "C" long long loom_test_sum(long long n) {
      long long sum = 0;
      #pragma omp parallel for reduction(+ : sum)
      for (long long i = 1; i <= n; ++i)
        sum += i;
      return sum;
    }
    extern "C" int loom_test_openmp() {
    #ifdef _OPENMP
      return _OPENMP;
    #else
      return 0;
    #endif
    }
  )";
  Result<std::shared_ptr<HostModule>> module =
      compileHostModule(source, options(), nullptr);
  ASSERT_TRUE(module.ok()) << module.message();
  auto openmp =
      reinterpret_cast<int (*)()>((*module)->symbol("loom_test_openmp"));
  auto sum = reinterpret_cast<long long (*)(long long)>(
      (*module)->symbol("loom_test_sum"));
  ASSERT_NE(openmp, nullptr);
  ASSERT_NE(sum, nullptr);
  EXPECT_GT(openmp(), 0) << "the default flags compile without -fopenmp";
  EXPECT_EQ(sum(1000000), 1000000LL * 1000001LL / 2);
}

} // namespace
