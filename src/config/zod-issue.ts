import type { z } from 'zod';

/** The first problem zod found, as "field.path: message" ("(root)" for the whole input): errors name the field. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
}
