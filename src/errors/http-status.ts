import { WarrenError } from './warren-error.js';

/**
 * The one place a failure becomes the HTTP status of warren's own local
 * endpoints: a retryable error is 503 (the CNI plugin turns it into CNI code
 * 11, "try again later", so the kubelet retries the sandbox), anything else
 * is 500 (the plugin reports it as a refusal).
 */
export function httpStatusForError(err: unknown): 500 | 503 {
  return err instanceof WarrenError && err.retryable ? 503 : 500;
}
