//===- GlooCommunicatorTest.cpp - the gloo communicator over loopback -----===//
//
// Every rank is a thread with its own StoreClient and gloo communicator
// (gloo over loopback works within one process); results are compared bit
// for bit with the local communicator's on the same inputs.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Job.h"
#include "loom/runtime/Store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

using namespace loom::runtime;

namespace {

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

#define SKIP_WITHOUT_GLOO()                                                    \
  if (!glooAvailable())                                                        \
  GTEST_SKIP() << "this build has no Gloo (install libgloo-dev)"

using Body = std::function<void(int64_t rank, Communicator &comm)>;

/// One thread per rank, each with its own store client and gloo
/// communicator; body runs on it. `monitors` (optional) per rank.
void runGloo(const MeshShape &mesh, double timeout, const Body &body,
             std::vector<CommMonitor *> monitors = {}) {
  StoreServerOptions so;
  so.hangSeconds = 0;
  so.killHungLocalRanks = false;
  auto server = StoreServer::listen("127.0.0.1", 0, so);
  ASSERT_TRUE(server.ok()) << server.message();
  int port = (*server)->port();
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < mesh.numRanks(); ++r)
    threads.emplace_back([&, r] {
      auto store = StoreClient::connect("127.0.0.1", port, 10);
      ASSERT_TRUE(store.ok()) << store.message();
      ProcessCommOptions o;
      o.timeoutSeconds = timeout;
      o.monitor = monitors.empty() ? nullptr : monitors[r];
      auto comm = createGlooCommunicator(mesh, r, **store, o);
      ASSERT_TRUE(comm.ok()) << comm.message();
      body(r, **comm);
    });
  for (std::thread &t : threads)
    t.join();
}

void runLocal(const MeshShape &mesh, const Body &body) {
  LocalCommunicatorGroup job(mesh, 30);
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < mesh.numRanks(); ++r)
    threads.emplace_back([&, r] { body(r, job.forRank(r)); });
  for (std::thread &t : threads)
    t.join();
}

/// Values whose sums depend on the order of addition.
template <typename T> std::vector<T> inputs(int64_t rank, size_t n, int salt) {
  std::mt19937 gen(static_cast<unsigned>(rank * 7919 + salt));
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<T>(d(gen) * std::pow(10.0, (i % 7) - 3));
  return v;
}

/// Every collective on every axis; each rank's outputs, as bytes.
std::vector<std::vector<uint8_t>> everyCollective(const MeshShape &mesh,
                                                  bool gloo) {
  std::vector<std::vector<uint8_t>> results(mesh.numRanks());
  std::mutex mu;
  Body body = [&](int64_t rank, Communicator &comm) {
    std::vector<uint8_t> out;
    auto keep = [&](const void *p, size_t bytes) {
      const auto *b = static_cast<const uint8_t *>(p);
      out.insert(out.end(), b, b + bytes);
    };
    for (int axis = 0; axis < int(mesh.sizes.size()); ++axis) {
      size_t n = size_t(mesh.sizes[axis]);
      std::string ax = mesh.names[axis];
      // Sum, f32, a count no group size divides; then in place.
      auto a = inputs<float>(rank, 7, axis);
      std::vector<float> sum(7);
      ASSERT_TRUE(comm.allReduce(axis, a.data(), sum.data(), 7, CommDType::F32,
                                 ReduceKind::Sum, "sum (" + ax + ")")
                      .ok());
      keep(sum.data(), sizeof(float) * 7);
      ASSERT_TRUE(comm.allReduce(axis, a.data(), a.data(), 7, CommDType::F32,
                                 ReduceKind::Sum, "in place (" + ax + ")")
                      .ok());
      keep(a.data(), sizeof(float) * 7);
      // Max, f64, with a NaN on one member.
      auto m = inputs<double>(rank, 5, 10 + axis);
      if (rank == 1)
        m[2] = std::numeric_limits<double>::quiet_NaN();
      ASSERT_TRUE(comm.allReduce(axis, m.data(), m.data(), 5, CommDType::F64,
                                 ReduceKind::Max, "max (" + ax + ")")
                      .ok());
      keep(m.data(), sizeof(double) * 5);
      // All-gather and reduce-scatter of [3, n*2].
      auto g = inputs<float>(rank, 3 * 2, 20 + axis);
      std::vector<float> gathered(3 * n * 2);
      Status st = comm.allGather(axis, g.data(), gathered.data(), 3, 2,
                                 CommDType::F32, "gather (" + ax + ")");
      ASSERT_TRUE(st.ok()) << st.message();
      keep(gathered.data(), gathered.size() * sizeof(float));
      auto rs = inputs<double>(rank, 3 * n * 2, 30 + axis);
      std::vector<double> scattered(3 * 2);
      st = comm.reduceScatter(axis, rs.data(), scattered.data(), 3, 2,
                              CommDType::F64, "scatter (" + ax + ")");
      ASSERT_TRUE(st.ok()) << st.message();
      keep(scattered.data(), scattered.size() * sizeof(double));
      auto b = inputs<float>(rank, 4, 40 + axis);
      st = comm.broadcast(axis, b.data(), 4, CommDType::F32, n - 1,
                          "broadcast (" + ax + ")");
      ASSERT_TRUE(st.ok()) << st.message();
      keep(b.data(), b.size() * sizeof(float));
    }
    std::lock_guard<std::mutex> lock(mu);
    results[rank] = std::move(out);
  };
  if (gloo)
    runGloo(mesh, 30, body);
  else
    runLocal(mesh, body);
  return results;
}

