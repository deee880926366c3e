//===- GlooCommunicator.cpp - one rank per process over Gloo's TCP --------===//
//
// The `gloo` communicator. Every rank creates, in the same order, one gloo
// context per mesh axis whose group has more than one member, then one for
// the world; each context's rendezvous goes through the job's store
// (StoreClient) under a prefix naming the communicator and the group.
//
// The collectives are written over gloo's unbound buffers (tagged sends and
// receives between the pairs of a context) rather than with gloo's
// algorithms (gloo::allgather, gloo::alltoall, ...): those wait inside
// gloo with no way to stop them from outside (they ignore an aborted wait,
// and the TCP context's signalException is protected; Debian's snapshot
// does not even install the headers a subclass would need), and a rank
// must fail at once when the job is aborted or the watchdog reports a
// failure. Here every wait runs on buffers this file holds, and a watcher
// thread aborts those waits on abort(), on the monitor's failure, or at the
// deadline.
//
// Sums run in group order, as the local communicator's: an all-reduce is an
// all-to-all of chunks, each member reducing its chunk over the members in
// group index order (x0 + x1 + x2 ..., the local communicator's exact
// sequence of operations), then an all-gather of the chunks; a
// reduce-scatter is the all-to-all and the reduction. So every rank gets
// bit-identical results, and the same bits as thread ranks get.
//
// Sends are buffered: the data is copied, the send is posted, and a
// completer thread waits for it to be taken (gloo's TCP transport moves the
// data once the receiver posts its receive). The destructor waits, at most
// the timeout, for the sends still pending, so a rank's last send is not
// lost when it returns first. Each message is a fixed-size header (dtype,
// count, label) and then the data, so a receive of the wrong size is an
// error naming both sides, as in the local communicator, not a transport
// failure.
//
// After a failed wait the group's connections are closed (the peers' waits
// then fail too) and every later call on that group is an error naming the
// first failure.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Job.h"
#include "loom/runtime/Store.h"

#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <unistd.h>

namespace loom {
namespace runtime {

namespace {

using Clock = std::chrono::steady_clock;
/// Waits inside gloo never time out by themselves (a timed-out wait closes
/// the whole context): the watcher ends them.
constexpr std::chrono::milliseconds kForever = std::chrono::hours(100);
/// Slots of this file's messages: above gloo's algorithms' prefixes.
constexpr uint64_t kCollectiveSlot = 0x4cull << 56;
constexpr uint64_t kMessageSlot = 0x4dull << 56;
constexpr size_t kHeaderBytes = 256;

std::string formatSeconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

/// gloo's messages start with "[file:line] ".
std::string glooMessage(const std::exception &e) {
  std::string m = e.what();
  if (!m.empty() && m[0] == '[') {
    size_t close = m.find("] ");
    if (close != std::string::npos)
      m = m.substr(close + 2);
  }
  return m;
}

/// gloo's rendezvous over the job's store. gloo throws on failure, so this
/// does too (with our message); the factory turns it back into a Status.
class StoreAdapter final : public gloo::rendezvous::Store {
public:
  StoreAdapter(StoreClient &store, std::string prefix, double timeoutSeconds)
      : store_(store), prefix_(std::move(prefix)),
        timeout_(timeoutSeconds > 0 ? timeoutSeconds : 0) {}

