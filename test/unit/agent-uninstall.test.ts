import { test } from 'node:test';
import assert from 'node:assert/strict';
import { annotationRemovalPatch } from '../../src/agent/uninstall.js';

test('uninstall deletes every annotation the agent wrote (merge patch null) and leaves the others', () => {
  const pod = (annotations?: Record<string, string>) => ({ metadata: { name: 'p', ...(annotations ? { annotations } : {}) } });
  assert.deepEqual(annotationRemovalPatch(pod({ 'warren.io/redirection': 'failed', 'warren.io/redirection-reason': 'no netns', team: 'a' })), {
    metadata: { annotations: { 'warren.io/redirection': null, 'warren.io/redirection-reason': null } },
  });
  assert.deepEqual(annotationRemovalPatch(pod({ 'warren.io/redirection': 'disabled' })), { metadata: { annotations: { 'warren.io/redirection': null } } });
  assert.equal(annotationRemovalPatch(pod({ team: 'a' })), undefined, 'no write for a pod the agent never touched');
  assert.equal(annotationRemovalPatch(pod()), undefined);
});
