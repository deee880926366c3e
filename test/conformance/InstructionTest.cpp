//===- InstructionTest.cpp - every opcode's cases on every backend --------===//
//
// The per-instruction suite: one test per (backend, registered case), and
// for an opcode of Instructions.def without any case, a test that fails
// saying so, so that a new opcode cannot reach a backend untested. A case
// whose opcode the backend lists as unsupported is skipped, naming both.
// In a runtime-only build (LOOM_CONFORMANCE_WITHOUT_COMPILER) the `kernel`
// opcode's cases, which build their plans with the compiler, are not
// compiled in; its test skips, saying why, instead of failing for no case.
//
//===----------------------------------------------------------------------===//

#include "Backends.h"
#include "Cases.h"

#include <gtest/gtest.h>

namespace loom {
namespace conformance {

std::vector<Case> &caseRegistry() {
  static std::vector<Case> cases;
  return cases;
}

namespace {

namespace rt = loom::runtime;

struct InstructionParam {
  const BackendEntry *backend;
  rt::Op op;
  const Case *test; // null: the opcode has no case
};

void PrintTo(const InstructionParam &p, std::ostream *os) {
  *os << "backend '" << p.backend->name << "', " << rt::opName(p.op) << " "
      << (p.test ? p.test->variant : "(no case)");
}

std::vector<InstructionParam> instructionParams() {
  std::vector<InstructionParam> params;
  for (const BackendEntry &backend : backends())
    for (const rt::OpInfo &info : rt::allOps()) {
      bool any = false;
      for (const Case &c : caseRegistry())
        if (c.op == info.op) {
          params.push_back({&backend, info.op, &c});
          any = true;
        }
      if (!any)
        params.push_back({&backend, info.op, nullptr});
    }
  return params;
}

std::string
instructionParamName(const ::testing::TestParamInfo<InstructionParam> &info) {
  const InstructionParam &p = info.param;
  return backendParamName(*p.backend) + "_" + rt::opName(p.op) + "_" +
         (p.test ? p.test->variant : "no_case");
}

class InstructionConformance
    : public ::testing::TestWithParam<InstructionParam> {};

/// Whether the opcode's cases need the compiler, so a build without it has
/// none of them.
bool casesNeedTheCompiler(rt::Op op) {
#ifdef LOOM_CONFORMANCE_WITHOUT_COMPILER
  return op == rt::Op::Kernel;
#else
  (void)op;
  return false;
#endif
}

TEST_P(InstructionConformance, MatchesTheReference) {
  const InstructionParam &p = GetParam();
  if (!p.test && casesNeedTheCompiler(p.op))
    GTEST_SKIP() << "the cases of opcode " << rt::opName(p.op)
                 << " build their plans with the compiler (KernelCases.cpp); "
                    "this is a runtime-only build (LOOM_BUILD_COMPILER=OFF)";
  if (!p.test)
    FAIL() << "opcode " << rt::opName(p.op)
           << " has no conformance case (test/conformance/*Cases.cpp)";
  if (p.backend->unsupported.count(p.op))
    GTEST_SKIP() << "backend '" << p.backend->name
                 << "' does not run the opcode '" << rt::opName(p.op)
                 << "' yet";
  p.test->run(*p.backend);
}

INSTANTIATE_TEST_SUITE_P(Backends, InstructionConformance,
                         ::testing::ValuesIn(instructionParams()),
                         instructionParamName);

// A backend of the build without an entry here would run no test at all.
TEST(BackendRegistry, EveryBackendOfTheBuildHasAnEntry) {
  for (const std::string &name : rt::backendNames()) {
    bool found = false;
    for (const BackendEntry &e : allBackendEntries())
      found |= e.name == name;
    EXPECT_TRUE(found) << "the runtime's backend '" << name
                       << "' has no entry in test/conformance/Backends.cpp";
  }
  ASSERT_FALSE(backends().empty());
  EXPECT_EQ(backends().front().name, "cpu");
}

// The `cuda` backend's tests run only where there is a GPU; elsewhere this
// says why they did not.
TEST(BackendRegistry, CudaRunsWhereThereIsAGpu) {
  std::string why = cudaUnavailable();
  if (!why.empty())
    GTEST_SKIP() << "the conformance suite does not run for 'cuda' here: "
                 << why << " ('cuda-emulated' runs its kernels on the host)";
  bool listed = false;
  for (const BackendEntry &e : backends())
    listed |= e.name == "cuda";
  EXPECT_TRUE(listed) << "a GPU is there but 'cuda' is not tested";
}

TEST(BackendRegistry, EveryEntryHasEveryTolerance) {
  for (const BackendEntry &e : allBackendEntries())
    for (int f = 0; f <= int(Family::WholeStep); ++f)
      EXPECT_GE(e.tolerance(Family(f)).rtol, 0)
          << e.name << " has no tolerance for " << familyName(Family(f));
}

} // namespace
} // namespace conformance
} // namespace loom
