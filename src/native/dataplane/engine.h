// The native data path (DESIGN.md §12): worker threads, each with an epoll
// loop, relaying bytes between captured sockets, upstream sockets and HBONE
// streams (HTTP/2 CONNECT over mutual TLS 1.3, nghttp2 + OpenSSL as exported
// by the Node binary). Every decision — where a connection goes, whether a
// CONNECT is authorized — is asked of TypeScript through events; workers never
// touch V8.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "../netns_socket.h"
#include "tls.h"

namespace warren::dp {

enum class ListenerKind { Outbound, Inbound, Hbone };

// What a worker tells TypeScript. Batched; drained by Engine::TakeEvents.
struct Event {
  enum Type { Decide, Open, Close } type;
  explicit Event(Type t) : type(t) {}
  uint64_t id = 0;
  // Decide
  const char* kind = "";  // "outbound" | "inbound" | "connect" | "session" (an HBONE connection accepted)
  uint32_t listener = 0;
  std::string srcIp, dstIp, localIp;
  int srcPort = 0, dstPort = 0, localPort = 0;
  std::string peer, method, authority, forwarded;  // connect only
  // Close: bytes sent by the client side / by the server side
  uint64_t fromClient = 0, fromServer = 0;
  bool opened = false;
  int status = 0;  // HTTP status a CONNECT was answered with, when one was
  std::string error;
  // Close of an HBONE server session or stream: the bound it met, as
  // HboneRefusal in src/tunnel/hbone-limits.ts ("" when none)
  const char* refusal = "";
};

// TypeScript's answer to a Decide event.
struct Decision {
  // Admit: a "session" may go on to its TLS handshake
  enum Action { Reset, Connect, Hbone, Reject, Admit } action = Reset;
  std::string reason;
  // Connect (plain upstream) and Hbone (the peer agent): where to connect
  // from (netns, mark, optional transparent source) and to.
  SocketOptions from;
  std::string ip;
  int port = 0;
  // Connect: bytes written to the upstream before any of the client's (the
  // PROXY v2 header of a waypoint hand-off); at most kMaxPrefix
  std::string prefix;
  // Hbone
  std::string identity, expected, authority, forwarded;
  // Reject (connect flows): the HTTP status to answer
  int status = 0;
};

// A Connect decision's prefix is a PROXY v2 header: small (src/tunnel/waypoint-handoff.ts).
constexpr size_t kMaxPrefix = 512;

// The HBONE server's bounds that the workers enforce (HboneLimits in
// src/tunnel/hbone-limits.ts; the connection counts are TypeScript's).
struct Limits {
  int64_t handshakeMs = 5'000;
  int64_t streamIdleMs = 3'600'000;
  uint32_t streamWindow = 4 * 1024 * 1024;
};

struct Stats {
  uint64_t flows = 0, sessions = 0, streams = 0;
  // bytes of buffer storage held by sessions and flows, and each worker's TLS
  // read buffer, as of the workers' last once-a-second tick
  uint64_t buffered = 0;
  // bytes nghttp2 holds for the sessions: frame buffers, HPACK tables, streams, queued frames
  int64_t http2Bytes = 0;
};

// One worker's pooled outbound HBONE sessions of one pool key (a pod's netns and
// identity, a peer and its expected identity): how many, and their open streams.
struct PoolStat {
  std::string netns, identity, expected, ip;
  uint64_t sessions = 0, streams = 0;
};

class Worker;

class Engine {
 public:
  // `wake` is called from worker threads when events are waiting and no
  // earlier wake is pending; it must only schedule a call into JavaScript.
  Engine(int threads, Limits limits, std::function<void()> wake);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Takes ownership of a listening socket (made in a pod's netns).
  void Listen(uint32_t id, int fd, ListenerKind kind, const std::string& identity);
  void Unlisten(uint32_t id);
  void SetIdentity(const std::string& name, std::shared_ptr<Identity> id);
  void DropIdentity(const std::string& name);
  std::shared_ptr<Identity> FindIdentity(const std::string& name);
  void Resolve(uint64_t id, Decision d);
  void Close(uint64_t id, const std::string& reason);
  std::vector<Event> TakeEvents();
  Stats GetStats();
  // Every worker's pools, read on its own thread; a worker that does not answer
  // within `waitMs` (all of them together) is left out.
  std::vector<PoolStat> Pools(int64_t waitMs);
  const Limits& limits() const { return limits_; }
  void Stop();

  // Workers
  void Emit(std::vector<Event>& batch);
  // The worker whose HBONE pool of `key` takes the next flow: a peer's flows
  // are dealt round every worker's pool (at most one session per worker per
  // 100 streams), so one peer's streams use every thread; and a flow's move there.
  int PoolOwner(const std::string& key);
  // The worker that takes the next accepted HBONE session, and the hand-off.
  int NextWorker();
  void HandOffHbone(int owner, Fd c, uint32_t listener, const std::string& identity, const std::string& srcIp,
                    int srcPort);
  void Migrate(int owner, uint64_t id, int fd, Decision d);
  void Forget(uint64_t id);

 private:
  Worker* WorkerOf(uint64_t id);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex migratedMu_;
  std::unordered_map<uint64_t, int> migrated_;  // flow id → the worker it moved to
  Limits limits_;
  std::function<void()> wake_;
  std::mutex mu_;
  std::vector<Event> events_;
  bool wakePending_ = false;
  std::mutex idMu_;
  std::unordered_map<std::string, std::shared_ptr<Identity>> identities_;
  bool stopped_ = false;
  std::array<std::atomic<uint32_t>, 64> spread_{};
  std::atomic<uint32_t> nextWorker_{0};
};

}  // namespace warren::dp
