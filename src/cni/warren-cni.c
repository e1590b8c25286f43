// warren-cni: the chained CNI plugin the container runtime runs on the node
// host for every pod (README "CNI plugin"). A static C program so that it
// starts in about a millisecond and needs nothing on the host: it checks the
// request, forwards the CNI environment and stdin to the node agent's unix
// socket (POST /v1/cni/raw) and prints the agent's answer. Every decision
// (enroll or not, the spec's validation and error codes) stays in the agent
// (src/cni/plugin.ts); the plugin decides only what it must decide without
// one: VERSION, pods of excluded namespaces (their prevResult passed
// through), and failing closed when the agent is absent or slow (ADD and the
// others fail with code 11, DEL succeeds).
//
// Built by node-gyp from binding.gyp as build/Release/warren-cni.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_INPUT (1024 * 1024)
#define MAX_ANSWER (1024 * 1024)
#define DEFAULT_SOCKET "/var/run/warren/cni.sock"
#define DEFAULT_TIMEOUT_MS 5000
#define DEL_TIMEOUT_MS 1000
#define CODE_INVALID_ENV 4
#define CODE_DECODE 6
#define CODE_TRY_AGAIN 11
#define CODE_AGENT_REFUSED 999

static const char *const SUPPORTED[] = {"0.4.0", "1.0.0", "1.1.0"};

/* ---- growable output buffer ------------------------------------------- */

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

static void buf_grow(buf_t *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap == 0 ? 4096 : b->cap;
  while (b->len + more + 1 > cap) cap *= 2;
  char *data = realloc(b->data, cap);
  if (data == NULL) _exit(2);
  b->data = data;
  b->cap = cap;
}

static void buf_add(buf_t *b, const char *s, size_t n) {
  buf_grow(b, n);
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

/** `s` as a JSON string literal: quotes, backslashes and control characters escaped, other bytes as they are. */
static void buf_json(buf_t *b, const char *s, size_t n) {
  buf_str(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      buf_add(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      buf_add(b, esc, 6);
    } else {
      buf_add(b, (const char *)&s[i], 1);
    }
  }
  buf_str(b, "\"");
}

/* ---- a JSON scanner: validates, and finds top-level members ------------ */

typedef struct {
  const char *p, *end;
} scan_t;

static void skip_ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int scan_value(scan_t *s, int depth);

static int scan_string(scan_t *s) {
  if (s->p >= s->end || *s->p != '"') return 0;
  for (s->p++; s->p < s->end; s->p++) {
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      s->p++;
      return 1;
    }
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (++s->p >= s->end) return 0;
      if (*s->p == 'u') {
        for (int i = 0; i < 4; i++) {
          if (++s->p >= s->end || strchr("0123456789abcdefABCDEF", *s->p) == NULL) return 0;
        }
      } else if (strchr("\"\\/bfnrt", *s->p) == NULL) {
        return 0;
      }
    }
  }
  return 0;
}

static int scan_number(scan_t *s) {
  const char *start = s->p;
  if (s->p < s->end && *s->p == '-') s->p++;
  const char *digits = s->p;
  while (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || strchr(".eE+-", *s->p) != NULL)) s->p++;
  return s->p > digits && s->p > start;
}

static int scan_literal(scan_t *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return 0;
  s->p += n;
  return 1;
}

static int scan_members(scan_t *s, int depth, char close, int keyed) {
  s->p++;
  skip_ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return 1;
  }
  for (;;) {
    skip_ws(s);
    if (keyed) {
      if (!scan_string(s)) return 0;
      skip_ws(s);
      if (s->p >= s->end || *s->p != ':') return 0;
      s->p++;
    }
    if (!scan_value(s, depth + 1)) return 0;
    skip_ws(s);
    if (s->p >= s->end) return 0;
    if (*s->p == close) {
      s->p++;
      return 1;
    }
    if (*s->p != ',') return 0;
    s->p++;
  }
}