  void set(const std::string &key, const std::vector<char> &data) override {
    Status st =
        store_.set(prefix_ + key, std::string(data.begin(), data.end()));
    if (!st.ok())
      throw gloo::IoException(st.message());
  }
  std::vector<char> get(const std::string &key) override {
    Result<std::string> v = store_.get(prefix_ + key, timeout_);
    if (!v.ok())
      throw gloo::IoException(v.message());
    return std::vector<char>(v->begin(), v->end());
  }
  void wait(const std::vector<std::string> &keys) override {
    for (const std::string &k : keys)
      get(k);
  }
  void wait(const std::vector<std::string> &keys,
            const std::chrono::milliseconds &) override {
    wait(keys);
  }

private:
  StoreClient &store_;
  std::string prefix_;
  double timeout_;
};

template <typename T> T combine(T acc, T x, ReduceKind op) {
  if (op == ReduceKind::Sum)
    return acc + x;
  // Max, NaN wins (as the local communicator).
  return (x > acc || x != x) ? x : acc;
}

/// dst[i] = combine(dst[i], src[i]).
void accumulate(void *dst, const void *src, size_t n, CommDType dtype,
                ReduceKind op) {
  if (dtype == CommDType::F32) {
    auto *d = static_cast<float *>(dst);
    auto *s = static_cast<const float *>(src);
    for (size_t i = 0; i < n; ++i)
      d[i] = combine(d[i], s[i], op);
  } else {
    auto *d = static_cast<double *>(dst);
    auto *s = static_cast<const double *>(src);
    for (size_t i = 0; i < n; ++i)
      d[i] = combine(d[i], s[i], op);
  }
}

/// One gloo context: the members of a group (or the world).
struct Group {
  std::string name; // the axis, or "world"
  std::vector<int64_t> members;
  int64_t me = 0; // this rank's index among members
  std::shared_ptr<gloo::rendezvous::Context> ctx;
  int64_t seq = 0;    // collectives called
  std::string broken; // why its connections were closed
};

enum class Interrupt { None, Abort, Failure, Timeout };

/// One call in flight (calls on different axes may run on different
/// threads at once, Communicator.h): what the watcher may end.
struct Call {
  bool hasDeadline = false;
  Clock::time_point deadline;
  Interrupt interrupt = Interrupt::None;
  std::string failure; // the monitor's, when it ended the call
  std::vector<gloo::transport::UnboundBuffer *> active;
};

/// The call this thread is in (guarded() sets it; exchange() posts to it).
thread_local Call *tCall = nullptr;

/// One posted send or receive.
struct Transfer {
  int64_t peer; // group index
  void *ptr;
  size_t bytes;
  bool send;
};

/// A send the receiver has not taken yet (buffers kept alive until then).
struct PendingSend {
  std::vector<char> header, data;
  std::unique_ptr<gloo::transport::UnboundBuffer> headerBuf, dataBuf;
};

class GlooCommunicator final : public Communicator {
public:
  GlooCommunicator(MeshShape mesh, int64_t rank, StoreClient &store,
                   const ProcessCommOptions &options)
      : mesh_(std::move(mesh)), rank_(rank), store_(store), options_(options),
        self_(mesh_.describe(rank)), received_(mesh_.sizes.size()) {}

  Status connect() {
    gloo::transport::tcp::attr attr;
    // PyTorch's variable: the interface whose address the peers reach.
    if (const char *iface = std::getenv("GLOO_SOCKET_IFNAME"); iface && *iface)
      attr.iface = iface;
    else if (const char *host = std::getenv("LOOM_GLOO_HOST"); host && *host)
      attr.hostname = host;
    else {
      char name[256] = {0};
      gethostname(name, sizeof(name) - 1);
      attr.hostname = name;
    }
    // Every rank creates its communicators in the same order, so the n-th
    // one of each rank shares the store's keys with the others' n-th.
    Result<int64_t> generation =
        store_.add("gloo/communicators/" + std::to_string(rank_), 1);
    if (!generation.ok())
      return Status::error(self_ + ": cannot create the gloo communicator: " +
                           generation.message());
    std::string prefix = "gloo/" + std::to_string(*generation) + "/";
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      for (size_t axis = 0; axis < mesh_.sizes.size(); ++axis) {
        Group g;
        g.name = mesh_.names[axis];
        g.members = mesh_.groupMembers(rank_, static_cast<int>(axis));
        g.me = mesh_.coordinates(rank_)[axis];
        if (Status st = connectGroup(g, prefix + g.name + "/" +
                                            std::to_string(g.members[0]) + "/");
            !st.ok())
          return st;
        axes_.push_back(std::move(g));
      }
      world_.name = "world";
      for (int64_t r = 0; r < mesh_.numRanks(); ++r)
        world_.members.push_back(r);
      world_.me = rank_;
      if (Status st = connectGroup(world_, prefix + "world/"); !st.ok())
        return st;
    } catch (const std::exception &e) {
      return Status::error(
          self_ + ": cannot create the gloo communicator: " + glooMessage(e));
    }
    watcher_ = std::thread([this] { watch(); });
    completer_ = std::thread([this] { completeSends(); });
    return Status::success();
  }

