//===- CommThread.h - the CPU executor's communication thread --*- C++ -*-===//
//
// Internal to the CPU backend. One thread per executor, started once, runs
// the work handed to it (the dp gradient buckets' all-reduces overlapped
// with the backward) in the order it was handed over: every rank hands over
// the same buckets in the same order, so the ranks' collectives on the
// thread pair up. Each piece of work has an id; wait(id) returns its status.
// After a failure the rest of the queue is not run (each reports why) until
// forget(): the ranks are out of step.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_COMMTHREAD_H
#define LOOM_RUNTIME_CPU_COMMTHREAD_H

#include "loom/runtime/Status.h"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace loom {
namespace runtime {
namespace cpu {

class CommThread {
public:
  using Work = std::function<Status()>;

  CommThread();
  /// Finishes what was handed over, then joins. (Work blocked in a
  /// collective returns once the communicator is aborted or times out.)
  ~CommThread();
  CommThread(const CommThread &) = delete;
  CommThread &operator=(const CommThread &) = delete;

  /// Queues `work` as job `id` (not handed over since the last forget())
  /// and returns at once.
  void submit(size_t id, Work work);
  /// Whether job `id` was handed over since the last forget().
  bool submitted(size_t id) const;
  /// Waits for job `id` and returns its status.
  Status wait(size_t id);
  /// Waits until everything handed over has run.
  void drain();
  /// Whether anything handed over has not finished.
  bool busy() const;
  /// Drains, then forgets every job (a new step).
  void forget();

private:
  void loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<size_t, Work>> queue_;
  std::map<size_t, Status> finished_;
  std::map<size_t, bool> handedOver_;
  size_t running_ = 0; // 1 while a job runs outside the lock
  std::string failure_; // the first failed job's message, until forget()
  bool stopping_ = false;
  std::thread thread_;
};

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_COMMTHREAD_H
