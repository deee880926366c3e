//===- MpiCommunicatorTest.cpp - the mpi communicator against the local one
//===//
//
// Run under mpirun (ctest: mpirun -np 4 and -np 8). Every process builds the
// same inputs for every rank of the mesh, runs them through a local
// communicator of threads for the expected outputs, then through the mpi
// communicator as its own rank: the results must be the same bits.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Communicator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

using namespace loom::runtime;

namespace {

int64_t gRank = 0, gSize = 1;

/// dp × tp for 8 ranks (tp groups of 4: sums of more than two, whose
/// order shows in the bits), dp × pp × tp for 4, a line otherwise.
MeshShape meshFor(int64_t size) {
  MeshShape m;
  if (size == 8) {
    m.names = {"dp", "tp"};
    m.sizes = {2, 4};
  } else if (size == 4) {
    m.names = {"dp", "pp", "tp"};
    m.sizes = {1, 2, 2};
  } else {
    m.names = {"dp"};
    m.sizes = {size};
  }
  return m;
}

/// Values whose sums depend on the order they are added in.
float input(int64_t rank, size_t i, int salt) {
  double x = std::sin(double(rank * 7919 + int64_t(i) * 104729 + salt)) *
             std::pow(10.0, double((i + size_t(rank)) % 7) - 3);
  return float(x);
}

std::unique_ptr<Communicator> mpiComm(double timeout = 60) {
  ProcessCommOptions o;
  o.timeoutSeconds = timeout;
  Result<std::unique_ptr<Communicator>> c =
      createMpiCommunicator(meshFor(gSize), gRank, o);
  EXPECT_TRUE(c.ok()) << c.message();
  return c.ok() ? std::move(*c) : nullptr;
}

/// Runs `call(comm, rank, out)` on every rank of a local communicator and
/// returns this process's rank's output.
template <typename T>
std::vector<T>
expected(size_t outSize,
         const std::function<Status(Communicator &, int64_t, std::vector<T> &)>
             &call) {
  MeshShape mesh = meshFor(gSize);
  LocalCommunicatorGroup group(mesh, 60);
  std::vector<std::vector<T>> outs(size_t(gSize), std::vector<T>(outSize, T()));
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < gSize; ++r)
    threads.emplace_back([&, r] {
      Status s = call(group.forRank(r), r, outs[size_t(r)]);
      EXPECT_TRUE(s.ok()) << s.message();
    });
  for (std::thread &t : threads)
    t.join();
  return outs[size_t(gRank)];
}

