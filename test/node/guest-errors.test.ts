import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  GuestError,
  GuestProtocolError,
  GuestTimeoutError,
  GuestUnavailableError,
} from '../../src/guest/index.ts'
import { ApiError } from '../../src/http/errors.ts'
import { guestError } from '../../src/node/guest-errors.ts'

const mapped = (err: unknown): [string, number, string] => {
  try {
    guestError(err)
  } catch (e) {
    const api = e as ApiError
    return [api.code, api.statusCode, api.message]
  }
  throw new Error('guestError returned')
}

test("what the caller got wrong keeps its meaning and the guest's reason", () => {
  const reason = "ENAMETOOLONG: name too long, open '/tmp/nnn'"
  assert.deepEqual(mapped(new GuestError(400, 'NAME_TOO_LONG', reason)), [
    'BAD_REQUEST',
    400,
    reason,
  ])
  assert.deepEqual(
    [403, 404, 409, 413].map((s) => mapped(new GuestError(s, 'X', 'why')).slice(0, 2)),
    [
      ['FORBIDDEN', 403],
      ['FILE_NOT_FOUND', 404],
      ['CONFLICT', 409],
      ['PAYLOAD_TOO_LARGE', 413],
    ],
  )
})

test('the agent failing, or not serving the request, is a 5xx', () => {
  assert.equal(mapped(new GuestError(500, 'INTERNAL', 'EIO'))[0], 'GUEST_ERROR')
  assert.equal(mapped(new GuestError(404, 'NO_ROUTE', 'no route for /v1/x'))[0], 'GUEST_ERROR')
  assert.equal(mapped(new GuestError(405, 'METHOD_NOT_ALLOWED', 'GET'))[0], 'GUEST_ERROR')
  assert.equal(mapped(new GuestError(408, 'TIMEOUT', 'body'))[0], 'GUEST_ERROR')
  assert.equal(mapped(new GuestProtocolError('bad frame'))[0], 'GUEST_ERROR')
  assert.equal(mapped(new GuestTimeoutError('slow'))[0], 'TIMEOUT')
  assert.equal(mapped(new GuestUnavailableError('gone'))[0], 'WORKSPACE_UNAVAILABLE')
  const own = new ApiError('INVALID_STATE', 'stopped')
  assert.equal(mapped(own)[0], 'INVALID_STATE')
})
