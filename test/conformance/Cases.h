//===- Cases.h - the per-instruction cases, registered by opcode -*- C++
//-*-===//
//
// Each case builds a tiny plan around one instruction (a variant of it:
// matmul with transposes, softmax with a mask, ...), runs it on a backend
// and compares the outputs with a double-precision reference. Cases
// register themselves under their opcode; InstructionTest.cpp runs every
// case on every backend, and fails for each opcode of Instructions.def
// that has no case at all.
//
//   CONFORMANCE_CASE(Relu, plain) {
//     OneInstruction t(backend);
//     ...
//   }
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CONFORMANCE_CASES_H
#define LOOM_TEST_CONFORMANCE_CASES_H

#include "Backends.h"
#include "Harness.h"

#include <string>
#include <vector>

namespace loom {
namespace conformance {

using CaseFn = void (*)(const BackendEntry &backend);

struct Case {
  runtime::Op op;
  std::string variant;
  CaseFn run;
};

/// Every registered case, in registration order.
std::vector<Case> &caseRegistry();

struct CaseRegistration {
  CaseRegistration(runtime::Op op, const char *variant, CaseFn run) {
    caseRegistry().push_back({op, variant, run});
  }
};

} // namespace conformance
} // namespace loom

/// Defines and registers the case VARIANT of opcode OP (an Op enumerator);
/// the body sees `const BackendEntry &backend`.
#define CONFORMANCE_CASE(OP, VARIANT)                                          \
  static void conformanceCase_##OP##_##VARIANT(                                \
      const ::loom::conformance::BackendEntry &backend);                       \
  static ::loom::conformance::CaseRegistration                                 \
      conformanceRegistration_##OP##_##VARIANT(                                \
          ::loom::runtime::Op::OP, #VARIANT,                                   \
          conformanceCase_##OP##_##VARIANT);                                   \
  static void conformanceCase_##OP##_##VARIANT(                                \
      [[maybe_unused]] const ::loom::conformance::BackendEntry &backend)

#endif // LOOM_TEST_CONFORMANCE_CASES_H
