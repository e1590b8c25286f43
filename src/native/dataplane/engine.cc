#include "engine.h"

#include "buf.h"

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <time.h>

#include <chrono>
#include <deque>
#include <future>
#include <thread>
#include <unordered_set>

namespace warren::dp {

namespace {

// HBONE's HTTP/2 settings, as src/tunnel/hbone-settings.ts: windows large
// enough that one stream fills a fast link, at most 100 streams a connection.
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
constexpr uint32_t kMaxStreams = 100;
constexpr uint32_t kMaxFrame = 64 * 1024;
constexpr int64_t kConnectTimeoutMs = 10'000;
constexpr int64_t kIdleCloseMs = 5 * 60'000;
// A server closes an idle session a minute after its client would have: the client
// closes first, so it never opens a stream on a session the server is closing.
constexpr int64_t kServerIdleCloseMs = kIdleCloseMs + 60'000;
// Bytes read from one side and not yet taken by the other: the reader stops
// at this bound (backpressure), so a slow reader stalls its sender.
constexpr size_t kPendCap = 256 * 1024;
constexpr size_t kScratch = 256 * 1024;
constexpr size_t kTlsBatch = 256 * 1024;
// One read(2) of an HBONE socket takes up to 16 whole TLS 1.3 records (16 KiB
// + 22 bytes each): a peer's whole batch (Session::Flush).
constexpr size_t kTlsIn = 16 * (16 * 1024 + 22);
constexpr size_t kMaxHeader = 512;
// A stream's kept pend_ storage is read into in place when at least this much
// of it is free (a smaller read would cost a second read(2) for the rest).
constexpr size_t kInPlaceMin = 16 * 1024;
// A plain↔plain flow's pipe per direction (splice(2)): the kernel's default
// pipe of 16 pages, so the bytes in flight per direction stay bounded.
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// epoll events after which a socket must be read until it says EOF or EAGAIN
constexpr uint32_t kEnded = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

std::string ErrnoText(const char* what, int err) {
  return std::string(what) + ": " + ErrnoName(err);
}

bool AddressOf(const sockaddr_storage& ss, std::string* ip, int* port) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    *port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], text, sizeof(text));
    else
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    *port = ntohs(a->sin6_port);
  } else {
    return false;
  }
  *ip = text;
  return true;
}

bool OriginalDst(int fd, int family, std::string* ip, int* port) {
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len = sizeof(ss);
  int rc = family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len)
                              : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
  if (rc != 0) return false;
  return AddressOf(ss, ip, port);
}

// Non-blocking connect; false with *error when it failed at once.
bool StartConnect(int fd, const std::string& ip, int port, std::string* error) {
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len;
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) {
      *error = "bad address " + ip;
      return false;
    }
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) {
      *error = "bad address " + ip;
      return false;
    }
    len = sizeof(sockaddr_in);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    *error = ErrnoText(("connecting to " + ip + ":" + std::to_string(port)).c_str(), errno);
    return false;
  }
  return true;
}

// An RST instead of a FIN: the peer learns the connection failed.
void ResetClose(Fd& fd) {
  if (fd.get() < 0) return;
  linger l{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.reset();
}

// nghttp2's allocations, counted per worker (Stats::http2Bytes): the usable size of every
// block its sessions hold (frame buffers, HPACK tables, streams, queued frames).
void CountH2(void* counter, void* p, int64_t sign) {
  if (p != nullptr)
    static_cast<std::atomic<int64_t>*>(counter)->fetch_add(sign * static_cast<int64_t>(malloc_usable_size(p)),
                                                           std::memory_order_relaxed);
}
void* H2Malloc(size_t n, void* counter) {
  void* p = malloc(n);
  CountH2(counter, p, 1);
  return p;
}
void H2Free(void* p, void* counter) {
  CountH2(counter, p, -1);
  free(p);
}
void* H2Calloc(size_t n, size_t size, void* counter) {
  void* p = calloc(n, size);
  CountH2(counter, p, 1);
  return p;
}
void* H2Realloc(void* p, size_t n, void* counter) {
  int64_t before = p == nullptr ? 0 : static_cast<int64_t>(malloc_usable_size(p));
  void* q = realloc(p, n);
  if (q == nullptr && n != 0) return nullptr;  // failed: p is as it was
  static_cast<std::atomic<int64_t>*>(counter)->fetch_add(
      (q == nullptr ? 0 : static_cast<int64_t>(malloc_usable_size(q))) - before, std::memory_order_relaxed);
  return q;
}

}  // namespace

class Flow;
class Session;

std::string PoolKey(const Decision& d) {
  return d.identity + "|" + d.expected + "|" + d.ip + "|" + std::to_string(d.port) + "|" + d.from.netns + "|" +
         std::to_string(d.from.mark);
}

// Something registered with a worker's epoll.
struct Handler {
  virtual ~Handler() = default;
  virtual void OnIo(uint32_t events) = 0;
};

struct SockHandler : Handler {
  Flow* flow = nullptr;
  int side = 0;
  void OnIo(uint32_t events) override;
};

struct ListenerReg : Handler {
  Worker* w = nullptr;
  uint32_t id = 0;
  std::shared_ptr<Fd> fd;
  ListenerKind kind = ListenerKind::Outbound;
  int family = AF_INET;
  std::string identity;
  void OnIo(uint32_t events) override;
};

class Worker {
 public:
  Worker(Engine& engine, int index);
  ~Worker();
  void Post(std::function<void()> cmd);
  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  // called on the worker thread only
  uint64_t NextId() { return (++seq_ << 6) | static_cast<uint64_t>(index_); }
  int index() const { return index_; }
  void AdoptMigrated(uint64_t id, int fd, Decision d);
  void Admit(uint64_t id, const Decision& d);
  void Renew(const std::string& name, const Identity& id, bool newRoots);
  void Forget(uint64_t sessionId) { admitting_.erase(sessionId); }
  void AcceptHbone(Fd c, uint32_t listener, const std::string& identity, const std::string& srcIp, int srcPort);
  void Emit(Event e) { batch_.push_back(std::move(e)); }
  bool Watch(int fd, Handler* h, uint32_t events);
  void Unwatch(int fd) { epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr); }
  // Two read buffers: a TLS read's plaintext is still being parsed by nghttp2
  // when its callbacks open a flow and read that flow's socket (Flow::Opened),
  // so the socket read must not land in the buffer nghttp2 is reading.
  char* sockScratch() { return sockScratch_.get(); }
  char* tlsScratch() { return tlsScratch_.get(); }
  // The buffer HBONE sessions read their socket into (Session::ReadBio): one
  // per worker, not 256 KiB per session. A session nearly always takes all
  // it read before it returns; what it left is moved to its own buffer when
  // another session reads (Session::KeepTlsIn).
  Buf& TlsIn(Session* s);
  void DropTlsIn(Session* s) {
    if (tlsInOwner_ != s) return;
    tlsInOwner_ = nullptr;
    tlsIn_.take(tlsIn_.size());
  }
  Engine& engine() { return engine_; }
  void Dirty(Session* s) { dirty_.insert(s); }
  void Later(uint64_t flowId) { later_.push_back(flowId); }
  void Retire(Flow* f);
  void Retire(Session* s);
  Flow* FindFlow(uint64_t id) {
    auto it = flows_.find(id);
    return it == flows_.end() ? nullptr : it->second.get();
  }
  Flow* AddFlow(std::unique_ptr<Flow> f);
  Session* PooledSession(const Decision& d, std::string* error);
  std::vector<PoolStat> Pools() const;
  void AddSession(std::unique_ptr<Session> s);
  void Unpool(Session* s);
  void Timed(uint64_t flowId) { timed_.insert(flowId); }
  void Untimed(uint64_t flowId) { timed_.erase(flowId); }

  void AddListener(uint32_t id, std::shared_ptr<Fd> fd, ListenerKind kind,
                   const std::string& identity);
  void RemoveListener(uint32_t id);
  void Resolve(uint64_t id, Decision d);
  void Close(uint64_t id, const std::string& reason);

  std::atomic<uint64_t> nFlows{0}, nSessions{0}, nStreams{0};
  // bytes nghttp2 holds for its sessions (H2Malloc)
  std::atomic<int64_t> http2Bytes{0};
  nghttp2_mem H2Mem() { return nghttp2_mem{&http2Bytes, H2Malloc, H2Free, H2Calloc, H2Realloc}; }
  // bytes of buffer storage its sessions and flows held at its last tick
  std::atomic<uint64_t> nBuffered{0};

 private:
  void Run();
  void RunCommands();
  void Tick();
  void Shutdown();

  Engine& engine_;
  int index_;
  Fd ep_, ev_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> cmds_;
  bool stopping_ = false;
  uint64_t seq_ = 0;
  std::unique_ptr<char[]> sockScratch_{new char[kScratch]};
  std::unique_ptr<char[]> tlsScratch_{new char[kScratch]};
  Buf tlsIn_;
  Session* tlsInOwner_ = nullptr;
  std::vector<Event> batch_;
  std::unordered_map<uint64_t, std::unique_ptr<Flow>> flows_;
  std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
  std::unordered_map<std::string, std::vector<Session*>> pool_;
  std::unordered_map<uint64_t, Session*> admitting_;  // server sessions TypeScript has not admitted yet
  std::unordered_map<uint32_t, std::unique_ptr<ListenerReg>> listeners_;
  std::unordered_set<Session*> dirty_;
  std::vector<uint64_t> later_;
  std::unordered_set<uint64_t> timed_;
  std::vector<std::unique_ptr<Flow>> deadFlows_;
  std::vector<std::unique_ptr<Session>> deadSessions_;
  std::vector<std::unique_ptr<ListenerReg>> deadListeners_;
  friend class Engine;
};

