import type { z } from 'zod';
import { WarrenError } from '../errors/warren-error.js';

const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

export const commaList = (text: string | undefined): string[] | undefined =>
  text === undefined ? undefined : text.split(',').map((s) => s.trim()).filter((s) => s !== '');

/**
 * One process's configuration: flags over environment over the schema's
 * defaults. An invalid value is ERR_CONFIG naming the flag (whether it came
 * from the flag or its environment variable), so the fix is obvious.
 */
export function loadConfig<S extends z.ZodType>(schema: S, flags: Record<string, unknown>, fromEnv: Record<string, unknown>, lists: readonly string[] = []): z.infer<S> {
  const merged: Record<string, unknown> = {};
  // Flags not given are present as undefined and must not hide the environment.
  for (const source of [fromEnv, flags]) for (const [k, v] of Object.entries(source)) if (v !== undefined) merged[k] = v;
  for (const key of lists) if (typeof merged[key] === 'string') merged[key] = commaList(merged[key] as string);
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new WarrenError('ERR_CONFIG', `${flagName(String(issue.path[0] ?? ''))}: ${issue.message}`);
  }
  return parsed.data;
}
