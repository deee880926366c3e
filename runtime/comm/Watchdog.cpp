//===- Watchdog.cpp - a process's reporter to the job's store -------------===//

#include "Watchdog.h"

#include <chrono>
#include <sstream>

namespace loom {
namespace runtime {

namespace {
constexpr auto kBeat = std::chrono::milliseconds(500);

std::string seconds(double s) {
  std::ostringstream os;
  os.precision(3);
  os << s;
  return os.str();
}
} // namespace

Watchdog::Watchdog(std::unique_ptr<StoreClient> client, const MeshShape &mesh,
                   int64_t rank, double graceSeconds,
                   std::function<void(const std::string &)> onStuck)
    : client_(std::move(client)), mesh_(mesh), rank_(rank),
      graceSeconds_(graceSeconds), onStuck_(std::move(onStuck)) {
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void Watchdog::entering(const std::string &what) {
  std::lock_guard<std::mutex> lock(mu_);
  doing_[std::this_thread::get_id()] = what;
  started_ = true;
}

void Watchdog::left() {
  std::lock_guard<std::mutex> lock(mu_);
  doing_.erase(std::this_thread::get_id());
}

std::string Watchdog::failure() {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

std::string Watchdog::explainLate(const std::vector<int64_t> &ranks) {
  std::lock_guard<std::mutex> lock(clientMu_);
  Result<std::vector<StoreRankState>> states = client_->ranks();
  if (!states.ok())
    return states.message();
  std::string text;
  for (int64_t r : ranks)
    for (const StoreRankState &s : *states)
      if (s.rank == r) {
        std::string line = s.describe.empty() ? mesh_.describe(r) : s.describe;
        if (s.lost)
          line += " has exited (lost), last in '" + s.doing + "'";
        else if (s.finished)
          line += " has finished";
        else if (s.silentSeconds >
                 3 * std::chrono::duration<double>(kBeat).count())
          line += " has not been heard from for " + seconds(s.silentSeconds) +
                  " s (stopped or hung), last in '" + s.doing + "'";
        else
          line += " is alive, in '" + s.doing + "'";
        text += (text.empty() ? "" : "; ") + line;
      }
  return text;
}

void Watchdog::reportFailure(const std::string &why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.empty())
      failure_ = why;
  }
  std::lock_guard<std::mutex> lock(clientMu_);
  (void)client_->reportFailure(why);
}

Status Watchdog::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  std::lock_guard<std::mutex> lock(clientMu_);
  if (finished_)
    return Status::success();
  finished_ = true;
  return client_->goodbye();
}

void Watchdog::run() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point failedAt{};
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (failure_.empty()) {
      // The round trip outside mu_: the ranks' threads report what they
      // enter without waiting for the network.
      std::string doing;
      for (const auto &[thread, what] : doing_)
        doing += (doing.empty() ? "" : "' and '") + what;
      if (doing.empty())
        doing = started_ ? "computing" : "starting";
      lock.unlock();
      Result<std::string> reply = [&] {
        std::lock_guard<std::mutex> client(clientMu_);
        return client_->heartbeat(doing);
      }();
      lock.lock();
      if (failure_.empty()) {
        if (!reply.ok()) // the store, and so rank 0, is gone or stopped
          failure_ = mesh_.describe(0) +
                     ", which hosts the job's store, is "
                     "gone or stopped: " +
                     reply.message();
        else if (!reply->empty())
          failure_ = *reply;
      }
    }
    if (!failure_.empty() && failedAt == Clock::time_point{})
      failedAt = Clock::now(); // seen now (or reported by this rank)
    if (!failure_.empty() && graceSeconds_ > 0 &&
        std::chrono::duration<double>(Clock::now() - failedAt).count() >
            graceSeconds_) {
      // The process did not stop by itself: end it, saying why.
      std::string why = failure_;
      lock.unlock();
      onStuck_(mesh_.describe(rank_) + ": stopping " + seconds(graceSeconds_) +
               " s after the job failed: " + why);
      return;
    }
    cv_.wait_for(lock, kBeat, [&] { return stop_; });
  }
}

} // namespace runtime
} // namespace loom
