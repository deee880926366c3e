//===- Store.cpp - the job's TCP store: server, client, rank monitor ------===//
//
// The wire format: every request and every response is one frame, a 4-byte
// big-endian length and then the payload. A request's payload is an opcode
// byte and its fields; a response's is a status byte and its fields. Fields
// are strings (4-byte length, bytes) or 8-byte big-endian integers.
//
// The server has an accept thread, one thread per connection (they block on
// their socket, so a slow client never stalls another) and a monitor thread
// that declares silent registered ranks hung; the keys and the ranks' states
// live under one mutex. Connection threads poll their socket with a short
// timeout so that the destructor can stop them.
//
// Client calls wait for a response at most the client's timeout: a server
// that is stopped (SIGSTOP) or whose host is gone is then an error rather
// than a hang. get() polls, so no server thread ever waits on a missing key.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Store.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace loom {
namespace runtime {

namespace {

using Clock = std::chrono::steady_clock;

enum class Op : uint8_t {
  Set = 1,
  Get,
  Add,
  Hello,
  Heartbeat,
  ReportFailure,
  Ranks,
  Goodbye
};
enum class Reply : uint8_t { Ok = 0, Missing = 1, Error = 2 };

/// Frames above this are a corrupt stream, not a request (values are small:
/// addresses, ids, a rank's state).
constexpr uint32_t kMaxFrame = 64u << 20;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string formatSeconds(double s) {
  std::ostringstream os;
  os.precision(s < 10 ? 2 : 4);
  os << s;
  return os.str();
}

std::string hostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0)
    return "?";
  return buf;
}

//===----------------------------------------------------------------------===//
// Encoding
//===----------------------------------------------------------------------===//

struct Writer {
  std::string bytes;
  void u8(uint8_t v) { bytes.push_back(static_cast<char>(v)); }
  void i64(int64_t v) {
    auto u = static_cast<uint64_t>(v);
    for (int i = 7; i >= 0; --i)
      bytes.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  void str(const std::string &s) {
    i64(static_cast<int64_t>(s.size()));
    bytes += s;
  }
};

struct Reader {
  const std::string &bytes;
  size_t at = 0;
  bool bad = false;
  explicit Reader(const std::string &b) : bytes(b) {}
  uint8_t u8() {
    if (at + 1 > bytes.size()) {
      bad = true;
      return 0;
    }
    return static_cast<uint8_t>(bytes[at++]);
  }
  int64_t i64() {
    if (at + 8 > bytes.size()) {
      bad = true;
      return 0;
    }
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i)
      u = (u << 8) | static_cast<uint8_t>(bytes[at++]);
    return static_cast<int64_t>(u);
  }
  std::string str() {
    int64_t n = i64();
    if (bad || n < 0 || at + static_cast<size_t>(n) > bytes.size()) {
      bad = true;
      return {};
    }
    std::string s = bytes.substr(at, n);
    at += n;
    return s;
  }
};

//===----------------------------------------------------------------------===//
// Sockets
//===----------------------------------------------------------------------===//

enum class Io { Ok, Closed, TimedOut, Failed };

/// Waits until `fd` is ready for `events`, at most until `deadline` (none:
/// Clock::time_point::max()), waking every `slice` to check `stop`.
Io waitReady(int fd, short events, Clock::time_point deadline,
             const std::atomic<bool> *stop) {
  for (;;) {
    if (stop && stop->load())
      return Io::Closed;
    int ms = 100;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - Clock::now())
                      .count();
      if (left <= 0)
        return Io::TimedOut;
      ms = static_cast<int>(std::min<int64_t>(left, ms));
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno != EINTR)
      return Io::Failed;
    if (r > 0)
      return Io::Ok;
  }
}

