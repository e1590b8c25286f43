import { test, type TestContext } from 'node:test';

/**
 * Root-tier tests: they need CAP_NET_ADMIN for netns, veth and rules. Without
 * root they are skipped locally, but fail when WARREN_REQUIRE_ROOT=1 (CI sets
 * it) so a green run always means the kernel tiers really ran.
 */
export function rootTest(name: string, fn: (t: TestContext) => Promise<void>): void {
  const isRoot = process.getuid?.() === 0;
  if (isRoot) {
    test(name, fn);
  } else if (process.env.WARREN_REQUIRE_ROOT === '1') {
    test(name, () => {
      throw new Error('this test needs root and WARREN_REQUIRE_ROOT=1 forbids skipping it');
    });
  } else {
    test(name, { skip: 'needs root (netns, veth, nftables)' }, () => {});
  }
}