TEST(GlooCommunicator, CollectivesMatchTheLocalCommunicatorBitForBit) {
  SKIP_WITHOUT_GLOO();
  for (const MeshShape &mesh :
       {MeshShape{{"dp", "tp"}, {2, 2}}, MeshShape{{"pp"}, {2}},
        MeshShape{{"dp"}, {3}}}) {
    SCOPED_TRACE(mesh.describe(0));
    auto local = everyCollective(mesh, false);
    auto gloo = everyCollective(mesh, true);
    for (int64_t r = 0; r < mesh.numRanks(); ++r) {
      ASSERT_FALSE(local[r].empty());
      EXPECT_EQ(local[r].size(), gloo[r].size()) << "rank " << r;
      EXPECT_TRUE(local[r] == gloo[r]) << "rank " << r << " differs";
    }
  }
}

/// dp all-reduces on a second thread while the rank's own thread runs tp
/// all-reduces and tp sends (the CPU executor's gradient overlap).
std::vector<std::vector<uint8_t>> axesOnTwoThreads(bool gloo) {
  MeshShape mesh{{"dp", "tp"}, {2, 2}};
  std::vector<std::vector<uint8_t>> results(4);
  std::mutex mu;
  Body body = [&](int64_t rank, Communicator &comm) {
    std::vector<float> dp(9 * 20), tp(5 * 20);
    std::thread comms([&] {
      for (int i = 0; i < 20; ++i) {
        auto x = inputs<float>(rank, 9, 100 + i);
        ASSERT_TRUE(comm.allReduce(0, x.data(), &dp[9 * i], 9, CommDType::F32,
                                   ReduceKind::Sum, "bucket (dp)")
                        .ok());
      }
    });
    for (int i = 0; i < 20; ++i) {
      auto x = inputs<float>(rank, 5, 200 + i);
      ASSERT_TRUE(comm.allReduce(1, x.data(), &tp[5 * i], 5, CommDType::F32,
                                 ReduceKind::Sum, "act (tp)")
                      .ok());
      float v = float(rank * 100 + i), got = 0;
      ASSERT_TRUE(
          comm.send(1, 1 - rank % 2, &v, 1, CommDType::F32, i, "p2p").ok());
      ASSERT_TRUE(
          comm.recv(1, 1 - rank % 2, &got, 1, CommDType::F32, i, "p2p").ok());
      EXPECT_EQ(got, float((rank ^ 1) * 100 + i));
    }
    comms.join();
    std::vector<uint8_t> out(
        reinterpret_cast<uint8_t *>(dp.data()),
        reinterpret_cast<uint8_t *>(dp.data() + dp.size()));
    out.insert(out.end(), reinterpret_cast<uint8_t *>(tp.data()),
               reinterpret_cast<uint8_t *>(tp.data() + tp.size()));
    std::lock_guard<std::mutex> lock(mu);
    results[rank] = std::move(out);
  };
  if (gloo)
    runGloo(mesh, 30, body);
  else
    runLocal(mesh, body);
  return results;
}

TEST(GlooCommunicator, AxesCalledFromDifferentThreadsAtOnce) {
  SKIP_WITHOUT_GLOO();
  auto local = axesOnTwoThreads(false);
  auto gloo = axesOnTwoThreads(true);
  for (int r = 0; r < 4; ++r) {
    ASSERT_FALSE(local[r].empty());
    EXPECT_TRUE(local[r] == gloo[r]) << "rank " << r << " differs";
  }
}