// ---------------------------------------------------------------------------
// Session: one HBONE connection (TLS 1.3 + HTTP/2), client or server side.

class Session : public Handler {
 public:
  Session(Worker* w, bool server, Fd fd, SslPtr ssl) : w_(w), server_(server), fd_(std::move(fd)), ssl_(std::move(ssl)) {
    w_->nSessions++;
    // OpenSSL writes its records into tlsOut_ (WriteBio), sent in one send(2)
    // per batch instead of one per 16 KiB record; reads stay on the socket.
    BIO* out = BIO_new(WriteBio());
    if (out != nullptr) {
      BIO_set_data(out, this);
      BIO_set_init(out, 1);
      SSL_set0_wbio(ssl_.get(), out);
    }
    // and reads its records from the worker's read buffer (ReadBio), filled by one read(2) per batch
    BIO* in = BIO_new(ReadBio());
    if (in != nullptr) {
      BIO_set_data(in, this);
      BIO_set_init(in, 1);
      SSL_set0_rbio(ssl_.get(), in);
    }
  }
  ~Session() override {
    w_->DropTlsIn(this);
    if (ng_ != nullptr) nghttp2_session_del(ng_);
    w_->nSessions--;
  }

  // the local identity whose credentials it was made with
  std::string identity;
  // client
  std::string poolKey, expected, peerIp, netns;
  // server: reported to TypeScript as `id` (admission, then its close)
  uint64_t id = 0;
  uint32_t listener = 0;
  std::string srcIp;
  int srcPort = 0;

  bool Usable() const { return st_ != Dead && !goingAway_ && !outdated_ && reserved_ < kMaxStreams; }
  size_t OpenStreams() const { return streams_.size(); }
  void SetConnecting() { st_ = Connecting; }
  void SetHandshaking() { st_ = Handshake; }
  int fd() const { return fd_.get(); }
  void Attach(Flow* f);
  // `unconsumed`: stream bytes received and never written on; the
  // connection window gets them back (the stream's is gone with it).
  void Detach(int32_t sid, bool reset, size_t unconsumed);
  // The flow has bytes (or its EOF) for its stream: its DATA item resumes, or a new one is
  // submitted. An item ends once it sent all that waited (Flow::ReadForStream), so an idle
  // stream holds none: nghttp2 keeps ~160 bytes per item, as much as the stream itself.
  void WantSend(Flow* f);
  void Consume(int32_t sid, size_t n) {
    if (ng_ != nullptr && sid >= 0) nghttp2_session_consume(ng_, sid, n);
    w_->Dirty(this);
  }
  void Respond(Flow* f, int status);
  void Flush();
  // `refusal`: the HboneGuard reason (hbone-limits.ts) this end counts, when one
  void Fail(const std::string& reason, const char* refusal = "");
  void OnIo(uint32_t events) override;
  bool Idle(int64_t now) const {
    return streams_.empty() && waiting_.empty() && now - lastActive_ > (server_ ? kServerIdleCloseMs : kIdleCloseMs);
  }
  // A client session made with credentials since renewed: it takes no new stream (the
  // next connection handshakes with the new certificate) and closes once its streams end.
  void Outdate() {
    outdated_ = true;
    w_->Unpool(this);
  }
  bool Drained() const { return outdated_ && streams_.empty() && waiting_.empty(); }
  // the batch buffers' storage beyond what the last second used (worker tick)
  void Trim() {
    out_.trim();
    tlsOut_.trim();
  }
  size_t Buffered() const { return out_.capacity() + tlsOut_.capacity() + tlsIn_.capacity(); }
  // the worker's read buffer goes to another session: the bytes of this
  // one's last read that OpenSSL has not taken yet wait here
  void KeepTlsIn(const Buf& b) { tlsIn_.append(b.ptr(), b.size()); }
  bool HandshakeExpired(int64_t now) const;
  bool dead() const { return st_ == Dead; }
  bool server() const { return server_; }
  // A new trust bundle of `identity` no longer accepts the peer: the session
  // is cut, as HboneInbound and HbonePool cut theirs (hbone-limits.ts). Only a
  // new bundle asks: a renewal alone cuts nothing (Worker::Renew).
  void Reverify(SSL_CTX* ctx) {
    if (st_ == Ready && !PeerStillTrusted(ssl_.get(), ctx))
      Fail("the trust bundle no longer accepts the peer's certificate chain", server_ ? "trust-revoked" : "");
  }

 private:
  enum State { Connecting, Handshake, Ready, Dead };
  void Handshaken();
  static BIO_METHOD* WriteBio();
  static BIO_METHOD* ReadBio();
  // false while the socket cannot take more (EPOLLOUT resumes) or on failure
  bool SendTls();
  void Submit(Flow* f);
  void ReadTls();
  static nghttp2_session_callbacks* Callbacks();
  static ssize_t OnReadData(nghttp2_session*, int32_t sid, uint8_t* buf, size_t len, uint32_t* flags,
                            nghttp2_data_source*, void* user);
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t sid, const uint8_t* data, size_t len,
                         void* user);
  static int OnStreamClose(nghttp2_session*, int32_t sid, uint32_t code, void* user);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                        nghttp2_data_source*, void* user);
  static ssize_t OnReadLength(nghttp2_session*, uint8_t type, int32_t sid, int32_t sessionWindow,
                              int32_t streamWindow, uint32_t maxFrame, void* user);
  Flow* StreamFlow(int32_t sid);

  struct Request {
    std::string method, authority, forwarded, status;
  };

  Worker* w_;
  bool server_;
  Fd fd_;
  SslPtr ssl_;
  nghttp2_session* ng_ = nullptr;
  State st_ = Handshake;
  bool goingAway_ = false;
  bool outdated_ = false;
  int64_t goawaySent_ = -1;  // the error code of the GOAWAY nghttp2 sent, named when the session ends
  uint32_t reserved_ = 0;
  int64_t started_ = NowMs(), lastActive_ = NowMs();
  Buf out_;
  Buf tlsOut_;  // records OpenSSL wrote, not yet taken by the socket
  Buf tlsIn_;   // bytes read, not yet taken by OpenSSL, when the worker's read buffer went to another session
  // this epoll event: only new bytes (edge_), and a read(2) of them came back short (drained_)
  bool edge_ = false, drained_ = false;
  std::vector<uint64_t> waiting_;
  std::unordered_map<int32_t, uint64_t> streams_;
  std::unordered_map<int32_t, Request> requests_;
  friend class Flow;
};

// ---------------------------------------------------------------------------
// Flow: one proxied connection. Side 0 is the client (a captured socket, or
// the HBONE stream of an inbound CONNECT), side 1 the server (an upstream
// socket, or the HBONE stream of an outbound tunnel).

class Flow {
 public:
  enum State { Deciding, Connecting, Waiting, Open, Closed };

  Flow(Worker* w, uint64_t id, const char* kind) : w_(w), id_(id), kind_(kind) {
    for (int i = 0; i < 2; i++) {
      h_[i].flow = this;
      h_[i].side = i;
    }
    w_->nFlows++;
  }
  ~Flow() { w_->nFlows--; }

  uint64_t id() const { return id_; }
  State state() const { return st_; }
  const char* kind() const { return kind_; }

