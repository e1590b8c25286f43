// delay-line QUEUE DELAY_MS SECONDS: holds every packet of NFQUEUE queue QUEUE for DELAY_MS,
// then accepts it, for SECONDS at most; then (or on SIGTERM/SIGINT) accepts whatever it
// still holds and exits. A test tool: the reliability tier's 50 ms link delay (scenario 9)
// on kernels without sch_netem (and without sch_fq for a BPF departure-time delay), fed by
// `iptables-legacy -t mangle -A POSTROUTING -o eth0 -j NFQUEUE --queue-bypass`.
// Only packet ids are copied (no payload); the queue fails open when full, so an overrun
// passes packets undelayed rather than dropping them. Prints one JSON line of counts.
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

enum { kHeld = 1 << 16 };

static struct {
  uint32_t id[kHeld];
  int64_t dueNs[kHeld];
  unsigned head, count;
} held;
static int64_t delayNs;
static unsigned long long delayed, passedAtOnce, lostMessages;
static volatile sig_atomic_t stop;

static int64_t nowNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int onPacket(struct nfq_q_handle* qh, struct nfgenmsg* msg, struct nfq_data* nfa, void* data) {
  (void)msg;
  (void)data;
  struct nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL) return 0;
  uint32_t id = ntohl(ph->packet_id);
  if (held.count == kHeld) {  // bounded: past the ring, no delay
    passedAtOnce++;
    return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
  }
  unsigned slot = (held.head + held.count) % kHeld;
  held.id[slot] = id;
  held.dueNs[slot] = nowNs() + delayNs;
  held.count++;
  return 0;
}

// Accepts the held packets due by `until` (all of them with INT64_MAX), oldest first.
static void release(struct nfq_q_handle* qh, int64_t until) {
  while (held.count > 0 && held.dueNs[held.head] <= until) {
    nfq_set_verdict(qh, held.id[held.head], NF_ACCEPT, 0, NULL);
    held.head = (held.head + 1) % kHeld;
    held.count--;
    delayed++;
  }
}

static void onSignal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: delay-line QUEUE DELAY_MS SECONDS\n");
    return 2;
  }
  int queue = atoi(argv[1]);
  delayNs = (int64_t)atoi(argv[2]) * 1000000;
  int64_t deadline = nowNs() + (int64_t)atoi(argv[3]) * 1000000000;
  if (queue < 0 || queue > 65535 || delayNs <= 0 || deadline <= nowNs()) {
    fprintf(stderr, "delay-line: QUEUE 0-65535, DELAY_MS and SECONDS above 0\n");
    return 2;
  }
  signal(SIGTERM, onSignal);
  signal(SIGINT, onSignal);
  struct nfq_handle* h = nfq_open();
  if (h == NULL) {
    perror("delay-line: nfq_open");
    return 1;
  }
  struct nfq_q_handle* qh = nfq_create_queue(h, (uint16_t)queue, onPacket, NULL);
  if (qh == NULL || nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
    perror("delay-line: queue");
    nfq_close(h);
    return 1;
  }
  nfq_set_queue_maxlen(qh, kHeld);
  nfq_set_queue_flags(qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN);
  int fd = nfq_fd(h);
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  printf("{\"ready\":true}\n");
  fflush(stdout);
  char buf[65536];
  while (!stop && nowNs() < deadline) {
    int64_t now = nowNs();
    int64_t waitNs = held.count > 0 ? held.dueNs[held.head] - now : 100000000;
    int timeoutMs = waitNs <= 0 ? 0 : (int)((waitNs + 999999) / 1000000);
    struct pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, timeoutMs);
    if (ready > 0) {
      for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
          nfq_handle_packet(h, buf, (int)n);
          continue;
        }
        if (n < 0 && errno == ENOBUFS) {  // messages lost: their packets wait for the queue's end
          lostMessages++;
          continue;
        }
        break;
      }
    }
    release(qh, nowNs());
  }
  release(qh, INT64_MAX);
  nfq_destroy_queue(qh);
  nfq_close(h);
  printf("{\"delayed\":%llu,\"passedAtOnce\":%llu,\"lostMessages\":%llu}\n", delayed, passedAtOnce, lostMessages);
  return 0;
}
