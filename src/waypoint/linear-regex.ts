import { setFlagsFromString } from 'node:v8';

/**
 * Regular expressions from routes and policies run on V8's linear-time
 * engine (the `l` flag, RE2's guarantee: no catastrophic backtracking on
 * any input), built into Node and switched on here once, before the first
 * such expression. Constructs it cannot run in linear time (backreferences,
 * lookaround) are refused when the route is compiled, naming the field.
 */
let enabled = false;

export function linearRegex(source: string): RegExp {
  if (!enabled) {
    setFlagsFromString('--enable-experimental-regexp-engine');
    enabled = true;
  }
  // Anchored: Gateway API and Envoy match the whole value, not a substring.
  return new RegExp(`^(?:${source})$`, 'l');
}
