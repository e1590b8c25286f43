/**
 * Which leg of a pod's traffic a connection is: captured outbound, captured
 * plaintext inbound, or an inbound HBONE stream.
 */
export type ConnectionKind = 'outbound' | 'inbound' | 'hbone';

/**
 * A live connection as its pod's registry holds it. The native data path's flows are their own
 * entries (native-pod-proxy.ts): no closure or wrapper per connection, since idle connections
 * are what a node holds most of.
 */
export interface LiveConnection {
  readonly kind: ConnectionKind;
  /** false when the check that admitted it now refuses it; true when it is not re-checked (outbound, or not open yet) */
  allowed(): boolean;
  /** resets it */
  close(reason: string): void;
}

/** One live connection's entry, held by the proxy that carries it (the Node data path's sockets and streams). */
export interface Registration {
  /**
   * The check that admitted it (AuthorizationPolicy with the pod's current labels),
   * re-run when policies or the pod's labels change; a connection without one
   * (outbound) is never re-checked.
   */
  authorizedBy(check: () => boolean): void;
  /** the connection ended on its own */
  release(): void;
}

/** A live connection's entry is its registration too. */
class Entry implements Registration, LiveConnection {
  check?: () => boolean;

  constructor(
    private readonly pod: PodConnections,
    readonly kind: ConnectionKind,
    readonly close: (reason: string) => void,
  ) {}

  authorizedBy(check: () => boolean): void {
    this.check = check;
  }

  release(): void {
    this.pod.remove(this);
  }

  allowed(): boolean {
    return this.check === undefined || this.check();
  }
}

const UNTRACKED: Registration = { authorizedBy: () => {}, release: () => {} };

/**
 * The live connections of one enrolled pod, whichever data path carries them
 * (PodProxy's sockets and HBONE streams, or the native workers' flows): what
 * re-authorization, drain and the admin API's counts read.
 */
export class PodConnections {
  private readonly live = new Set<LiveConnection>();
  private closed = false;
  private emptied: (() => void) | undefined;

  constructor(private readonly forget: (pod: PodConnections) => void) {}

  /**
   * Tracks a connection until it is released; `close` resets it. Once the pod is
   * closed a new connection is reset at once (fail closed: its listeners are gone).
   */
  register(kind: ConnectionKind, close: (reason: string) => void): Registration {
    const entry = new Entry(this, kind, close);
    return this.add(entry) ? entry : UNTRACKED;
  }

  /** register() for a connection that is its own entry: false, and reset at once, once the pod is closed; `remove` ends it. */
  add(connection: LiveConnection): boolean {
    if (this.closed) {
      connection.close('the pod left the mesh');
      return false;
    }
    this.live.add(connection);
    return true;
  }

  /** Resets the connections their admitting check now refuses; returns how many. */
  reauthorize(): number {
    let n = 0;
    for (const entry of this.live) {
      if (entry.allowed()) continue;
      this.remove(entry);
      entry.close('a policy change denies this connection');
      n++;
    }
    return n;
  }

  count(kind?: ConnectionKind): number {
    if (kind === undefined) return this.live.size;
    let n = 0;
    for (const entry of this.live) if (entry.kind === kind) n++;
    return n;
  }

  /** Resolves once every connection ended on its own, or after `ms` (the drain period), whichever is first. */
  async settle(ms: number): Promise<void> {
    if (this.live.size === 0 || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.emptied = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.emptied = undefined;
  }

  /** Resets what is left and refuses what comes later: the pod left the mesh, or the agent stops. */
  close(reason: string): void {
    this.closed = true;
    for (const entry of [...this.live]) {
      this.live.delete(entry);
      entry.close(reason);
    }
    this.forget(this);
  }

  /** A connection ended on its own (an entry's release). */
  remove(entry: LiveConnection): void {
    if (!this.live.delete(entry)) return;
    if (this.live.size === 0) this.emptied?.();
  }
}

/**
 * The node agent's one registry of live proxied connections (ztunnel's
 * ConnectionManager, docs/architecture.md §4): each enrolled pod's connections,
 * re-authorized together when a policy changes, one pod's when its labels change,
 * drained per pod when it leaves the mesh or the agent stops.
 */
export class ConnectionRegistry {
  private readonly pods = new Set<PodConnections>();

  /** A new pod's connections (one per enrollment: a re-enrolled pod of the same name gets its own). */
  forPod(): PodConnections {
    const pod = new PodConnections((p) => this.pods.delete(p));
    this.pods.add(pod);
    return pod;
  }

  /** A policy changed: every pod's connections it now denies are reset. Returns how many. */
  reauthorize(): number {
    let n = 0;
    for (const pod of this.pods) n += pod.reauthorize();
    return n;
  }
}
