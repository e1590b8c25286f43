import { z } from 'zod';

/**
 * Gateway API's route consent (docs/architecture.md §14): a route in another
 * namespace attaches to a Gateway only when one of its listeners admits that
 * namespace through `allowedRoutes.namespaces.from` — `Same` (the default:
 * only the Gateway's own namespace), `All`, or `Selector` (namespaces whose
 * labels match `selector`). Routes that attach to a Service (GAMMA) are not
 * subject to it.
 */

export type RouteAdmission = { allowed: true } | { allowed: false; message: string };

const requirement = z.object({ key: z.string(), operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']), values: z.array(z.string()).optional() });
const listenerSchema = z.object({
  name: z.string(),
  allowedRoutes: z
    .object({
      namespaces: z
        .object({
          from: z.enum(['All', 'Same', 'Selector']).optional(),
          selector: z.object({ matchLabels: z.record(z.string(), z.string()).optional(), matchExpressions: z.array(requirement).optional() }).optional(),
        })
        .optional(),
    })
    .optional(),
});
const gatewaySchema = z.object({ spec: z.object({ listeners: z.array(z.unknown()) }) });

type Listener = z.infer<typeof listenerSchema>;
type Selector = NonNullable<NonNullable<NonNullable<Listener['allowedRoutes']>['namespaces']>['selector']>;

/** A Kubernetes label selector: every matchLabels pair and every requirement must hold; an empty selector matches every namespace. */
function labelsMatch(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  return (selector.matchExpressions ?? []).every((r) => {
    const has = Object.hasOwn(labels, r.key);
    if (r.operator === 'Exists') return has;
    if (r.operator === 'DoesNotExist') return !has;
    const inValues = has && (r.values ?? []).includes(labels[r.key]!);
    return r.operator === 'In' ? inValues : !inValues;
  });
}

/** Why one listener does not admit the namespace, or undefined when it does. */
function refusal(listener: Listener, gatewayNamespace: string, routeNamespace: string, namespaceLabels: Readonly<Record<string, string>> | undefined): string | undefined {
  const ns = listener.allowedRoutes?.namespaces;
  const from = ns?.from ?? 'Same';
  if (from === 'All') return undefined;
  if (from === 'Same') return routeNamespace === gatewayNamespace ? undefined : `listener ${listener.name} admits routes from its own namespace ${gatewayNamespace} only (allowedRoutes.namespaces.from: Same)`;
  // Gateway API: Selector requires a selector; without one nothing is admitted (never all namespaces)
  if (ns?.selector === undefined) return `listener ${listener.name} has allowedRoutes.namespaces.from: Selector without a selector: it admits no namespace`;
  if (namespaceLabels === undefined) return `listener ${listener.name} selects namespaces by label and namespace ${routeNamespace} is not known`;
  return labelsMatch(ns.selector, namespaceLabels) ? undefined : `listener ${listener.name}'s allowedRoutes.namespaces.selector does not match namespace ${routeNamespace}'s labels`;
}

/**
 * Why no listener of `gateway` (a Gateway object as the API returns it)
 * admits `namespace`, one reason per listener; undefined when one does. A
 * listener that cannot be read admits nothing; a Gateway that cannot be read
 * admits only its own namespace (the default), so a malformed Gateway never
 * widens attachment. Routes (below) and waypoint bindings by label
 * (src/gateway/attachment.ts) both ask it.
 */
export function listenerRefusals(gateway: unknown, gatewayNamespace: string, namespace: string, namespaceLabels: Readonly<Record<string, string>> | undefined): string[] | undefined {
  const gw = gatewaySchema.safeParse(gateway);
  const raw = gw.success ? gw.data.spec.listeners : [{ name: 'mesh' }];
  const reasons: string[] = [];
  for (const [i, l] of raw.entries()) {
    const listener = listenerSchema.safeParse(l);
    const why = listener.success ? refusal(listener.data, gatewayNamespace, namespace, namespaceLabels) : `spec.listeners.${i}.allowedRoutes cannot be read: the listener admits no route`;
    if (why === undefined) return undefined;
    reasons.push(why);
  }
  return reasons.length > 0 ? reasons : ['it has none'];
}

/** Whether a route in `routeNamespace` may attach to `gateway`. */
export function admitsRoute(gateway: unknown, gatewayNamespace: string, routeNamespace: string, namespaceLabels: Readonly<Record<string, string>> | undefined): RouteAdmission {
  const reasons = listenerRefusals(gateway, gatewayNamespace, routeNamespace, namespaceLabels);
  return reasons === undefined ? { allowed: true } : { allowed: false, message: `route in namespace ${routeNamespace} is not allowed by the listeners of Gateway ${gatewayNamespace}: ${reasons.join('; ')}` };
}