template <typename T>
bool sameBits(const std::vector<T> &a, const std::vector<T> &b) {
  return a.size() == b.size() &&
         (a.empty() ||
          std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

TEST(MpiCommunicator, AllReduceIsTheLocalOnesBits) {
  auto comm = mpiComm();
  ASSERT_TRUE(comm);
  MeshShape mesh = meshFor(gSize);
  for (int axis = 0; axis < int(mesh.sizes.size()); ++axis)
    for (size_t n : {size_t(1), size_t(3), size_t(1000), size_t(4099)})
      for (ReduceKind op : {ReduceKind::Sum, ReduceKind::Max}) {
        auto in = [&](int64_t r) {
          std::vector<float> v(n);
          for (size_t i = 0; i < n; ++i)
            v[i] = input(r, i, axis);
          if (op == ReduceKind::Max && n > 2 && r == 1)
            v[2] = NAN; // Max propagates NaN
          return v;
        };
        std::vector<float> want = expected<float>(
            n, [&](Communicator &c, int64_t r, std::vector<float> &out) {
              std::vector<float> x = in(r);
              return c.allReduce(axis, x.data(), out.data(), n, CommDType::F32,
                                 op, "test");
            });
        std::vector<float> got = in(gRank); // in place
        Status s = comm->allReduce(axis, got.data(), got.data(), n,
                                   CommDType::F32, op, "test");
        ASSERT_TRUE(s.ok()) << s.message();
        EXPECT_TRUE(sameBits(got, want)) << "axis " << axis << " n " << n;
      }
  // f64 too.
  std::vector<double> want = expected<double>(
      5, [&](Communicator &c, int64_t r, std::vector<double> &out) {
        std::vector<double> x(5, 0.1 * double(r + 1));
        return c.allReduce(0, x.data(), out.data(), 5, CommDType::F64,
                           ReduceKind::Sum, "f64");
      });
  std::vector<double> x(5, 0.1 * double(gRank + 1)), got(5);
  ASSERT_TRUE(comm->allReduce(0, x.data(), got.data(), 5, CommDType::F64,
                              ReduceKind::Sum, "f64")
                  .ok());
  EXPECT_TRUE(sameBits(got, want));
}

TEST(MpiCommunicator, AllGatherAndReduceScatterAlongAnInnerDimension) {
  auto comm = mpiComm();
  ASSERT_TRUE(comm);
  MeshShape mesh = meshFor(gSize);
  size_t outer = 3, inner = 5;
  for (int axis = 0; axis < int(mesh.sizes.size()); ++axis) {
    size_t g = size_t(mesh.sizes[size_t(axis)]);
    auto in = [&](int64_t r, size_t count) {
      std::vector<float> v(count);
      for (size_t i = 0; i < count; ++i)
        v[i] = input(r, i, 100 + axis);
      return v;
    };
    std::vector<float> want =
        expected<float>(outer * g * inner, [&](Communicator &c, int64_t r,
                                               std::vector<float> &out) {
          std::vector<float> x = in(r, outer * inner);
          return c.allGather(axis, x.data(), out.data(), outer, inner,
                             CommDType::F32, "gather");
        });
    std::vector<float> x = in(gRank, outer * inner), got(outer * g * inner);
    Status s = comm->allGather(axis, x.data(), got.data(), outer, inner,
                               CommDType::F32, "gather");
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(sameBits(got, want)) << "all_gather along axis " << axis;

    want = expected<float>(outer * inner, [&](Communicator &c, int64_t r,
                                              std::vector<float> &out) {
      std::vector<float> y = in(r, outer * g * inner);
      return c.reduceScatter(axis, y.data(), out.data(), outer, inner,
                             CommDType::F32, "scatter");
    });
    std::vector<float> y = in(gRank, outer * g * inner),
                       scattered(outer * inner);
    s = comm->reduceScatter(axis, y.data(), scattered.data(), outer, inner,
                            CommDType::F32, "scatter");
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(sameBits(scattered, want)) << "reduce_scatter along " << axis;
  }
}

TEST(MpiCommunicator, Broadcast) {
  auto comm = mpiComm();
  ASSERT_TRUE(comm);
  MeshShape mesh = meshFor(gSize);
  int axis = int(mesh.sizes.size()) - 1;
  int64_t root = mesh.sizes[size_t(axis)] - 1;
  std::vector<float> v(7, float(gRank));
  ASSERT_TRUE(
      comm->broadcast(axis, v.data(), 7, CommDType::F32, root, "b").ok());
  int64_t rootRank = mesh.groupMembers(gRank, axis)[size_t(root)];
  EXPECT_EQ(v, std::vector<float>(7, float(rootRank)));
  Status bad = comm->broadcast(axis, v.data(), 7, CommDType::F32, 99, "b");
  EXPECT_NE(bad.message().find("names root 99"), std::string::npos)
      << bad.message();
}

TEST(MpiCommunicator, SendsAreBufferedAndMatchByTag) {
  auto comm = mpiComm();
  ASSERT_TRUE(comm);
  MeshShape mesh = meshFor(gSize);
  int axis = int(mesh.sizes.size()) - 1; // at least two members
  int64_t me = mesh.coordinates(gRank)[size_t(axis)];
  int64_t peer = (me + 1) % mesh.sizes[size_t(axis)];
  // Both sides send first (tags 5, then -1, as the pipeline's tied
  // gradients use), then receive in the other order.
  std::vector<float> a(10, float(gRank)), b(3, float(gRank) + 0.5f);
  ASSERT_TRUE(
      comm->send(axis, peer, a.data(), 10, CommDType::F32, 5, "a").ok());
  ASSERT_TRUE(
      comm->send(axis, peer, b.data(), 3, CommDType::F32, -1, "b").ok());
  std::vector<float> rb(3), ra(10);
  int64_t from = mesh.groupMembers(gRank, axis)[size_t(
      (me + mesh.sizes[size_t(axis)] - 1) % mesh.sizes[size_t(axis)])];
  Status s = comm->recv(
      axis, (me + mesh.sizes[size_t(axis)] - 1) % mesh.sizes[size_t(axis)],
      rb.data(), 3, CommDType::F32, -1, "b");
  ASSERT_TRUE(s.ok()) << s.message();
  s = comm->recv(axis,
                 (me + mesh.sizes[size_t(axis)] - 1) % mesh.sizes[size_t(axis)],
                 ra.data(), 10, CommDType::F32, 5, "a");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ra, std::vector<float>(10, float(from)));
  EXPECT_EQ(rb, std::vector<float>(3, float(from) + 0.5f));
  // A message of another size is an error naming both.
  ASSERT_TRUE(
      comm->send(axis, peer, a.data(), 10, CommDType::F32, 7, "c").ok());
  s = comm->recv(axis,
                 (me + mesh.sizes[size_t(axis)] - 1) % mesh.sizes[size_t(axis)],
                 ra.data(), 4, CommDType::F32, 7, "c");
  EXPECT_NE(s.message().find("expected 4 x f32, but the peer sent 10 x f32"),
            std::string::npos)
      << s.message();
}

TEST(MpiCommunicator, WorldGatherAndBroadcast) {
  auto comm = mpiComm();
  ASSERT_TRUE(comm);
  std::vector<uint8_t> mine(size_t(gRank) * 3, uint8_t(gRank));
  std::vector<std::vector<uint8_t>> all;
  Status s = comm->gatherToRoot(mine, &all, "blocks");
  ASSERT_TRUE(s.ok()) << s.message();
  if (gRank == 0) {
    ASSERT_EQ(all.size(), size_t(gSize));
    for (int64_t r = 0; r < gSize; ++r)
      EXPECT_EQ(all[size_t(r)],
                std::vector<uint8_t>(size_t(r) * 3, uint8_t(r)));
  } else {
    EXPECT_TRUE(all.empty());
  }
  std::vector<uint8_t> bytes;
  if (gRank == 0)
    bytes = {1, 2, 3, 4, 5};
  ASSERT_TRUE(comm->broadcastFromRoot(bytes, "b").ok());
  EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
}

TEST(MpiCommunicator, ARecvNobodySendsTimesOutNamingThePeer) {
  auto comm = mpiComm(0.3);
  ASSERT_TRUE(comm);
  MeshShape mesh = meshFor(gSize);
  std::vector<float> x(4);
  int axis = int(mesh.sizes.size()) - 1;
  Status s = comm->recv(axis,
                        (mesh.coordinates(gRank)[size_t(axis)] + 1) %
                            mesh.sizes[size_t(axis)],
                        x.data(), 4, CommDType::F32, 999, "never sent");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("timed out after 0.3 s in recv 'never sent'"),
            std::string::npos)
      << s.message();
}

TEST(MpiCommunicator, AbortFailsLaterCalls) {
  auto comm = mpiComm();
  ASSERT_TRUE(comm);
  comm->abort("a test");
  float x = 1;
  Status s = comm->allReduce(0, &x, &x, 1, CommDType::F32, ReduceKind::Sum,
                             "after abort");
  EXPECT_NE(s.message().find("aborted the job: a test"), std::string::npos)
      << s.message();
}

} // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (Status s = initializeMpi(&gRank, &gSize); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  // Only rank 0 prints gtest's progress; every rank's failures still print.
  if (gRank != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int result = RUN_ALL_TESTS();
  finalizeMpi();
  return result;
}
