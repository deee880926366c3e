//===- StoreTest.cpp - the job's TCP store and its rank monitor -----------===//

#include "loom/runtime/Store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace loom::runtime;

namespace {

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

StoreServerOptions testOptions(double hangSeconds = 0, int64_t worldSize = 1) {
  StoreServerOptions o;
  o.hangSeconds = hangSeconds;
  o.worldSize = worldSize;
  // Tests register their own pid: never kill the test runner.
  o.killHungLocalRanks = false;
  return o;
}

std::unique_ptr<StoreServer> startServer(const StoreServerOptions &o) {
  auto server = StoreServer::listen("127.0.0.1", 0, o);
  EXPECT_TRUE(server.ok()) << server.message();
  return server.ok() ? std::move(*server) : nullptr;
}

std::unique_ptr<StoreClient> connectTo(const StoreServer &server,
                                       double timeout = 5) {
  auto client = StoreClient::connect("127.0.0.1", server.port(), timeout);
  EXPECT_TRUE(client.ok()) << client.message();
  return client.ok() ? std::move(*client) : nullptr;
}

/// Polls `pred` for up to `seconds`.
template <typename Pred> bool eventually(Pred pred, double seconds = 5) {
  auto start = std::chrono::steady_clock::now();
  while (secondsSince(start) < seconds) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

TEST(Store, PortZeroPicksAPort) {
  auto server = startServer(testOptions());
  ASSERT_TRUE(server);
  EXPECT_GT(server->port(), 0);
  auto client = connectTo(*server);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->address(), "127.0.0.1:" + std::to_string(server->port()));
}

TEST(Store, SetGetAddAcrossClients) {
  auto server = startServer(testOptions());
  ASSERT_TRUE(server);
  auto a = connectTo(*server), b = connectTo(*server);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->set("gloo/0", std::string("addr\0ess", 8)).ok());
  auto got = b->get("gloo/0", 1);
  ASSERT_TRUE(got.ok()) << got.message();
  EXPECT_EQ(*got, std::string("addr\0ess", 8));
  ASSERT_TRUE(b->set("gloo/0", "replaced").ok());
  EXPECT_EQ(*a->get("gloo/0", 1), "replaced");

  auto one = a->add("count", 1);
  ASSERT_TRUE(one.ok()) << one.message();
  EXPECT_EQ(*one, 1);
  EXPECT_EQ(*b->add("count", 5), 6);
  EXPECT_EQ(*a->add("count", -2), 4);
  EXPECT_EQ(*b->get("count", 1), "4");
  auto notNumber = a->add("gloo/0", 1);
  ASSERT_FALSE(notNumber.ok());
  EXPECT_TRUE(contains(notNumber.message(), "'gloo/0' is not an integer"))
      << notNumber.message();
}

TEST(Store, GetWaitsForALaterSet) {
  auto server = startServer(testOptions());
  ASSERT_TRUE(server);
  auto a = connectTo(*server), b = connectTo(*server);
  ASSERT_TRUE(a && b);
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(a->set("nccl/world", "id").ok());
  });
  auto start = std::chrono::steady_clock::now();
  auto got = b->get("nccl/world", 5);
  later.join();
  ASSERT_TRUE(got.ok()) << got.message();
  EXPECT_EQ(*got, "id");
  EXPECT_GE(secondsSince(start), 0.15);
}

TEST(Store, GetTimesOutNamingTheKey) {
  auto server = startServer(testOptions());
  ASSERT_TRUE(server);
  auto a = connectTo(*server);
  ASSERT_TRUE(a);
  auto start = std::chrono::steady_clock::now();
  auto got = a->get("never/set", 0.2);
  ASSERT_FALSE(got.ok());
  EXPECT_GE(secondsSince(start), 0.2);
  EXPECT_LT(secondsSince(start), 2);
  EXPECT_TRUE(contains(got.message(), "'never/set' was not set"))
      << got.message();
  EXPECT_TRUE(contains(got.message(), a->address())) << got.message();
}