TEST(GlooCommunicator, ATimeoutOnOneAxisWhileAnotherAxisIsBusy) {
  SKIP_WITHOUT_GLOO();
  // Ranks 2 and 3 never join the dp all-reduce; everyone keeps calling tp
  // collectives meanwhile. The dp calls must time out on their own clock.
  MeshShape mesh{{"dp", "tp"}, {2, 2}};
  runGloo(mesh, 0.5, [&](int64_t rank, Communicator &comm) {
    std::thread dp;
    double took = 0;
    Status dpStatus = Status::success();
    if (rank < 2)
      dp = std::thread([&] {
        std::vector<float> x(3, 1.f);
        auto start = std::chrono::steady_clock::now();
        dpStatus = comm.allReduce(0, x.data(), x.data(), 3, CommDType::F32,
                                  ReduceKind::Sum, "bucket (dp)");
        took = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             start)
                   .count();
      });
    for (int i = 0; i < 50; ++i) {
      std::vector<float> y(2, 1.f);
      Status st = comm.allReduce(1, y.data(), y.data(), 2, CommDType::F32,
                                 ReduceKind::Sum, "act (tp)");
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_EQ(y[0], 2.f);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (dp.joinable())
      dp.join();
    if (rank < 2) {
      ASSERT_FALSE(dpStatus.ok());
      EXPECT_TRUE(contains(dpStatus.message(), "timed out after 0.5 s in "
                                               "'bucket (dp)'"))
          << dpStatus.message();
      EXPECT_LT(took, 1.0);
    }
  });
}

TEST(GlooCommunicator, SendsMatchReceivesByTagInSendOrder) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"pp"}, {2}};
  runGloo(mesh, 10, [&](int64_t rank, Communicator &comm) {
    if (rank == 0) {
      std::vector<float> one{1, 2, 3};
      std::vector<double> two{4, 5};
      std::vector<float> again{6};
      ASSERT_TRUE(
          comm.send(0, 1, one.data(), 3, CommDType::F32, 1, "one").ok());
      ASSERT_TRUE(
          comm.send(0, 1, two.data(), 2, CommDType::F64, 2, "two").ok());
      // Overwritten after the call: the send copied it.
      one.assign(3, -1);
      ASSERT_TRUE(
          comm.send(0, 1, again.data(), 1, CommDType::F32, 1, "again").ok());
      ASSERT_TRUE(
          comm.send(0, 1, two.data(), 2, CommDType::F64, 3, "wrong").ok());
      // Rank 1 sends back only after receiving everything: these sends must
      // not have waited for its receives.
      std::vector<float> back(1);
      ASSERT_TRUE(
          comm.recv(0, 1, back.data(), 1, CommDType::F32, 9, "back").ok());
      EXPECT_EQ(back[0], 42.f);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::vector<double> two(2);
      std::vector<float> one(3), again(1);
      ASSERT_TRUE(
          comm.recv(0, 0, two.data(), 2, CommDType::F64, 2, "two").ok());
      ASSERT_TRUE(
          comm.recv(0, 0, one.data(), 3, CommDType::F32, 1, "one").ok());
      ASSERT_TRUE(
          comm.recv(0, 0, again.data(), 1, CommDType::F32, 1, "again").ok());
      EXPECT_EQ(one, (std::vector<float>{1, 2, 3}));
      EXPECT_EQ(two, (std::vector<double>{4, 5}));
      EXPECT_EQ(again, (std::vector<float>{6}));
      std::vector<float> wrong(2);
      Status st = comm.recv(0, 0, wrong.data(), 2, CommDType::F32, 3, "mine");
      ASSERT_FALSE(st.ok());
      EXPECT_TRUE(contains(st.message(),
                           "rank 1 (pp=1) expects 2 x f32 in recv 'mine' "
                           "(message #0 from rank 0 (pp=0) along pp, tag 3), "
                           "but rank 0 (pp=0) sent 'wrong' with 2 x f64"))
          << st.message();
      float reply = 42;
      ASSERT_TRUE(comm.send(0, 0, &reply, 1, CommDType::F32, 9, "back").ok());
    }
  });
}

