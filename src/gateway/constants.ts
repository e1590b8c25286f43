/**
 * Names shared by the waypoint controller, the node agents and the CLI
 * (docs/architecture.md §13). They follow Istio ambient's, with warren.io
 * where Istio says istio.io, so its waypoint documentation carries over.
 */
export const WAYPOINT_CLASS = 'warren-waypoint';
/** The GatewayClass's spec.controllerName: Gateways of the class are this controller's. */
export const WAYPOINT_CONTROLLER_NAME = 'warren.io/waypoint-controller';
export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const GATEWAY_VERSION = 'v1';

export const USE_WAYPOINT_LABEL = 'warren.io/use-waypoint';
export const USE_WAYPOINT_NAMESPACE_LABEL = 'warren.io/use-waypoint-namespace';
export const WAYPOINT_FOR_LABEL = 'warren.io/waypoint-for';
/** Set on a waypoint's pods and Service: which Gateway they serve (Gateway API's own label). */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
/** Set on every object the controller makes, so it lists them without a guess. */
export const MANAGED_LABEL = 'gateway.warren.io/managed';
export const MANAGED_VALUE = 'warren.io-waypoint-controller';

export type WaypointFor = 'service' | 'workload' | 'all' | 'none';
export const WAYPOINT_FOR_VALUES: readonly WaypointFor[] = ['service', 'workload', 'all', 'none'];

/** The waypoint's listener (HBONE, terminated by its node's agent) and the PROXY v2 port the agent hands streams to. */
export const WAYPOINT_PORTS = { mesh: 15008, proxy: 15088, status: 15021 } as const;
/** The waypoint process listens for PROXY v2 on loopback only: nothing but its own node's agent, inside the pod, can reach it. */
export const WAYPOINT_PROXY_ADDRESS = '127.0.0.1';