  // the captured client socket (outbound, inbound)
  bool AdoptClient(Fd fd) {
    sock_[0] = std::move(fd);
    return w_->Watch(sock_[0].get(), &h_[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  }
  // an inbound CONNECT's stream as the client side
  void AdoptStream(Session* s, int32_t sid, int side) {
    sess_ = s;
    sid_ = sid;
    streamSide_ = side;
  }
  void Decide(Decision d);
  // moved here by PoolOwner's choice: uses this worker's pool
  void Placed() { placed_ = true; }
  void OnSock(int side, uint32_t events);
  void Timeout() {
    if (st_ == Connecting || st_ == Waiting) Refuse("timed out after " + std::to_string(kConnectTimeoutMs) + " ms", 0);
  }
  // HBONE client: the peer answered the CONNECT
  void Answered(int status);
  // stream callbacks
  void StreamData(const uint8_t* p, size_t n);
  void StreamEof();
  void StreamClosed(uint32_t code);
  ssize_t ReadForStream(size_t len, uint32_t* flags);
  // the bytes queued for the stream side
  size_t WaitingForStream() const { return streamSide_ < 0 ? 0 : pend_[streamSide_].size(); }
  // bytes or the other side's EOF wait for the stream
  bool HasForStream() const { return streamSide_ >= 0 && (!pend_[streamSide_].empty() || eofFrom_[1 - streamSide_]); }
  void SendStreamData(size_t n, Buf* out);
  void Resume() {
    for (int i = 0; i < 2; i++)
      if (paused_[i]) ReadSock(i);
  }
  void Reset(const std::string& reason, const char* refusal = "");
  void Refuse(const std::string& reason, int status);
  // An inbound CONNECT stream that moved no byte either way for `ms` (checked
  // once a second by the worker's tick).
  bool IdleStream(int64_t now, int64_t ms) {
    if (streamSide_ != 0 || sess_ == nullptr || st_ != Open) return false;
    if (bytes_[0] + bytes_[1] != seenBytes_) {
      seenBytes_ = bytes_[0] + bytes_[1];
      seenAt_ = now;
    }
    return now - seenAt_ >= ms;
  }
  void RequestEnded() { eofFrom_[streamSide_] = true; }
  // the stream side's kept storage (Buf::take) beyond what the last second used (worker tick)
  void Trim() {
    for (auto& p : pend_) p.trim();
  }
  size_t Buffered() const { return pend_[0].capacity() + pend_[1].capacity(); }
  void CheckDone();
  int deadline = 0;

 private:
  bool IsStream(int side) const { return side == streamSide_; }
  bool Connected(int side) const { return sock_[side].get() >= 0 && !connecting_[side]; }
  void Opened();
  // `edge`: called for an epoll event of just EPOLLIN (no RDHUP, HUP or ERR)
  void ReadSock(int side, bool edge = false);
  void Deliver(int to, const char* p, size_t n);
  void DeliverEof(int to);
  void FlushSock(int side);
  // plain↔plain (both sides sockets): splice(2) through a pipe per direction
  bool Splicing() const { return pipe_ != nullptr; }
  void StartSplice();
  void SpliceSock(int side);
  bool DrainPipe(int to);
  void Finish(const std::string& error, const char* refusal = "");
  bool ConnectUpstream(const Decision& d, std::string* error);

  Worker* w_;
  uint64_t id_;
  const char* kind_;
  State st_ = Deciding;
  Fd sock_[2];
  SockHandler h_[2];
  bool connecting_[2] = {false, false};
  Session* sess_ = nullptr;
  int32_t sid_ = -1;
  int streamSide_ = -1;
  bool placed_ = false;
  Buf pend_[2];
  // pipe_[to]: bytes spliced from the other side's socket, not yet into
  // sock_[to]; only plain↔plain flows have them (a pointer: HBONE flows pay 8 bytes)
  struct Pipe {
    Fd r, w;
    size_t bytes = 0;
  };
  std::unique_ptr<Pipe[]> pipe_;
  bool paused_[2] = {false, false};
  bool eofFrom_[2] = {false, false};
  bool eofTo_[2] = {false, false};
  uint64_t bytes_[2] = {0, 0};
  uint64_t seenBytes_ = 0;
  int64_t seenAt_ = NowMs();
  int status_ = 0;
  // nghttp2 holds a DATA item for the stream (Session::WantSend, ReadForStream)
  bool dataItem_ = false;
  // What the flow sends once connected, held only until then (a pointer: an open flow pays
  // 8 bytes, not three strings'): the CONNECT's :authority and Forwarded, while it waits for
  // a pooled session, or the PROXY header written to the upstream before the client's bytes
  // (Decision::prefix).
  struct Setup {
    std::string authority, forwarded, prefix;
  };
  std::unique_ptr<Setup> setup_;
  Setup& SetupData() {
    if (!setup_) setup_ = std::make_unique<Setup>();
    return *setup_;
  }
  friend class Session;
};

void SockHandler::OnIo(uint32_t events) { flow->OnSock(side, events); }

// --- Flow -------------------------------------------------------------------

bool Flow::ConnectUpstream(const Decision& d, std::string* error) {
  SysError se{0, ""};
  SocketOptions o = d.from;
  o.family = d.ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (!o.address.empty() && (o.address.find(':') != std::string::npos) != (o.family == AF_INET6)) {
    // an IPv4 client reaching an IPv6 target (or back) cannot keep its source
    o.address.clear();
    o.transparent = o.freebind = false;
  }
  Fd fd(MakeSocket(o, false, !o.address.empty(), &se));
  if (fd.get() < 0) {
    *error = ErrnoText(se.operation.c_str(), se.err);
    return false;
  }
  if (!StartConnect(fd.get(), d.ip, d.port, error)) return false;
  sock_[1] = std::move(fd);
  connecting_[1] = true;
  if (!w_->Watch(sock_[1].get(), &h_[1], EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)) {
    *error = "epoll";
    return false;
  }
  st_ = Connecting;
  w_->Timed(id_);
  return true;
}

void Flow::Decide(Decision d) {
  if (st_ != Deciding) return;
  std::string error;
  switch (d.action) {
    case Decision::Reset:
      return Refuse(d.reason, 0);
    case Decision::Reject:
      return Refuse(d.reason, d.status > 0 ? d.status : 403);
    case Decision::Admit:  // only a session is admitted
      return Refuse("admitted as a session", 0);
    case Decision::Connect:
      if (!ConnectUpstream(d, &error)) return Refuse(error, 503);
      if (!d.prefix.empty()) SetupData().prefix = std::move(d.prefix);
      return;
    case Decision::Hbone: {
      // Each worker has its own pool; a peer's flows are dealt round them
      // (one TLS session per worker, not one for all of a peer's streams), and
      // the client socket moves to the worker whose turn it is.
      int owner = placed_ ? w_->index() : w_->engine().PoolOwner(PoolKey(d));
      if (owner != w_->index()) {
        w_->Unwatch(sock_[0].get());
        int fd = sock_[0].release();
        st_ = Closed;
        w_->Retire(this);
        w_->engine().Migrate(owner, id_, fd, std::move(d));
        return;
      }
      Session* s = w_->PooledSession(d, &error);
      if (s == nullptr) return Refuse(error, 0);
      SetupData().authority = d.authority;
      SetupData().forwarded = d.forwarded;
      streamSide_ = 1;
      st_ = Waiting;
      w_->Timed(id_);
      s->Attach(this);
      return;
    }
  }
}

void Flow::Opened() {
  st_ = Open;
  w_->Untimed(id_);
  Event e(Event::Open);
  e.id = id_;
  w_->Emit(std::move(e));
  if (streamSide_ < 0) StartSplice();
  // bytes that arrived while deciding (edge-triggered: no new event comes)
  for (int i = 0; i < 2; i++) {
    if (!IsStream(i)) ReadSock(i);
  }
  for (int i = 0; i < 2; i++) {
    if (st_ == Open && !IsStream(i)) FlushSock(i);
  }
}

void Flow::OnSock(int side, uint32_t events) {
  if (st_ == Closed) return;
  if (connecting_[side] && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(sock_[side].get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Refuse(ErrnoText("connecting upstream", err), 503);
    connecting_[side] = false;
    if (setup_) {
      // A fresh connection's send buffer takes a few hundred bytes whole;
      // anything less is refused, never half a header.
      const std::string& prefix = setup_->prefix;
      ssize_t n = send(sock_[side].get(), prefix.data(), prefix.size(), MSG_NOSIGNAL);
      if (n != static_cast<ssize_t>(prefix.size())) return Refuse("writing the PROXY header upstream failed", 503);
      setup_.reset();
    }
    if (streamSide_ == 0 && sess_ != nullptr) {
      // inbound CONNECT: the app is reachable, answer 200
      sess_->Respond(this, 200);
    }
    Opened();
    return;
  }
  if (st_ != Open) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadSock(side, !(events & kEnded));
  if (st_ == Open && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) FlushSock(side);
}

void Flow::ReadSock(int side, bool edge) {
  paused_[side] = false;
  if (st_ != Open || eofFrom_[side] || !Connected(side)) return;
  if (Splicing()) return SpliceSock(side);
  int to = 1 - side;
  while (st_ == Open) {
    size_t room = pend_[to].size() >= kPendCap ? 0 : kPendCap - pend_[to].size();
    if (room == 0) {
      paused_[side] = true;
      return;
    }
    size_t want = room < kScratch ? room : kScratch;
    // Toward a stream the bytes wait in pend_ for nghttp2 anyway: while a
    // busy stream's pend_ has storage (kept by take(), Flow::Trim), they are
    // read straight into it. Otherwise they land in the scratch buffer: a
    // socket takes them from there, and only what waits is copied.
    bool inPlace = IsStream(to) && pend_[to].tailRoom() >= kInPlaceMin;
    if (inPlace && pend_[to].tailRoom() < want) want = pend_[to].tailRoom();
    char* buf = inPlace ? pend_[to].tail() : w_->sockScratch();
    ssize_t n = read(sock_[side].get(), buf, want);
    if (n > 0) {
      bytes_[side] += static_cast<uint64_t>(n);
      if (inPlace) {
        pend_[to].commit(static_cast<size_t>(n));
        if (sess_ != nullptr) sess_->WantSend(this);
      } else {
        Deliver(to, buf, static_cast<size_t>(n));
      }
      // A short read emptied the socket: the next bytes (or FIN) raise a new
      // edge, so the read(2) that would only say EAGAIN is skipped (one
      // syscall per request and hop). Not so outside an event or when the
      // peer's FIN came with it: then only a read of 0 reports the EOF.
      if (edge && static_cast<size_t>(n) < want) return;
      continue;
    }
    if (n == 0) {
      eofFrom_[side] = true;
      DeliverEof(to);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return;
    return Reset(ErrnoText(side == 0 ? "client" : "upstream", errno));
  }
}

void Flow::Deliver(int to, const char* p, size_t n) {
  if (IsStream(to)) {
    pend_[to].append(p, n);
    if (sess_ != nullptr) sess_->WantSend(this);
    return;
  }
  // Nothing queued: write straight from the caller's buffer, queue the rest.
  if (pend_[to].empty() && st_ == Open && Connected(to)) {
    ssize_t k = send(sock_[to].get(), p, n, MSG_NOSIGNAL);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
      if (IsStream(1 - to) && sess_ != nullptr) sess_->Consume(sid_, static_cast<size_t>(k));
    } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
      return Reset(ErrnoText(to == 0 ? "client" : "upstream", errno));
    }
  }
  if (n > 0) pend_[to].append(p, n);
  FlushSock(to);
}

void Flow::DeliverEof(int to) {
  if (IsStream(to)) {
    if (sess_ != nullptr) sess_->WantSend(this);
  } else {
    FlushSock(to);
  }
  CheckDone();
}

void Flow::FlushSock(int side) {
  if (st_ != Open || !Connected(side)) return;
  if (Splicing()) {
    if (!DrainPipe(side) || st_ != Open) return;
    if (eofFrom_[1 - side] && !eofTo_[side]) {
      eofTo_[side] = true;
      shutdown(sock_[side].get(), SHUT_WR);
    }
    if (!eofFrom_[1 - side]) SpliceSock(1 - side);
    return CheckDone();
  }
  while (!pend_[side].empty()) {
    ssize_t n = send(sock_[side].get(), pend_[side].ptr(), pend_[side].size(), MSG_NOSIGNAL);
    if (n > 0) {
      pend_[side].consume(static_cast<size_t>(n));
      // HTTP/2 flow control: the window reopens only as the socket takes the bytes
      if (IsStream(1 - side) && sess_ != nullptr) sess_->Consume(sid_, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return Reset(ErrnoText(side == 0 ? "client" : "upstream", errno));
  }
  if (pend_[side].empty() && eofFrom_[1 - side] && !eofTo_[side]) {
    eofTo_[side] = true;
    shutdown(sock_[side].get(), SHUT_WR);
  }
  int other = 1 - side;
  if (paused_[other] && pend_[side].size() < kPendCap / 2 && !IsStream(other)) ReadSock(other);
  CheckDone();
}

// Both sides are plain sockets (plaintext inbound, passthrough): the bytes
// move socket → pipe → socket inside the kernel. Without a pipe (descriptor
// limit) the flow keeps the read/write path.
void Flow::StartSplice() {
  std::unique_ptr<Pipe[]> pipes(new Pipe[2]);
  for (int i = 0; i < 2; i++) {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return;
    pipes[i].r.reset(fds[0]);
    pipes[i].w.reset(fds[1]);
  }
  pipe_ = std::move(pipes);
}

// Moves what the pipe toward `to` holds into sock_[to]; false while the
// socket cannot take more (EPOLLOUT on `to` resumes) or the flow was reset.
bool Flow::DrainPipe(int to) {
  Pipe& p = pipe_[to];
  while (p.bytes > 0) {
    ssize_t n = splice(p.r.get(), nullptr, sock_[to].get(), nullptr, p.bytes, kSpliceFlags);
    if (n > 0) {
      p.bytes -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    Reset(ErrnoText(to == 0 ? "client" : "upstream", n < 0 ? errno : EPIPE));
    return false;
  }
  return true;
}

// socket(side) → pipe → socket(1 − side) until the reader has nothing (its
// EPOLLIN resumes), the writer is full (its EPOLLOUT resumes) or EOF.
void Flow::SpliceSock(int side) {
  int to = 1 - side;
  Pipe& p = pipe_[to];
  while (st_ == Open && !eofFrom_[side]) {
    ssize_t n = splice(sock_[side].get(), nullptr, p.w.get(), nullptr, 1 << 20, kSpliceFlags);
    if (n > 0) {
      p.bytes += static_cast<size_t>(n);
      bytes_[side] += static_cast<uint64_t>(n);
    } else if (n == 0) {
      eofFrom_[side] = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN) {
      return Reset(ErrnoText(side == 0 ? "client" : "upstream", errno));
    } else if (p.bytes == 0) {
      return;  // EAGAIN with an empty pipe: the socket has nothing more now
    }
    // EAGAIN with bytes in the pipe may mean the pipe is full: empty it first
    if (!DrainPipe(to)) return;
  }
  if (st_ == Open && eofFrom_[side]) FlushSock(to);
}

// The bytes are not copied here: NGHTTP2_DATA_FLAG_NO_COPY has nghttp2 call
// Session::OnSendData, which appends them to the TLS batch straight from
// pend_ (one copy of every outgoing byte less).
// A frame that takes all that waits ends the DATA item (EOF): with END_STREAM when the
// other side's EOF came, else without (NO_END_STREAM), and the next bytes get a new item
// (Session::WantSend).
ssize_t Flow::ReadForStream(size_t len, uint32_t* flags) {
  int to = streamSide_;
  size_t n = pend_[to].size() < len ? pend_[to].size() : len;
  bool eof = eofFrom_[1 - to];
  if (n == 0 && !eof) return NGHTTP2_ERR_DEFERRED;  // never an empty frame: the item waits
  if (n == pend_[to].size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    dataItem_ = false;
    if (eof) {
      eofTo_[to] = true;
      w_->Later(id_);  // may be done now
    } else {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  if (n > 0) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  return static_cast<ssize_t>(n);
}

void Flow::SendStreamData(size_t n, Buf* out) {
  int to = streamSide_;
  out->append(pend_[to].ptr(), n);
  pend_[to].take(n);
  if (paused_[1 - to] && pend_[to].size() < kPendCap / 2) w_->Later(id_);
}

void Flow::StreamData(const uint8_t* p, size_t n) {
  int from = streamSide_;
  bytes_[from] += n;
  if (st_ == Open) Deliver(1 - from, reinterpret_cast<const char*>(p), n);
  else pend_[1 - from].append(reinterpret_cast<const char*>(p), n);
}

void Flow::StreamEof() {
  eofFrom_[streamSide_] = true;
  if (st_ == Open) DeliverEof(1 - streamSide_);
}

void Flow::StreamClosed(uint32_t code) {
  sess_ = nullptr;
  sid_ = -1;
  if (st_ == Closed) return;
  bool clean = code == NGHTTP2_NO_ERROR && eofFrom_[streamSide_] && eofTo_[streamSide_];
  if (!clean) {
    if (st_ == Waiting) return Refuse("the peer reset the stream (HTTP/2 error " + std::to_string(code) + ")", status_);
    return Reset("the peer reset the stream (HTTP/2 error " + std::to_string(code) + ")");
  }
  CheckDone();
}

void Flow::Answered(int status) {
  status_ = status;
  if (st_ != Waiting) return;
  if (status != 200) return Refuse("the peer answered " + std::to_string(status), status);
  Opened();
}

void Flow::CheckDone() {
  if (st_ != Open) return;
  for (int i = 0; i < 2; i++)
    if (!eofFrom_[i] || !eofTo_[i] || !pend_[i].empty() || (pipe_ && pipe_[i].bytes > 0)) return;
  if (sess_ != nullptr) return;  // the stream's close is still to come
  Finish("");
}

void Flow::Reset(const std::string& reason, const char* refusal) {
  if (st_ == Closed) return;
  for (auto& s : sock_) ResetClose(s);
  Finish(reason, refusal);
}

void Flow::Refuse(const std::string& reason, int status) {
  if (st_ == Closed) return;
  status_ = status;
  if (streamSide_ == 0 && sess_ != nullptr && status > 0) {
    sess_->Respond(this, status);
    sess_->Detach(sid_, false, pend_[1].size());
    sess_ = nullptr;
    sid_ = -1;
  }
  Reset(reason);
}

void Flow::Finish(const std::string& error, const char* refusal) {
  bool opened = st_ == Open;
  st_ = Closed;
  w_->Untimed(id_);
  if (sess_ != nullptr) {
    sess_->Detach(sid_, true, pend_[1 - streamSide_].size());
    sess_ = nullptr;
    sid_ = -1;
  }
  for (auto& s : sock_) s.reset();
  pipe_.reset();
  pend_[0].clear();
  pend_[1].clear();
  Event e(Event::Close);
  e.id = id_;
  e.fromClient = bytes_[0];
  e.fromServer = bytes_[1];
  e.opened = opened;
  e.status = status_;
  e.error = error;
  e.refusal = refusal;
  w_->Emit(std::move(e));
  if (static_cast<int>(id_ & 63) != w_->index()) w_->engine().Forget(id_);
  w_->Retire(this);
}

// --- Session ----------------------------------------------------------------

nghttp2_session_callbacks* Session::Callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, OnFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, OnDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, OnStreamClose);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, OnFrameSend);
    nghttp2_session_callbacks_set_send_data_callback(c, OnSendData);
    nghttp2_session_callbacks_set_data_source_read_length_callback(c, OnReadLength);
    return c;
  }();
  return cbs;
}

Flow* Session::StreamFlow(int32_t sid) {
  auto it = streams_.find(sid);
  if (it == streams_.end()) return nullptr;
  Flow* f = w_->FindFlow(it->second);
  return f != nullptr && f->state() != Flow::Closed ? f : nullptr;
}

bool Session::HandshakeExpired(int64_t now) const {
  if (st_ == Ready || st_ == Dead) return false;
  return now - started_ > (server_ ? w_->engine().limits().handshakeMs : kConnectTimeoutMs);
}

void Session::OnIo(uint32_t events) {
  if (st_ == Dead) return;
  // ReadBio skips the read(2) after a short one only for an edge of new bytes alone
  drained_ = false;
  edge_ = !(events & kEnded);
  if (st_ == Connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Fail(ErrnoText("cannot reach the HBONE port", err));
    st_ = Handshake;
  }
  if (st_ == Handshake) {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_.get());
    if (rc != 1) {
      int e = SSL_get_error(ssl_.get(), rc);
      unsigned long code = ERR_get_error();
      ERR_clear_error();
      // the next flight, or the alert that tells the peer why
      if (!SendTls() && st_ == Dead) return;
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      char buf[160] = "connection closed";
      if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
      return Fail(std::string("mutual TLS failed: ") + buf);
    }
    if (!SendTls() && st_ == Dead) return;
    Handshaken();
    if (st_ == Dead) return;
  }
  lastActive_ = NowMs();
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadTls();
  if (st_ != Dead) Flush();
}

void Session::Handshaken() {
  const unsigned char* alpn = nullptr;
  unsigned int alpnLen = 0;
  SSL_get0_alpn_selected(ssl_.get(), &alpn, &alpnLen);
  if (alpnLen != 2 || memcmp(alpn, "h2", 2) != 0) return Fail("the peer did not negotiate h2");
  std::string peer = PeerSpiffeId(ssl_.get());
  if (peer.empty()) return Fail("the peer certificate carries no single SPIFFE ID");
  if (!server_ && peer != expected) return Fail("the peer is " + peer + ", expected " + expected);
  if (server_) expected = peer;  // the verified client identity, reported per CONNECT
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // The window reopens as the receiving socket takes bytes: a slow reader
  // stalls its sender instead of growing a buffer here.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_mem mem = w_->H2Mem();
  int rc = server_ ? nghttp2_session_server_new3(&ng_, Callbacks(), this, opt, &mem)
                   : nghttp2_session_client_new3(&ng_, Callbacks(), this, opt, &mem);
  nghttp2_option_del(opt);
  if (rc != 0) return Fail("nghttp2 session");
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, w_->engine().limits().streamWindow},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, kMaxFrame},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  st_ = Ready;
  std::vector<uint64_t> waiting;
  waiting.swap(waiting_);
  for (uint64_t id : waiting) {
    Flow* f = w_->FindFlow(id);
    if (f != nullptr && f->state() == Flow::Waiting) Submit(f);
    else reserved_--;
  }
}

