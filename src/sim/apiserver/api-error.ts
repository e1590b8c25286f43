/**
 * Kubernetes API errors travel as `Status` objects; reasons and codes follow
 * apimachinery's (NotFound 404, AlreadyExists/Conflict 409, Invalid 422,
 * Expired/Gone 410, BadRequest 400, Unauthorized 401, MethodNotAllowed 405).
 */
export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Expired'
  | 'Gone'
  | 'MethodNotAllowed'
  | 'UnsupportedMediaType'
  | 'InternalError';

const CODES: Record<StatusReason, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  AlreadyExists: 409,
  Conflict: 409,
  Expired: 410,
  Gone: 410,
  UnsupportedMediaType: 415,
  Invalid: 422,
  InternalError: 500,
};

export interface StatusCause {
  field: string;
  message: string;
  reason?: string;
}

export class ApiError extends Error {
  readonly reason: StatusReason;
  readonly code: number;
  readonly details: { name?: string; group?: string; kind?: string; causes?: StatusCause[] } | undefined;

  constructor(reason: StatusReason, message: string, details?: ApiError['details']) {
    super(message);
    this.reason = reason;
    this.code = CODES[reason];
    this.details = details;
  }

  toStatus(): Record<string, unknown> {
    return statusObject(this.code, this.reason, this.message, this.details);
  }
}

export function statusObject(code: number, reason: string, message: string, details?: ApiError['details']): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: code < 400 ? 'Success' : 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}