Io sendAll(int fd, const char *data, size_t n, Clock::time_point deadline,
           const std::atomic<bool> *stop) {
  while (n) {
    if (Io io = waitReady(fd, POLLOUT, deadline, stop); io != Io::Ok)
      return io;
    // MSG_NOSIGNAL: a peer that is gone is an error here, never a SIGPIPE
    // that kills the process.
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      return errno == EPIPE || errno == ECONNRESET ? Io::Closed : Io::Failed;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Io::Ok;
}

Io recvAll(int fd, char *data, size_t n, Clock::time_point deadline,
           const std::atomic<bool> *stop) {
  while (n) {
    if (Io io = waitReady(fd, POLLIN, deadline, stop); io != Io::Ok)
      return io;
    ssize_t r = ::recv(fd, data, n, MSG_DONTWAIT);
    if (r == 0)
      return Io::Closed;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      return errno == ECONNRESET ? Io::Closed : Io::Failed;
    }
    data += r;
    n -= static_cast<size_t>(r);
  }
  return Io::Ok;
}

Io sendFrame(int fd, const std::string &payload, Clock::time_point deadline,
             const std::atomic<bool> *stop) {
  uint32_t n = static_cast<uint32_t>(payload.size());
  char head[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                  static_cast<char>(n >> 8), static_cast<char>(n)};
  std::string frame(head, 4);
  frame += payload;
  return sendAll(fd, frame.data(), frame.size(), deadline, stop);
}

Io recvFrame(int fd, std::string *payload, Clock::time_point deadline,
             const std::atomic<bool> *stop) {
  unsigned char head[4];
  if (Io io = recvAll(fd, reinterpret_cast<char *>(head), 4, deadline, stop);
      io != Io::Ok)
    return io;
  uint32_t n = (uint32_t(head[0]) << 24) | (uint32_t(head[1]) << 16) |
               (uint32_t(head[2]) << 8) | uint32_t(head[3]);
  if (n > kMaxFrame)
    return Io::Failed;
  payload->assign(n, '\0');
  return recvAll(fd, payload->data(), n, deadline, stop);
}

void setSocketOptions(int fd) {
  int one = 1;
  // Requests are small and each waits for its answer: no Nagle delay.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string joinAddress(const std::string &host, int port) {
  // An IPv6 literal needs brackets before the port.
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

} // namespace

//===----------------------------------------------------------------------===//
// StoreServer
//===----------------------------------------------------------------------===//

struct StoreServer::Impl {
  StoreServerOptions options;
  std::string address; // "host:port", for messages
  std::string host = hostName();
  int listenFd = -1;
  int port = 0;

  struct RankEntry {
    StoreRankState state;
    Clock::time_point lastHeard;
    bool hung = false;
  };

  mutable std::mutex mu;
  std::condition_variable cv; // a rank finished or was lost; stopping
  std::map<std::string, std::string> keys;
  std::map<int64_t, RankEntry> ranks;
  std::string failure;
  std::atomic<bool> stopping{false};
  std::atomic<bool> acceptStopped{false};

  std::thread acceptThread, monitorThread;
  std::mutex connMu;
  std::vector<std::thread> connThreads;
  std::vector<int> connFds;

  void fail(const std::string &why) {
    if (failure.empty())
      failure = why;
  }

  void acceptLoop() {
    while (!stopping && !acceptStopped) {
      Io io =
          waitReady(listenFd, POLLIN, Clock::time_point::max(), &acceptStopped);
      if (io != Io::Ok || stopping || acceptStopped)
        break;
      int fd = ::accept(listenFd, nullptr, nullptr);
      if (fd < 0)
        continue;
      setSocketOptions(fd);
      std::lock_guard<std::mutex> lock(connMu);
      connFds.push_back(fd);
      connThreads.emplace_back([this, fd] { serve(fd); });
    }
  }

  /// One connection: requests until it closes. `registered` is the rank it
  /// said hello as (-1: none).
  void serve(int fd) {
    int64_t registered = -1;
    std::string request;
    for (;;) {
      Io io = recvFrame(fd, &request, Clock::time_point::max(), &stopping);
      if (io != Io::Ok)
        break;
      std::string reply = handle(request, &registered);
      if (sendFrame(fd, reply, Clock::time_point::max(), &stopping) != Io::Ok)
        break;
    }
    if (registered >= 0 && !stopping) {
      std::lock_guard<std::mutex> lock(mu);
      RankEntry &e = ranks[registered];
      if (!e.state.finished && !e.state.lost) {
        e.state.lost = true;
        fail(e.state.describe + " on " + e.state.host + " (pid " +
             std::to_string(e.state.pid) +
             ") exited without finishing: its connection to the job's "
             "store closed while in '" +
             e.state.doing + "'");
      }
      cv.notify_all();
    }
  }