void Session::Attach(Flow* f) {
  reserved_++;
  if (st_ == Ready) Submit(f);
  else waiting_.push_back(f->id());
}

void Session::Submit(Flow* f) {
  auto nv = [](const char* n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), strlen(n), v.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const std::string method = "CONNECT";
  const Flow::Setup& su = f->SetupData();
  nghttp2_nv hdrs[3] = {nv(":method", method), nv(":authority", su.authority), nv("forwarded", su.forwarded)};
  size_t n = su.forwarded.empty() ? 2 : 3;
  // HEADERS without END_STREAM and no DATA item yet: one is submitted when bytes wait (WantSend)
  int32_t sid = nghttp2_submit_headers(ng_, NGHTTP2_FLAG_NONE, -1, nullptr, hdrs, n, nullptr);
  if (sid < 0) {
    reserved_--;
    return f->Refuse(std::string("CONNECT: ") + nghttp2_strerror(sid), 0);
  }
  streams_[sid] = f->id();
  f->sess_ = this;
  f->sid_ = sid;
  f->setup_.reset();
  w_->nStreams++;
  if (f->HasForStream()) WantSend(f);
  w_->Dirty(this);
}

void Session::WantSend(Flow* f) {
  if (ng_ == nullptr || f->sid_ < 0) return;
  if (f->dataItem_) {
    nghttp2_session_resume_data(ng_, f->sid_);
  } else {
    nghttp2_data_provider dp;
    dp.source.ptr = nullptr;
    dp.read_callback = OnReadData;
    // END_STREAM goes on the item's last frame only when ReadForStream says it is the stream's end
    if (nghttp2_submit_data(ng_, NGHTTP2_FLAG_END_STREAM, f->sid_, &dp) == 0) f->dataItem_ = true;
  }
  w_->Dirty(this);
}