static int scan_value(scan_t *s, int depth) {
  if (depth > 64) return 0;
  skip_ws(s);
  if (s->p >= s->end) return 0;
  switch (*s->p) {
    case '{': return scan_members(s, depth, '}', 1);
    case '[': return scan_members(s, depth, ']', 0);
    case '"': return scan_string(s);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default: return scan_number(s);
  }
}

typedef struct {
  const char *key, *key_end; /* without quotes */
  const char *value, *value_end;
} member_t;

/** Calls `fn` for each member of the object at s->p (which must be valid JSON); stops early when fn returns 0. */
static void each_member(const char *obj, const char *end, int (*fn)(const member_t *, void *), void *ctx) {
  scan_t s = {obj, end};
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{') return;
  s.p++;
  for (;;) {
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '"') return;
    member_t m;
    m.key = s.p + 1;
    scan_string(&s);
    m.key_end = s.p - 1;
    skip_ws(&s);
    s.p++; /* ':' */
    skip_ws(&s);
    m.value = s.p;
    scan_value(&s, 0);
    m.value_end = s.p;
    if (!fn(&m, ctx)) return;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ',') return;
    s.p++;
  }
}

static int key_is(const member_t *m, const char *key) {
  size_t n = strlen(key);
  return (size_t)(m->key_end - m->key) == n && memcmp(m->key, key, n) == 0;
}

/** A JSON string value without escapes (the config values read here never need them), copied into out. */
static int plain_string(const char *v, const char *end, char *out, size_t size) {
  if (v >= end || *v != '"') return 0;
  size_t n = (size_t)(end - v) - 2;
  if (n + 1 > size || memchr(v + 1, '\\', n) != NULL) return 0;
  memcpy(out, v + 1, n);
  out[n] = '\0';
  return 1;
}

typedef struct {
  char cni_version[16];
  char type[32];
  char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
  double timeout_seconds;
  const char *exclude, *exclude_end; /* the excludeNamespaces array */
  const char *prev, *prev_end;       /* the prevResult object */
  int socket_ok;                     /* agentSocket absent or a usable absolute path */
} conf_t;

static int read_conf_member(const member_t *m, void *ctx) {
  conf_t *c = ctx;
  if (key_is(m, "cniVersion")) {
    if (!plain_string(m->value, m->value_end, c->cni_version, sizeof c->cni_version)) c->cni_version[0] = '\0';
  } else if (key_is(m, "type")) {
    if (!plain_string(m->value, m->value_end, c->type, sizeof c->type)) c->type[0] = '\0';
  } else if (key_is(m, "agentSocket")) {
    c->socket_ok = plain_string(m->value, m->value_end, c->socket, sizeof c->socket) && c->socket[0] == '/';
  } else if (key_is(m, "timeoutSeconds")) {
    char num[32];
    size_t n = (size_t)(m->value_end - m->value);
    if (n < sizeof num) {
      memcpy(num, m->value, n);
      num[n] = '\0';
      char *rest;
      double t = strtod(num, &rest);
      if (*rest == '\0' && t > 0 && t <= 300) c->timeout_seconds = t;
    }
  } else if (key_is(m, "excludeNamespaces") && *m->value == '[') {
    c->exclude = m->value;
    c->exclude_end = m->value_end;
  } else if (key_is(m, "prevResult") && *m->value == '{') {
    c->prev = m->value;
    c->prev_end = m->value_end;
  }
  return 1;
}

static int supported(const char *version) {
  for (size_t i = 0; i < sizeof SUPPORTED / sizeof *SUPPORTED; i++) {
    if (strcmp(version, SUPPORTED[i]) == 0) return 1;
  }
  return 0;
}

