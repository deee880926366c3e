//===- Store.h - the job's TCP store: rendezvous and watchdog ---*- C++ -*-===//
//
// A small key-value server that rank 0 of a multi-process job hosts (as
// torchrun's TCPStore at MASTER_ADDR:MASTER_PORT): the processes find each
// other through it (gloo's rendezvous, NCCL's unique id) and report to it
// while they run, so that a rank that dies or hangs is named to the others
// (the watchdog, loom/runtime/Job.h). It carries no tensor data.
//
//   auto server = StoreServer::listen("0.0.0.0", 29500, {});   // rank 0
//   auto store = StoreClient::connect("node0", 29500, 60);     // every rank
//   (*store)->set("nccl/world", id);
//   auto id = (*store)->get("nccl/world", /*timeoutSeconds=*/60);
//
// The protocol is length-prefixed request/response over one TCP connection
// per client (runtime/comm/Store.cpp). Every call names the server's address
// in its errors.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_STORE_H
#define LOOM_RUNTIME_STORE_H

#include "loom/runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// What the server knows of one registered rank (the watchdog's view).
struct StoreRankState {
  int64_t rank = -1;
  std::string describe; // "rank 3 (dp=1, tp=1)"
  std::string host;     // its hostname
  int64_t pid = 0;
  std::string doing;        // what it last reported ("idle", a collective)
  double silentSeconds = 0; // since its last heartbeat
  bool finished = false;    // said goodbye
  bool lost = false;        // its connection closed without a goodbye
};

struct StoreServerOptions {
  /// A registered rank silent this long is declared hung (0: never).
  double hangSeconds = 300;
  /// The job's ranks: the server waits for this many goodbyes in
  /// waitForFinish().
  int64_t worldSize = 1;
  /// Kill (SIGKILL) a rank on this host that is declared hung, so that no
  /// process is left behind (a launcher without MPI does not do it).
  bool killHungLocalRanks = true;
};

class StoreServer {
public:
  /// Listens on host:port (port 0: any free port, see port()). Fails naming
  /// the address when it is in use or cannot be bound.
  static Result<std::unique_ptr<StoreServer>>
  listen(const std::string &host, int port, const StoreServerOptions &options);
  ~StoreServer();
  int port() const;
  /// The job's failure as the server decided it (a rank lost or hung, or one
  /// reported failing); empty while healthy.
  std::string failure() const;
  /// Waits until every rank said goodbye or was lost, at most
  /// `timeoutSeconds`; the server then stops accepting.
  void waitForFinish(double timeoutSeconds);

  struct Impl;

private:
  StoreServer() = default;
  std::unique_ptr<Impl> impl_;
};

class StoreClient {
public:
  /// Connects to host:port, retrying until `timeoutSeconds` (the server may
  /// start later than its clients).
  static Result<std::unique_ptr<StoreClient>>
  connect(const std::string &host, int port, double timeoutSeconds);
  ~StoreClient();
  std::string address() const; // "host:port"
  /// How long each later call waits for its answer (connect's timeout
  /// until set): the watchdog's heartbeats use a short one, so a stopped
  /// store is noticed soon, however long a rank may wait to join.
  void setCallTimeout(double seconds);

  Status set(const std::string &key, const std::string &value);
  /// Waits until `key` is set, at most `timeoutSeconds` (then an error
  /// naming the key and the server).
  Result<std::string> get(const std::string &key, double timeoutSeconds);
  /// Adds `delta` to the integer at `key` (0 if unset); the new value.
  Result<int64_t> add(const std::string &key, int64_t delta);

  /// Watchdog calls (one client per process makes them, from one thread).
  /// Registers this connection as `rank`: if it closes without goodbye(),
  /// the server declares the rank lost.
  Status hello(int64_t rank, const std::string &describe,
               const std::string &host, int64_t pid);
  /// Reports what this rank is doing; returns the job's failure (empty
  /// while healthy).
  Result<std::string> heartbeat(const std::string &doing);
  /// This rank failed: the job fails with `why` (the first report wins).
  Status reportFailure(const std::string &why);
  /// Every registered rank's state.
  Result<std::vector<StoreRankState>> ranks();
  Status goodbye();

  struct Impl;

private:
  StoreClient() = default;
  std::unique_ptr<Impl> impl_;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_STORE_H
