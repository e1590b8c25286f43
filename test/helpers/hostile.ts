import fc from 'fast-check';

/**
 * Hostile inputs for the reliability tier's scenario 8 (test/reliability/hostile-inputs.test.ts):
 * a valid input with one field replaced, removed or joined by an unknown sibling, so the test
 * knows which field a refusal must name; and byte-level damage to the serialized input, where
 * only "refused cleanly, process still serving" can be asked.
 */

/** Values no schema expects: wrong types, control and astral characters, huge and path-like strings. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
  fc.constant('x'.repeat(70_000)),
  fc.constantFrom('', ' ', '../../../etc/passwd', '/proc/1/ns/net', '\u0000', '💥', '-1', '1e999', '__proto__', '*', '0.0.0.0/0', '::/0', '{"a":'),
);

/** A string an environment variable can hold (no NUL: execve cannot pass one). */
export const hostileEnvValue: fc.Arbitrary<string> = fc
  .oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constant('x'.repeat(5000)), fc.constantFrom('', '=', ';;;', 'K8S_POD_NAME', 'IgnoreUnknown=1;K8S_POD_NAME=', '/proc/self/ns/net', '../x'))
  .map((s) => s.replaceAll('\u0000', ''));

export type JsonPath = Array<string | number>;

/** Every path inside a JSON value (objects' keys and arrays' items), outermost first. */
export function pathsOf(value: unknown, prefix: JsonPath = []): JsonPath[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...pathsOf(v, [...prefix, i])]);
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])]);
  return [];
}

/** The name a refusal of a change at `path` must mention: its innermost key (array indexes are not names). */
export const fieldOf = (path: JsonPath): string => String([...path].reverse().find((p) => typeof p === 'string') ?? '(root)');

function edit(base: unknown, path: JsonPath, op: (parent: Record<string | number, unknown>, key: string | number) => void): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let parent = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  op(parent, path.at(-1)!);
  return copy;
}

export interface Mutation {
  value: unknown;
  /** the field a refusal must name */
  field: string;
  /** keys inside the replaced or removed value: a refusal may name the one it missed there instead */
  inner?: string[];
  what: string;
}

const at = (base: unknown, path: JsonPath): unknown => path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], base);
const innerKeys = (base: unknown, path: JsonPath): string[] => pathsOf(at(base, path)).map(fieldOf).filter((k) => k !== '(root)');

/** One field of `base` (at any depth under `under`) replaced by a hostile value, deleted, or given an unknown sibling. */
export function mutationOf(base: object, under: JsonPath = []): fc.Arbitrary<Mutation> {
  const paths = pathsOf(base).filter((p) => under.every((u, i) => p[i] === u) && p.length > under.length);
  if (paths.length === 0) throw new Error('mutationOf: nothing to mutate');
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...paths), hostileValue).map(([path, v]): Mutation => ({ value: edit(base, path, (p, k) => void (p[k] = v)), field: fieldOf(path), inner: innerKeys(base, path), what: `replace ${path.join('.')}` })) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(...paths).map((path): Mutation => ({
        value: edit(base, path, (p, k) => (Array.isArray(p) ? p.splice(Number(k), 1) : delete p[k])),
        field: fieldOf(path),
        inner: innerKeys(base, path),
        what: `delete ${path.join('.')}`,
      })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(...paths.filter((p) => typeof p.at(-1) === 'string')), fc.stringMatching(/^[a-z][a-zA-Z]{2,10}$/), hostileValue).map(([path, key, v]): Mutation => ({
        value: edit(base, path, (p) => void (p[`zz${key}`] = v)),
        field: `zz${key}`,
        what: `add ${[...path.slice(0, -1), `zz${key}`].join('.')}`,
      })),
    },
  );
}

/** `text` damaged at byte level: a byte flipped, a cut, a slice repeated, or random bytes. */
export const damagedText = (text: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.tuple(fc.nat(text.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, b]) => text.slice(0, i) + String.fromCharCode(b) + text.slice(i + 1)),
    fc.nat(text.length - 1).map((i) => text.slice(0, i)),
    fc.tuple(fc.nat(text.length - 1), fc.nat(text.length - 1)).map(([a, b]) => text.slice(0, Math.max(a, b)) + text.slice(Math.min(a, b))),
    fc.string({ unit: 'binary', maxLength: 200 }),
  );
