import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import type { ErrorCode } from '../errors/error-codes.js';
import { WarrenError } from '../errors/warren-error.js';

/**
 * A JSON file validated by `schema`: undefined when it does not exist, a
 * WarrenError with `code` naming the file (and the bad field) when it is not
 * valid JSON or not of that shape; `hint` ends the message with what to do.
 */
export function readJsonFile<S extends z.ZodType>(path: string, schema: S, code: ErrorCode, hint = ''): z.infer<S> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new WarrenError(code, `${path} is not valid JSON (${(err as Error).message})${hint}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new WarrenError(code, `${path}: ${issue.path.join('.')}: ${issue.message}${hint}`);
  }
  return parsed.data;
}