  std::string handle(const std::string &request, int64_t *registered) {
    Reader in(request);
    Writer out;
    auto op = static_cast<Op>(in.u8());
    std::lock_guard<std::mutex> lock(mu);
    auto error = [&](const std::string &why) {
      Writer w;
      w.u8(static_cast<uint8_t>(Reply::Error));
      w.str(why);
      return w.bytes;
    };
    switch (op) {
    case Op::Set: {
      std::string key = in.str(), value = in.str();
      if (in.bad)
        break;
      keys[key] = std::move(value);
      out.u8(static_cast<uint8_t>(Reply::Ok));
      return out.bytes;
    }
    case Op::Get: {
      std::string key = in.str();
      if (in.bad)
        break;
      auto it = keys.find(key);
      if (it == keys.end()) {
        out.u8(static_cast<uint8_t>(Reply::Missing));
        return out.bytes;
      }
      out.u8(static_cast<uint8_t>(Reply::Ok));
      out.str(it->second);
      return out.bytes;
    }
    case Op::Add: {
      std::string key = in.str();
      int64_t delta = in.i64();
      if (in.bad)
        break;
      int64_t value = 0;
      auto it = keys.find(key);
      if (it != keys.end()) {
        char *end = nullptr;
        errno = 0;
        long long v = std::strtoll(it->second.c_str(), &end, 10);
        if (it->second.empty() || *end || errno)
          return error("add: the value at '" + key + "' is not an integer");
        value = v;
      }
      value += delta;
      keys[key] = std::to_string(value);
      out.u8(static_cast<uint8_t>(Reply::Ok));
      out.i64(value);
      return out.bytes;
    }
    case Op::Hello: {
      RankEntry e;
      e.state.rank = in.i64();
      e.state.describe = in.str();
      e.state.host = in.str();
      e.state.pid = in.i64();
      if (in.bad)
        break;
      e.state.doing = "starting";
      e.lastHeard = Clock::now();
      *registered = e.state.rank;
      ranks[e.state.rank] = std::move(e);
      out.u8(static_cast<uint8_t>(Reply::Ok));
      return out.bytes;
    }
    case Op::Heartbeat: {
      std::string doing = in.str();
      if (in.bad)
        break;
      if (*registered < 0)
        return error("heartbeat before hello");
      RankEntry &e = ranks[*registered];
      e.state.doing = std::move(doing);
      e.lastHeard = Clock::now();
      out.u8(static_cast<uint8_t>(Reply::Ok));
      out.str(failure);
      return out.bytes;
    }
    case Op::ReportFailure: {
      std::string why = in.str();
      if (in.bad)
        break;
      fail(why);
      cv.notify_all();
      out.u8(static_cast<uint8_t>(Reply::Ok));
      return out.bytes;
    }
    case Op::Ranks: {
      out.u8(static_cast<uint8_t>(Reply::Ok));
      out.i64(static_cast<int64_t>(ranks.size()));
      for (auto &[rank, e] : ranks) {
        out.i64(e.state.rank);
        out.str(e.state.describe);
        out.str(e.state.host);
        out.i64(e.state.pid);
        out.str(e.state.doing);
        out.i64(static_cast<int64_t>(secondsSince(e.lastHeard) * 1e6));
        out.u8(e.state.finished);
        out.u8(e.state.lost);
      }
      return out.bytes;
    }
    case Op::Goodbye: {
      if (*registered >= 0) {
        ranks[*registered].state.finished = true;
        ranks[*registered].state.doing = "finished";
        cv.notify_all();
      }
      out.u8(static_cast<uint8_t>(Reply::Ok));
      return out.bytes;
    }
    }
    return error("malformed request to the job's store");
  }

