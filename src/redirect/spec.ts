import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { WarrenError } from '../errors/warren-error.js';

const ipAddress = z.string().refine((s) => isIPv4(s) || isIPv6(s), { error: (i) => `not an IP address: ${JSON.stringify(i.input)}` });

const podSpecSchema = z.strictObject({
  podIPs: z.array(ipAddress).min(1, { error: 'a pod needs at least one IP' }),
});

const nodeSpecSchema = z.strictObject({
  podIPs: z.array(ipAddress),
});

/** What the pod rule builders need to know about a pod (after defaults). */
export type PodRedirectSpec = z.infer<typeof podSpecSchema>;
/** What callers pass in, validated by parsePodRedirectSpec. */
export type PodRedirectInput = z.input<typeof podSpecSchema>;
/** What the node rule builders need: the enrolled pods' IPs on this node. */
export type NodeRedirectSpec = z.infer<typeof nodeSpecSchema>;

export interface Families {
  ipv4: boolean;
  ipv6: boolean;
}

function parse<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const res = schema.safeParse(input);
  if (res.success) return res.data;
  const issues = res.error.issues.map((i) => {
    const path = i.path.map((p, n) => (typeof p === 'number' ? `[${p}]` : n === 0 ? String(p) : `.${String(p)}`)).join('');
    return `${path || '(root)'}: ${i.message}`;
  });
  throw new WarrenError('ERR_INVALID_REDIRECT_SPEC', `invalid ${what}: ${issues.join('; ')}`);
}

export function parsePodRedirectSpec(input: unknown): PodRedirectSpec {
  return parse(podSpecSchema, input, 'pod redirect spec');
}

export function parseNodeRedirectSpec(input: unknown): NodeRedirectSpec {
  return parse(nodeSpecSchema, input, 'node redirect spec');
}

/** Rules are emitted only for the IP families the pod actually has. */
export function familiesOf(ips: readonly string[]): Families {
  return { ipv4: ips.some((ip) => isIPv4(ip)), ipv6: ips.some((ip) => isIPv6(ip)) };
}
