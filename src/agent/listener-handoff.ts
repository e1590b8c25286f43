import { chmodSync, closeSync, existsSync, rmSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenerInfo, recvPacket, sendPacket, seqpacketAccept, seqpacketConnect, seqpacketListen } from '../native/fd-passing.js';
import { peerCredentials } from '../native/netns-socket.js';
import type { OwnedListener } from '../tunnel/pod-listener.js';
import { checkHanded, fromNew, fromOld, parseMessage, type FromNew, type FromOld, type HandedListener, type RulesInPlace } from './handoff-messages.js';

type Log = (msg: string, fields: Record<string, unknown>) => void;

/** An enrolled pod's listeners as the old agent hands them over. */
export interface HandoffSource {
  uid: string;
  /** the sockets it accepts on now; none once it stopped (their descriptors may be closed) */
  listenerSockets(): OwnedListener[];
  /** the new agent accepts on them: stop accepting, keep the connections (they drain at SIGTERM) */
  stopAccepting(): void;
  /** the rules this agent wrote in the pod's netns, undefined when it cannot say (its netns is gone) */
  rules(): RulesInPlace | undefined;
}

export interface HandoffServerOptions {
  /** a root-only socket in the agent's state dir */
  path: string;
  sources(): HandoffSource[];
  /** the new agent asked: stop what would compete with it (the CNI socket, enrolling new pods) */
  onTake(): void;
  log: Log;
}

export interface HandoffServer {
  /** a new agent is connected and has not said `done` */
  inProgress(): boolean;
  /** resolves when no hand-off is in progress, or after `ms` */
  settled(ms: number): Promise<void>;
  /** stops listening; the socket file stays: a successor may have bound its own there */
  close(): void;
}

const encode = (m: FromOld | FromNew): Buffer => Buffer.from(JSON.stringify(m));
const closeAll = (fds: Iterable<number>): void => {
  for (const fd of fds) closeSync(fd);
};
/** The peer's uid must be root's: anyone else never gets a descriptor, and is never believed. */
const peerIsRoot = (fd: number): number | true => {
  const { uid } = peerCredentials(fd);
  return uid === 0 ? true : uid;
};

/** Idle, the socket is checked this often for a new agent; during a hand-off, more often. */
const IDLE_POLL_MS = 200;
const ACTIVE_POLL_MS = 5;

/**
 * The old agent's side: listens at `path` (0600) for a new agent on the same
 * node and hands it every enrolled pod's listening sockets (SCM_RIGHTS). The
 * kernel socket and its accept queue stay the same, so no connection waiting
 * in it is lost when this process stops accepting (closing a SO_REUSEPORT
 * listener would reset them: docs/architecture.md §4).
 */
export function serveHandoff(o: HandoffServerOptions): HandoffServer {
  rmSync(o.path, { force: true });
  const listenFd = seqpacketListen(o.path);
  chmodSync(o.path, 0o600);
  const inode = statSync(o.path).ino;
  let peer: number | undefined;
  let taking = false;
  let handed = new Map<string, HandoffSource>();
  let accepted = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const end = (reason: string): void => {
    if (peer === undefined) return;
    closeSync(peer);
    peer = undefined;
    taking = false;
    o.log('listener hand-off ended', { reason, podsHanded: handed.size, podsTakenOver: accepted });
    handed = new Map();
    accepted = 0;
  };

  const give = (fd: number): void => {
    o.onTake();
    // Synchronous from here: a source's descriptors are open while it lists them (it stops only on the event loop).
    let pods = 0;
    for (const source of o.sources()) {
      const listeners = source.listenerSockets();
      if (listeners.length === 0) continue;
      const rules = source.rules();
      const message = encode({
        type: 'pod',
        uid: source.uid,
        listeners: listeners.map(({ family, port }) => ({ family, port: port as HandedListener['port'] })),
        ...(rules === undefined ? {} : { rules }),
      });
      if (!sendPacket(fd, message, listeners.map((l) => l.fd))) return end('the new agent is not reading');
      handed.set(source.uid, source);
      pods++;
    }
    if (!sendPacket(fd, encode({ type: 'end', pods }))) end('the new agent is not reading');
  };

  const read = (fd: number): void => {
    for (let packet = recvPacket(fd); packet !== undefined && peer === fd; packet = recvPacket(fd)) {
      closeAll(packet.fds); // the new agent has none to give
      if (packet.data.length === 0) return end('the new agent closed the connection');
      const parsed = parseMessage(fromNew, packet.data);
      if (!parsed.ok) return end(`invalid message: ${parsed.reason}`);
      const m = parsed.message;
      if (m.type === 'done') return end('done');
      if (m.type === 'accepting') {
        const source = handed.get(m.uid);
        if (source === undefined) continue;
        handed.delete(m.uid);
        source.stopAccepting();
        accepted++;
        continue;
      }
      if (taking) continue;
      taking = true;
      o.log('listener hand-off: a new agent takes over', {});
      give(fd);
    }
  };

  const poll = (): void => {
    try {
      if (peer === undefined) {
        const c = seqpacketAccept(listenFd);
        if (c !== undefined) {
          const root = peerIsRoot(c);
          if (root === true) peer = c;
          else {
            closeSync(c);
            o.log('listener hand-off refused: the peer is not root', { uid: root });
          }
        }
      }
      if (peer !== undefined) read(peer);
    } catch (err) {
      end(`failed: ${(err as Error).message}`);
    }
    if (!closed) timer = setTimeout(poll, peer === undefined ? IDLE_POLL_MS : ACTIVE_POLL_MS).unref();
  };
  poll();

  return {
    inProgress: () => peer !== undefined,
    async settled(ms) {
      const until = Date.now() + ms;
      while (peer !== undefined && Date.now() < until) await sleep(ACTIVE_POLL_MS * 4);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      end('this agent stops');
      closeSync(listenFd);
      // the path, unless a successor has bound its own there since
      if (statSync(o.path, { throwIfNoEntry: false })?.ino === inode) rmSync(o.path, { force: true });
    },
  };
}