void Session::Respond(Flow* f, int status) {
  if (ng_ == nullptr || f->sid_ < 0) return;
  std::string s = std::to_string(status);
  nghttp2_nv hdr{reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                 reinterpret_cast<uint8_t*>(s.data()), 7, s.size(), NGHTTP2_NV_FLAG_NONE};
  // 200: HEADERS without END_STREAM, the DATA items follow the bytes (WantSend); else the stream's end
  if (status == 200) nghttp2_submit_headers(ng_, NGHTTP2_FLAG_NONE, f->sid_, nullptr, &hdr, 1, nullptr);
  else nghttp2_submit_response(ng_, f->sid_, &hdr, 1, nullptr);
  w_->Dirty(this);
}

void Session::Detach(int32_t sid, bool reset, size_t unconsumed) {
  if (sid < 0) return;
  auto it = streams_.find(sid);
  if (it == streams_.end()) return;
  if (ng_ != nullptr && unconsumed > 0) nghttp2_session_consume_connection(ng_, unconsumed);
  streams_.erase(it);
  requests_.erase(sid);
  if (!server_) reserved_--;
  w_->nStreams--;
  lastActive_ = NowMs();
  if (reset && ng_ != nullptr) {
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CONNECT_ERROR);
    w_->Dirty(this);
  }
}

void Session::ReadTls() {
  char* buf = w_->tlsScratch();
  for (;;) {
    // SSL_read returns one record (≤ 16 KiB) a call: gather the records that
    // are here before handing nghttp2 the bytes, so a DATA frame reaches the
    // stream's socket in one send(2) rather than in pieces cut at records.
    size_t have = 0;
    int e = SSL_ERROR_NONE;
    unsigned long code = 0;
    while (have < kScratch) {
      size_t got = 0;
      ERR_clear_error();
      int rc = SSL_read_ex(ssl_.get(), buf + have, kScratch - have, &got);
      if (rc != 1) {
        // read now: nghttp2's callbacks below may touch OpenSSL's error queue
        e = SSL_get_error(ssl_.get(), rc);
        code = ERR_get_error();
        ERR_clear_error();
        break;
      }
      have += got;
    }
    if (have > 0) {
      ssize_t used = nghttp2_session_mem_recv(ng_, reinterpret_cast<uint8_t*>(buf), have);
      if (used < 0) return Fail(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(used)), server_ ? "protocol-error" : "");
      if (st_ == Dead) return;
    }
    if (e == SSL_ERROR_NONE) continue;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) return Fail("the peer closed the connection");
    char text[160] = "unknown";
    if (code != 0) ERR_error_string_n(code, text, sizeof(text));
    return Fail(std::string("TLS error: ") + text);
  }
}

BIO_METHOD* Session::WriteBio() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "warren-hbone-out");
    BIO_meth_set_write_ex(b, [](BIO* bio, const char* p, size_t n, size_t* written) {
      static_cast<Session*>(BIO_get_data(bio))->tlsOut_.append(p, n);
      *written = n;
      return 1;
    });
    // OpenSSL flushes after each handshake flight; nothing is held back here
    BIO_meth_set_ctrl(b, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    return b;
  }();
  return m;
}

// OpenSSL's own read-ahead (a socket BIO with SSL_CTX_set_read_ahead) moves
// the bytes left in its buffer to the buffer's front before every record
// (payload alignment, ssl3_read_n): with k records per read(2), k²/2 records'
// worth of memmove; that was ~6 % of the workers' CPU. Here one read(2) fills
// the worker's read buffer (Worker::TlsIn) and OpenSSL, without read-ahead,
// takes each record's header and body from it: every byte is copied once.
// A read error or EOF is a read of nothing without retry, and BIO_CTRL_EOF is
// not answered, so OpenSSL reports both as SSL_ERROR_SYSCALL (a socket BIO
// answers BIO_CTRL_EOF, which OpenSSL 3 turns into an "unexpected eof" error);
// ReadTls and the handshake read that as the peer having closed.
BIO_METHOD* Session::ReadBio() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "warren-hbone-in");
    BIO_meth_set_read_ex(b, [](BIO* bio, char* p, size_t n, size_t* got) -> int {
      auto* s = static_cast<Session*>(BIO_get_data(bio));
      BIO_clear_retry_flags(bio);
      *got = 0;
      // a remainder kept when the worker's buffer went to another session comes first
      bool own = !s->tlsIn_.empty();
      Buf& in = own ? s->tlsIn_ : s->w_->TlsIn(s);
      if (in.empty()) {
        // a short read emptied the socket this event (Flow::ReadSock says why no read(2) more)
        if (s->drained_) {
          BIO_set_retry_read(bio);
          return 0;
        }
        ssize_t r = read(s->fd_.get(), in.prepare(kTlsIn), kTlsIn);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_read(bio);
        if (r <= 0) return 0;
        in.commit(static_cast<size_t>(r));
        s->drained_ = s->edge_ && static_cast<size_t>(r) < kTlsIn;
      }
      size_t k = in.size() < n ? in.size() : n;
      memcpy(p, in.ptr(), k);
      if (own) in.consume(k);
      else in.take(k);
      *got = k;
      return 1;
    });
    BIO_meth_set_ctrl(b, [](BIO*, int, long, void*) -> long { return 0; });
    return b;
  }();
  return m;
}