  /// Declares registered ranks hung once silent for hangSeconds.
  void monitorLoop() {
    double hang = options.hangSeconds;
    auto period = std::chrono::milliseconds(
        hang > 0
            ? std::clamp<int64_t>(static_cast<int64_t>(hang * 100), 10, 500)
            : 1000);
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      cv.wait_for(lock, period);
      if (stopping || !(hang > 0))
        continue;
      for (auto &[rank, e] : ranks) {
        if (e.state.finished || e.state.lost || e.hung)
          continue;
        double silent = secondsSince(e.lastHeard);
        if (silent <= hang)
          continue;
        e.hung = true;
        fail(e.state.describe + " on " + e.state.host + " (pid " +
             std::to_string(e.state.pid) + ") has not been heard from for " +
             formatSeconds(silent) + " s (stopped or hung), last in '" +
             e.state.doing + "'");
        // A stopped process holds its GPU and its ports; nobody else on a
        // launcher without MPI would kill it.
        if (options.killHungLocalRanks && e.state.host == host &&
            e.state.pid > 0 && e.state.pid != getpid())
          ::kill(static_cast<pid_t>(e.state.pid), SIGKILL);
        cv.notify_all();
      }
    }
  }

  int64_t done() const {
    int64_t n = 0;
    for (auto &[rank, e] : ranks)
      n += e.state.finished || e.state.lost;
    return n;
  }

  void stopAccepting() {
    if (acceptStopped.exchange(true))
      return;
    if (acceptThread.joinable())
      acceptThread.join();
    if (listenFd >= 0)
      ::close(listenFd);
    listenFd = -1;
  }
};

Result<std::unique_ptr<StoreServer>>
StoreServer::listen(const std::string &host, int port,
                    const StoreServerOptions &options) {
  std::string where = joinAddress(host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo *found = nullptr;
  std::string portText = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), portText.c_str(),
                       &hints, &found);
  if (rc != 0)
    return Status::error("the job's store cannot listen on " + where + ": " +
                         gai_strerror(rc));
  int fd = -1;
  std::string lastError = "no address";
  for (addrinfo *a = found; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      lastError = std::strerror(errno);
      continue;
    }
    int one = 1;
    // A restarted job can reuse the port while old connections linger in
    // TIME_WAIT (it does not let two servers share a port).
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0)
      break;
    lastError = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd < 0)
    return Status::error("the job's store cannot listen on " + where + ": " +
                         lastError +
                         (lastError == std::strerror(EADDRINUSE)
                              ? " (another job or process holds the port; "
                                "choose another MASTER_PORT)"
                              : ""));

  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &len);
  int actual = bound.ss_family == AF_INET6
                   ? ntohs(reinterpret_cast<sockaddr_in6 *>(&bound)->sin6_port)
                   : ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);

  std::unique_ptr<StoreServer> server(new StoreServer());
  server->impl_ = std::make_unique<Impl>();
  Impl &s = *server->impl_;
  s.options = options;
  s.listenFd = fd;
  s.port = actual;
  s.address = joinAddress(host, actual);
  s.acceptThread = std::thread([&s] { s.acceptLoop(); });
  s.monitorThread = std::thread([&s] { s.monitorLoop(); });
  return server;
}

StoreServer::~StoreServer() {
  Impl &s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stopping = true;
    s.cv.notify_all();
  }
  s.stopAccepting();
  if (s.monitorThread.joinable())
    s.monitorThread.join();
  // The connection threads see `stopping` within their poll slice.
  std::lock_guard<std::mutex> lock(s.connMu);
  for (int fd : s.connFds)
    ::shutdown(fd, SHUT_RDWR);
  for (std::thread &t : s.connThreads)
    t.join();
  for (int fd : s.connFds)
    ::close(fd);
}

int StoreServer::port() const { return impl_->port; }

std::string StoreServer::failure() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->failure;
}

void StoreServer::waitForFinish(double timeoutSeconds) {
  Impl &s = *impl_;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    auto finished = [&] { return s.done() >= s.options.worldSize; };
    if (timeoutSeconds > 0)
      s.cv.wait_for(lock,
                    std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(timeoutSeconds)),
                    finished);
    else
      s.cv.wait(lock, finished);
  }
  s.stopAccepting();
}

//===----------------------------------------------------------------------===//
// StoreClient
//===----------------------------------------------------------------------===//

struct StoreClient::Impl {
  std::string host;
  int port = 0;
  std::string address;
  double timeoutSeconds = 60;
  int fd = -1;
  std::mutex mu; // one request at a time on the connection
  bool broken = false;

