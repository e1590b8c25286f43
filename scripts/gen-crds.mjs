#!/usr/bin/env node
// Writes deploy/01-crd-*.yaml from src/policy/crds.ts, through the build in dist/.
// Usage: npm run gen:crds (builds first). test/unit/deploy-manifests.test.ts fails
// when the files and crds.ts disagree.
import { writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const { crdManifests } = await import(new URL('dist/src/policy/crd-manifests.js', root).href);
for (const { file, text } of crdManifests()) {
  writeFileSync(new URL(`deploy/${file}`, root), text);
  console.log(`deploy/${file}`);
}