bool Session::SendTls() {
  while (!tlsOut_.empty()) {
    ssize_t n = send(fd_.get(), tlsOut_.ptr(), tlsOut_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      tlsOut_.take(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    Fail("the peer closed the connection");
    return false;
  }
  return true;
}

void Session::Flush() {
  if (st_ != Ready) return;
  for (;;) {
    // Records already made go first; no more are made while the socket is full.
    if (!SendTls()) return;
    while (out_.size() < kTlsBatch) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(ng_, &data);
      if (n < 0) return Fail(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out_.empty()) break;
    // all of out_ (≤ kTlsBatch + a frame): a remainder left for the next round
    // would go out as a record of its own in a send(2) of its own
    while (!out_.empty()) {
      size_t written = 0;
      ERR_clear_error();
      int rc = SSL_write_ex(ssl_.get(), out_.ptr(), out_.size(), &written);
      if (rc == 1) {
        out_.take(written);
        continue;
      }
      int e = SSL_get_error(ssl_.get(), rc);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return;  // EPOLLOUT resumes
      ERR_clear_error();
      return Fail("the peer closed the connection");
    }
  }
  if (!SendTls()) return;
  if (!nghttp2_session_want_read(ng_) && !nghttp2_session_want_write(ng_))
    Fail(goawaySent_ < 0 ? "closed" : std::string("HTTP/2 GOAWAY sent: ") + nghttp2_http2_strerror(static_cast<uint32_t>(goawaySent_)),
         server_ && goawaySent_ > 0 ? "protocol-error" : "");
}

void Session::Fail(const std::string& reason, const char* refusal) {
  if (st_ == Dead) return;
  st_ = Dead;
  if (server_) {
    w_->Forget(id);
    Event e(Event::Close);
    e.id = id;
    e.opened = ng_ != nullptr;
    e.error = reason;
    e.refusal = refusal;
    w_->Emit(std::move(e));
  }
  w_->Unpool(this);
  std::vector<uint64_t> flows = waiting_;
  for (auto& [sid, id] : streams_) flows.push_back(id);
  w_->nStreams -= streams_.size();
  waiting_.clear();
  streams_.clear();
  for (uint64_t id : flows) {
    Flow* f = w_->FindFlow(id);
    if (f == nullptr) continue;
    f->sess_ = nullptr;
    f->sid_ = -1;
    if (f->state() == Flow::Waiting) f->Refuse(reason, 0);
    else f->Reset(reason);
  }
  fd_.reset();
  w_->Retire(this);
}

ssize_t Session::OnReadData(nghttp2_session*, int32_t sid, uint8_t*, size_t len, uint32_t* flags,
                            nghttp2_data_source*, void* user) {
  auto* s = static_cast<Session*>(user);
  Flow* f = s->StreamFlow(sid);
  if (f == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return f->ReadForStream(len, flags);
}

// Called within nghttp2_session_mem_send right after OnReadData chose this
// DATA frame (no padding is ever added): its header, then its bytes, in order
// after every frame mem_send returned before.
int Session::OnSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                        nghttp2_data_source*, void* user) {
  auto* s = static_cast<Session*>(user);
  Flow* f = s->StreamFlow(frame->hd.stream_id);
  if (f == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  s->out_.append(reinterpret_cast<const char*>(framehd), 9);
  f->SendStreamData(length, &s->out_);
  return 0;
}

// DATA frames as large as the peer allows (its SETTINGS_MAX_FRAME_SIZE, kMaxFrame
// between warren's ends) instead of nghttp2's 16 KiB default: fewer frames, and
// the receiver gets larger chunks to hand its socket in one send(2). But no
// larger than the bytes waiting: nghttp2 grows the session's frame buffer to
// the length asked here and never shrinks it, so asking 64 KiB for a 1 KiB
// write left every session that ever sent a byte 48 KiB larger (+0.6 KiB per
// idle tunneled connection at 100 streams a session).
ssize_t Session::OnReadLength(nghttp2_session*, uint8_t, int32_t sid, int32_t sessionWindow, int32_t streamWindow,
                              uint32_t maxFrame, void* user) {
  int64_t n = maxFrame;
  if (sessionWindow < n) n = sessionWindow;
  if (streamWindow < n) n = streamWindow;
  Flow* f = static_cast<Session*>(user)->StreamFlow(sid);
  int64_t waiting = f == nullptr ? 0 : static_cast<int64_t>(f->WaitingForStream());
  if (waiting < n) n = waiting;  // nothing waiting: an END_STREAM frame, no payload
  return n < 1 ? 1 : static_cast<ssize_t>(n);
}

int Session::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* s = static_cast<Session*>(user);
  if (s->server_ && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
    s->requests_[frame->hd.stream_id] = Request{};
  return 0;
}

int Session::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  auto* s = static_cast<Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  std::string n(reinterpret_cast<const char*>(name), namelen);
  if (valuelen > kMaxHeader) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (s->server_) {
    auto it = s->requests_.find(frame->hd.stream_id);
    if (it == s->requests_.end()) return 0;
    if (n == ":method") it->second.method = v;
    else if (n == ":authority") it->second.authority = v;
    else if (n == "forwarded") it->second.forwarded = v;
  } else if (n == ":status") {
    s->requests_[frame->hd.stream_id].status = v;
  }
  return 0;
}

int Session::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* s = static_cast<Session*>(user);
  int32_t sid = frame->hd.stream_id;
  bool endStream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    s->goingAway_ = true;
    s->w_->Unpool(s);
    return 0;
  }
  if (frame->hd.type == NGHTTP2_HEADERS && s->server_ && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    auto it = s->requests_.find(sid);
    if (it == s->requests_.end()) return 0;
    Request req = std::move(it->second);
    s->requests_.erase(it);
    auto f = std::make_unique<Flow>(s->w_, s->w_->NextId(), "connect");
    f->AdoptStream(s, sid, 0);
    if (endStream) f->RequestEnded();
    s->streams_[sid] = f->id();
    s->w_->nStreams++;
    Event e(Event::Decide);
    e.id = f->id();
    e.kind = "connect";
    e.listener = s->listener;
    e.srcIp = s->srcIp;
    e.srcPort = s->srcPort;
    e.peer = s->expected;
    e.method = std::move(req.method);
    e.authority = std::move(req.authority);
    e.forwarded = std::move(req.forwarded);
    s->w_->Emit(std::move(e));
    s->w_->AddFlow(std::move(f));
    return 0;
  }
  Flow* f = s->StreamFlow(sid);
  if (f == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !s->server_ && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
    auto it = s->requests_.find(sid);
    int status = 0;
    if (it != s->requests_.end()) {
      status = atoi(it->second.status.c_str());
      s->requests_.erase(it);
    }
    f->Answered(status);
    if (f->state() != Flow::Open) return 0;
  }
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) && endStream) f->StreamEof();
  return 0;
}

int Session::OnDataChunk(nghttp2_session* ng, uint8_t, int32_t sid, const uint8_t* data, size_t len,
                         void* user) {
  auto* s = static_cast<Session*>(user);
  Flow* f = s->StreamFlow(sid);
  if (f == nullptr) {
    // nobody will take these bytes: give the connection window back
    nghttp2_session_consume_connection(ng, len);
    return 0;
  }
  f->StreamData(data, len);
  return 0;
}

int Session::OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_GOAWAY) static_cast<Session*>(user)->goawaySent_ = frame->goaway.error_code;
  return 0;
}

int Session::OnStreamClose(nghttp2_session*, int32_t sid, uint32_t code, void* user) {
  auto* s = static_cast<Session*>(user);
  s->requests_.erase(sid);
  auto it = s->streams_.find(sid);
  if (it == s->streams_.end()) return 0;
  uint64_t id = it->second;
  s->streams_.erase(it);
  if (!s->server_) s->reserved_--;
  s->w_->nStreams--;
  s->lastActive_ = NowMs();
  Flow* f = s->w_->FindFlow(id);
  if (f == nullptr) return 0;
  size_t unconsumed = f->pend_[1 - f->streamSide_].size();
  if (unconsumed > 0) nghttp2_session_consume_connection(s->ng_, unconsumed);
  f->StreamClosed(code);
  return 0;
}

// --- Listener ---------------------------------------------------------------

void ListenerReg::OnIo(uint32_t) {
  for (int i = 0; i < 64; i++) {
    sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    Fd c(accept4(fd->get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (c.get() < 0) return;  // EAGAIN, or another worker took it
    int one = 1;
    setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::string srcIp;
    int srcPort = 0;
    AddressOf(peer, &srcIp, &srcPort);
    if (kind == ListenerKind::Hbone) {
      // Sessions are dealt round the workers rather than left to whichever
      // one epoll woke: a client spreads a peer's streams over several
      // sessions (Engine::PoolOwner) so that they decrypt on several threads.
      int owner = w->engine().NextWorker();
      if (owner == w->index())
        w->AcceptHbone(std::move(c), this->id, identity, srcIp, srcPort);
      else
        w->engine().HandOffHbone(owner, std::move(c), this->id, identity, srcIp, srcPort);
      continue;
    }
    std::string dstIp;
    int dstPort = 0;
    // Not redirected: reported without a destination; TypeScript refuses it.
    if (!OriginalDst(c.get(), family, &dstIp, &dstPort)) dstIp.clear();
    // The accepted socket's own address: an original destination equal to it
    // means the client dialed the listener itself (agent-loop.ts).
    sockaddr_storage local;
    socklen_t localLen = sizeof(local);
    std::string localIp;
    int localPort = 0;
    if (getsockname(c.get(), reinterpret_cast<sockaddr*>(&local), &localLen) == 0) AddressOf(local, &localIp, &localPort);
    auto f = std::make_unique<Flow>(w, w->NextId(), kind == ListenerKind::Outbound ? "outbound" : "inbound");
    if (!f->AdoptClient(std::move(c))) continue;
    Event e(Event::Decide);
    e.id = f->id();
    e.kind = f->kind();
    e.listener = this->id;
    e.srcIp = srcIp;
    e.srcPort = srcPort;
    e.dstIp = dstIp;
    e.dstPort = dstPort;
    e.localIp = localIp;
    e.localPort = localPort;
    w->Emit(std::move(e));
    w->AddFlow(std::move(f));
  }
}

// --- Worker -----------------------------------------------------------------

Worker::Worker(Engine& engine, int index)
    : engine_(engine), index_(index), ep_(epoll_create1(EPOLL_CLOEXEC)), ev_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = nullptr;  // the command eventfd
  epoll_ctl(ep_.get(), EPOLL_CTL_ADD, ev_.get(), &e);
}

Worker::~Worker() { Join(); }

void Worker::Post(std::function<void()> cmd) {
  {
    std::lock_guard<std::mutex> g(mu_);
    cmds_.push_back(std::move(cmd));
  }
  uint64_t one = 1;
  ssize_t ignored = write(ev_.get(), &one, sizeof(one));
  (void)ignored;
}

bool Worker::Watch(int fd, Handler* h, uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.ptr = h;
  return epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &e) == 0;
}

