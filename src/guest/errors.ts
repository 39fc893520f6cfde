// Errors of the guest channel. The host never trusts the guest: anything malformed, oversized or
// late becomes one of these instead of propagating the guest's data.

export class GuestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'GuestError'
  }
}

/** The guest could not be reached (not booted yet, agent down, session lost). */
export class GuestUnavailableError extends Error {
  readonly code = 'GUEST_UNAVAILABLE'
  constructor(message: string) {
    super(message)
    this.name = 'GuestUnavailableError'
  }
}

/** The guest answered something outside the protocol: too big, too slow, or the wrong shape. */
export class GuestProtocolError extends Error {
  readonly code = 'GUEST_PROTOCOL'
  constructor(message: string) {
    super(message)
    this.name = 'GuestProtocolError'
  }
}

export class GuestTimeoutError extends Error {
  readonly code = 'GUEST_TIMEOUT'
  constructor(message: string) {
    super(message)
    this.name = 'GuestTimeoutError'
  }
}
