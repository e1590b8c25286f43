import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/**
 * One request to an upstream over undici's dispatch() (src/waypoint/upstream-pool.ts),
 * without undici's stream wrappers: the answer's head resolves `head`, and its
 * body goes straight to the sink the proxy attaches (the client's response),
 * with undici pausing the upstream socket while that sink is full.
 * Body chunks that arrive before a sink is attached are kept (the head
 * settles a promise, so the proxy attaches it a microtask later).
 */
export interface UpstreamHead {
  status: number;
  statusMessage: string | undefined;
  headers: IncomingHttpHeaders;
}

export type HeadResult = { kind: 'response'; head: UpstreamHead } | { kind: 'error'; sent: boolean; timeout: boolean };

export interface BodySink {
  /** false: the sink is full; call `resume` when it drained. */
  data(chunk: Buffer, resume: () => void): boolean;
  end(trailers: IncomingHttpHeaders): void;
  error(): void;
}

export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly head: Promise<HeadResult>;
  /** The upstream connection was up when the request went out (a failure after that may have reached the upstream). */
  private sent = false;
  private settled = false;
  private aborted = false;
  private controller: Dispatcher.DispatchController | undefined;
  private sink: BodySink | undefined;
  private early: Buffer[] = [];
  private finished: { trailers: IncomingHttpHeaders } | { failed: true } | undefined;
  private settle!: (r: HeadResult) => void;
  private readonly resume = (): void => this.controller?.resume();

  constructor() {
    this.head = new Promise((resolve) => (this.settle = resolve));
  }

  /** Gives up: before the head, `head` resolves as a timeout; after it, the upstream connection is closed. */
  timeout(): void {
    if (!this.settled) {
      this.settled = true;
      this.settle({ kind: 'error', sent: this.sent, timeout: true });
    }
    this.abort();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort(new Error('aborted by the waypoint'));
  }

  /** Where the body goes; what arrived already is handed over first. */
  attach(sink: BodySink): void {
    this.sink = sink;
    for (const c of this.early.splice(0)) sink.data(c, this.resume);
    if (this.finished === undefined) return;
    if ('trailers' in this.finished) sink.end(this.finished.trailers);
    else sink.error();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.sent = true;
    if (this.aborted) controller.abort(new Error('aborted by the waypoint'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    // 1xx: informational, the final answer follows (node:http's client hides them too)
    if (status < 200 || this.settled) return;
    this.settled = true;
    this.settle({ kind: 'response', head: { status, statusMessage, headers } });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.sink === undefined) this.early.push(chunk);
    else if (!this.sink.data(chunk, this.resume)) controller.pause();
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.sink === undefined) this.finished = { trailers };
    else this.sink.end(trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController, _err: Error): void {
    if (!this.settled) {
      this.settled = true;
      this.settle({ kind: 'error', sent: this.sent, timeout: false });
      return;
    }
    if (this.sink === undefined) this.finished = { failed: true };
    else this.sink.error();
  }
}

/** A sink that drops the body (an answer that is retried, a mirror's answer). */
export const DISCARD: BodySink = { data: () => true, end: () => undefined, error: () => undefined };
