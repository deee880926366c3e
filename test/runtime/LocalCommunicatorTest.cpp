//===- LocalCommunicatorTest.cpp - the `local` communicator ---------------===//

#include "loom/runtime/Communicator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <random>
#include <thread>

using namespace loom::runtime;

namespace {

MeshShape dpTp() { return MeshShape{{"dp", "tp"}, {2, 2}}; }

/// Runs body(rank, comm) on one thread per rank and waits for all.
void runRanks(LocalCommunicatorGroup &job,
              const std::function<void(int64_t, Communicator &)> &body) {
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < job.mesh().numRanks(); ++r)
    threads.emplace_back([&, r] { body(r, job.forRank(r)); });
  for (std::thread &t : threads)
    t.join();
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

TEST(MeshShape, CoordinatesAreRowMajorLastAxisFastest) {
  MeshShape mesh{{"dp", "pp", "tp"}, {2, 1, 2}};
  ASSERT_TRUE(mesh.verify().ok());
  EXPECT_EQ(mesh.numRanks(), 4);
  EXPECT_EQ(mesh.coordinates(1), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(mesh.coordinates(2), (std::vector<int64_t>{1, 0, 0}));
  for (int64_t r = 0; r < 4; ++r)
    EXPECT_EQ(mesh.rankOf(mesh.coordinates(r)), r);
  EXPECT_EQ(mesh.axisIndex("tp"), 2);
  EXPECT_EQ(mesh.axisIndex("ep"), -1);
  EXPECT_EQ(mesh.describe(3), "rank 3 (dp=1, pp=0, tp=1)");
  EXPECT_EQ(mesh.groupMembers(3, 0), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(mesh.groupMembers(2, 2), (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE((MeshShape{{"dp", "dp"}, {1, 1}}).verify().ok());
  EXPECT_FALSE((MeshShape{{"dp"}, {0}}).verify().ok());
  EXPECT_FALSE((MeshShape{{"dp"}, {1, 2}}).verify().ok());
}

TEST(LocalCommunicator, AllReduceSumAndMaxOverEachAxis) {
  LocalCommunicatorGroup job(dpTp(), 10);
  // [tp sum, tp max, dp sum, dp max] per rank.
  std::vector<std::vector<float>> got(4);
  std::vector<Status> status(4);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    std::vector<float> in = {float(r + 1), float(10 * (r + 1))}, out(2);
    Status st = comm.allReduce(1, in.data(), out.data(), 2, CommDType::F32,
                               ReduceKind::Sum, "sum (tp)");
    got[r].insert(got[r].end(), out.begin(), out.end());
    if (st.ok())
      st = comm.allReduce(1, in.data(), out.data(), 2, CommDType::F32,
                          ReduceKind::Max, "max (tp)");
    got[r].insert(got[r].end(), out.begin(), out.end());
    if (st.ok())
      st = comm.allReduce(0, in.data(), out.data(), 2, CommDType::F32,
                          ReduceKind::Sum, "sum (dp)");
    got[r].insert(got[r].end(), out.begin(), out.end());
    if (st.ok())
      st = comm.allReduce(0, in.data(), out.data(), 2, CommDType::F32,
                          ReduceKind::Max, "max (dp)");
    got[r].insert(got[r].end(), out.begin(), out.end());
    status[r] = st;
  });
  for (int r = 0; r < 4; ++r)
    ASSERT_TRUE(status[r].ok()) << status[r].message();
  // tp groups {0,1}, {2,3}; dp groups {0,2}, {1,3}; values are rank + 1.
  EXPECT_EQ(got[0], (std::vector<float>{3, 30, 2, 20, 4, 40, 3, 30}));
  EXPECT_EQ(got[1], (std::vector<float>{3, 30, 2, 20, 6, 60, 4, 40}));
  EXPECT_EQ(got[2], (std::vector<float>{7, 70, 4, 40, 4, 40, 3, 30}));
  EXPECT_EQ(got[3], (std::vector<float>{7, 70, 4, 40, 6, 60, 4, 40}));
}

TEST(LocalCommunicator, AllReduceInPlaceF64) {
  LocalCommunicatorGroup job(dpTp(), 10);
  std::vector<std::vector<double>> data(4);
  std::vector<Status> status(4);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    data[r] = {double(r), 100.0 + r, -1.0 * r};
    status[r] = comm.allReduce(0, data[r].data(), data[r].data(), 3,
                               CommDType::F64, ReduceKind::Sum, "in place");
  });
  for (int r = 0; r < 4; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    double s = (r % 2) * 2 + 2; // dp group {r%2, r%2+2}
    EXPECT_EQ(data[r], (std::vector<double>{s, 200.0 + s, -s})) << r;
  }
}

TEST(LocalCommunicator, ManyCollectivesInPlaceAlternatingAxes) {
  LocalCommunicatorGroup job(dpTp(), 10);
  std::vector<std::vector<float>> data(4, std::vector<float>(64));
  std::vector<Status> status(4);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    for (float &x : data[r])
      x = 1;
    for (int i = 0; i < 200 && status[r].ok(); ++i)
      status[r] = comm.allReduce(i % 2, data[r].data(), data[r].data(), 64,
                                 CommDType::F32, ReduceKind::Max,
                                 "loop " + std::to_string(i));
    // One more sum: every element of every rank is 1, so the sum is 2.
    if (status[r].ok())
      status[r] = comm.allReduce(1, data[r].data(), data[r].data(), 64,
                                 CommDType::F32, ReduceKind::Sum, "last");
  });
  for (int r = 0; r < 4; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    for (float x : data[r])
      EXPECT_EQ(x, 2.0f);
  }
}

