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
  /** The AI credit balance cannot cover the call. */
  CREDITS_EXHAUSTED: 402,
  FORBIDDEN: 403,
  /** The workspace's AI mode is off (or BYOK without a key). */
  AI_DISABLED: 403,
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
  /** Too many AI calls of one user in flight at once. */
  AI_BUSY: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  GUEST_ERROR: 502,
  /** The AI upstream failed or could not be reached. */
  AI_UPSTREAM_ERROR: 502,
  NODE_UNAVAILABLE: 503,
  WORKSPACE_UNAVAILABLE: 503,
  /** No AI upstream is configured on this server. */
  AI_NOT_CONFIGURED: 503,
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
  what:
    | 'workspace'
    | 'api key'
    | 'template'
    | 'resource'
    | 'app'
    | 'setup script'
    | 'service spec'
    | 'service'
    | 'tool'
    | 'catalog app'
    | 'job'
    | 'log source',
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
