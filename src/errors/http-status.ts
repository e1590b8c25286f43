import { CNI_ERROR } from '../cni/cni-codes.js';
import type { ErrorCode } from './error-codes.js';
import { WarrenError } from './warren-error.js';

/** Failures that are the caller's mistake, as the status that says which. */
const CLIENT_ERROR_STATUS: Partial<Record<ErrorCode, 400 | 404>> = { ERR_EXPLAIN_QUERY: 400, ERR_EXPLAIN_NOT_FOUND: 404 };

/** The status of a failure that is the caller's mistake (a bad query, an unknown object), if it is one. */
export function clientErrorStatus(err: unknown): 400 | 404 | undefined {
  return err instanceof WarrenError ? CLIENT_ERROR_STATUS[err.code] : undefined;
}

/**
 * The one place a failure becomes the HTTP status of warren's own local
 * endpoints: the caller's mistake is 4xx; a retryable error is 503 (the CNI
 * plugin turns it into CNI code 11, "try again later", so the kubelet retries
 * the sandbox), anything else is 500 (the plugin reports it as a refusal).
 */
export function httpStatusForError(err: unknown): 400 | 404 | 500 | 503 {
  return clientErrorStatus(err) ?? (err instanceof WarrenError && err.retryable ? 503 : 500);
}

/**
 * The CNI result code the plugin reports for an agent's non-200 answer: 503 (retryable)
 * is "try again later", so the kubelet retries the sandbox; anything else refuses the
 * pod. The static plugin (src/cni/warren-cni.c) does the same; cni-plugin-binary.test.ts
 * holds the two equal.
 */
export function cniCodeForAgentStatus(status: number): typeof CNI_ERROR.tryAgainLater | typeof CNI_ERROR.agentRefused {
  return status === 503 ? CNI_ERROR.tryAgainLater : CNI_ERROR.agentRefused;
}
