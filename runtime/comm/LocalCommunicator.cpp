//===- LocalCommunicator.cpp - every rank of the mesh as a thread ---------===//
//
// The `local` communicator. Each collective of a group (an axis plus the
// other coordinates) has a rendezvous slot, keyed by the group and the
// collective's sequence number in that group:
//
//   1. every member posts what it called (kind, sizes, input pointer, label)
//      and waits, with the timeout and the abort flag, until all have posted;
//   2. each member computes its own output from all the posted inputs, in
//      group order, into `out` (or into a private temporary when `out`
//      overlaps its own input, as in an in-place all-reduce);
//   3. a second barrier, so no member returns (and overwrites or frees its
//      input) while another may still read it; then the temporary is copied
//      to `out`.
//
// Step 2 runs outside the lock. Once all members have posted, the slot
// completes regardless of timeouts or aborts: every member is then past
// waiting and the second barrier only waits for computation. A member that
// gives up in step 1 marks the slot failed, so members arriving later get an
// error instead of reading a buffer whose owner has returned.
//
// Sends copy the data into a queue per (axis, source, destination, tag);
// recvs take from it in send order.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Communicator.h"

#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

namespace loom {
namespace runtime {

//===----------------------------------------------------------------------===//
// MeshShape
//===----------------------------------------------------------------------===//

Status MeshShape::verify() const {
  if (names.size() != sizes.size())
    return Status::error("the device mesh has " + std::to_string(names.size()) +
                         " axis names but " + std::to_string(sizes.size()) +
                         " sizes");
  std::set<std::string> seen;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty())
      return Status::error("axis " + std::to_string(i) +
                           " of the device mesh has no name");
    if (!seen.insert(names[i]).second)
      return Status::error("the device mesh names axis '" + names[i] +
                           "' twice");
    if (sizes[i] < 1)
      return Status::error("axis '" + names[i] + "' of the device mesh has size " +
                           std::to_string(sizes[i]) + "; sizes must be >= 1");
  }
  return Status::success();
}

int64_t MeshShape::numRanks() const {
  int64_t n = 1;
  for (int64_t s : sizes)
    n *= s;
  return n;
}

int64_t MeshShape::stride(int axis) const {
  int64_t s = 1;
  for (size_t i = axis + 1; i < sizes.size(); ++i)
    s *= sizes[i];
  return s;
}

std::vector<int64_t> MeshShape::coordinates(int64_t rank) const {
  std::vector<int64_t> coords(sizes.size());
  for (size_t i = sizes.size(); i-- > 0;) {
    coords[i] = rank % sizes[i];
    rank /= sizes[i];
  }
  return coords;
}

int64_t MeshShape::rankOf(const std::vector<int64_t> &coords) const {
  int64_t rank = 0;
  for (size_t i = 0; i < sizes.size(); ++i)
    rank = rank * sizes[i] + coords[i];
  return rank;
}

int MeshShape::axisIndex(const std::string &name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name)
      return static_cast<int>(i);
  return -1;
}

std::string MeshShape::describe(int64_t rank) const {
  std::string s = "rank " + std::to_string(rank);
  if (names.empty())
    return s;
  std::vector<int64_t> coords = coordinates(rank);
  s += " (";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i)
      s += ", ";
    s += names[i] + "=" + std::to_string(coords[i]);
  }
  return s + ")";
}

std::vector<int64_t> MeshShape::groupMembers(int64_t rank, int axis) const {
  int64_t step = stride(axis);
  int64_t base = rank - coordinates(rank)[axis] * step;
  std::vector<int64_t> members(sizes[axis]);
  for (int64_t g = 0; g < sizes[axis]; ++g)
    members[g] = base + g * step;
  return members;
}

// A session of thread ranks reads every rank's blocks itself: only the
// process communicators implement the world-level calls.
Status Communicator::gatherToRoot(const std::vector<uint8_t> &,
                                  std::vector<std::vector<uint8_t>> *,
                                  const std::string &what) {
  return Status::error("gather '" + what +
                       "': this communicator has no "
                       "world-level gather (a session of thread ranks reads "
                       "their blocks directly)");
}

Status Communicator::broadcastFromRoot(std::vector<uint8_t> &,
                                       const std::string &what) {
  return Status::error("broadcast '" + what +
                       "': this communicator has no "
                       "world-level broadcast");
}