TEST(GlooCommunicator, WorldGatherAndBroadcast) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"dp", "tp"}, {2, 2}};
  runGloo(mesh, 10, [&](int64_t rank, Communicator &comm) {
    std::vector<uint8_t> mine(size_t(rank * 3), uint8_t(rank + 1));
    std::vector<std::vector<uint8_t>> atRoot;
    Status st = comm.gatherToRoot(mine, &atRoot, "state");
    ASSERT_TRUE(st.ok()) << st.message();
    if (rank == 0) {
      ASSERT_EQ(atRoot.size(), 4u);
      for (int64_t r = 0; r < 4; ++r)
        EXPECT_EQ(atRoot[r],
                  std::vector<uint8_t>(size_t(r * 3), uint8_t(r + 1)));
    } else {
      EXPECT_TRUE(atRoot.empty());
    }
    std::vector<uint8_t> bytes;
    if (rank == 0)
      bytes = {9, 8, 7, 6, 5};
    st = comm.broadcastFromRoot(bytes, "checkpoint");
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(bytes, (std::vector<uint8_t>{9, 8, 7, 6, 5}));
  });
}

TEST(GlooCommunicator, ARankThatNeverCallsTimesTheOthersOut) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"dp", "tp"}, {2, 2}};
  runGloo(mesh, 0.5, [&](int64_t rank, Communicator &comm) {
    std::vector<float> x(4, 1.f);
    if (rank == 3) {
      // Stays connected (a closed connection is a different error) but
      // never calls.
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      return;
    }
    auto start = std::chrono::steady_clock::now();
    Status st = comm.allReduce(1, x.data(), x.data(), 4, CommDType::F32,
                               ReduceKind::Sum, "grad (tp)");
    double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (rank < 2) {
      EXPECT_TRUE(st.ok()) << st.message();
      return;
    }
    ASSERT_FALSE(st.ok());
    EXPECT_GE(took, 0.45);
    EXPECT_LT(took, 1.4);
    EXPECT_TRUE(contains(st.message(),
                         "rank 2 (dp=1, tp=0) timed out after 0.5 s in "
                         "'grad (tp)' (all_reduce of 4 x f32, sum), "
                         "collective #0 of the tp group of ranks {2, 3}; "
                         "not known to have arrived: rank 3 (dp=1, tp=1)"))
        << st.message();
    // The group is closed now: later calls say why.
    st = comm.allReduce(1, x.data(), x.data(), 4, CommDType::F32,
                        ReduceKind::Sum, "next (tp)");
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(contains(st.message(), "earlier failure")) << st.message();
  });
}

TEST(GlooCommunicator, MismatchedCollectivesTimeOutInsteadOfCrashing) {
  SKIP_WITHOUT_GLOO();
  // Gloo's transport would terminate the process on a message longer than
  // its receive: different sizes must never be matched.
  MeshShape mesh{{"tp"}, {2}};
  std::mutex mu;
  std::vector<std::string> errors;
  runGloo(mesh, 0.3, [&](int64_t rank, Communicator &comm) {
    std::vector<float> x(8, 1.f);
    Status st = comm.allReduce(0, x.data(), x.data(), rank == 0 ? 4 : 6,
                               CommDType::F32, ReduceKind::Sum, "m");
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(st.ok() ? "" : st.message());
  });
  ASSERT_EQ(errors.size(), 2u);
  // The first to time out closes the group: the other may see that first.
  int timedOut = 0;
  for (const std::string &e : errors) {
    EXPECT_FALSE(e.empty());
    timedOut += contains(e, "timed out after 0.3 s in 'm'");
  }
  EXPECT_GE(timedOut, 1) << errors[0] << "\n" << errors[1];
}

TEST(GlooCommunicator, ARecvTimesOutNamingTheSender) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"pp"}, {2}};
  runGloo(mesh, 0.3, [&](int64_t rank, Communicator &comm) {
    if (rank == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      return;
    }
    float x;
    Status st = comm.recv(0, 0, &x, 1, CommDType::F32, 5, "activation");
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(contains(st.message(),
                         "rank 1 (pp=1) timed out after 0.3 s in recv "
                         "'activation' (message #0 from rank 0 (pp=0) along "
                         "pp, tag 5): rank 0 (pp=0) has not sent it"))
        << st.message();
  });
}

