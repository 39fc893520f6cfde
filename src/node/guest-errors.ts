import {
  GuestError,
  GuestProtocolError,
  GuestTimeoutError,
  GuestUnavailableError,
} from '../guest/index.ts'
import { ApiError } from '../http/errors.ts'

/** Turns a guest-channel failure into the API error a user can act on. */
export function guestError(err: unknown): never {
  if (err instanceof ApiError) throw err
  if (err instanceof GuestError) {
    if (err.status === 404) throw new ApiError('FILE_NOT_FOUND', err.message)
    if (err.status >= 400 && err.status < 500) throw new ApiError('BAD_REQUEST', err.message)
    throw new ApiError('GUEST_ERROR', `the workspace's agent failed: ${err.message}`)
  }
  if (err instanceof GuestProtocolError) {
    if (/exceeds maxBytes/.test(err.message)) {
      throw new ApiError('PAYLOAD_TOO_LARGE', `file is larger than this server's transfer limit`)
    }
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