  ~GlooCommunicator() override {
    std::unique_lock<std::mutex> lock(mu_);
    // A receiver may still be on its way to our last sends.
    double t = options_.timeoutSeconds > 0 ? options_.timeoutSeconds : 300;
    cv_.wait_for(lock, std::chrono::duration<double>(t),
                 [&] { return pending_.empty() || aborted_; });
    stopping_ = true;
    for (PendingSend &p : pending_) {
      if (p.headerBuf)
        p.headerBuf->abortWaitSend();
      if (p.dataBuf)
        p.dataBuf->abortWaitSend();
    }
    cv_.notify_all();
    lock.unlock();
    if (watcher_.joinable())
      watcher_.join();
    if (completer_.joinable())
      completer_.join();
    // The contexts close their pairs before the pending buffers go.
    axes_.clear();
    world_.ctx.reset();
    pending_.clear();
  }

  int64_t rank() const override { return rank_; }
  const MeshShape &mesh() const override { return mesh_; }

  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op,
                   const std::string &what) override {
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    Group &g = axes_[axis];
    size_t esz = commDTypeSize(dtype);
    std::string sig = "'" + what + "' (all_reduce of " + std::to_string(count) +
                      " x " + commDTypeName(dtype) +
                      (op == ReduceKind::Sum ? ", sum)" : ", max)");
    size_t n = g.members.size();
    if (n == 1)
      return local(sig, [&] { std::memmove(out, in, count * esz); });
    // Chunk c of the padded input is reduced by member c.
    size_t chunk = (count + n - 1) / n, chunkBytes = chunk * esz;
    std::vector<char> sendBuf(n * chunkBytes, 0), recvBuf(n * chunkBytes);
    std::memcpy(sendBuf.data(), in, count * esz);
    return collective(g, "all_reduce", what, sig, [&](uint64_t slot) {
      std::vector<Transfer> ts;
      for (size_t p = 0; p < n; ++p)
        if (p != size_t(g.me)) {
          ts.push_back(
              {int64_t(p), sendBuf.data() + p * chunkBytes, chunkBytes, true});
          ts.push_back(
              {int64_t(p), recvBuf.data() + p * chunkBytes, chunkBytes, false});
        }
      std::memcpy(recvBuf.data() + g.me * chunkBytes,
                  sendBuf.data() + g.me * chunkBytes, chunkBytes);
      if (Status st = exchange(g, ts, slot); !st.ok())
        return st;
      // recvBuf[s] is member s's chunk me: reduce in group order.
      std::vector<char> mine(recvBuf.begin(), recvBuf.begin() + chunkBytes);
      for (size_t s = 1; s < n; ++s)
        accumulate(mine.data(), recvBuf.data() + s * chunkBytes, chunk, dtype,
                   op);
      std::vector<char> all(n * chunkBytes);
      ts.clear();
      for (size_t p = 0; p < n; ++p)
        if (p != size_t(g.me)) {
          ts.push_back({int64_t(p), mine.data(), chunkBytes, true});
          ts.push_back(
              {int64_t(p), all.data() + p * chunkBytes, chunkBytes, false});
        }
      std::memcpy(all.data() + g.me * chunkBytes, mine.data(), chunkBytes);
      if (Status st = exchange(g, ts, slot + 1); !st.ok())
        return st;
      std::memcpy(out, all.data(), count * esz);
      return Status::success();
    });
  }

  Status allGather(int axis, const void *in, void *out, size_t outer,
                   size_t inner, CommDType dtype,
                   const std::string &what) override {
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    Group &g = axes_[axis];
    size_t esz = commDTypeSize(dtype), n = g.members.size();
    size_t block = inner * esz, bytes = outer * block;
    std::string sig =
        shapedCollectiveSignature("all_gather", what, outer, inner, dtype);
    if (n == 1)
      return local(sig, [&] { std::memmove(out, in, bytes); });
    std::vector<char> mine(static_cast<const char *>(in),
                           static_cast<const char *>(in) + bytes);
    std::vector<char> all(n * bytes);
    return collective(g, "all_gather", what, sig, [&](uint64_t slot) {
      std::vector<Transfer> ts;
      for (size_t p = 0; p < n; ++p)
        if (p != size_t(g.me)) {
          ts.push_back({int64_t(p), mine.data(), bytes, true});
          ts.push_back({int64_t(p), all.data() + p * bytes, bytes, false});
        }
      std::memcpy(all.data() + g.me * bytes, mine.data(), bytes);
      if (Status st = exchange(g, ts, slot); !st.ok())
        return st;
      // all is [n, outer, inner]; out is [outer, n, inner].
      auto *o = static_cast<char *>(out);
      for (size_t r = 0; r < outer; ++r)
        for (size_t p = 0; p < n; ++p)
          std::memcpy(o + (r * n + p) * block,
                      all.data() + p * bytes + r * block, block);
      return Status::success();
    });
  }