/** `name` among the strings of the excludeNamespaces array. */
static int excluded(const conf_t *c, const char *name) {
  if (c->exclude == NULL || name == NULL) return 0;
  scan_t s = {c->exclude + 1, c->exclude_end};
  for (;;) {
    skip_ws(&s);
    const char *v = s.p;
    if (!scan_value(&s, 0)) return 0;
    char item[256];
    if (plain_string(v, s.p, item, sizeof item) && strcmp(item, name) == 0) return 1;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ',') return 0;
    s.p++;
  }
}

/* ---- CNI_ARGS --------------------------------------------------------- */

/** The value of `key` in CNI_ARGS (`K=V;K=V`), copied into out; NULL when absent or empty. */
static const char *cni_arg(const char *args, const char *key, char *out, size_t size) {
  if (args == NULL) return NULL;
  size_t klen = strlen(key);
  for (const char *p = args; *p != '\0';) {
    const char *semi = strchr(p, ';');
    size_t n = semi == NULL ? strlen(p) : (size_t)(semi - p);
    if (n > klen && p[klen] == '=' && memcmp(p, key, klen) == 0 && n - klen - 1 < size && n - klen - 1 > 0) {
      memcpy(out, p + klen + 1, n - klen - 1);
      out[n - klen - 1] = '\0';
      return out;
    }
    if (semi == NULL) break;
    p = semi + 1;
  }
  return NULL;
}

/* ---- answers ---------------------------------------------------------- */

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/** The spec's error result on stdout and exit code 1. */
static int fail(const char *version, int code, const char *details, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  buf_t out = {0};
  char head[64];
  buf_str(&out, "{\"cniVersion\":");
  buf_json(&out, version, strlen(version));
  snprintf(head, sizeof head, ",\"code\":%d,\"msg\":", code);
  buf_str(&out, head);
  buf_json(&out, msg, strlen(msg));
  buf_str(&out, ",\"details\":");
  buf_json(&out, details, strlen(details));
  buf_str(&out, "}\n");
  write_all(1, out.data, out.len);
  return 1;
}

static int copy_unless_version(const member_t *m, void *ctx) {
  buf_t *out = ctx;
  if (key_is(m, "cniVersion")) return 1;
  buf_str(out, ",");
  buf_add(out, m->key - 1, (size_t)(m->key_end - m->key) + 2);
  buf_str(out, ":");
  buf_add(out, m->value, (size_t)(m->value_end - m->value));
  return 1;
}

/** prevResult as received, labelled with the config's version, as src/cni/plugin.ts passes it through. */
static int pass_through(const conf_t *c) {
  buf_t out = {0};
  buf_str(&out, "{\"cniVersion\":");
  buf_json(&out, c->cni_version, strlen(c->cni_version));
  each_member(c->prev, c->prev_end, copy_unless_version, &out);
  buf_str(&out, "}\n");
  write_all(1, out.data, out.len);
  return 0;
}

static const char *errno_name(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case EAGAIN: return "EAGAIN";
    case ENOTSOCK: return "ENOTSOCK";
    case EPROTO: return "EPROTO";
    default: return "EIO";
  }
}