  std::string noAnswer(const std::string &detail) const {
    return "the job's store at " + address +
           " does not answer (its host, rank 0, may be stopped or gone): " +
           detail;
  }

  /// One request/response. Ok: the response's payload after its status.
  Result<std::string> call(const std::string &request, const char *what) {
    std::lock_guard<std::mutex> lock(mu);
    if (broken)
      return Status::error(
          noAnswer(std::string(what) + ": an earlier request failed"));
    auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(timeoutSeconds));
    Io io = sendFrame(fd, request, deadline, nullptr);
    std::string reply;
    if (io == Io::Ok)
      io = recvFrame(fd, &reply, deadline, nullptr);
    if (io != Io::Ok) {
      // The stream is out of step after a partial exchange.
      broken = true;
      return Status::error(noAnswer(
          std::string(what) +
          (io == Io::TimedOut
               ? ": no response within " + formatSeconds(timeoutSeconds) + " s"
           : io == Io::Closed ? ": it closed the connection"
                              : ": " + std::string(std::strerror(errno)))));
    }
    return reply;
  }
};

namespace {

/// A non-blocking connect to one address, at most until `deadline`.
int connectOne(const addrinfo *a, Clock::time_point deadline,
               std::string *error) {
  int fd =
      ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      *error = std::strerror(errno);
      ::close(fd);
      return -1;
    }
    if (waitReady(fd, POLLOUT, deadline, nullptr) != Io::Ok) {
      *error = "connection timed out";
      ::close(fd);
      return -1;
    }
    int soError = 0;
    socklen_t len = sizeof(soError);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len);
    if (soError) {
      *error = std::strerror(soError);
      ::close(fd);
      return -1;
    }
  }
  setSocketOptions(fd);
  return fd;
}

} // namespace

Result<std::unique_ptr<StoreClient>>
StoreClient::connect(const std::string &host, int port, double timeoutSeconds) {
  std::string where = joinAddress(host, port);
  auto start = Clock::now();
  double limit = timeoutSeconds > 0 ? timeoutSeconds : 60;
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(limit));
  std::string lastError;
  std::string portText = std::to_string(port);
  for (;;) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *found = nullptr;
    // Resolved again on each try: a name may appear in DNS late too.
    int rc = getaddrinfo(host.c_str(), portText.c_str(), &hints, &found);
    int fd = -1;
    if (rc != 0) {
      lastError = gai_strerror(rc);
    } else {
      for (addrinfo *a = found; a && fd < 0; a = a->ai_next)
        fd = connectOne(a, deadline, &lastError);
      freeaddrinfo(found);
    }
    if (fd >= 0) {
      std::unique_ptr<StoreClient> client(new StoreClient());
      client->impl_ = std::make_unique<Impl>();
      client->impl_->host = host;
      client->impl_->port = port;
      client->impl_->address = where;
      client->impl_->timeoutSeconds = limit;
      client->impl_->fd = fd;
      return client;
    }
    if (Clock::now() + std::chrono::milliseconds(50) >= deadline)
      break;
    // The server (rank 0) may start after this process: try again.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::error("cannot connect to the job's store at " + where +
                       " within " + formatSeconds(limit) + " s (" + lastError +
                       "; is rank 0 running, and MASTER_ADDR/MASTER_PORT "
                       "right?)");
}

void StoreClient::setCallTimeout(double seconds) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->timeoutSeconds = seconds > 0 ? seconds : 60;
}

StoreClient::~StoreClient() {
  if (impl_ && impl_->fd >= 0)
    ::close(impl_->fd);
}

std::string StoreClient::address() const { return impl_->address; }