  Status reduceScatter(int axis, const void *in, void *out, size_t outer,
                       size_t inner, CommDType dtype,
                       const std::string &what) override {
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    Group &g = axes_[axis];
    size_t esz = commDTypeSize(dtype), n = g.members.size();
    size_t block = inner * esz, bytes = outer * block;
    std::string sig =
        shapedCollectiveSignature("reduce_scatter", what, outer, inner, dtype);
    if (n == 1)
      return local(sig, [&] { std::memmove(out, in, bytes); });
    // Pack member p's blocks (every row's columns p) contiguously.
    std::vector<char> packed(n * bytes), got(n * bytes);
    const auto *src = static_cast<const char *>(in);
    for (size_t p = 0; p < n; ++p)
      for (size_t r = 0; r < outer; ++r)
        std::memcpy(packed.data() + p * bytes + r * block,
                    src + (r * n + p) * block, block);
    return collective(g, "reduce_scatter", what, sig, [&](uint64_t slot) {
      std::vector<Transfer> ts;
      for (size_t p = 0; p < n; ++p)
        if (p != size_t(g.me)) {
          ts.push_back({int64_t(p), packed.data() + p * bytes, bytes, true});
          ts.push_back({int64_t(p), got.data() + p * bytes, bytes, false});
        }
      std::memcpy(got.data() + g.me * bytes, packed.data() + g.me * bytes,
                  bytes);
      if (Status st = exchange(g, ts, slot); !st.ok())
        return st;
      std::vector<char> sum(got.begin(), got.begin() + bytes);
      for (size_t s = 1; s < n; ++s)
        accumulate(sum.data(), got.data() + s * bytes, outer * inner, dtype,
                   ReduceKind::Sum);
      std::memcpy(out, sum.data(), bytes);
      return Status::success();
    });
  }

  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, const std::string &what) override {
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    Group &g = axes_[axis];
    if (root < 0 || root >= int64_t(g.members.size()))
      return Status::error(self_ + ": broadcast '" + what + "' names root " +
                           std::to_string(root) + ", but the " + g.name +
                           " group has " + std::to_string(g.members.size()) +
                           " members");
    size_t bytes = count * commDTypeSize(dtype);
    std::string sig = "'" + what + "' (broadcast of " + std::to_string(count) +
                      " x " + commDTypeName(dtype) + ", root " +
                      std::to_string(root) + ")";
    if (g.members.size() == 1)
      return local(sig, [] {});
    return collective(g, "broadcast", what, sig, [&](uint64_t slot) {
      std::vector<Transfer> ts;
      if (g.me == root) {
        for (size_t p = 0; p < g.members.size(); ++p)
          if (int64_t(p) != root)
            ts.push_back({int64_t(p), data, bytes, true});
      } else {
        ts.push_back({root, data, bytes, false});
      }
      return exchange(g, ts, slot);
    });
  }

  Status gatherToRoot(const std::vector<uint8_t> &mine,
                      std::vector<std::vector<uint8_t>> *atRoot,
                      const std::string &what) override {
    Group &g = world_;
    size_t n = g.members.size();
    atRoot->clear();
    if (n == 1) {
      atRoot->push_back(mine);
      return Status::success();
    }
    std::string sig = "'" + what + "' (gather to rank 0)";
    std::vector<int64_t> sizes(n);
    int64_t mySize = int64_t(mine.size());
    return collective(g, "gather", what, sig, [&](uint64_t slot) {
      // The sizes first, so that rank 0 posts receives of the right size.
      std::vector<Transfer> ts;
      if (rank_ == 0) {
        for (size_t p = 1; p < n; ++p)
          ts.push_back({int64_t(p), &sizes[p], sizeof(int64_t), false});
      } else {
        ts.push_back({0, &mySize, sizeof(int64_t), true});
      }
      if (Status st = exchange(g, ts, slot); !st.ok())
        return st;
      ts.clear();
      if (rank_ == 0) {
        atRoot->resize(n);
        (*atRoot)[0] = mine;
        for (size_t p = 1; p < n; ++p) {
          (*atRoot)[p].resize(size_t(sizes[p]));
          ts.push_back(
              {int64_t(p), (*atRoot)[p].data(), size_t(sizes[p]), false});
        }
      } else {
        ts.push_back(
            {0, const_cast<uint8_t *>(mine.data()), mine.size(), true});
      }
      return exchange(g, ts, slot + 1);
    });
  }

