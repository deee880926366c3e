//===- Watchdog.h - a process's reporter to the job's store -----*- C++ -*-===//
//
// Every process of a multi-process job runs one Watchdog: a thread that
// tells the job's store (loom/runtime/Store.h) every half second what its
// rank is doing (the collective or send the communicator entered, or
// "computing"), and learns from the reply whether the job has failed
// elsewhere: a rank lost (its process exited or was killed), hung (not
// heard from for the collective timeout) or failing with an error. The
// communicators ask it (CommMonitor) while they wait, so a rank blocked in
// a collective stops within a heartbeat of the failure, with a message
// naming the rank that caused it, instead of at its own timeout.
//
// If the process has not stopped by itself some seconds after the job
// failed (a rank stuck where no communicator polls, e.g. inside a kernel),
// the watchdog ends it, as PyTorch's NCCL watchdog tears a process down.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_WATCHDOG_H
#define LOOM_RUNTIME_COMM_WATCHDOG_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Store.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace loom {
namespace runtime {

class Watchdog final : public CommMonitor {
public:
  /// `client` is the watchdog's own connection (hello() already sent).
  /// `onStuck` ends the process when the job failed and the process is
  /// still running `graceSeconds` later (it prints the failure first).
  Watchdog(std::unique_ptr<StoreClient> client, const MeshShape &mesh,
           int64_t rank, double graceSeconds,
           std::function<void(const std::string &)> onStuck);
  ~Watchdog() override;

  void entering(const std::string &what) override;
  void left() override;
  std::string failure() override;
  std::string explainLate(const std::vector<int64_t> &ranks) override;

  /// This rank failed: the job fails with `why`.
  void reportFailure(const std::string &why);
  /// A normal end: the thread stops and the store hears goodbye.
  Status finish();

private:
  void run();

  std::unique_ptr<StoreClient> client_;
  MeshShape mesh_;
  int64_t rank_;
  double graceSeconds_;
  std::function<void(const std::string &)> onStuck_;
  std::mutex clientMu_; // client_ and finished_
  std::mutex mu_;       // the fields below
  std::condition_variable cv_;
  /// What each thread calling the communicator is in (the executor's
  /// thread, and its comm thread during the dp overlap).
  std::map<std::thread::id, std::string> doing_;
  bool started_ = false;
  std::string failure_;
  bool stop_ = false, finished_ = false;
  std::thread thread_;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_COMM_WATCHDOG_H
