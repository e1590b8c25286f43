import { joinPem } from '../identity/pem.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { Dataplane, type CloseEvent, type DataplaneEvent, type DataplanePool, type DataplaneStats, type DecideCaptured, type DecideConnect, type Decision, type DecideSession, type ListenerKind } from '../native/dataplane.js';
import type { DataPlane } from './dataplane.js';

interface Loaded {
  id: SpiffeId;
  users: number;
  serial?: string;
  roots?: readonly string[];
}

/** What a pod's native proxy answers for its listeners' connections and CONNECTs (HBONE connections are the hub's). */
export interface NativeListenerOwner {
  decide(event: DecideCaptured | DecideConnect): Decision;
}

/** A flow a pod's proxy carries (NativeHub.carry): told when the workers report it open, then closed. */
export interface CarriedFlow {
  /** the client's IP: an inbound stream's peer, named when one of the HBONE bounds ends it */
  readonly peerIp: string;
  opened(): void;
  closed(event: CloseEvent): void;
}

/**
 * The agent's one native data path (DESIGN.md §12): its worker threads serve
 * every pod; events are routed to the pod proxy that owns the listener (or
 * the connection), and each identity's credentials are kept loaded in the
 * addon — refreshed when the certificate or the trust bundle changes.
 */
export class NativeHub {
  private readonly dp: Dataplane;
  private readonly listeners = new Map<number, NativeListenerOwner>();
  /** the flows the pods' proxies carry, until the workers report them closed */
  private readonly flows = new Map<number, CarriedFlow>();
  /** admitted HBONE connections: their peer and their release from the node's HboneGuard */
  private readonly sessions = new Map<number, { peer: string; release: () => void }>();
  /** identity name → the pods using it, and the serial and bundle its credentials were loaded with */
  private readonly loaded = new Map<string, Loaded>();
  private readonly refresh: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /** this turn's listing of the workers' pools (see pools()) */
  private listedPools: DataplanePool[] | undefined;

  constructor(private readonly plane: DataPlane, threads: number) {
    this.dp = new Dataplane(threads, (events) => this.dispatch(events), plane.hbone.limits);
    // Rotation: new certificates reach new connections within this period;
    // live ones keep theirs (the addon holds each SSL_CTX by reference).
    this.refresh = setInterval(() => this.refreshAll(), 5_000).unref();
    // A new trust bundle is loaded at once: the addon then cuts live sessions
    // whose peer chain it no longer accepts ("trust-revoked" on the server side).
    this.unsubscribe = plane.bundle.onChange(() => this.refreshAll());
  }

  listen(fd: number, kind: ListenerKind, owner: NativeListenerOwner, identity?: string): number {
    const id = this.dp.listen(fd, kind, identity);
    this.listeners.set(id, owner);
    return id;
  }

  /** The workers stop accepting on the listener; a connection one of them accepted just before is still decided by its owner. */
  stopAccepting(id: number): void {
    this.dp.unlisten(id);
  }

  /** Its connections' decisions are refused from now on (the pod left the mesh). */
  forget(id: number): void {
    this.listeners.delete(id);
  }

  /**
   * Keeps an identity's credentials loaded while a pod uses it (without a
   * valid certificate yet, they are loaded once there is one); false when
   * none is loaded now (its HBONE listener refuses handshakes until then).
   */
  useIdentity(id: SpiffeId): boolean {
    const name = formatSpiffeId(id);
    const entry = this.loaded.get(name) ?? { id, users: 0 };
    entry.users++;
    this.loaded.set(name, entry);
    return this.load(entry);
  }

  releaseIdentity(id: SpiffeId): void {
    const name = formatSpiffeId(id);
    const entry = this.loaded.get(name);
    if (entry === undefined || --entry.users > 0) return;
    this.loaded.delete(name);
    this.dp.dropIdentity(name);
  }

  /** Is the identity's current certificate loaded? (reloads it when it changed) */
  ready(id: SpiffeId): boolean {
    const entry = this.loaded.get(formatSpiffeId(id));
    return entry !== undefined && this.load(entry);
  }