size_t commDTypeSize(CommDType dtype) {
  return dtype == CommDType::F32 ? sizeof(float) : sizeof(double);
}

const char *commDTypeName(CommDType dtype) {
  return dtype == CommDType::F32 ? "f32" : "f64";
}

std::string shapedCollectiveSignature(const char *kind, const std::string &what,
                                      size_t outer, size_t inner,
                                      CommDType dtype) {
  return "'" + what + "' (" + kind + " of [outer " + std::to_string(outer) +
         ", inner " + std::to_string(inner) + "] x " + commDTypeName(dtype) +
         ")";
}

//===----------------------------------------------------------------------===//
// Shared state
//===----------------------------------------------------------------------===//

namespace {

enum class CollKind { AllReduce, AllGather, ReduceScatter, Broadcast };

const char *kindName(CollKind kind) {
  switch (kind) {
  case CollKind::AllReduce:
    return "all_reduce";
  case CollKind::AllGather:
    return "all_gather";
  case CollKind::ReduceScatter:
    return "reduce_scatter";
  case CollKind::Broadcast:
    return "broadcast";
  }
  return "?";
}

/// What one member called in a slot.
struct Post {
  bool posted = false;
  int64_t rank = 0;
  CollKind kind = CollKind::AllReduce;
  CommDType dtype = CommDType::F32;
  ReduceKind op = ReduceKind::Sum;
  size_t count = 0; // all-reduce, broadcast
  size_t outer = 0, inner = 0; // all-gather, reduce-scatter
  int64_t root = 0; // broadcast
  const void *in = nullptr;
  std::string what;

  bool sameCall(const Post &o) const {
    if (kind != o.kind || dtype != o.dtype)
      return false;
    switch (kind) {
    case CollKind::AllReduce:
      return count == o.count && op == o.op;
    case CollKind::Broadcast:
      return count == o.count && root == o.root;
    case CollKind::AllGather:
    case CollKind::ReduceScatter:
      return outer == o.outer && inner == o.inner;
    }
    return false;
  }

  /// "'loss (tp)' (all_reduce of 6 x f32, sum)".
  std::string signature() const {
    std::string s = "'" + what + "' (" + kindName(kind) + " of ";
    switch (kind) {
    case CollKind::AllReduce:
      s += std::to_string(count) + " x " + commDTypeName(dtype) +
           (op == ReduceKind::Sum ? ", sum" : ", max");
      break;
    case CollKind::Broadcast:
      s += std::to_string(count) + " x " + commDTypeName(dtype) + ", root " +
           std::to_string(root);
      break;
    case CollKind::AllGather:
    case CollKind::ReduceScatter:
      return shapedCollectiveSignature(kindName(kind), what, outer, inner,
                                       dtype);
    }
    return s + ")";
  }
};

/// One collective of one group.
struct Slot {
  std::vector<Post> posts; // by group index
  int64_t arrived = 0;
  bool complete = false; // every member posted and the slot did not fail
  std::string error;     // the slot failed; every member gets this
  int64_t finished = 0;  // members done reading the inputs
  int64_t departed = 0;  // members that returned
};

/// A sent, not yet received message.
struct Message {
  CommDType dtype;
  size_t count;
  std::vector<unsigned char> bytes;
  std::string what;
};

using SlotKey = std::tuple<int, int64_t, int64_t>; // axis, first member, seq
using ChannelKey =
    std::tuple<int, int64_t, int64_t, int64_t>; // axis, source, dest, tag

bool overlaps(const void *a, size_t aBytes, const void *b, size_t bBytes) {
  if (!aBytes || !bBytes)
    return false;
  auto pa = reinterpret_cast<uintptr_t>(a);
  auto pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + bBytes && pb < pa + aBytes;
}

void copyBytes(void *dst, const void *src, size_t bytes) {
  if (bytes && dst != src)
    std::memmove(dst, src, bytes);
}

template <typename T> T combine(T acc, T x, ReduceKind op) {
  if (op == ReduceKind::Sum)
    return acc + x;
  // Max, NaN wins: keep a NaN accumulator, take a NaN or larger x.
  return (x > acc || x != x) ? x : acc;
}

/// dst[i] = combine(dst[i], src[i]) for i < n.
template <typename T>
void accumulate(T *dst, const T *src, size_t n, ReduceKind op) {
  if (op == ReduceKind::Sum) {
    for (size_t i = 0; i < n; ++i)
      dst[i] = dst[i] + src[i];
  } else {
    for (size_t i = 0; i < n; ++i)
      dst[i] = combine(dst[i], src[i], op);
  }
}

void accumulateBytes(void *dst, const void *src, size_t n, CommDType dtype,
                     ReduceKind op) {
  if (dtype == CommDType::F32)
    accumulate(static_cast<float *>(dst), static_cast<const float *>(src), n,
               op);
  else
    accumulate(static_cast<double *>(dst), static_cast<const double *>(src), n,
               op);
}

std::string formatSeconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

} // namespace

