import type { KubeObject } from './store.js';

/**
 * Server-side printing (meta.k8s.io/v1 Table), which `kubectl get` asks for:
 * the columns kube-apiserver prints for the kinds users look at, NAME and
 * AGE for the rest. Priority 1 columns show with `-o wide`.
 */
interface Column {
  name: string;
  type: 'string' | 'integer';
  priority?: number;
  cell: (o: KubeObject) => string | number;
}

/** apimachinery's duration.HumanDuration, which every AGE column uses. */
export function humanDuration(seconds: number): string {
  if (seconds < 0) return '<invalid>';
  const s = Math.floor(seconds);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 192) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

const age: Column = {
  name: 'Age',
  type: 'string',
  cell: (o) => humanDuration((Date.now() - Date.parse(o.metadata.creationTimestamp ?? '')) / 1000),
};
const name: Column = { name: 'Name', type: 'string', cell: (o) => o.metadata.name };

function podStatus(o: KubeObject): string {
  if (o.metadata.deletionTimestamp) return 'Terminating';
  const waiting = (o.status?.containerStatuses ?? []).find((c: any) => c.state?.waiting)?.state.waiting.reason;
  return waiting ?? o.status?.phase ?? 'Pending';
}

function servicePorts(o: KubeObject): string {
  const ports = (o.spec?.ports ?? []) as Array<{ port: number; protocol?: string; nodePort?: number }>;
  if (ports.length === 0) return '<none>';
  return ports.map((p) => `${p.port}${p.nodePort ? ':' + p.nodePort : ''}/${p.protocol ?? 'TCP'}`).join(',');
}

const selectorText = (sel: Record<string, string> | undefined): string =>
  sel === undefined || Object.keys(sel).length === 0 ? '<none>' : Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(',');

const COLUMNS: Record<string, Column[]> = {
  Pod: [
    name,
    {
      name: 'Ready',
      type: 'string',
      cell: (o) => {
        const statuses = (o.status?.containerStatuses ?? []) as Array<{ ready?: boolean }>;
        const total = (o.spec?.containers ?? []).length;
        return `${statuses.filter((c) => c.ready).length}/${total}`;
      },
    },
    { name: 'Status', type: 'string', cell: podStatus },
    { name: 'Restarts', type: 'integer', cell: (o) => ((o.status?.containerStatuses ?? []) as Array<{ restartCount?: number }>).reduce((n, c) => n + (c.restartCount ?? 0), 0) },
    age,
    { name: 'IP', type: 'string', priority: 1, cell: (o) => o.status?.podIP ?? '<none>' },
    { name: 'Node', type: 'string', priority: 1, cell: (o) => o.spec?.nodeName ?? '<none>' },
  ],
  Service: [
    name,
    { name: 'Type', type: 'string', cell: (o) => o.spec?.type ?? 'ClusterIP' },
    { name: 'Cluster-IP', type: 'string', cell: (o) => o.spec?.clusterIP ?? '<none>' },
    { name: 'External-IP', type: 'string', cell: () => '<none>' },
    { name: 'Port(s)', type: 'string', cell: servicePorts },
    age,
    { name: 'Selector', type: 'string', priority: 1, cell: (o) => selectorText(o.spec?.selector) },
  ],
  Deployment: [
    name,
    { name: 'Ready', type: 'string', cell: (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 1}` },
    { name: 'Up-to-date', type: 'integer', cell: (o) => o.status?.updatedReplicas ?? 0 },
    { name: 'Available', type: 'integer', cell: (o) => o.status?.availableReplicas ?? 0 },
    age,
  ],
  Node: [
    name,
    {
      name: 'Status',
      type: 'string',
      cell: (o) => ((o.status?.conditions ?? []) as Array<{ type: string; status: string }>).find((c) => c.type === 'Ready')?.status === 'True' ? 'Ready' : 'NotReady',
    },
    { name: 'Roles', type: 'string', cell: () => '<none>' },
    age,
    { name: 'Version', type: 'string', cell: (o) => o.status?.nodeInfo?.kubeletVersion ?? '' },
    { name: 'Internal-IP', type: 'string', priority: 1, cell: (o) => o.status?.addresses?.find((a: any) => a.type === 'InternalIP')?.address ?? '<none>' },
  ],
  Namespace: [name, { name: 'Status', type: 'string', cell: (o) => o.status?.phase ?? 'Active' }, age],
  EndpointSlice: [
    name,
    { name: 'AddressType', type: 'string', cell: (o) => o.addressType ?? '' },
    { name: 'Ports', type: 'string', cell: (o) => ((o.ports ?? []) as Array<{ port?: number }>).map((p) => p.port).join(',') || '<unset>' },
    {
      name: 'Endpoints',
      type: 'string',
      cell: (o) => ((o.endpoints ?? []) as Array<{ addresses: string[] }>).flatMap((e) => e.addresses).join(',') || '<unset>',
    },
    age,
  ],
};

function columnsFor(kind: string): Column[] {
  return COLUMNS[kind] ?? [name, age];
}

function row(o: KubeObject, columns: Column[], includeObject: string): object {
  const object =
    includeObject === 'Object'
      ? o
      : includeObject === 'None'
        ? undefined
        : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
  return { cells: columns.map((c) => c.cell(o)), ...(object === undefined ? {} : { object }) };
}

export function toTable(kind: string, objects: KubeObject[], resourceVersion: string, includeObject: string, withColumns = true): object {
  const columns = columnsFor(kind);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    ...(withColumns
      ? {
          columnDefinitions: columns.map((c) => ({
            name: c.name,
            type: c.type,
            format: c.name === 'Name' ? 'name' : '',
            description: '',
            priority: c.priority ?? 0,
          })),
        }
      : {}),
    rows: objects.map((o) => row(o, columns, includeObject)),
  };
}

/** True when the client prefers a Table (kubectl get), as its Accept header lists it first. */
export function wantsTable(accept: string | undefined): boolean {
  const first = (accept ?? '').split(',')[0] ?? '';
  return /as=Table/.test(first) && /g=meta\.k8s\.io/.test(first);
}
