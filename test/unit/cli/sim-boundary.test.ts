import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { execa } from 'execa';
import { relativeImports, sourceFiles } from '../../helpers/source-imports.js';

// The simulator is a separate world (docs/architecture.md §8): only the CLI's
// sim and demo commands reach into src/sim, and `warren node` starts without loading it.
const ROOT = new URL('../../../../', import.meta.url).pathname;
const SRC = join(ROOT, 'src');
const SIM = join(SRC, 'sim');
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const ALLOWED = new Set(['src/cli/sim.ts', 'src/cli/demo.ts']);

test('the import walk sees static, type-only, side-effect and dynamic imports', () => {
  const text = `import { a } from './a.js';\nimport type { B } from "../b.js";\nimport './c.js';\nexport { d } from './d.js';\nconst e = await import('./e.js');\nimport { x } from 'node:fs';`;
  assert.deepEqual(relativeImports(text).sort(), ['../b.js', './a.js', './c.js', './d.js', './e.js']);
});

test('nothing outside src/sim and the CLI sim/demo commands imports the simulator', () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const name = relative(ROOT, file);
    if (file.startsWith(SIM + '/') || ALLOWED.has(name)) continue;
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      if (target === SIM || target.startsWith(SIM + '/')) offenders.push(`${name} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, [], 'move what both need out of src/sim (a library folder) or behind a file contract such as src/cli/local-agents.ts');
});

/** The modules of dist/src/sim a CLI invocation loaded, recorded by a module hook in the child. */
async function simModulesLoaded(args: string[]): Promise<string[]> {
  const hook = `import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
const seen = new Set();
registerHooks({ load(url, context, next) { if (url.includes('/dist/src/')) seen.add(url); return next(url, context); } });
process.on('exit', () => { writeSync(2, 'LOADED ' + JSON.stringify([...seen]) + '\\n'); });`;
  const res = await execa(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, MAIN, ...args], { reject: false, timeout: 30_000 });
  const line = res.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  assert.ok(line !== undefined, `no module list from warren ${args.join(' ')}: ${res.stderr}`);
  const loaded = JSON.parse(line.slice('LOADED '.length)) as string[];
  assert.ok(loaded.some((u) => u.endsWith('/dist/src/cli/main.js')), 'the hook saw the CLI load');
  return loaded.filter((u) => u.includes('/dist/src/sim/'));
}

test('warren node and the operator commands start without loading the simulator; sim loads it on use', async () => {
  assert.deepEqual(await simModulesLoaded(['node', '--help']), []);
  assert.deepEqual(await simModulesLoaded(['status', '--help']), []);
  assert.ok((await simModulesLoaded(['sim', '--help'])).length > 0, 'the check sees simulator modules when they load');
});

test('the agent image layout (no dist/src/sim, no node-forge or fast-json-patch) runs warren node and says sim is not there', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warren-image-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The Dockerfile's runtime layout: package.json, dist/src without sim, build/Release, pruned node_modules.
  cpSync(join(ROOT, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true, filter: (src) => !src.startsWith(join(ROOT, 'dist', 'src', 'sim')) });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'build'), join(dir, 'build'));
  mkdirSync(join(dir, 'node_modules'));
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (name !== 'node-forge' && name !== 'fast-json-patch') symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  }
  const main = join(dir, 'dist', 'src', 'cli', 'main.js');
  const help = await execa(process.execPath, [main, 'node', '--help'], { reject: false, timeout: 30_000 });
  assert.equal(help.exitCode, 0, help.stderr);
  assert.match(help.stdout, /--node-name/);
  const sim = await execa(process.execPath, [main, 'sim', 'status'], { reject: false, timeout: 30_000 });
  assert.equal(sim.exitCode, 1);
  assert.match(sim.stderr, /no simulator \(the agent image leaves it out\).*\[ERR_NO_SIMULATOR\]/s);
});