TEST(Store, ConnectRetriesUntilTheServerComesUp) {
  // Find a free port, release it, and start the server there later.
  int port = 0;
  {
    auto probe = startServer(testOptions());
    ASSERT_TRUE(probe);
    port = probe->port();
  }
  std::unique_ptr<StoreServer> server;
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto s = StoreServer::listen("127.0.0.1", port, testOptions());
    ASSERT_TRUE(s.ok()) << s.message();
    server = std::move(*s);
  });
  auto start = std::chrono::steady_clock::now();
  auto client = StoreClient::connect("127.0.0.1", port, 10);
  late.join();
  ASSERT_TRUE(client.ok()) << client.message();
  EXPECT_GE(secondsSince(start), 0.25);
  ASSERT_TRUE((*client)->set("k", "v").ok());

  // Nobody listening: an error within the timeout, naming the address.
  server.reset();
  start = std::chrono::steady_clock::now();
  auto none = StoreClient::connect("127.0.0.1", port, 0.3);
  ASSERT_FALSE(none.ok());
  EXPECT_LT(secondsSince(start), 2);
  EXPECT_TRUE(contains(none.message(), "127.0.0.1:" + std::to_string(port)))
      << none.message();
}

TEST(Store, AClientClosingWithoutGoodbyeIsLost) {
  auto server = startServer(testOptions(/*hangSeconds=*/0, /*worldSize=*/2));
  ASSERT_TRUE(server);
  auto watcher = connectTo(*server);
  auto dying = connectTo(*server);
  ASSERT_TRUE(watcher && dying);
  ASSERT_TRUE(watcher->hello(0, "rank 0 (pp=0)", "node0", 100).ok());
  ASSERT_TRUE(dying->hello(1, "rank 1 (pp=1)", "node1", 4242).ok());
  auto healthy = watcher->heartbeat("idle");
  ASSERT_TRUE(healthy.ok()) << healthy.message();
  EXPECT_EQ(*healthy, "");
  ASSERT_TRUE(dying->heartbeat("send 'activation' #3 of the pp group").ok());
  dying.reset(); // the process died: its socket closes

  std::string failure;
  ASSERT_TRUE(eventually([&] {
    auto f = watcher->heartbeat("all_reduce 'loss'");
    failure = f.ok() ? *f : f.message();
    return !failure.empty();
  }));
  EXPECT_EQ(failure, "rank 1 (pp=1) on node1 (pid 4242) exited without "
                     "finishing: its connection to the job's store closed "
                     "while in 'send 'activation' #3 of the pp group'");
  EXPECT_EQ(server->failure(), failure);

  auto ranks = watcher->ranks();
  ASSERT_TRUE(ranks.ok()) << ranks.message();
  ASSERT_EQ(ranks->size(), 2u);
  EXPECT_EQ((*ranks)[1].rank, 1);
  EXPECT_EQ((*ranks)[1].host, "node1");
  EXPECT_EQ((*ranks)[1].pid, 4242);
  EXPECT_TRUE((*ranks)[1].lost);
  EXPECT_FALSE((*ranks)[0].lost);
  EXPECT_EQ((*ranks)[0].doing, "all_reduce 'loss'");

  // The lost rank counts as done: waitForFinish returns after goodbye.
  ASSERT_TRUE(watcher->goodbye().ok());
  auto start = std::chrono::steady_clock::now();
  server->waitForFinish(5);
  EXPECT_LT(secondsSince(start), 1);
}

TEST(Store, AGoodbyeIsNotLostAndTheFirstFailureWins) {
  auto server = startServer(testOptions(0, 2));
  ASSERT_TRUE(server);
  auto a = connectTo(*server), b = connectTo(*server);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->hello(0, "rank 0", "h", 1).ok());
  ASSERT_TRUE(b->hello(1, "rank 1", "h", 2).ok());
  ASSERT_TRUE(b->goodbye().ok());
  b.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(server->failure(), "");
  ASSERT_TRUE(a->reportFailure("rank 0: loss is NaN").ok());
  ASSERT_TRUE(a->reportFailure("second").ok());
  EXPECT_EQ(*a->heartbeat("failing"), "rank 0: loss is NaN");
  auto ranks = a->ranks();
  ASSERT_TRUE(ranks.ok());
  EXPECT_TRUE((*ranks)[1].finished);
  EXPECT_FALSE((*ranks)[1].lost);
}