struct LocalCommunicatorGroup::State {
  MeshShape mesh;
  double timeoutSeconds;
  std::mutex mu;
  std::condition_variable cv;
  std::map<SlotKey, Slot> slots;
  std::map<ChannelKey, std::deque<Message>> channels;
  bool aborted = false;
  std::string abortMessage; // "rank 1 (dp=0, tp=1) aborted the job: why"

  /// Waits on cv until `pred` or the timeout; returns pred().
  template <typename Pred>
  bool waitFor(std::unique_lock<std::mutex> &lock, Pred pred) {
    using Clock = std::chrono::steady_clock;
    Clock::time_point now = Clock::now();
    // A deadline past the clock's range (about 292 years of nanoseconds)
    // would overflow into the past and time out at once: one that far away
    // (half the range, leaving room for rounding) saturates to waiting
    // forever, as does a NaN timeout, which fails both comparisons.
    std::chrono::duration<double> range = Clock::time_point::max() - now;
    if (!(timeoutSeconds > 0) || !(timeoutSeconds < range.count() / 2)) {
      cv.wait(lock, pred);
      return true;
    }
    auto deadline = now + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(timeoutSeconds));
    return cv.wait_until(lock, deadline, pred);
  }
};

//===----------------------------------------------------------------------===//
// One rank's handle
//===----------------------------------------------------------------------===//

namespace {

class LocalCommunicator final : public Communicator {
public:
  LocalCommunicator(LocalCommunicatorGroup::State &state, int64_t rank)
      : s_(state), rank_(rank), seq_(state.mesh.sizes.size(), 0),
        received_(state.mesh.sizes.size()) {}

  int64_t rank() const override { return rank_; }
  const MeshShape &mesh() const override { return s_.mesh; }

  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op,
                   const std::string &what) override {
    Post p = makePost(CollKind::AllReduce, dtype, in, what);
    p.count = count;
    p.op = op;
    size_t bytes = count * commDTypeSize(dtype);
    return run(axis, p, out, bytes, [&](const std::vector<Post> &posts,
                                         int64_t, void *dst) {
      copyBytes(dst, posts[0].in, bytes);
      for (size_t g = 1; g < posts.size(); ++g)
        accumulateBytes(dst, posts[g].in, count, dtype, op);
    });
  }

  Status allGather(int axis, const void *in, void *out, size_t outer,
                   size_t inner, CommDType dtype,
                   const std::string &what) override {
    Post p = makePost(CollKind::AllGather, dtype, in, what);
    p.outer = outer;
    p.inner = inner;
    size_t esz = commDTypeSize(dtype);
    size_t n = groupSize(axis);
    return run(axis, p, out, outer * n * inner * esz,
               [&](const std::vector<Post> &posts, int64_t, void *dst) {
                 auto *d = static_cast<unsigned char *>(dst);
                 size_t block = inner * esz;
                 for (size_t o = 0; o < outer; ++o)
                   for (size_t g = 0; g < posts.size(); ++g)
                     copyBytes(d + (o * posts.size() + g) * block,
                               static_cast<const unsigned char *>(posts[g].in) +
                                   o * block,
                               block);
               });
  }