/* ---- the agent call ---------------------------------------------------- */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** Waits for `events` on fd until the deadline; 0 on success, else errno (ETIMEDOUT when the time is up). */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return ETIMEDOUT;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 0;
    if (r == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

typedef struct {
  int status;    /* HTTP status */
  int exit_code; /* x-cni-exit-code */
  const char *body;
  size_t body_len;
} answer_t;

/**
 * POSTs `payload` to the agent and reads its whole answer before the
 * deadline. 0 on success, else an errno (ETIMEDOUT: no complete answer in
 * time; EPROTO: not an HTTP answer with the exit code header).
 */
static int call_agent(const char *socket_path, const buf_t *payload, long long deadline, buf_t *raw, answer_t *ans) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, socket_path, strlen(socket_path)); /* fits: read_conf_member checked the length */
  int err = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    if (errno != EAGAIN && errno != EINPROGRESS) {
      err = errno;
      goto out;
    }
    if ((err = wait_fd(fd, POLLOUT, deadline)) != 0) goto out;
  }
  char head[256];
  int hn = snprintf(head, sizeof head,
                    "POST /v1/cni/raw HTTP/1.1\r\nHost: warren-node\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                    payload->len);
  const char *parts[2] = {head, payload->data};
  size_t lens[2] = {(size_t)hn, payload->len};
  for (int i = 0; i < 2; i++) {
    const char *p = parts[i];
    size_t n = lens[i];
    while (n > 0) {
      ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
      if (w > 0) {
        p += w;
        n -= (size_t)w;
      } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
        if ((err = wait_fd(fd, POLLOUT, deadline)) != 0) goto out;
      } else {
        err = errno;
        goto out;
      }
    }
  }
  for (;;) {
    buf_grow(raw, 16384);
    ssize_t r = recv(fd, raw->data + raw->len, 16384, 0);
    if (r > 0) {
      raw->len += (size_t)r;
      raw->data[raw->len] = '\0';
      if (raw->len > MAX_ANSWER) {
        err = EPROTO;
        goto out;
      }
    } else if (r == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if ((err = wait_fd(fd, POLLIN, deadline)) != 0) goto out;
    } else {
      err = errno;
      goto out;
    }
  }
  if (raw->len == 0) {
    err = ECONNRESET;
    goto out;
  }
  const char *sep = strstr(raw->data, "\r\n\r\n");
  if (sep == NULL || sscanf(raw->data, "HTTP/1.%*d %d", &ans->status) != 1) {
    err = EPROTO;
    goto out;
  }
  ans->exit_code = -1;
  for (const char *line = strstr(raw->data, "\r\n"); line != NULL && line < sep; line = strstr(line + 2, "\r\n")) {
    static const char name[] = "x-cni-exit-code:";
    if (strncasecmp(line + 2, name, sizeof name - 1) == 0) ans->exit_code = atoi(line + 2 + sizeof name - 1);
  }
  ans->body = sep + 4;
  ans->body_len = raw->len - (size_t)(ans->body - raw->data);
out:
  close(fd);
  return err;
}

static void add_env(buf_t *b, const char *name, int *first) {
  const char *v = getenv(name);
  if (v == NULL) return;
  buf_str(b, *first ? "" : ",");
  *first = 0;
  buf_json(b, name, strlen(name));
  buf_str(b, ":");
  buf_json(b, v, strlen(v));
}