Buf& Worker::TlsIn(Session* s) {
  if (tlsInOwner_ != s) {
    if (tlsInOwner_ != nullptr && !tlsIn_.empty()) tlsInOwner_->KeepTlsIn(tlsIn_);
    tlsIn_.take(tlsIn_.size());
    tlsInOwner_ = s;
  }
  return tlsIn_;
}

Flow* Worker::AddFlow(std::unique_ptr<Flow> f) {
  Flow* p = f.get();
  flows_[p->id()] = std::move(f);
  return p;
}

void Worker::AddSession(std::unique_ptr<Session> s) {
  Session* p = s.get();
  sessions_[p] = std::move(s);
}

void Worker::Retire(Flow* f) {
  auto it = flows_.find(f->id());
  if (it == flows_.end()) return;
  deadFlows_.push_back(std::move(it->second));
  flows_.erase(it);
}

void Worker::Retire(Session* s) {
  dirty_.erase(s);
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  deadSessions_.push_back(std::move(it->second));
  sessions_.erase(it);
}

void Worker::Unpool(Session* s) {
  auto it = pool_.find(s->poolKey);
  if (it == pool_.end()) return;
  auto& v = it->second;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] == s) {
      v.erase(v.begin() + static_cast<long>(i));
      break;
    }
  }
  if (v.empty()) pool_.erase(it);
}

