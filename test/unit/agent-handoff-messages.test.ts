import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkHanded, fromNew, fromOld, parseMessage } from '../../src/agent/handoff-messages.js';

const UID = '0b6e8f9a-1111-4222-8333-444455556666';
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const listening = (family: 4 | 6, port: number) => ({ family, port, tcp: true, listening: true });

test('hand-off messages: valid ones parse, every refusal names the field', () => {
  assert.deepEqual(parseMessage(fromNew, json({ type: 'take' })), { ok: true, message: { type: 'take' } });
  assert.deepEqual(parseMessage(fromOld, json({ type: 'pod', uid: UID, listeners: [{ family: 4, port: 15001 }] })).ok, true);
  const refused = (schema: typeof fromOld | typeof fromNew, v: unknown): string => {
    const r = parseMessage(schema as typeof fromOld, typeof v === 'string' ? Buffer.from(v) : json(v));
    assert.equal(r.ok, false, JSON.stringify(v));
    return (r as { reason: string }).reason;
  };
  assert.equal(refused(fromNew, '{not json'), '(root): not JSON');
  assert.match(refused(fromNew, { type: 'take', extra: 1 }), /^\(root\)/);
  assert.match(refused(fromNew, { type: 'accepting', uid: '../etc' }), /^uid:/);
  assert.match(refused(fromOld, { type: 'pod', uid: UID, listeners: [{ family: 4, port: 22 }] }), /^listeners\.0\.port:/);
  assert.match(refused(fromOld, { type: 'pod', uid: UID, listeners: [{ family: 5, port: 15001 }] }), /^listeners\.0\.family:/);
  assert.match(refused(fromOld, { type: 'pod', uid: UID, listeners: [] }), /^listeners:/);
  assert.match(refused(fromOld, { type: 'pod', uid: UID, listeners: Array(7).fill({ family: 4, port: 15001 }) }), /^listeners:/);
  assert.match(refused(fromOld, { type: 'end', pods: -1 }), /^pods:/);
  // the new agent's words are not the old one's
  assert.match(refused(fromOld, { type: 'take' }), /^type:/);
});

test('hand-off descriptors: adopted only when each is the listening TCP socket its message names', () => {
  const named = [
    { family: 4, port: 15001 },
    { family: 6, port: 15008 },
  ] as const;
  assert.equal(checkHanded(named, [listening(4, 15001), listening(6, 15008)]), undefined);
  assert.equal(checkHanded(named, [listening(4, 15001)]), 'listeners: 2 named, 1 descriptors attached');
  assert.equal(checkHanded(named, [listening(4, 15001), listening(6, 15008), listening(4, 15006)]), 'listeners: 2 named, 3 descriptors attached');
  assert.equal(checkHanded(named, [listening(4, 15001), { ...listening(6, 15008), listening: false }]), 'listeners.1: not a listening TCP socket');
  assert.equal(checkHanded(named, [{ ...listening(4, 15001), tcp: false }, listening(6, 15008)]), 'listeners.0: not a listening TCP socket');
  assert.equal(checkHanded(named, [listening(4, 15006), listening(6, 15008)]), 'listeners.0: IPv4 port 15006, named IPv4 port 15001');
  assert.equal(checkHanded(named, [listening(6, 15001), listening(6, 15008)]), 'listeners.0: IPv6 port 15001, named IPv4 port 15001');
});

test('hand-off pod messages may say which rules the old agent wrote: an id of 64 hex digits and the netns inode, or nothing', () => {
  const pod = { type: 'pod', uid: UID, listeners: [{ family: 4, port: 15001 }] };
  const rules = { id: 'a'.repeat(64), netns: 4026532001 };
  assert.deepEqual(parseMessage(fromOld, json({ ...pod, rules })), { ok: true, message: { ...pod, rules } });
  const reason = (v: unknown): string => (parseMessage(fromOld, json(v)) as { reason?: string }).reason ?? 'accepted';
  assert.match(reason({ ...pod, rules: { ...rules, id: 'A'.repeat(64) } }), /^rules\.id: must be a rules id/);
  assert.match(reason({ ...pod, rules: { ...rules, id: 'a'.repeat(63) } }), /^rules\.id:/);
  assert.match(reason({ ...pod, rules: { ...rules, netns: 0 } }), /^rules\.netns:/);
  assert.match(reason({ ...pod, rules: { id: rules.id } }), /^rules\.netns:/);
  assert.match(reason({ ...pod, rules: { ...rules, extra: true } }), /^rules/);
});