TEST(LocalCommunicator, AllGatherBlockLayoutWithOuter) {
  LocalCommunicatorGroup job(dpTp(), 10);
  const size_t outer = 2, inner = 3;
  std::vector<std::vector<float>> got(4, std::vector<float>(outer * 2 * inner));
  std::vector<Status> status(4);
  auto value = [](int64_t r, size_t o, size_t i) {
    return float(r * 100 + o * 10 + i);
  };
  runRanks(job, [&](int64_t r, Communicator &comm) {
    std::vector<float> in(outer * inner);
    for (size_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < inner; ++i)
        in[o * inner + i] = value(r, o, i);
    status[r] = comm.allGather(1, in.data(), got[r].data(), outer, inner,
                               CommDType::F32, "gather (tp)");
  });
  MeshShape mesh = dpTp();
  for (int64_t r = 0; r < 4; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    std::vector<int64_t> members = mesh.groupMembers(r, 1);
    for (size_t o = 0; o < outer; ++o)
      for (size_t g = 0; g < 2; ++g)
        for (size_t i = 0; i < inner; ++i)
          EXPECT_EQ(got[r][o * 2 * inner + g * inner + i],
                    value(members[g], o, i))
              << "rank " << r << " o " << o << " g " << g << " i " << i;
  }
}

TEST(LocalCommunicator, ReduceScatterBlockLayoutWithOuter) {
  LocalCommunicatorGroup job(dpTp(), 10);
  const size_t outer = 2, inner = 2, n = 2;
  std::vector<std::vector<double>> got(4, std::vector<double>(outer * inner));
  std::vector<Status> status(4);
  auto value = [](int64_t r, size_t o, size_t c) {
    return double(r * 1000 + o * 10 + c);
  };
  runRanks(job, [&](int64_t r, Communicator &comm) {
    std::vector<double> in(outer * n * inner);
    for (size_t o = 0; o < outer; ++o)
      for (size_t c = 0; c < n * inner; ++c)
        in[o * n * inner + c] = value(r, o, c);
    status[r] = comm.reduceScatter(0, in.data(), got[r].data(), outer, inner,
                                   CommDType::F64, "scatter (dp)");
  });
  MeshShape mesh = dpTp();
  for (int64_t r = 0; r < 4; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    std::vector<int64_t> members = mesh.groupMembers(r, 0);
    int64_t me = mesh.coordinates(r)[0];
    for (size_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < inner; ++i)
        EXPECT_EQ(got[r][o * inner + i],
                  value(members[0], o, me * inner + i) +
                      value(members[1], o, me * inner + i))
            << "rank " << r << " o " << o << " i " << i;
  }
}

TEST(LocalCommunicator, BroadcastFromRoot) {
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {3}}, 10);
  std::vector<std::vector<float>> data(3);
  std::vector<Status> status(3);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    data[r] = {float(r), float(r * 2)};
    status[r] = comm.broadcast(0, data[r].data(), 2, CommDType::F32, 1,
                               "broadcast");
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    EXPECT_EQ(data[r], (std::vector<float>{1, 2}));
  }
}

