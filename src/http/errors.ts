/**
 * The one registry of error codes the API answers with. Every thrown ApiError carries a code from
 * here; the error handler maps it to its HTTP status and the `{"error":{"code","message"}}` body.
 */
export const errorCodes = {
  BAD_REQUEST: 400,
  INVALID_JSON: 400,
  VALIDATION_ERROR: 400,
  ALREADY_RUNNING: 400,
  NOT_RUNNING: 400,
  UNAUTHORIZED: 401,
  LIMIT_EXCEEDED: 402,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  WORKSPACE_NOT_FOUND: 404,
  API_KEY_NOT_FOUND: 404,
  TEMPLATE_NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  SNAPSHOT_NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  NAME_TAKEN: 409,
  INVALID_STATE: 409,
  STALE_VERSION: 409,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  GUEST_ERROR: 502,
  NODE_UNAVAILABLE: 503,
  WORKSPACE_UNAVAILABLE: 503,
  TIMEOUT: 504,
} as const

export type ErrorCode = keyof typeof errorCodes

export class ApiError extends Error {
  readonly statusCode: number
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message)
    this.statusCode = errorCodes[code]
  }
}

export function notFound(
  what: 'workspace' | 'api key' | 'template' | 'resource',
  id: string,
): ApiError {
  const code: ErrorCode =
    what === 'workspace'
      ? 'WORKSPACE_NOT_FOUND'
      : what === 'api key'
        ? 'API_KEY_NOT_FOUND'
        : what === 'template'
          ? 'TEMPLATE_NOT_FOUND'
          : 'NOT_FOUND'
  return new ApiError(code, `${what} ${id} not found`)
}
