import type { ErrorCode } from './error-codes.js';

/**
 * Base of every error warren raises on purpose. `code` (one of error-codes.ts) is stable and
 * what callers and tests branch on; `retryable` says whether trying the same
 * operation again can succeed (the CNI plugin and reconcile loops use it
 * instead of guessing from message text).
 */
export class WarrenError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}
