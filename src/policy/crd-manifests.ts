import { dumpYaml, loadYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { WARREN_CRDS } from './crds.js';

const HEADER = '# Generated from src/policy/crds.ts by `npm run gen:crds`: edit that file, not this one.\n';

/**
 * deploy/01-crd-<plural>.yaml for each of warren's CRDs: the objects the
 * simulator installs, as files for kubectl. `npm run gen:crds` writes them
 * and a unit test fails when the files and crds.ts disagree.
 */
export function crdManifests(): Array<{ file: string; text: string }> {
  return WARREN_CRDS.map((crd) => {
    // dumpYaml serializes client-node's typed models, whose property names differ from the
    // wire names (x-kubernetes-preserve-unknown-fields); loading the JSON first maps them.
    const typed = loadYaml<V1CustomResourceDefinition>(JSON.stringify(crd));
    return { file: `01-crd-${typed.spec.names.plural}.yaml`, text: HEADER + dumpYaml(typed, { lineWidth: -1, noRefs: true }) };
  });
}