namespace {

/// The status byte of a reply; Error's message into *why.
Reply replyStatus(Reader &in, std::string *why) {
  auto r = static_cast<Reply>(in.u8());
  if (r == Reply::Error)
    *why = in.str();
  return r;
}

/// Sends `w` (request `op`, about `subject` if any) and checks that the
/// store answered Ok: the reply, whose payload starts after its status
/// byte (kPayload), or an error naming the request.
Result<std::string> okReply(StoreClient::Impl &impl, const Writer &w,
                            const char *op, const std::string &subject = "") {
  Result<std::string> reply = impl.call(w.bytes, op);
  if (!reply.ok())
    return Status::error(reply.message());
  Reader in(*reply);
  std::string why;
  if (replyStatus(in, &why) != Reply::Ok)
    return Status::error("the job's store at " + impl.address + " refused " +
                         op + (subject.empty() ? "" : " " + subject) + ": " +
                         why);
  return reply;
}
constexpr size_t kPayload = 1;

Status simpleCall(StoreClient::Impl &impl, const Writer &w, const char *op) {
  Result<std::string> reply = okReply(impl, w, op);
  return reply.ok() ? Status::success() : Status::error(reply.message());
}

} // namespace

Status StoreClient::set(const std::string &key, const std::string &value) {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::Set));
  w.str(key);
  w.str(value);
  Result<std::string> reply = okReply(*impl_, w, "set", "'" + key + "'");
  return reply.ok() ? Status::success() : Status::error(reply.message());
}

Result<std::string> StoreClient::get(const std::string &key,
                                     double timeoutSeconds) {
  auto start = Clock::now();
  for (;;) {
    Writer w;
    w.u8(static_cast<uint8_t>(Op::Get));
    w.str(key);
    Result<std::string> reply = impl_->call(w.bytes, "get");
    if (!reply.ok())
      return Status::error(reply.message());
    Reader in(*reply);
    std::string why;
    Reply r = replyStatus(in, &why);
    if (r == Reply::Ok) {
      std::string value = in.str();
      if (!in.bad)
        return value;
      why = "malformed reply";
    }
    if (r != Reply::Missing)
      return Status::error("the job's store at " + impl_->address +
                           " refused get '" + key + "': " + why);
    if (timeoutSeconds > 0 && secondsSince(start) >= timeoutSeconds)
      return Status::error("the key '" + key +
                           "' was not set in the job's "
                           "store at " +
                           impl_->address + " within " +
                           formatSeconds(timeoutSeconds) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<int64_t> StoreClient::add(const std::string &key, int64_t delta) {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::Add));
  w.str(key);
  w.i64(delta);
  Result<std::string> reply = okReply(*impl_, w, "add", "'" + key + "'");
  if (!reply.ok())
    return Status::error(reply.message());
  Reader in(*reply);
  in.at = kPayload;
  return in.i64();
}

Status StoreClient::hello(int64_t rank, const std::string &describe,
                          const std::string &host, int64_t pid) {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::Hello));
  w.i64(rank);
  w.str(describe);
  w.str(host);
  w.i64(pid);
  return simpleCall(*impl_, w, "hello");
}

Result<std::string> StoreClient::heartbeat(const std::string &doing) {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::Heartbeat));
  w.str(doing);
  Result<std::string> reply = okReply(*impl_, w, "heartbeat");
  if (!reply.ok())
    return Status::error(reply.message());
  Reader in(*reply);
  in.at = kPayload;
  return in.str();
}

Status StoreClient::reportFailure(const std::string &why) {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::ReportFailure));
  w.str(why);
  return simpleCall(*impl_, w, "reportFailure");
}

Result<std::vector<StoreRankState>> StoreClient::ranks() {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::Ranks));
  Result<std::string> reply = okReply(*impl_, w, "ranks");
  if (!reply.ok())
    return Status::error(reply.message());
  Reader in(*reply);
  in.at = kPayload;
  std::vector<StoreRankState> out(static_cast<size_t>(
      std::max<int64_t>(0, std::min<int64_t>(in.i64(), 1 << 20))));
  for (StoreRankState &s : out) {
    s.rank = in.i64();
    s.describe = in.str();
    s.host = in.str();
    s.pid = in.i64();
    s.doing = in.str();
    s.silentSeconds = static_cast<double>(in.i64()) / 1e6;
    s.finished = in.u8();
    s.lost = in.u8();
  }
  if (in.bad)
    return Status::error("the job's store at " + impl_->address +
                         " sent a malformed rank list");
  return out;
}

Status StoreClient::goodbye() {
  Writer w;
  w.u8(static_cast<uint8_t>(Op::Goodbye));
  return simpleCall(*impl_, w, "goodbye");
}

} // namespace runtime
} // namespace loom
