//===- DeviceMemoryTest.cpp - a plan larger than the device ---------------===//
//
// A device backend that cannot hold a plan says how much the plan needs, and
// what the device had, before anything runs (issue 14: "out-of-memory is an
// error that says how many bytes the plan needs and how many are free"). On
// the emulated device "device memory" is host memory: an arena of 2^46
// bytes (64 TiB) is more than any machine that runs this test has.
//
//===----------------------------------------------------------------------===//

#include "Backends.h"
#include "Harness.h"

#include <gtest/gtest.h>

namespace {

using namespace loom::conformance;
namespace plan = loom::plan;
namespace rt = loom::runtime;

TEST(DeviceMemory, APlanLargerThanTheDeviceSaysWhatItNeeds) {
  for (const BackendEntry &backend : backends()) {
    if (backend.name == "cpu")
      continue; // the host's arenas: a plain allocation failure
    SCOPED_TRACE(backend.name);
    PlanSketch sketch(1, 1, 1);
    BufferId x = sketch.buffer("x", plan::DType::F32, {4});
    BufferId y = sketch.buffer("y", plan::DType::F32, {4});
    sketch.instruction(rt::Op::Neg, {x}, {y});
    std::unique_ptr<plan::PlanT> p = sketch.finish();
    ASSERT_TRUE(p);
    ASSERT_FALSE(p->arena_bytes.empty());
    p->arena_bytes.back() = int64_t(1) << 46;
    auto created = backend.create(*p, {});
    ASSERT_FALSE(created.ok()) << "a 64 TiB arena was allocated";
    EXPECT_NE(created.message().find("cannot allocate 70368744177664 bytes"),
              std::string::npos)
        << created.message();
    EXPECT_NE(created.message().find("this rank's plan needs 7036874417"),
              std::string::npos)
        << created.message();
  }
}

} // namespace