  Status reduceScatter(int axis, const void *in, void *out, size_t outer,
                       size_t inner, CommDType dtype,
                       const std::string &what) override {
    Post p = makePost(CollKind::ReduceScatter, dtype, in, what);
    p.outer = outer;
    p.inner = inner;
    size_t esz = commDTypeSize(dtype);
    return run(axis, p, out, outer * inner * esz,
               [&](const std::vector<Post> &posts, int64_t me, void *dst) {
                 auto *d = static_cast<unsigned char *>(dst);
                 size_t n = posts.size(), block = inner * esz;
                 for (size_t o = 0; o < outer; ++o) {
                   size_t from = (o * n + me) * block;
                   auto src = [&](size_t g) {
                     return static_cast<const unsigned char *>(posts[g].in) +
                            from;
                   };
                   copyBytes(d + o * block, src(0), block);
                   for (size_t g = 1; g < n; ++g)
                     accumulateBytes(d + o * block, src(g), inner, dtype,
                                     ReduceKind::Sum);
                 }
               });
  }

  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, const std::string &what) override {
    Post p = makePost(CollKind::Broadcast, dtype, data, what);
    p.count = count;
    p.root = root;
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    if (root < 0 || root >= s_.mesh.sizes[axis])
      return Status::error(s_.mesh.describe(rank_) + ": broadcast '" + what +
                           "' names root " + std::to_string(root) +
                           ", but the " + s_.mesh.names[axis] +
                           " group has " +
                           std::to_string(s_.mesh.sizes[axis]) + " members");
    size_t bytes = count * commDTypeSize(dtype);
    return run(axis, p, data, bytes,
               [&](const std::vector<Post> &posts, int64_t me, void *dst) {
                 if (me != root)
                   copyBytes(dst, posts[root].in, bytes);
               });
  }

  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, const std::string &what) override {
    if (Status st = checkPeer(axis, peer, "send", what); !st.ok())
      return st;
    int64_t dst = s_.mesh.groupMembers(rank_, axis)[peer];
    Message m{dtype, count, {}, what};
    size_t bytes = count * commDTypeSize(dtype);
    if (bytes) {
      const auto *p = static_cast<const unsigned char *>(data);
      m.bytes.assign(p, p + bytes);
    }
    std::lock_guard<std::mutex> lock(s_.mu);
    if (s_.aborted)
      return Status::error(s_.mesh.describe(rank_) + ": send '" + what +
                           "' failed: " + s_.abortMessage);
    s_.channels[ChannelKey{axis, rank_, dst, tag}].push_back(std::move(m));
    s_.cv.notify_all();
    return Status::success();
  }

  Status recv(int axis, int64_t peer, void *data, size_t count,
              CommDType dtype, int64_t tag, const std::string &what) override {
    if (Status st = checkPeer(axis, peer, "recv", what); !st.ok())
      return st;
    const MeshShape &mesh = s_.mesh;
    int64_t src = mesh.groupMembers(rank_, axis)[peer];
    ChannelKey key{axis, src, rank_, tag};
    int64_t number = received_[size_t(axis)][{src, tag}]++;
    std::string label = "recv '" + what + "' (message #" +
                        std::to_string(number) + " from " + mesh.describe(src) +
                        " along " + mesh.names[axis] + ", tag " +
                        std::to_string(tag) + ")";

    std::unique_lock<std::mutex> lock(s_.mu);
    std::deque<Message> &queue = s_.channels[key];
    bool ready =
        s_.waitFor(lock, [&] { return s_.aborted || !queue.empty(); });
    if (s_.aborted)
      return Status::error(mesh.describe(rank_) + ": " + label +
                           " failed: " + s_.abortMessage);
    if (!ready)
      return Status::error(mesh.describe(rank_) + " timed out after " +
                           formatSeconds(s_.timeoutSeconds) + " s in " + label +
                           ": " + mesh.describe(src) + " has not sent it");
    Message m = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    if (m.dtype != dtype || m.count != count)
      return Status::error(
          mesh.describe(rank_) + " expects " + std::to_string(count) + " x " +
          commDTypeName(dtype) + " in " + label + ", but " +
          mesh.describe(src) + " sent '" + m.what + "' with " +
          std::to_string(m.count) + " x " + commDTypeName(m.dtype));
    copyBytes(data, m.bytes.data(), m.bytes.size());
    return Status::success();
  }

  void abort(const std::string &why) override {
    std::lock_guard<std::mutex> lock(s_.mu);
    if (!s_.aborted) {
      s_.aborted = true;
      s_.abortMessage = s_.mesh.describe(rank_) + " aborted the job: " + why;
    }
    s_.cv.notify_all();
  }

