import {
  GuestError,
  GuestProtocolError,
  GuestTimeoutError,
  GuestUnavailableError,
} from '../guest/index.ts'
import { ApiError, type ErrorCode } from '../http/errors.ts'

/**
 * What the agent's answers mean for the API caller. The agent answers 4xx for requests that
 * cannot be done as asked (a missing file, a name over 255 bytes, a file over the limit, a full
 * disk: see agent/router.ts) with the system's reason, which the caller gets as is. Any other
 * status is the agent failing, and so are its router's own refusals: the node sent something
 * this agent does not serve.
 */
const CALLER_ERRORS: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  403: 'FORBIDDEN',
  404: 'FILE_NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
}
const AGENT_REFUSALS = new Set(['NO_ROUTE', 'METHOD_NOT_ALLOWED'])

/** Turns a guest-channel failure into the API error a user can act on. */
export function guestError(err: unknown): never {
  if (err instanceof ApiError) throw err
  if (err instanceof GuestError) {
    const code = AGENT_REFUSALS.has(err.code) ? undefined : CALLER_ERRORS[err.status]
    if (code) throw new ApiError(code, err.message)
    throw new ApiError('GUEST_ERROR', `the workspace's agent failed: ${err.message}`)
  }
  if (err instanceof GuestProtocolError) {
    throw new ApiError('GUEST_ERROR', 'the workspace answered outside the protocol')
  }
  if (err instanceof GuestTimeoutError) {
    throw new ApiError('TIMEOUT', 'the workspace did not answer in time')
  }
  if (err instanceof GuestUnavailableError) {
    throw new ApiError('WORKSPACE_UNAVAILABLE', 'the workspace agent is not reachable right now')
  }
  throw err
}
