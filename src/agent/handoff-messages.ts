import { z } from 'zod';
import { describeIssue } from '../config/zod-issue.js';
import { PORTS } from '../redirect/constants.js';
import type { ListenerInfo } from '../native/fd-passing.js';

/**
 * The listener hand-off between an old and a new agent on one node
 * (docs/architecture.md §4, "Agent upgrade"): one JSON object per SOCK_SEQPACKET
 * message. The new agent asks (`take`); the old sends one `pod` message per
 * enrolled pod, its listening sockets attached in the order of `listeners`,
 * then `end`; the new answers `accepting` once it accepts on a pod's sockets
 * (the old then stops accepting on them) and `done` when it adopted what it will.
 * A `pod` message may say which rules the old agent wrote in the pod's netns (`rules`):
 * the new one leaves them in place when they are what it would write.
 */
const family = z.union([z.literal(4), z.literal(6)]);
const port = z.union([z.literal(PORTS.outbound), z.literal(PORTS.inbound), z.literal(PORTS.hbone)]);
const uid = z.string().regex(/^[0-9a-f-]{1,64}$/, 'must be a pod UID');

/** The old agent's rules in the pod: their id (src/redirect/pod-rules-id.ts) and the inode of the netns they are in. */
const rulesInPlace = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{64}$/, 'must be a rules id (64 hex digits)'),
  netns: z.number().int().positive(),
});

const podMessage = z.strictObject({
  type: z.literal('pod'),
  uid,
  listeners: z.array(z.strictObject({ family, port })).min(1).max(6),
  rules: rulesInPlace.optional(),
});
export const fromOld = z.discriminatedUnion('type', [podMessage, z.strictObject({ type: z.literal('end'), pods: z.number().int().min(0) })]);
export const fromNew = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('take') }),
  z.strictObject({ type: z.literal('accepting'), uid }),
  z.strictObject({ type: z.literal('done') }),
]);
export type FromOld = z.infer<typeof fromOld>;
export type FromNew = z.infer<typeof fromNew>;
export type HandedListener = z.infer<typeof podMessage>['listeners'][number];
export type RulesInPlace = z.infer<typeof rulesInPlace>;

/** One message's bytes as `schema` reads them, or the reason (naming the field) it is refused. */
export function parseMessage<T>(schema: z.ZodType<T>, data: Buffer): { ok: true; message: T } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(data.toString('utf8'));
  } catch {
    return { ok: false, reason: '(root): not JSON' };
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? { ok: true, message: parsed.data } : { ok: false, reason: describeIssue(parsed.error) };
}

/**
 * Whether the descriptors that came with a `pod` message are the sockets it
 * names: as many as its listeners, each a listening TCP socket of that family
 * on that port. Anything else is refused whole (the new agent then makes that
 * pod's listeners itself), so a bad peer cannot make it accept on a socket of its choosing.
 */
export function checkHanded(listeners: readonly HandedListener[], received: readonly ListenerInfo[]): string | undefined {
  if (received.length !== listeners.length) return `listeners: ${listeners.length} named, ${received.length} descriptors attached`;
  for (const [i, want] of listeners.entries()) {
    const got = received[i]!;
    if (!got.tcp || !got.listening) return `listeners.${i}: not a listening TCP socket`;
    if (got.family !== want.family || got.port !== want.port) return `listeners.${i}: IPv${got.family} port ${got.port}, named IPv${want.family} port ${want.port}`;
  }
  return undefined;
}
