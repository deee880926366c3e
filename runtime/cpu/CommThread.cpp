//===- CommThread.cpp - the CPU executor's communication thread -----------===//
//
// A FIFO queue and one worker. The work runs outside the lock, so the
// executor's thread can hand over more (or wait) while a collective blocks.
//
//===----------------------------------------------------------------------===//

#include "CommThread.h"

namespace loom {
namespace runtime {
namespace cpu {

CommThread::CommThread() : thread_([this] { loop(); }) {}

CommThread::~CommThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CommThread::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty())
      return; // stopping, and everything handed over has run
    std::pair<size_t, Work> job = std::move(queue_.front());
    queue_.pop_front();
    if (!failure_.empty()) {
      // The ranks are out of step: the later collectives would only wait
      // out their timeouts one after another.
      finished_[job.first] =
          Status::error("not run: an earlier overlapped collective failed (" +
                        failure_ + ")");
      cv_.notify_all();
      continue;
    }
    running_ = 1;
    lock.unlock();
    Status s = job.second();
    lock.lock();
    running_ = 0;
    if (!s.ok())
      failure_ = s.message();
    finished_[job.first] = std::move(s);
    cv_.notify_all();
  }
}

void CommThread::submit(size_t id, Work work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    handedOver_[id] = true;
    queue_.emplace_back(id, std::move(work));
  }
  cv_.notify_all();
}

bool CommThread::submitted(size_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return handedOver_.count(id) != 0;
}

Status CommThread::wait(size_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!handedOver_.count(id))
    return Status::error("the communication thread was not handed job " +
                         std::to_string(id));
  cv_.wait(lock, [&] { return finished_.count(id) != 0; });
  return finished_[id];
}

void CommThread::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !running_; });
}

bool CommThread::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !queue_.empty() || running_;
}

void CommThread::forget() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !running_; });
  finished_.clear();
  handedOver_.clear();
  failure_.clear();
}

} // namespace cpu
} // namespace runtime
} // namespace loom