TEST(LocalCommunicator, SendRecvRing) {
  const int64_t n = 4;
  LocalCommunicatorGroup job(MeshShape{{"dp", "pp"}, {1, n}}, 10);
  std::vector<std::vector<float>> got(n, std::vector<float>(3));
  std::vector<Status> status(n);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    // Two messages with different tags, received in the opposite order.
    std::vector<float> a = {float(r), float(r), float(r)};
    std::vector<float> b = {float(-r), float(-r), float(-r)};
    std::vector<float> dummy(3);
    Status st = comm.send(1, (r + 1) % n, a.data(), 3, CommDType::F32, 7, "a");
    if (st.ok())
      st = comm.send(1, (r + 1) % n, b.data(), 3, CommDType::F32, 8, "b");
    a.assign(3, 99); // the send buffered a copy
    if (st.ok())
      st = comm.recv(1, (r + n - 1) % n, dummy.data(), 3, CommDType::F32, 8,
                     "b");
    if (st.ok())
      st = comm.recv(1, (r + n - 1) % n, got[r].data(), 3, CommDType::F32, 7,
                     "a");
    if (st.ok()) {
      EXPECT_EQ(dummy[0], -float((r + n - 1) % n));
    }
    status[r] = st;
  });
  for (int64_t r = 0; r < n; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    float from = float((r + n - 1) % n);
    EXPECT_EQ(got[r], (std::vector<float>{from, from, from}));
  }
}

TEST(LocalCommunicator, SumsAreBitIdenticalInGroupOrder) {
  const int64_t n = 3;
  const size_t count = 4096;
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {n}}, 10);
  std::vector<std::vector<float>> in(n, std::vector<float>(count));
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto &v : in)
    for (float &x : v)
      x = dist(gen) * std::pow(10.0f, float(int(gen() % 9) - 4));
  // Element 0: a sum that depends on the order.
  in[0][0] = 1e8f;
  in[1][0] = 1.0f;
  in[2][0] = -1e8f;
  std::vector<float> want(count);
  for (size_t i = 0; i < count; ++i)
    want[i] = (in[0][i] + in[1][i]) + in[2][i];
  ASSERT_EQ(want[0], 0.0f); // (1e8 + 1) rounds to 1e8
  std::vector<std::vector<float>> got(n, std::vector<float>(count));
  std::vector<Status> status(n);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    status[r] = comm.allReduce(0, in[r].data(), got[r].data(), count,
                               CommDType::F32, ReduceKind::Sum, "sum");
  });
  for (int64_t r = 0; r < n; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    EXPECT_EQ(std::memcmp(got[r].data(), want.data(), count * sizeof(float)),
              0)
        << "rank " << r;
  }
}

TEST(LocalCommunicator, MaxPropagatesNaN) {
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {2}}, 10);
  std::vector<std::vector<float>> got(2, std::vector<float>(2));
  std::vector<Status> status(2);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> in = r == 0 ? std::vector<float>{nan, 1}
                                   : std::vector<float>{5, nan};
    status[r] = comm.allReduce(0, in.data(), got[r].data(), 2,
                               CommDType::F32, ReduceKind::Max, "max");
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r].message();
    EXPECT_TRUE(std::isnan(got[r][0]));
    EXPECT_TRUE(std::isnan(got[r][1]));
  }
}

