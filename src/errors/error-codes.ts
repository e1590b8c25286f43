/**
 * Every stable `code` a WarrenError carries (docs/architecture.md §10). Callers
 * and tests branch on these, never on message text; a new failure gets a new
 * code here. Codes Node itself sets (ERR_HTTP2_ERROR…) are not listed.
 */
export const ERROR_CODES = [
  // command line and configuration
  'ERR_USAGE',
  'ERR_PARSE_ARGS',
  'ERR_CONFIG',
  // node agent: enrollment, CNI endpoint, admin API
  'ERR_AGENT_NOT_SYNCED',
  'ERR_CNI_POD',
  'ERR_CNI_POD_NODE',
  'ERR_ADMIN',
  // the agent's own Kubernetes API client (src/k8s/lean/)
  'ERR_K8S_API',
  'ERR_K8S_WATCH_EVENT',
  'ERR_EXPLAIN_QUERY',
  'ERR_EXPLAIN_NOT_FOUND',
  'ERR_BODY_TOO_LARGE',
  // CNI plugin (one per CNI spec error code it reports) and its installation
  'ERR_CNI_VERSION',
  'ERR_CNI_ENV',
  'ERR_CNI_DECODE',
  'ERR_CNI_NETCONF',
  'ERR_CNI_AGENT_UNAVAILABLE',
  'ERR_CNI_AGENT_REFUSED',
  'ERR_CNI_PLUGIN',
  'ERR_CNI_INSTALL',
  'ERR_CNI_CONFIG',
  // redirection rules and the programs that apply them
  'ERR_INVALID_REDIRECT_SPEC',
  'ERR_BACKEND_UNAVAILABLE',
  'ERR_COMMAND_MISSING',
  'ERR_COMMAND_FAILED',
  // netns and the native addon
  'ERR_NATIVE_MISSING',
  'ERR_NATIVE_IDENTITY',
  'ERR_NETNS_SOCKET',
  'ERR_NETNS_NOT_FOUND',
  'ERR_NETNS_AMBIGUOUS',
  'ERR_INVALID_PORT',
  'ERR_NO_FD',
  // data path
  'ERR_HBONE',
  'ERR_UPSTREAM_CONNECT',
  // identity and the CA
  'ERR_SPIFFE_ID',
  'ERR_PEM',
  'ERR_BAD_CSR',
  'ERR_PEER_IDENTITY',
  'ERR_IDENTITY',
  'ERR_CA_REQUEST',
  'ERR_CA_ANSWER',
  'ERR_CA_SECRET',
  // policy
  'ERR_POLICY_INVALID',
  // simulator and demo
  'ERR_NO_SIMULATOR',
  'ERR_SIM_PREREQ',
  'ERR_SIM_CONFIG',
  'ERR_SIM_STATE',
  'ERR_SIM_RUNNING',
  'ERR_SIM_NOT_RUNNING',
  'ERR_SIM_START',
  'ERR_SIM_MESH',
  'ERR_SIM_POD',
  'ERR_SIM_APPLY',
  'ERR_DNS_MALFORMED',
  'ERR_DNS_ENCODE',
  'ERR_DNS_LISTEN',
  'ERR_DEMO',
  'ERR_PCAP',
  // the waypoint: PROXY protocol v2 from its node's agent, HTTPRoute/GRPCRoute compilation
  'ERR_PROXY_SIGNATURE',
  'ERR_PROXY_VERSION',
  'ERR_PROXY_COMMAND',
  'ERR_PROXY_FAMILY',
  'ERR_PROXY_LENGTH',
  'ERR_PROXY_ADDRESS',
  'ERR_PROXY_TLV',
  'ERR_PROXY_SPIFFE_ID',
  'ERR_ROUTE_INVALID',
  'ERR_WAYPOINT',
  // waypoint resilience policies: DestinationRule, VirtualService faults, BackendTrafficPolicy
  'ERR_DESTINATION_RULE_INVALID',
  'ERR_VIRTUAL_SERVICE_INVALID',
  'ERR_TRAFFIC_POLICY_INVALID',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];