  Status broadcastFromRoot(std::vector<uint8_t> &bytes,
                           const std::string &what) override {
    Group &g = world_;
    size_t n = g.members.size();
    if (n == 1)
      return Status::success();
    std::string sig = "'" + what + "' (broadcast from rank 0)";
    int64_t size = int64_t(bytes.size());
    return collective(g, "broadcast", what, sig, [&](uint64_t slot) {
      std::vector<Transfer> ts;
      for (size_t p = 1; p < n; ++p)
        if (rank_ == 0)
          ts.push_back({int64_t(p), &size, sizeof(size), true});
      if (rank_ != 0)
        ts.push_back({0, &size, sizeof(size), false});
      if (Status st = exchange(g, ts, slot); !st.ok())
        return st;
      if (rank_ != 0)
        bytes.resize(size_t(size));
      ts.clear();
      for (size_t p = 1; p < n; ++p)
        if (rank_ == 0)
          ts.push_back({int64_t(p), bytes.data(), bytes.size(), true});
      if (rank_ != 0)
        ts.push_back({0, bytes.data(), bytes.size(), false});
      return exchange(g, ts, slot + 1);
    });
  }

  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, const std::string &what) override {
    if (Status st = checkPeer(axis, peer, "send", what); !st.ok())
      return st;
    Group &g = axes_[axis];
    std::string label = "send '" + what + "' to " +
                        mesh_.describe(g.members[peer]) + " along " + g.name +
                        ", tag " + std::to_string(tag);
    if (Status st = usable(g, label); !st.ok())
      return st;
    auto p = std::make_unique<PendingSend>();
    p->header.assign(kHeaderBytes, 0);
    p->header[0] = dtype == CommDType::F32 ? 0 : 1;
    uint64_t n = count;
    std::memcpy(&p->header[8], &n, sizeof(n));
    std::memcpy(&p->header[16], what.data(),
                std::min(what.size(), kHeaderBytes - 17));
    size_t bytes = count * commDTypeSize(dtype);
    p->data.assign(static_cast<const char *>(data),
                   static_cast<const char *>(data) + bytes);
    try {
      p->headerBuf = g.ctx->createUnboundBuffer(p->header.data(), kHeaderBytes);
      p->headerBuf->send(int(peer), messageSlot(tag, 0));
      if (bytes) {
        p->dataBuf = g.ctx->createUnboundBuffer(p->data.data(), bytes);
        p->dataBuf->send(int(peer), messageSlot(tag, 1));
      }
    } catch (const std::exception &e) {
      return fail(g, label, glooMessage(e), {});
    }
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(std::move(*p));
    cv_.notify_all();
    return Status::success();
  }

  Status recv(int axis, int64_t peer, void *data, size_t count, CommDType dtype,
              int64_t tag, const std::string &what) override {
    if (Status st = checkPeer(axis, peer, "recv", what); !st.ok())
      return st;
    Group &g = axes_[axis];
    int64_t src = g.members[peer];
    int64_t number = received_[axis][{peer, tag}]++;
    std::string label = "recv '" + what + "' (message #" +
                        std::to_string(number) + " from " +
                        mesh_.describe(src) + " along " + g.name + ", tag " +
                        std::to_string(tag) + ")";
    if (Status st = usable(g, label); !st.ok())
      return st;
    std::vector<char> header(kHeaderBytes);
    Status st = guarded(
        g, "recv '" + what + "' from " + mesh_.describe(src), label, {src},
        true, [&] {
          std::vector<Transfer> ts{{peer, header.data(), kHeaderBytes, false}};
          return exchange(g, ts, messageSlot(tag, 0));
        });
    if (!st.ok())
      return st;
    CommDType sentType = header[0] == 0 ? CommDType::F32 : CommDType::F64;
    uint64_t sentCount = 0;
    std::memcpy(&sentCount, &header[8], sizeof(sentCount));
    std::string sentWhat(&header[16]);
    std::vector<char> body(sentCount * commDTypeSize(sentType));
    if (!body.empty()) {
      st = guarded(
          g, "recv '" + what + "' from " + mesh_.describe(src), label, {src},
          true, [&] {
            std::vector<Transfer> ts{{peer, body.data(), body.size(), false}};
            return exchange(g, ts, messageSlot(tag, 1));
          });
      if (!st.ok())
        return st;
    }
    if (sentType != dtype || sentCount != count)
      return Status::error(self_ + " expects " + std::to_string(count) + " x " +
                           commDTypeName(dtype) + " in " + label + ", but " +
                           mesh_.describe(src) + " sent '" + sentWhat +
                           "' with " + std::to_string(sentCount) + " x " +
                           commDTypeName(sentType));
    if (!body.empty())
      std::memcpy(data, body.data(), body.size());
    return Status::success();
  }

  void abort(const std::string &why) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!aborted_) {
      aborted_ = true;
      abortMessage_ = self_ + " aborted the job: " + why;
    }
    cv_.notify_all();
  }