TEST(LocalCommunicator, OneMemberGroupCopiesWithoutWaiting) {
  // The dp groups have one member: no other rank needs to call.
  LocalCommunicatorGroup job(MeshShape{{"dp", "tp"}, {1, 2}}, 0.2);
  Communicator &comm = job.forRank(1);
  std::vector<float> in = {1, 2, 3, 4}, out(4);
  ASSERT_TRUE(comm.allReduce(0, in.data(), out.data(), 4, CommDType::F32,
                             ReduceKind::Sum, "ar")
                  .ok());
  EXPECT_EQ(out, in);
  std::fill(out.begin(), out.end(), 0.0f);
  ASSERT_TRUE(
      comm.allGather(0, in.data(), out.data(), 2, 2, CommDType::F32, "ag").ok());
  EXPECT_EQ(out, in);
  std::fill(out.begin(), out.end(), 0.0f);
  ASSERT_TRUE(comm.reduceScatter(0, in.data(), out.data(), 2, 2,
                                 CommDType::F32, "rs")
                  .ok());
  EXPECT_EQ(out, in);
  ASSERT_TRUE(comm.broadcast(0, in.data(), 4, CommDType::F32, 0, "bc").ok());
  EXPECT_EQ(in, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_FALSE(comm.broadcast(0, in.data(), 4, CommDType::F32, 1, "bc").ok());
}

TEST(LocalCommunicator, TimeoutNamesRankCollectiveAndMissingMember) {
  LocalCommunicatorGroup job(MeshShape{{"dp", "tp"}, {1, 2}}, 0.2);
  std::vector<float> in = {1, 2};
  auto start = std::chrono::steady_clock::now();
  Status st = job.forRank(0).allReduce(1, in.data(), in.data(), 2,
                                       CommDType::F32, ReduceKind::Sum,
                                       "all_reduce loss (tp)");
  double waited = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  ASSERT_FALSE(st.ok());
  EXPECT_GE(waited, 0.19);
  const std::string &m = st.message();
  EXPECT_TRUE(contains(m, "rank 0 (dp=0, tp=0)")) << m;
  EXPECT_TRUE(contains(m, "timed out")) << m;
  EXPECT_TRUE(contains(m, "all_reduce loss (tp)")) << m;
  EXPECT_TRUE(contains(m, "collective #0")) << m;
  EXPECT_TRUE(contains(m, "not arrived: rank 1 (dp=0, tp=1)")) << m;
  std::cout << "  timeout message: " << m << "\n";
  // Rank 1 arriving late does not read rank 0's abandoned buffer.
  std::vector<float> late = {3, 4};
  Status st1 = job.forRank(1).allReduce(1, late.data(), late.data(), 2,
                                        CommDType::F32, ReduceKind::Sum,
                                        "all_reduce loss (tp)");
  ASSERT_FALSE(st1.ok());
  EXPECT_TRUE(contains(st1.message(), "rank 1 (dp=0, tp=1)")) << st1.message();
  EXPECT_TRUE(contains(st1.message(), "rank 0 (dp=0, tp=0) gave up"))
      << st1.message();
  EXPECT_EQ(late, (std::vector<float>{3, 4}));
}

TEST(LocalCommunicator, AHugeTimeoutWaitsInsteadOfExpiringAtOnce) {
  // 1e10 s is past the steady clock's nanosecond range from now: the
  // deadline used to overflow into the past, so the collective "timed out
  // after 1e+10 s" at once. A late peer must still be waited for, by
  // all-reduces and by recv alike.
  for (double timeout :
       {1e10, 1e300, std::numeric_limits<double>::infinity()}) {
    LocalCommunicatorGroup job(MeshShape{{"pp"}, {2}}, timeout);
    std::vector<Status> status(2);
    std::vector<float> sum(2);
    runRanks(job, [&](int64_t r, Communicator &comm) {
      if (r == 1)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::vector<float> in = {float(r + 1), 1};
      status[size_t(r)] =
          comm.allReduce(0, in.data(), in.data(), 2, CommDType::F32,
                         ReduceKind::Sum, "late peer");
      if (r == 0)
        sum = in;
      if (!status[size_t(r)].ok())
        return;
      float message = 7;
      if (r == 1)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      status[size_t(r)] =
          r == 1 ? comm.send(0, 0, &message, 1, CommDType::F32, 0, "late")
                 : comm.recv(0, 1, &message, 1, CommDType::F32, 0, "late");
    });
    for (const Status &st : status)
      EXPECT_TRUE(st.ok()) << "timeout " << timeout << ": " << st.message();
    EXPECT_EQ(sum, (std::vector<float>{3, 2})) << "timeout " << timeout;
  }
}

TEST(LocalCommunicator, RecvTimesOut) {
  LocalCommunicatorGroup job(MeshShape{{"pp"}, {2}}, 0.2);
  std::vector<float> buf(2);
  Status st = job.forRank(1).recv(0, 0, buf.data(), 2, CommDType::F32, 3,
                                  "activations stage 0");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "rank 1 (pp=1) timed out")) << st.message();
  EXPECT_TRUE(contains(st.message(), "activations stage 0")) << st.message();
  EXPECT_TRUE(contains(st.message(), "rank 0 (pp=0)")) << st.message();
}