TEST(Store, ASilentRankIsDeclaredHung) {
  auto server = startServer(testOptions(/*hangSeconds=*/0.3, 2));
  ASSERT_TRUE(server);
  auto live = connectTo(*server), silent = connectTo(*server);
  ASSERT_TRUE(live && silent);
  ASSERT_TRUE(live->hello(0, "rank 0 (tp=0)", "node0", getpid()).ok());
  ASSERT_TRUE(silent->hello(1, "rank 1 (tp=1)", "node0", getpid()).ok());
  ASSERT_TRUE(silent->heartbeat("all_gather 'w' #2 of the tp group").ok());
  // rank 0 keeps beating; rank 1 stops (as a SIGSTOPped process would).
  auto start = std::chrono::steady_clock::now();
  std::string failure;
  while (failure.empty() && secondsSince(start) < 5) {
    auto f = live->heartbeat("idle");
    ASSERT_TRUE(f.ok()) << f.message();
    failure = *f;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double after = secondsSince(start);
  EXPECT_GE(after, 0.3);
  EXPECT_LT(after, 2);
  EXPECT_TRUE(contains(failure, "rank 1 (tp=1) on node0 (pid " +
                                    std::to_string(getpid()) +
                                    ") has not been heard from for "))
      << failure;
  EXPECT_TRUE(contains(failure, " s (stopped or hung), last in 'all_gather "
                                "'w' #2 of the tp group'"))
      << failure;
  auto ranks = live->ranks();
  ASSERT_TRUE(ranks.ok());
  EXPECT_GE((*ranks)[1].silentSeconds, 0.3);
  EXPECT_LT((*ranks)[0].silentSeconds, 0.3);
}

TEST(Store, AStoppedServerIsAnErrorNotAHang) {
  auto server = startServer(testOptions());
  ASSERT_TRUE(server);
  auto client = connectTo(*server, /*timeout=*/1);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->set("k", "v").ok());
  server.reset();
  auto start = std::chrono::steady_clock::now();
  auto got = client->get("k", 10);
  ASSERT_FALSE(got.ok());
  EXPECT_LT(secondsSince(start), 1.5);
  EXPECT_TRUE(contains(got.message(), "the job's store at " +
                                          client->address() +
                                          " does not answer (its host, rank "
                                          "0, may be stopped or gone)"))
      << got.message();
  EXPECT_FALSE(client->heartbeat("idle").ok());
}

TEST(Store, AServerThatDoesNotAnswerIsAnErrorWithinTheTimeout) {
  // A listening socket that never reads: as a SIGSTOPped rank 0 (the kernel
  // still completes the connection).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  auto client = StoreClient::connect("127.0.0.1", ntohs(addr.sin_port), 0.3);
  ASSERT_TRUE(client.ok()) << client.message();
  auto start = std::chrono::steady_clock::now();
  Status st = (*client)->set("k", "v");
  ASSERT_FALSE(st.ok());
  EXPECT_GE(secondsSince(start), 0.25);
  EXPECT_LT(secondsSince(start), 2);
  EXPECT_TRUE(contains(st.message(), "does not answer")) << st.message();
  EXPECT_TRUE(contains(st.message(), "no response within 0.3 s"))
      << st.message();
  ::close(fd);
}

TEST(Store, AnAddressInUseIsAnErrorNamingIt) {
  auto server = startServer(testOptions());
  ASSERT_TRUE(server);
  auto second = StoreServer::listen("127.0.0.1", server->port(), testOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(
      contains(second.message(), "127.0.0.1:" + std::to_string(server->port())))
      << second.message();
  EXPECT_TRUE(contains(second.message(), "in use")) << second.message();
}

} // namespace