/** The sockets the new agent received, pod by pod, until it adopts them. */
export interface Adoption {
  /** pods whose sockets arrived */
  readonly pods: number;
  /** the handed socket for this pod, family and port (now the caller's), or undefined: make one */
  take(uid: string, family: 4 | 6, port: number): number | undefined;
  /** the rules the old agent said it wrote in this pod's netns, until `finish` */
  rules(uid: string): RulesInPlace | undefined;
  /** this process accepts on the pod's sockets: the old agent stops accepting on them */
  accepting(uid: string): void;
  /** closes the sockets not adopted and tells the old agent it is over */
  finish(): void;
}

/**
 * The new agent's side, before it enrolls any pod: asks the agent listening
 * at `path` (if any, and only if root) for its listeners. Fails closed: on any
 * error, a refused message or no answer within `timeoutMs`, every received
 * descriptor is closed and undefined returned — the agent then makes its own
 * listeners (SO_REUSEPORT beside the old one's), as it always could.
 */
export async function receiveHandoff(o: { path: string; timeoutMs: number; log: Log }): Promise<Adoption | undefined> {
  if (!existsSync(o.path)) return undefined;
  let fd: number;
  try {
    fd = seqpacketConnect(o.path);
  } catch (err) {
    o.log('listener hand-off: no agent to take over from', { err: (err as Error).message });
    return undefined;
  }
  const pods = new Map<string, OwnedListener[]>();
  const rules = new Map<string, RulesInPlace>();
  const fail = (reason: string): undefined => {
    closeAll([...pods.values()].flat().map((l) => l.fd));
    closeSync(fd);
    o.log('listener hand-off failed; this agent makes its own listeners', { reason });
    return undefined;
  };
  try {
    const root = peerIsRoot(fd);
    if (root !== true) return fail(`the agent at ${o.path} runs as uid ${root}, not root`);
    if (!sendPacket(fd, encode({ type: 'take' }))) return fail('the old agent is not reading');
    const until = Date.now() + o.timeoutMs;
    for (;;) {
      const packet = recvPacket(fd);
      if (packet === undefined) {
        if (Date.now() > until) return fail(`no end of hand-off within ${o.timeoutMs} ms`);
        await sleep(ACTIVE_POLL_MS);
        continue;
      }
      if (packet.data.length === 0 && packet.fds.length === 0) return fail('the old agent closed the connection');
      const parsed = parseMessage(fromOld, packet.data);
      if (!parsed.ok) {
        closeAll(packet.fds);
        return fail(`invalid message: ${parsed.reason}`);
      }
      const m = parsed.message;
      if (m.type === 'end') break;
      if (m.rules !== undefined && !rules.has(m.uid)) rules.set(m.uid, m.rules);
      const refused = checkHanded(m.listeners, packet.fds.map((f) => listenerInfo(f)));
      if (refused !== undefined || pods.has(m.uid)) {
        closeAll(packet.fds);
        o.log('listener hand-off: a pod’s sockets refused', { uid: m.uid, reason: refused ?? 'uid: sent twice' });
        continue;
      }
      pods.set(m.uid, m.listeners.map((l, i) => ({ ...l, fd: packet.fds[i]! })));
    }
  } catch (err) {
    return fail((err as Error).message);
  }
  o.log('listener hand-off: sockets received', { pods: pods.size });
  const count = pods.size;
  let open = true;
  const send = (m: FromNew): void => {
    if (!open) return;
    try {
      sendPacket(fd, encode(m));
    } catch {
      // the old agent went away: it no longer accepts anyway
    }
  };
  const adoption: Adoption = {
    pods: count,
    take(uid, family, port) {
      const listeners = pods.get(uid);
      const i = listeners?.findIndex((l) => l.family === family && l.port === port) ?? -1;
      if (listeners === undefined || i < 0) return undefined;
      return listeners.splice(i, 1)[0]!.fd;
    },
    rules: (uid) => rules.get(uid),
    accepting(uid) {
      const left = pods.get(uid);
      if (left === undefined) return;
      pods.delete(uid);
      closeAll(left.map((l) => l.fd));
      send({ type: 'accepting', uid });
      if (pods.size === 0) adoption.finish();
    },
    finish() {
      if (!open) return;
      closeAll([...pods.values()].flat().map((l) => l.fd));
      pods.clear();
      rules.clear();
      send({ type: 'done' });
      open = false;
      closeSync(fd);
    },
  };
  if (count === 0) adoption.finish();
  return adoption;
}