private:
  using Compute = std::function<void(const std::vector<Post> &, int64_t me,
                                     void *dst)>;

  Post makePost(CollKind kind, CommDType dtype, const void *in,
                const std::string &what) const {
    Post p;
    p.posted = true;
    p.rank = rank_;
    p.kind = kind;
    p.dtype = dtype;
    p.in = in;
    p.what = what;
    return p;
  }

  size_t groupSize(int axis) const {
    return axis >= 0 && static_cast<size_t>(axis) < s_.mesh.sizes.size()
               ? static_cast<size_t>(s_.mesh.sizes[axis])
               : 1;
  }

  Status checkAxis(int axis, const std::string &what) const {
    if (axis < 0 || static_cast<size_t>(axis) >= s_.mesh.sizes.size())
      return Status::error(s_.mesh.describe(rank_) + ": '" + what +
                           "' names mesh axis " + std::to_string(axis) +
                           ", but the mesh has " +
                           std::to_string(s_.mesh.sizes.size()) + " axes");
    return Status::success();
  }

  Status checkPeer(int axis, int64_t peer, const char *op,
                   const std::string &what) const {
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    if (peer < 0 || peer >= s_.mesh.sizes[axis])
      return Status::error(s_.mesh.describe(rank_) + ": " + op + " '" + what +
                           "' names peer " + std::to_string(peer) +
                           ", but the " + s_.mesh.names[axis] + " group has " +
                           std::to_string(s_.mesh.sizes[axis]) + " members");
    return Status::success();
  }

  /// "collective #3 of the tp group {0, 1}".
  std::string groupLabel(int axis, const std::vector<int64_t> &members,
                         int64_t seq) const {
    std::string s = "collective #" + std::to_string(seq) + " of the " +
                    s_.mesh.names[axis] + " group of ranks {";
    for (size_t g = 0; g < members.size(); ++g)
      s += (g ? ", " : "") + std::to_string(members[g]);
    return s + "}";
  }

  /// The rendezvous: post, wait for all, compute, wait for all, copy out.
  Status run(int axis, const Post &post, void *out, size_t outBytes,
             const Compute &compute) {
    if (Status st = checkAxis(axis, post.what); !st.ok())
      return st;
    const MeshShape &mesh = s_.mesh;
    std::vector<int64_t> members = mesh.groupMembers(rank_, axis);
    int64_t n = static_cast<int64_t>(members.size());
    int64_t me = mesh.coordinates(rank_)[axis];
    std::string self = mesh.describe(rank_);

    size_t inBytes = 0;
    if (post.kind == CollKind::AllReduce || post.kind == CollKind::Broadcast)
      inBytes = post.count * commDTypeSize(post.dtype);
    else if (post.kind == CollKind::AllGather)
      inBytes = post.outer * post.inner * commDTypeSize(post.dtype);
    else
      inBytes = post.outer * n * post.inner * commDTypeSize(post.dtype);
    // Broadcast writes only where nobody reads; elsewhere a private
    // temporary when out overlaps this rank's own input.
    bool useTemp = post.kind != CollKind::Broadcast &&
                   overlaps(post.in, inBytes, out, outBytes);
    std::vector<unsigned char> temp(useTemp ? outBytes : 0);
    void *dst = useTemp ? temp.data() : out;

    if (n == 1) {
      {
        std::lock_guard<std::mutex> lock(s_.mu);
        if (s_.aborted)
          return Status::error(self + ": " + post.signature() +
                               " failed: " + s_.abortMessage);
      }
      compute(std::vector<Post>{post}, 0, dst);
      if (useTemp)
        copyBytes(out, temp.data(), outBytes);
      return Status::success();
    }

    int64_t seq = seq_[axis]++;
    std::string label = post.signature() + ", " + groupLabel(axis, members, seq);

    std::unique_lock<std::mutex> lock(s_.mu);
    SlotKey key{axis, members[0], seq};
    Slot &slot = s_.slots[key];
    auto depart = [&] {
      if (++slot.departed == n)
        s_.slots.erase(key);
    };
    if (slot.posts.empty())
      slot.posts.resize(n);
    if (s_.aborted && !slot.complete) {
      std::string msg = self + ": " + label + " failed: " + s_.abortMessage;
      if (slot.error.empty())
        slot.error = s_.abortMessage;
      s_.cv.notify_all();
      depart();
      return Status::error(msg);
    }
    if (!slot.error.empty()) {
      std::string msg = self + ": " + label + " failed: " + slot.error;
      depart();
      return Status::error(msg);
    }
    for (const Post &other : slot.posts) {
      if (!other.posted || other.sameCall(post))
        continue;
      slot.error = "mismatched collectives: " + self + " called " +
                   post.signature() + " but " + mesh.describe(other.rank) +
                   " called " + other.signature() + " as " +
                   groupLabel(axis, members, seq);
      std::string msg = slot.error;
      s_.cv.notify_all();
      depart();
      return Status::error(msg);
    }
    slot.posts[me] = post;
    if (++slot.arrived == n) {
      slot.complete = true;
      s_.cv.notify_all();
    }

    s_.waitFor(lock, [&] {
      return slot.complete || !slot.error.empty() || s_.aborted;
    });
    if (!slot.complete) {
      // Give up: nobody may read our input from now on.
      slot.posts[me].in = nullptr;
      std::string msg;
      if (!slot.error.empty()) {
        msg = slot.error.rfind("mismatched", 0) == 0
                  ? slot.error
                  : self + ": " + label + " failed: " + slot.error;
      } else if (s_.aborted) {
        slot.error = s_.abortMessage;
        msg = self + ": " + label + " failed: " + s_.abortMessage;
      } else {
        std::string missing;
        for (int64_t g = 0; g < n; ++g)
          if (!slot.posts[g].posted)
            missing += (missing.empty() ? "" : ", ") + mesh.describe(members[g]);
        msg = self + " timed out after " + formatSeconds(s_.timeoutSeconds) +
              " s in " + label + "; not arrived: " + missing;
        slot.error = self + " gave up: timed out after " +
                     formatSeconds(s_.timeoutSeconds) + " s waiting for " +
                     missing;
      }
      s_.cv.notify_all();
      depart();
      return Status::error(msg);
    }
    lock.unlock();

    // The posts no longer change and the slot stays until everyone departs.
    compute(slot.posts, me, dst);

    lock.lock();
    if (++slot.finished == n)
      s_.cv.notify_all();
    // Only waits for members computing: no timeout, no abort.
    s_.cv.wait(lock, [&] { return slot.finished == n; });
    depart();
    lock.unlock();

    if (useTemp)
      copyBytes(out, temp.data(), outBytes);
    return Status::success();
  }

  LocalCommunicatorGroup::State &s_;
  int64_t rank_;
  // Per axis, so that calls on different axes may come from different
  // threads (Communicator.h): each thread touches only its axis's entries,
  // and neither vector is resized after construction.
  std::vector<int64_t> seq_; // collectives called
  std::vector<std::map<std::pair<int64_t, int64_t>, int64_t>>
      received_; // messages received, by (source, tag)
};

} // namespace

//===----------------------------------------------------------------------===//
// LocalCommunicatorGroup
//===----------------------------------------------------------------------===//

LocalCommunicatorGroup::LocalCommunicatorGroup(MeshShape mesh,
                                               double timeoutSeconds)
    : state_(std::make_unique<State>()) {
  assert(mesh.verify().ok() && "LocalCommunicatorGroup: invalid mesh");
  state_->mesh = std::move(mesh);
  state_->timeoutSeconds = timeoutSeconds;
  int64_t n = state_->mesh.numRanks();
  ranks_.reserve(n);
  for (int64_t r = 0; r < n; ++r)
    ranks_.push_back(std::make_unique<LocalCommunicator>(*state_, r));
}

LocalCommunicatorGroup::~LocalCommunicatorGroup() = default;

Communicator &LocalCommunicatorGroup::forRank(int64_t rank) {
  assert(rank >= 0 && rank < static_cast<int64_t>(ranks_.size()));
  return *ranks_[rank];
}

const MeshShape &LocalCommunicatorGroup::mesh() const { return state_->mesh; }

} // namespace runtime
} // namespace loom
