import type { PolicyRoutingAnswer, PolicyRoutingRequest } from '../redirect/policy-routing.js';
import { call, native } from './netns-socket.js';

interface RouteBinding {
  netnsPolicyRouting(path: string, request: PolicyRoutingRequest): PolicyRoutingAnswer;
}

/**
 * Writes (or deletes) a pod's policy rule and route inside the netns at `path`
 * over rtnetlink (src/native/netns_route.cc), returning the kernel's answer to
 * each; what counts as done is src/redirect/policy-routing.ts's decision.
 * Throws NetnsSocketError when the netns cannot be entered.
 */
export function netnsPolicyRouting(path: string, request: PolicyRoutingRequest): PolicyRoutingAnswer {
  return call(() => (native() as unknown as RouteBinding).netnsPolicyRouting(path, request));
}