int main(void) {
  static const char *const ENV[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};
  buf_t in = {0};
  for (;;) {
    buf_grow(&in, 65536);
    ssize_t r = read(0, in.data + in.len, 65536);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    in.len += (size_t)r;
    in.data[in.len] = '\0';
    if (in.len > MAX_INPUT) return fail("1.0.0", CODE_DECODE, "", "network config on stdin is larger than %d bytes", MAX_INPUT);
  }
  if (in.data == NULL) buf_str(&in, "");

  const char *command = getenv("CNI_COMMAND");
  int is_del = command != NULL && strcmp(command, "DEL") == 0;
  conf_t conf = {.timeout_seconds = DEFAULT_TIMEOUT_MS / 1000.0, .socket_ok = 1};
  strcpy(conf.socket, DEFAULT_SOCKET);
  scan_t s = {in.data, in.data + in.len};
  int valid = scan_value(&s, 0);
  skip_ws(&s);
  valid = valid && s.p == s.end;
  if (valid) each_member(in.data, in.data + in.len, read_conf_member, &conf);
  const char *version = supported(conf.cni_version) ? conf.cni_version : "1.0.0";

  if (command == NULL || command[0] == '\0') {
    return fail(version, CODE_INVALID_ENV, "", "CNI_COMMAND is not set; warren-cni is a CNI plugin run by the container runtime");
  }
  if (strcmp(command, "VERSION") == 0) {
    buf_t out = {0};
    buf_str(&out, "{\"cniVersion\":");
    buf_json(&out, supported(conf.cni_version) ? conf.cni_version : "1.1.0", strlen(supported(conf.cni_version) ? conf.cni_version : "1.1.0"));
    buf_str(&out, ",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n");
    write_all(1, out.data, out.len);
    return 0;
  }
  if (!valid) {
    if (is_del) return 0;
    return fail(version, CODE_DECODE, "", "network config on stdin is not valid JSON");
  }
  if (!conf.socket_ok) {
    if (is_del) return 0;
    return fail(version, 7, "", "invalid network config: agentSocket: must be an absolute path");
  }

  // Excluded namespaces never wait for the agent: ADD passes prevResult through
  // once the request is complete enough for the agent to have accepted it.
  char ns[256];
  const char *pod_ns = cni_arg(getenv("CNI_ARGS"), "K8S_POD_NAMESPACE", ns, sizeof ns);
  if (excluded(&conf, pod_ns)) {
    if (is_del) return 0;
    int complete = strcmp(command, "ADD") == 0 && supported(conf.cni_version) && strcmp(conf.type, "warren-cni") == 0 && conf.prev != NULL;
    for (size_t i = 1; complete && i < sizeof ENV / sizeof *ENV; i++) {
      const char *v = getenv(ENV[i]);
      complete = v != NULL && v[0] != '\0';
    }
    char tmp[256];
    complete = complete && cni_arg(getenv("CNI_ARGS"), "K8S_POD_NAME", tmp, sizeof tmp) && cni_arg(getenv("CNI_ARGS"), "K8S_POD_UID", tmp, sizeof tmp);
    if (complete) return pass_through(&conf);
    // Anything else about it: the agent gives the spec's answer.
  }

  buf_t payload = {0};
  int first = 1;
  buf_str(&payload, "{\"env\":{");
  for (size_t i = 0; i < sizeof ENV / sizeof *ENV; i++) add_env(&payload, ENV[i], &first);
  buf_str(&payload, "},\"stdin\":");
  buf_json(&payload, in.data, in.len);
  buf_str(&payload, "}");

  long long timeout_ms = (long long)(conf.timeout_seconds * 1000);
  if (is_del && timeout_ms > DEL_TIMEOUT_MS) timeout_ms = DEL_TIMEOUT_MS;
  buf_t raw = {0};
  answer_t ans = {0};
  int err = call_agent(conf.socket, &payload, now_ms() + timeout_ms, &raw, &ans);
  if (is_del) return 0; /* DEL never fails: the agent also learns of deleted pods from the API server */

  char pod[600];
  char name[256];
  snprintf(pod, sizeof pod, "pod %s/%s", pod_ns == NULL ? "" : pod_ns, cni_arg(getenv("CNI_ARGS"), "K8S_POD_NAME", name, sizeof name) ? name : "");
  if (err != 0) {
    char why[128];
    if (err == ETIMEDOUT) {
      snprintf(why, sizeof why, "no answer within %gs", conf.timeout_seconds);
    } else {
      snprintf(why, sizeof why, "%s %s: %s", err == EPROTO ? "answer" : "connect", errno_name(err), strerror(err));
    }
    return fail(version, CODE_TRY_AGAIN, errno_name(err),
                "warren node agent at %s did not confirm traffic redirection for %s (%s); is the warren node agent running on this node?",
                conf.socket, pod, why);
  }
  if (ans.status != 200 || ans.exit_code < 0) {
    char details[512];
    snprintf(details, sizeof details, "%.*s", (int)(ans.body_len < 500 ? ans.body_len : 500), ans.body);
    /* 503 (a retryable failure) is "try again later", as cniCodeForAgentStatus in src/errors/http-status.ts */
    return fail(version, ans.status == 503 ? CODE_TRY_AGAIN : CODE_AGENT_REFUSED, details, "warren node agent could not handle %s for %s (HTTP %d)", command, pod, ans.status);
  }
  write_all(1, ans.body, ans.body_len);
  return ans.exit_code;
}