TEST(LocalCommunicator, RecvSizeMismatch) {
  LocalCommunicatorGroup job(MeshShape{{"pp"}, {2}}, 5);
  std::vector<float> buf(3);
  ASSERT_TRUE(
      job.forRank(0).send(0, 1, buf.data(), 3, CommDType::F32, 0, "x").ok());
  Status st = job.forRank(1).recv(0, 0, buf.data(), 2, CommDType::F32, 0, "x");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "rank 1 (pp=1) expects 2 x f32"))
      << st.message();
  EXPECT_TRUE(contains(st.message(), "rank 0 (pp=0) sent 'x' with 3 x f32"))
      << st.message();
}

TEST(LocalCommunicator, AbortFailsTheWaitingRank) {
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {2}}, 30);
  std::vector<Status> status(2);
  auto start = std::chrono::steady_clock::now();
  runRanks(job, [&](int64_t r, Communicator &comm) {
    std::vector<float> x = {1};
    if (r == 0) {
      status[r] = comm.allReduce(0, x.data(), x.data(), 1, CommDType::F32,
                                 ReduceKind::Sum, "grad sync");
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      comm.abort("out of memory in layer 3");
      status[r] = comm.allReduce(0, x.data(), x.data(), 1, CommDType::F32,
                                 ReduceKind::Sum, "grad sync");
    }
  });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                          start)
                .count(),
            5.0);
  for (int r = 0; r < 2; ++r) {
    ASSERT_FALSE(status[r].ok()) << r;
    const std::string &m = status[r].message();
    EXPECT_TRUE(contains(m, "rank 1 (tp=1) aborted the job: out of memory "
                            "in layer 3"))
        << m;
    EXPECT_TRUE(contains(m, job.mesh().describe(r))) << m;
  }
  // Later calls, recvs included, fail too.
  std::vector<float> x = {1};
  Status st = job.forRank(0).recv(0, 1, x.data(), 1, CommDType::F32, 0, "r");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "out of memory in layer 3"))
      << st.message();
}

TEST(LocalCommunicator, MismatchedCollectivesNameBoth) {
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {2}}, 5);
  std::vector<Status> status(2);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    std::vector<float> in(4), out(8);
    if (r == 0)
      status[r] = comm.allReduce(0, in.data(), out.data(), 4, CommDType::F32,
                                 ReduceKind::Sum, "all_reduce grads");
    else
      status[r] = comm.allGather(0, in.data(), out.data(), 1, 4,
                                 CommDType::F32, "all_gather weights");
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_FALSE(status[r].ok()) << r;
    const std::string &m = status[r].message();
    EXPECT_TRUE(contains(m, "mismatched")) << m;
    EXPECT_TRUE(contains(m, "rank 0 (tp=0)")) << m;
    EXPECT_TRUE(contains(m, "rank 1 (tp=1)")) << m;
    EXPECT_TRUE(contains(m, "all_reduce grads")) << m;
    EXPECT_TRUE(contains(m, "all_gather weights")) << m;
  }
  std::cout << "  mismatch message: " << status[0].message() << "\n";
}

TEST(LocalCommunicator, MismatchedSizesNameBoth) {
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {2}}, 5);
  std::vector<Status> status(2);
  runRanks(job, [&](int64_t r, Communicator &comm) {
    std::vector<float> buf(8);
    status[r] = comm.allReduce(0, buf.data(), buf.data(), r == 0 ? 4 : 5,
                               CommDType::F32, ReduceKind::Sum, "ar");
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_FALSE(status[r].ok()) << r;
    const std::string &m = status[r].message();
    EXPECT_TRUE(contains(m, "4 x f32")) << m;
    EXPECT_TRUE(contains(m, "5 x f32")) << m;
    EXPECT_TRUE(contains(m, "rank 0 (tp=0)")) << m;
    EXPECT_TRUE(contains(m, "rank 1 (tp=1)")) << m;
  }
}

TEST(LocalCommunicator, BadAxisIsAnError) {
  LocalCommunicatorGroup job(MeshShape{{"tp"}, {1}}, 5);
  float x = 0;
  Status st = job.forRank(0).allReduce(3, &x, &x, 1, CommDType::F32,
                                       ReduceKind::Sum, "ar");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "mesh axis 3")) << st.message();
}

} // namespace