TEST(GlooCommunicator, AbortFailsBlockedAndLaterCalls) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"tp"}, {2}};
  runGloo(mesh, 30, [&](int64_t rank, Communicator &comm) {
    std::vector<float> x(3, 1.f);
    if (rank == 0) {
      // Never joins the all-reduce; stays connected meanwhile (its leaving
      // would end rank 1's wait too).
      std::this_thread::sleep_for(std::chrono::milliseconds(2000));
      return;
    }
    std::thread aborter([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      comm.abort("loss is NaN");
    });
    auto start = std::chrono::steady_clock::now();
    Status st = comm.allReduce(0, x.data(), x.data(), 3, CommDType::F32,
                               ReduceKind::Sum, "loss (tp)");
    aborter.join();
    ASSERT_FALSE(st.ok());
    EXPECT_LT(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count(),
        1.5);
    EXPECT_TRUE(contains(st.message(), "rank 1 (tp=1): 'loss (tp)' "
                                       "(all_reduce of 3 x f32, sum)"))
        << st.message();
    EXPECT_TRUE(contains(st.message(),
                         "failed: rank 1 (tp=1) aborted the job: loss is NaN"))
        << st.message();
    st = comm.broadcast(0, x.data(), 3, CommDType::F32, 0, "later");
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(contains(st.message(), "aborted the job: loss is NaN"))
        << st.message();
    EXPECT_FALSE(comm.send(0, 0, x.data(), 3, CommDType::F32, 0, "s").ok());
  });
}

/// A watchdog stand-in: records what the rank enters; fails on demand.
class FakeMonitor final : public CommMonitor {
public:
  void entering(const std::string &what) override {
    std::lock_guard<std::mutex> lock(mu);
    entered.push_back(what);
  }
  void left() override {}
  std::string failure() override {
    std::lock_guard<std::mutex> lock(mu);
    return failed;
  }
  std::string explainLate(const std::vector<int64_t> &ranks) override {
    std::string s;
    for (int64_t r : ranks)
      s += "rank " + std::to_string(r) + " last in 'forward'";
    return s;
  }
  std::mutex mu;
  std::vector<std::string> entered;
  std::string failed;
};

TEST(GlooCommunicator, TheMonitorIsToldAndItsFailureEndsAWait) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"tp"}, {2}};
  FakeMonitor m0, m1;
  runGloo(mesh, 30,
          [&](int64_t rank, Communicator &comm) {
            std::vector<float> x(2, 1.f);
            ASSERT_TRUE(comm.allReduce(0, x.data(), x.data(), 2, CommDType::F32,
                                       ReduceKind::Sum, "first")
                            .ok());
            if (rank == 0) {
              std::this_thread::sleep_for(std::chrono::milliseconds(2000));
              return;
            }
            auto start = std::chrono::steady_clock::now();
            std::thread fails([&] {
              std::this_thread::sleep_for(std::chrono::milliseconds(200));
              std::lock_guard<std::mutex> lock(m1.mu);
              m1.failed = "rank 0 (tp=0) exited (killed by signal 9)";
            });
            Status st = comm.allReduce(0, x.data(), x.data(), 2, CommDType::F32,
                                       ReduceKind::Sum, "second");
            fails.join();
            ASSERT_FALSE(st.ok());
            EXPECT_LT(std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - start)
                          .count(),
                      1.5);
            EXPECT_TRUE(contains(
                st.message(), "failed: rank 0 (tp=0) exited (killed by signal "
                              "9)"))
                << st.message();
          },
          {&m0, &m1});
  ASSERT_GE(m1.entered.size(), 2u);
  EXPECT_EQ(m1.entered[0], "all_reduce 'first' #0 of the tp group");
  EXPECT_EQ(m1.entered[1], "all_reduce 'second' #1 of the tp group");
}

TEST(GlooCommunicator, ATimeoutAsksTheMonitorWhoIsLate) {
  SKIP_WITHOUT_GLOO();
  MeshShape mesh{{"tp"}, {2}};
  FakeMonitor m0, m1;
  runGloo(mesh, 0.3,
          [&](int64_t rank, Communicator &comm) {
            if (rank == 0) {
              std::this_thread::sleep_for(std::chrono::milliseconds(1500));
              return;
            }
            std::vector<float> x(2, 1.f);
            auto start = std::chrono::steady_clock::now();
            Status st = comm.allGather(0, x.data(), x.data(), 1, 1,
                                       CommDType::F32, "w");
            ASSERT_FALSE(st.ok());
            EXPECT_LT(std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - start)
                          .count(),
                      1);
            EXPECT_TRUE(contains(
                st.message(), "not known to have arrived: rank 0 (tp=0) (rank "
                              "0 last in 'forward')"))
                << st.message();
          },
          {&m0, &m1});
}

} // namespace
