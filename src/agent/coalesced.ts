/** A trigger that runs `fn` once, `ms` after the first of any number of calls. */
export function coalesced(ms: number, fn: () => void): (() => void) & { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const trigger = (): void => {
    timer ??= setTimeout(() => {
      timer = undefined;
      fn();
    }, ms);
  };
  return Object.assign(trigger, { cancel: () => clearTimeout(timer) });
}