Session* Worker::PooledSession(const Decision& d, std::string* error) {
  std::string key = PoolKey(d);
  auto it = pool_.find(key);
  if (it != pool_.end())
    for (Session* s : it->second)
      if (s->Usable()) return s;
  auto id = engine_.FindIdentity(d.identity);
  if (!id) {
    *error = "this pod has no valid certificate; refusing to open a tunnel";
    return nullptr;
  }
  SocketOptions o = d.from;
  o.family = d.ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  SysError se{0, ""};
  Fd fd(MakeSocket(o, false, !o.address.empty(), &se));
  if (fd.get() < 0) {
    *error = ErrnoText(se.operation.c_str(), se.err);
    return nullptr;
  }
  if (!StartConnect(fd.get(), d.ip, d.port, error)) {
    *error = "cannot reach the HBONE port of " + d.ip + ": " + *error;
    return nullptr;
  }
  SslPtr ssl(SSL_new(id->client.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) {
    *error = "TLS setup failed";
    return nullptr;
  }
  SSL_set_connect_state(ssl.get());
  int fdNum = fd.get();
  auto s = std::make_unique<Session>(this, false, std::move(fd), std::move(ssl));
  s->poolKey = key;
  s->identity = d.identity;
  s->expected = d.expected;
  s->peerIp = d.ip;
  s->netns = d.from.netns;
  s->SetConnecting();
  if (!Watch(fdNum, s.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)) {
    *error = "epoll";
    return nullptr;
  }
  Session* p = s.get();
  AddSession(std::move(s));
  pool_[key].push_back(p);
  return p;
}

// Every live client session by pool key, pooled or not: an outdated one, or one its
// peer sent GOAWAY, still carries its streams.
std::vector<PoolStat> Worker::Pools() const {
  std::unordered_map<std::string, PoolStat> byKey;
  for (const auto& [p, s] : sessions_) {
    if (s->server() || s->dead()) continue;
    auto it = byKey.try_emplace(s->poolKey, PoolStat{s->netns, s->identity, s->expected, s->peerIp, 0, 0}).first;
    it->second.sessions++;
    it->second.streams += s->OpenStreams();
  }
  std::vector<PoolStat> out;
  for (auto& [key, stat] : byKey) out.push_back(std::move(stat));
  return out;
}

void Worker::AddListener(uint32_t id, std::shared_ptr<Fd> fd, ListenerKind kind, const std::string& identity) {
  auto l = std::make_unique<ListenerReg>();
  l->w = this;
  l->id = id;
  l->fd = std::move(fd);
  l->kind = kind;
  l->identity = identity;
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(l->fd->get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) l->family = ss.ss_family;
  // Every worker waits on the listener; EPOLLEXCLUSIVE wakes one of them.
  if (!Watch(l->fd->get(), l.get(), EPOLLIN | EPOLLEXCLUSIVE)) return;
  listeners_[id] = std::move(l);
}

void Worker::RemoveListener(uint32_t id) {
  auto it = listeners_.find(id);
  if (it == listeners_.end()) return;
  Unwatch(it->second->fd->get());
  deadListeners_.push_back(std::move(it->second));
  listeners_.erase(it);
}

void Worker::Resolve(uint64_t id, Decision d) {
  Flow* f = FindFlow(id);
  if (f != nullptr) return f->Decide(std::move(d));
  Admit(id, d);
}

void Worker::AcceptHbone(Fd c, uint32_t listener, const std::string& identity, const std::string& srcIp, int srcPort) {
  auto id = engine_.FindIdentity(identity);
  if (!id) return;  // fail closed: no certificate, no TLS
  SslPtr ssl(SSL_new(id->server.get()));
  if (!ssl || SSL_set_fd(ssl.get(), c.get()) != 1) return;
  SSL_set_accept_state(ssl.get());
  auto s = std::make_unique<Session>(this, true, std::move(c), std::move(ssl));
  s->id = NextId();
  s->identity = identity;
  s->listener = listener;
  s->srcIp = srcIp;
  s->srcPort = srcPort;
  // TypeScript admits it (HboneGuard's per-peer and total caps) before a
  // byte of TLS is read; until then the socket is not watched.
  Event e(Event::Decide);
  e.id = s->id;
  e.kind = "session";
  e.listener = listener;
  e.srcIp = srcIp;
  e.srcPort = srcPort;
  Emit(std::move(e));
  admitting_[s->id] = s.get();
  AddSession(std::move(s));
}

// `name` has new credentials. Its client sessions are outdated, as HbonePool reuses only
// a session of the current certificate: renewal comes at half-life, so the streams left on
// an old session have the other half to end before its certificate expires. Live sessions
// are verified again only when the trust bundle changed (README "HBONE bounds"): a peer
// certificate that expired since its handshake cuts nothing, as on the Node path.
void Worker::Renew(const std::string& name, const Identity& id, bool newRoots) {
  std::vector<Session*> mine;
  for (auto& [p, s] : sessions_)
    if (s->identity == name && !s->dead()) mine.push_back(p);
  for (Session* s : mine) {
    if (newRoots) s->Reverify(s->server() ? id.server.get() : id.client.get());
    if (!s->server() && !s->dead()) s->Outdate();
  }
}

void Worker::Admit(uint64_t id, const Decision& d) {
  auto it = admitting_.find(id);
  if (it == admitting_.end()) return;
  Session* s = it->second;
  admitting_.erase(it);
  if (d.action != Decision::Admit) {
    // refused before any TLS: the peer gets an RST, as from HboneInbound
    linger l{1, 0};
    setsockopt(s->fd(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    return s->Fail(d.reason.empty() ? "refused" : d.reason);
  }
  // edge-triggered: bytes that arrived meanwhile are reported on EPOLL_CTL_ADD
  if (!Watch(s->fd(), s, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)) s->Fail("epoll");
}

void Worker::AdoptMigrated(uint64_t id, int fd, Decision d) {
  Fd owned(fd);
  auto f = std::make_unique<Flow>(this, id, "outbound");
  if (!f->AdoptClient(std::move(owned))) {
    f.reset();
    Event e(Event::Close);
    e.id = id;
    e.error = "epoll";
    Emit(std::move(e));
    engine_.Forget(id);
    return;
  }
  Flow* p = AddFlow(std::move(f));
  p->Placed();
  p->Decide(std::move(d));
}

void Worker::Close(uint64_t id, const std::string& reason) {
  Flow* f = FindFlow(id);
  if (f != nullptr) f->Reset(reason);
}

void Worker::RunCommands() {
  uint64_t n;
  while (read(ev_.get(), &n, sizeof(n)) > 0) {
  }
  std::vector<std::function<void()>> cmds;
  {
    std::lock_guard<std::mutex> g(mu_);
    cmds.swap(cmds_);
  }
  for (auto& c : cmds) c();
}

void Worker::Tick() {
  int64_t now = NowMs();
  std::vector<uint64_t> expired;
  for (uint64_t id : timed_) expired.push_back(id);
  for (uint64_t id : expired) {
    Flow* f = FindFlow(id);
    if (f == nullptr) {
      timed_.erase(id);
      continue;
    }
    if (++f->deadline * 1000 >= kConnectTimeoutMs) f->Timeout();
  }
  std::vector<Session*> stale;
  tlsIn_.trim();
  size_t buffered = tlsIn_.capacity();
  for (auto& [p, s] : sessions_) {
    s->Trim();
    buffered += s->Buffered();
    if (s->Idle(now) || s->HandshakeExpired(now) || s->Drained()) stale.push_back(p);
  }
  for (Session* s : stale) {
    if (s->HandshakeExpired(now))
      s->Fail("no TLS handshake within " + std::to_string(s->server() ? engine_.limits().handshakeMs : kConnectTimeoutMs) + " ms",
              s->server() ? "handshake-timeout" : "");
    else
      s->Fail(s->Drained() ? "its credentials were renewed and its last stream ended" : "idle");
  }
  // Inbound CONNECT streams that carried no byte either way for too long.
  std::vector<uint64_t> idle;
  for (auto& [id, f] : flows_) {
    f->Trim();
    buffered += f->Buffered();
    if (f->IdleStream(now, engine_.limits().streamIdleMs)) idle.push_back(id);
  }
  for (uint64_t id : idle) {
    Flow* f = FindFlow(id);
    if (f != nullptr) f->Reset("idle for " + std::to_string(engine_.limits().streamIdleMs) + " ms", "stream-idle");
  }
  nBuffered.store(buffered);
}

void Worker::Run() {
  // named, so top -H and perf tell the data path's threads from Node's
  pthread_setname_np(pthread_self(), ("warren-dp-" + std::to_string(index_)).c_str());
  epoll_event events[256];
  int64_t lastTick = NowMs();
  while (!stopping_) {
    int n = epoll_wait(ep_.get(), events, 256, 1000);
    for (int i = 0; i < n; i++) {
      auto* h = static_cast<Handler*>(events[i].data.ptr);
      if (h == nullptr) RunCommands();
      else h->OnIo(events[i].events);
    }
    // Work deferred out of nghttp2 callbacks, then one batched write per
    // session for everything this turn produced.
    for (int round = 0; round < 4 && (!later_.empty() || !dirty_.empty()); round++) {
      std::vector<uint64_t> later;
      later.swap(later_);
      for (uint64_t id : later) {
        Flow* f = FindFlow(id);
        if (f == nullptr) continue;
        f->Resume();
        f = FindFlow(id);
        if (f != nullptr && f->state() == Flow::Open) f->CheckDone();
      }
      std::unordered_set<Session*> dirty;
      dirty.swap(dirty_);
      for (Session* s : dirty) s->Flush();
    }
    int64_t now = NowMs();
    if (now - lastTick >= 1000) {
      lastTick = now;
      Tick();
    }
    deadFlows_.clear();
    deadSessions_.clear();
    deadListeners_.clear();
    if (!batch_.empty()) engine_.Emit(batch_);
  }
  Shutdown();
}

void Worker::Shutdown() {
  // No events after stop: TypeScript is going away.
  std::vector<uint64_t> ids;
  for (auto& [id, f] : flows_) ids.push_back(id);
  for (uint64_t id : ids) {
    Flow* f = FindFlow(id);
    if (f != nullptr) f->Reset("stopped");
  }
  std::vector<Session*> all;
  for (auto& [p, s] : sessions_) all.push_back(p);
  for (Session* s : all) s->Fail("stopped");
  flows_.clear();
  sessions_.clear();
  deadFlows_.clear();
  deadSessions_.clear();
  listeners_.clear();
  deadListeners_.clear();
  batch_.clear();
}

// --- Engine -----------------------------------------------------------------

Engine::Engine(int threads, Limits limits, std::function<void()> wake) : limits_(limits), wake_(std::move(wake)) {
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  for (int i = 0; i < threads; i++) workers_.push_back(std::make_unique<Worker>(*this, i));
  for (auto& w : workers_) w->Start();
}

Engine::~Engine() { Stop(); }

void Engine::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& w : workers_) {
    Worker* p = w.get();
    p->Post([p] { p->stopping_ = true; });
  }
  for (auto& w : workers_) w->Join();
}

void Engine::Listen(uint32_t id, int fd, ListenerKind kind, const std::string& identity) {
  auto shared = std::make_shared<Fd>(fd);
  for (auto& w : workers_) {
    Worker* p = w.get();
    p->Post([p, id, shared, kind, identity] { p->AddListener(id, shared, kind, identity); });
  }
}

void Engine::Unlisten(uint32_t id) {
  for (auto& w : workers_) {
    Worker* p = w.get();
    p->Post([p, id] { p->RemoveListener(id); });
  }
}

void Engine::SetIdentity(const std::string& name, std::shared_ptr<Identity> id) {
  bool newRoots = true;
  {
    std::lock_guard<std::mutex> g(idMu_);
    auto it = identities_.find(name);
    if (it != identities_.end()) newRoots = it->second->roots != id->roots;
    identities_[name] = id;
  }
  for (auto& w : workers_) {
    Worker* p = w.get();
    p->Post([p, name, id, newRoots] { p->Renew(name, *id, newRoots); });
  }
}

void Engine::DropIdentity(const std::string& name) {
  std::lock_guard<std::mutex> g(idMu_);
  identities_.erase(name);
}

std::shared_ptr<Identity> Engine::FindIdentity(const std::string& name) {
  std::lock_guard<std::mutex> g(idMu_);
  auto it = identities_.find(name);
  return it == identities_.end() ? nullptr : it->second;
}

int Engine::PoolOwner(const std::string& key) {
  size_t h = std::hash<std::string>()(key);
  uint32_t turn = spread_[h % spread_.size()].fetch_add(1, std::memory_order_relaxed);
  return static_cast<int>((h + turn) % workers_.size());
}

int Engine::NextWorker() {
  return static_cast<int>(nextWorker_.fetch_add(1, std::memory_order_relaxed) % workers_.size());
}

void Engine::HandOffHbone(int owner, Fd c, uint32_t listener, const std::string& identity, const std::string& srcIp,
                          int srcPort) {
  Worker* p = workers_[static_cast<size_t>(owner)].get();
  // shared_ptr: a command dropped at shutdown still closes the socket
  auto fd = std::make_shared<Fd>(std::move(c));
  p->Post([p, fd, listener, identity, srcIp, srcPort] { p->AcceptHbone(std::move(*fd), listener, identity, srcIp, srcPort); });
}

void Engine::Migrate(int owner, uint64_t id, int fd, Decision d) {
  {
    std::lock_guard<std::mutex> g(migratedMu_);
    migrated_[id] = owner;
  }
  Worker* p = workers_[static_cast<size_t>(owner)].get();
  auto shared = std::make_shared<Decision>(std::move(d));
  p->Post([p, id, fd, shared] { p->AdoptMigrated(id, fd, std::move(*shared)); });
}

void Engine::Forget(uint64_t id) {
  std::lock_guard<std::mutex> g(migratedMu_);
  migrated_.erase(id);
}

Worker* Engine::WorkerOf(uint64_t id) {
  {
    std::lock_guard<std::mutex> g(migratedMu_);
    auto it = migrated_.find(id);
    if (it != migrated_.end()) return workers_[static_cast<size_t>(it->second)].get();
  }
  size_t w = id & 63;
  return w < workers_.size() ? workers_[w].get() : nullptr;
}

void Engine::Resolve(uint64_t id, Decision d) {
  Worker* p = WorkerOf(id);
  if (p == nullptr) return;
  auto shared = std::make_shared<Decision>(std::move(d));
  p->Post([p, id, shared] { p->Resolve(id, std::move(*shared)); });
}

void Engine::Close(uint64_t id, const std::string& reason) {
  Worker* p = WorkerOf(id);
  if (p == nullptr) return;
  p->Post([p, id, reason] { p->Close(id, reason); });
}

void Engine::Emit(std::vector<Event>& batch) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& e : batch) events_.push_back(std::move(e));
    if (!wakePending_) {
      wakePending_ = true;
      wake = true;
    }
  }
  batch.clear();
  if (wake) wake_();
}

std::vector<Event> Engine::TakeEvents() {
  std::vector<Event> out;
  std::lock_guard<std::mutex> g(mu_);
  out.swap(events_);
  wakePending_ = false;
  return out;
}

std::vector<PoolStat> Engine::Pools(int64_t waitMs) {
  std::vector<PoolStat> out;
  if (stopped_) return out;
  std::vector<std::future<std::vector<PoolStat>>> answers;
  for (auto& w : workers_) {
    Worker* p = w.get();
    auto promise = std::make_shared<std::promise<std::vector<PoolStat>>>();
    answers.push_back(promise->get_future());
    p->Post([p, promise] { promise->set_value(p->Pools()); });
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  for (auto& a : answers) {
    if (a.wait_until(until) != std::future_status::ready) continue;
    for (auto& p : a.get()) out.push_back(std::move(p));
  }
  return out;
}

Stats Engine::GetStats() {
  Stats s;
  for (auto& w : workers_) {
    s.flows += w->nFlows.load();
    s.sessions += w->nSessions.load();
    s.streams += w->nStreams.load();
    s.buffered += w->nBuffered.load();
    s.http2Bytes += w->http2Bytes.load();
  }
  return s;
}

}  // namespace warren::dp