private:
  Status connectGroup(Group &g, const std::string &prefix) {
    if (g.members.size() == 1)
      return Status::success();
    StoreAdapter store(store_, prefix, options_.timeoutSeconds);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(
        int(g.me), int(g.members.size()));
    double t = options_.timeoutSeconds > 0 ? options_.timeoutSeconds : 0;
    ctx->setTimeout(t > 0 ? std::chrono::milliseconds(int64_t(t * 1000))
                          : kForever);
    try {
      ctx->connectFullMesh(store, device_);
    } catch (const std::exception &e) {
      std::string members;
      for (int64_t m : g.members)
        members += (members.empty() ? "" : ", ") + std::to_string(m);
      return Status::error(self_ + ": cannot connect the gloo communicator's " +
                           g.name + " group of ranks {" + members +
                           "}: " + glooMessage(e));
    }
    g.ctx = std::move(ctx);
    return Status::success();
  }

  static uint64_t messageSlot(int64_t tag, int part) {
    return kMessageSlot | ((uint64_t(tag) & ((1ull << 48) - 1)) << 1) |
           uint64_t(part);
  }

  Status checkAxis(int axis, const std::string &what) const {
    if (axis < 0 || size_t(axis) >= mesh_.sizes.size())
      return Status::error(self_ + ": '" + what + "' names mesh axis " +
                           std::to_string(axis) + ", but the mesh has " +
                           std::to_string(mesh_.sizes.size()) + " axes");
    return Status::success();
  }

  Status checkPeer(int axis, int64_t peer, const char *op,
                   const std::string &what) const {
    if (Status st = checkAxis(axis, what); !st.ok())
      return st;
    if (peer < 0 || peer >= mesh_.sizes[axis])
      return Status::error(self_ + ": " + op + " '" + what + "' names peer " +
                           std::to_string(peer) + ", but the " +
                           mesh_.names[axis] + " group has " +
                           std::to_string(mesh_.sizes[axis]) + " members");
    return Status::success();
  }

  /// A group of one: no waiting, but an aborted job still fails.
  Status local(const std::string &sig, const std::function<void()> &copy) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (aborted_)
        return Status::error(self_ + ": " + sig + " failed: " + abortMessage_);
    }
    copy();
    return Status::success();
  }

  /// Ok unless the job was aborted, the watchdog knows of a failure, or the
  /// group's connections were closed.
  Status usable(Group &g, const std::string &label) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (aborted_)
        return Status::error(self_ + ": " + label +
                             " failed: " + abortMessage_);
    }
    if (options_.monitor) {
      std::string f = options_.monitor->failure();
      if (!f.empty())
        return Status::error(self_ + ": " + label + " failed: " + f);
    }
    if (!g.broken.empty())
      return Status::error(self_ + ": " + label + " failed: the " + g.name +
                           " group's connections were closed after an "
                           "earlier failure: " +
                           g.broken);
    return Status::success();
  }

  /// "collective #3 of the tp group of ranks {0, 1}".
  std::string groupLabel(const Group &g, int64_t seq) const {
    std::string s = "collective #" + std::to_string(seq) + " of the " + g.name +
                    " group of ranks {";
    for (size_t i = 0; i < g.members.size(); ++i)
      s += (i ? ", " : "") + std::to_string(g.members[i]);
    return s + "}";
  }

  Status collective(Group &g, const char *kind, const std::string &what,
                    const std::string &sig,
                    const std::function<Status(uint64_t slot)> &body) {
    int64_t seq = g.seq++;
    std::string label = sig + ", " + groupLabel(g, seq);
    if (Status st = usable(g, label); !st.ok())
      return st;
    std::vector<int64_t> others;
    for (int64_t m : g.members)
      if (m != rank_)
        others.push_back(m);
    // Two exchanges per collective at most: slots seq*2 and seq*2+1. A
    // member calling another kind or size of collective here must not
    // match: gloo's transport aborts the process on a message longer than
    // the receive (an exception in its event loop). So the slot carries a
    // hash of the call's shape (the signature after its label, which may
    // differ between members), and a mismatch times out instead.
    uint64_t shape = 1469598103934665603ull; // FNV-1a
    for (char c : sig.substr(what.size() + 3))
      shape = (shape ^ uint8_t(c)) * 1099511628211ull;
    uint64_t slot = kCollectiveSlot | ((shape & 0xffffff) << 32) |
                    ((uint64_t(seq) << 1) & 0xffffffffull);
    return guarded(g,
                   std::string(kind) + " '" + what + "' #" +
                       std::to_string(seq) + " of the " + g.name + " group",
                   label, others, false, [&] { return body(slot); });
  }

  /// Runs `body` (which waits on buffers registered in active_) under the
  /// watcher: abort, the monitor's failure and the deadline end its waits.
  /// A timeout names `waitFor`: "<label>: <rank> has not sent it" when
  /// `hasNotSent`, else "<label>; not known to have arrived: <ranks>".
  Status guarded(Group &g, const std::string &entering,
                 const std::string &label, const std::vector<int64_t> &waitFor,
                 bool hasNotSent, const std::function<Status()> &body) {
    if (options_.monitor)
      options_.monitor->entering(entering);
    double t = options_.timeoutSeconds;
    Call call;
    call.hasDeadline = t > 0 && t < 1e9;
    if (call.hasDeadline)
      call.deadline =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(t));
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.insert(&call);
    }
    Call *outer = tCall;
    tCall = &call;
    Status st = Status::success();
    try {
      st = body();
    } catch (const std::exception &e) {
      st = Status::error(glooMessage(e));
    }
    tCall = outer;
    Interrupt why;
    std::string failureSeen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.erase(&call);
      why = call.interrupt;
      failureSeen = call.failure;
    }
    if (options_.monitor)
      options_.monitor->left();
    if (st.ok() && why == Interrupt::None)
      return st;
    if (st.ok()) // the watcher fired as the call completed: it did complete
      return st;
    switch (why) {
    case Interrupt::Abort: {
      std::lock_guard<std::mutex> lock(mu_);
      return fail(g, label, abortMessage_, {});
    }
    case Interrupt::Failure:
      return fail(g, label, failureSeen, {});
    case Interrupt::Timeout: {
      std::string late;
      for (int64_t r : waitFor)
        late += (late.empty() ? "" : ", ") + mesh_.describe(r);
      std::string msg = self_ + " timed out after " + formatSeconds(t) +
                        " s in " + label +
                        (hasNotSent ? ": " + late + " has not sent it"
                                    : "; not known to have arrived: " + late);
      if (options_.monitor) {
        std::string explain = options_.monitor->explainLate(waitFor);
        if (!explain.empty())
          msg += " (" + explain + ")";
      }
      closeGroup(g, "timed out after " + formatSeconds(t) + " s in " + label);
      return Status::error(msg);
    }
    case Interrupt::None:
      break;
    }
    // A transport error: a peer's connection closed or failed. The watchdog
    // usually knows why within a heartbeat or two.
    std::string because;
    for (int i = 0; options_.monitor && i < 100 && because.empty(); ++i) {
      because = options_.monitor->failure();
      if (because.empty())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return fail(g, label,
                because.empty() ? st.message()
                                : because + " (" + st.message() + ")",
                {});
  }

  Status fail(Group &g, const std::string &label, const std::string &why,
              const std::vector<int64_t> &) {
    closeGroup(g, label + " failed: " + why);
    return Status::error(self_ + ": " + label + " failed: " + why);
  }

  /// Closes the group's pairs (the peers' waits fail at once rather than
  /// at their timeouts); later calls on the group are errors.
  void closeGroup(Group &g, const std::string &why) {
    if (g.broken.empty())
      g.broken = why;
    if (!g.ctx)
      return;
    for (int i = 0; i < g.ctx->size; ++i) {
      if (i == g.ctx->rank)
        continue;
      try {
        if (auto &pair = g.ctx->getPair(i))
          pair->close();
      } catch (const std::exception &) {
      }
    }
  }

  /// Posts every transfer, then waits for all (the watcher may end the
  /// waits: a wait that returns false was aborted).
  Status exchange(Group &g, const std::vector<Transfer> &ts, uint64_t slot) {
    std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> bufs;
    // Declared after bufs, so the watcher forgets them before they go.
    Call &call = *tCall;
    struct Forget {
      std::mutex &mu;
      Call &call;
      ~Forget() {
        std::lock_guard<std::mutex> lock(mu);
        call.active.clear();
      }
    } forget{mu_, call};
    for (const Transfer &t : ts) {
      if (!t.bytes)
        continue;
      bufs.push_back(g.ctx->createUnboundBuffer(t.ptr, t.bytes));
      {
        std::lock_guard<std::mutex> lock(mu_);
        call.active.push_back(bufs.back().get());
        if (call.interrupt != Interrupt::None)
          return Status::error("interrupted");
      }
      if (t.send)
        bufs.back()->send(int(t.peer), slot);
      else
        bufs.back()->recv(int(t.peer), slot);
    }
    size_t i = 0;
    for (const Transfer &t : ts) {
      if (!t.bytes)
        continue;
      gloo::transport::UnboundBuffer &b = *bufs[i++];
      bool done = t.send ? b.waitSend(kForever) : b.waitRecv(kForever);
      if (!done)
        return Status::error("interrupted");
    }
    return Status::success();
  }

  /// Ends the waits of the calls in flight that must stop.
  void watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(20));
      if (calls_.empty())
        continue;
      std::string failure;
      if (options_.monitor && !aborted_) {
        lock.unlock();
        failure = options_.monitor->failure();
        lock.lock();
      }
      for (Call *c : calls_) {
        if (c->interrupt != Interrupt::None)
          continue;
        if (aborted_)
          c->interrupt = Interrupt::Abort;
        else if (c->hasDeadline && Clock::now() >= c->deadline)
          c->interrupt = Interrupt::Timeout;
        else if (!failure.empty()) {
          c->interrupt = Interrupt::Failure;
          c->failure = failure;
        } else
          continue;
        for (gloo::transport::UnboundBuffer *b : c->active) {
          b->abortWaitRecv();
          b->abortWaitSend();
        }
      }
    }
  }

  /// Waits for each posted send in order until its receiver took it.
  void completeSends() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (stopping_)
        return;
      PendingSend &p = pending_.front();
      lock.unlock();
      bool done = true;
      try {
        done = p.headerBuf->waitSend(kForever) &&
               (!p.dataBuf || p.dataBuf->waitSend(kForever));
      } catch (const std::exception &) {
        // The group failed; its calls say so.
      }
      lock.lock();
      if (!done && stopping_)
        return;
      pending_.pop_front();
      cv_.notify_all();
    }
  }

  MeshShape mesh_;
  int64_t rank_;
  StoreClient &store_;
  ProcessCommOptions options_;
  std::string self_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::vector<Group> axes_;
  Group world_;
  // Per axis (each axis has one calling thread at a time): by (peer, tag),
  // the messages received.
  std::vector<std::map<std::pair<int64_t, int64_t>, int64_t>> received_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  std::string abortMessage_;
  bool stopping_ = false;
  std::set<Call *> calls_; // in flight, one per calling thread
  std::deque<PendingSend> pending_;
  std::thread watcher_, completer_;
};

} // namespace

Result<std::unique_ptr<Communicator>>
createGlooCommunicator(const MeshShape &mesh, int64_t rank, StoreClient &store,
                       const ProcessCommOptions &options) {
  if (Status st = mesh.verify(); !st.ok())
    return st;
  if (rank < 0 || rank >= mesh.numRanks())
    return Status::error("gloo communicator: rank " + std::to_string(rank) +
                         " is outside the mesh's " +
                         std::to_string(mesh.numRanks()) + " ranks");
  auto comm = std::make_unique<GlooCommunicator>(mesh, rank, store, options);
  if (Status st = comm->connect(); !st.ok())
    return st;
  return std::unique_ptr<Communicator>(std::move(comm));
}

bool glooAvailable() { return true; }

} // namespace runtime
} // namespace loom