  close(flow: number, reason: string): void {
    this.dp.close(flow, reason);
  }

  /** A flow its owner decided to carry, while deciding it: its open and close events go to it. */
  carry(id: number, flow: CarriedFlow): void {
    this.flows.set(id, flow);
  }

  stats(): DataplaneStats {
    return this.dp.stats();
  }

  /**
   * Every worker's pools, listed at most once per turn of the event loop: a listing blocks this
   * thread until every worker answers (≤ 200 ms), and the admin API's `/connections` asks once per
   * enrolled pod.
   */
  pools(): DataplanePool[] {
    if (this.listedPools === undefined) {
      this.listedPools = this.dp.pools();
      setImmediate(() => {
        this.listedPools = undefined;
      });
    }
    return this.listedPools;
  }

  stop(): void {
    clearInterval(this.refresh);
    this.unsubscribe();
    // no close event follows stop(): the node's counts are released here
    for (const session of this.sessions.values()) session.release();
    this.sessions.clear();
    this.dp.stop();
  }

  private load(entry: Loaded): boolean {
    const cert = this.plane.certificate(entry.id);
    if (cert === undefined) return false;
    const roots = this.plane.bundle.pems();
    if (entry.serial === cert.serial && entry.roots === roots) return true;
    this.dp.setIdentity(formatSpiffeId(entry.id), cert.privateKeyPem, joinPem(cert.chainPem), roots);
    entry.serial = cert.serial;
    entry.roots = roots;
    return true;
  }

  private refreshAll(): void {
    for (const entry of this.loaded.values()) {
      try {
        this.load(entry);
      } catch {
        // a refused certificate keeps the previous one loaded until it expires
      }
    }
  }

  /** HBONE connections are the node's to count (HboneGuard, shared with the Node data path's servers). */
  private admit(e: DecideSession): Decision {
    if (!this.listeners.has(e.listener)) return { action: 'reset', reason: 'the pod is no longer enrolled' };
    const admitted = this.plane.hbone.admit(e.srcIp);
    if (typeof admitted === 'string') {
      this.plane.hbone.refused(admitted, { peer: e.srcIp, message: this.plane.hbone.refusedMessage(e.srcIp, admitted) });
      return { action: 'reset', reason: admitted };
    }
    this.sessions.set(e.id, { peer: e.srcIp, release: admitted });
    return { action: 'admit' };
  }

  /** A closed HBONE connection or flow: released (a connection), counted when one of the bounds ended it, and told (a carried flow). */
  private ended(e: CloseEvent): void {
    const session = this.sessions.get(e.id);
    if (session !== undefined) {
      this.sessions.delete(e.id);
      session.release();
    }
    const flow = this.flows.get(e.id);
    this.flows.delete(e.id);
    const peer = session?.peer ?? flow?.peerIp;
    if (e.refusal !== undefined && peer !== undefined)
      this.plane.hbone.refused(e.refusal, { peer, message: `HBONE ${session === undefined ? 'stream' : 'connection'} from ${peer} closed: ${e.error ?? e.refusal}` });
    flow?.closed(e);
  }

  private decide(e: DecideCaptured | DecideConnect): Decision {
    const owner = this.listeners.get(e.listener);
    if (owner === undefined) return { action: 'reset', reason: 'the pod is no longer enrolled' };
    try {
      return owner.decide(e);
    } catch (err) {
      // Fail closed: a decision that threw refuses the connection.
      return { action: 'reset', reason: (err as Error).message };
    }
  }

  private dispatch(events: DataplaneEvent[]): void {
    for (const e of events) {
      if (e.type === 'decide') {
        this.dp.resolve(e.id, e.kind === 'session' ? this.admit(e) : this.decide(e));
        continue;
      }
      try {
        if (e.type === 'open') this.flows.get(e.id)?.opened();
        else this.ended(e);
      } catch {
        // one flow's report (telemetry, access log) failing never stops the other events of the batch
      }
    }
  }
}
