import { dumpYaml, loadYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { GATEWAY_API_CRDS } from '../gateway/crds.js';
import { NETWORKING_GROUP, RESILIENCE_CRDS } from '../resilience/crds.js';
import { WARREN_CRDS } from './crds.js';

const header = (source: string): string => `# Generated from ${source} by \`npm run gen:crds\`: edit that file, not this one.\n`;

/**
 * deploy/01-crd-<plural>.yaml for each of warren's CRDs (its policies and the Gateway API kinds): the objects the
 * simulator installs, as files for kubectl. `npm run gen:crds` writes them
 * and a unit test fails when the files and crds.ts disagree.
 */
export function crdManifests(): Array<{ file: string; text: string }> {
  return typedCrds().map((typed) => ({
    file: `01-crd-${typed.spec.names.plural}.yaml`,
    text: header(typed.spec.group === 'security.warren.io' ? 'src/policy/crds.ts' : typed.spec.group === NETWORKING_GROUP ? 'src/resilience/crds.ts' : 'src/gateway/crds.ts') + dumpYaml(typed, { lineWidth: -1, noRefs: true }),
  }));
}

/**
 * warren's CRDs as client-node's typed models. Its serializer writes model
 * property names, which differ from the wire names: a plain object's
 * `x-kubernetes-preserve-unknown-fields` would be dropped on the way out (and
 * the API server then prunes every policy's status). Loading the JSON maps them.
 */
export function typedCrds(): V1CustomResourceDefinition[] {
  return [...WARREN_CRDS, ...GATEWAY_API_CRDS, ...RESILIENCE_CRDS].map((crd) => loadYaml<V1CustomResourceDefinition>(JSON.stringify(crd)));
}
