import { ApiError } from './errors.ts'

/**
 * Fixed-window counters per (subject, class). Fixed windows are cheap and predictable for
 * clients; Retry-After tells them exactly when the window turns over.
 */
export class RateLimiter {
  private windows = new Map<string, { start: number; count: number }>()

  constructor(
    private readonly limits: Record<string, number>,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one request; throws 429 once the class's budget for this window is spent. */
  hit(subject: string, rateClass: string): void {
    const limit = this.limits[rateClass]
    if (!limit) return
    const key = `${rateClass}:${subject}`
    let w = this.current(key)
    if (!w) {
      if (this.windows.size > 100_000) this.sweep(this.now())
      w = { start: this.now(), count: 0 }
      this.windows.set(key, w)
    }
    w.count++
    if (w.count > limit) this.refuse(w, limit, rateClass)
  }

  /** Throws 429 while the class's budget for this window is spent, without counting anything. */
  check(subject: string, rateClass: string): void {
    const limit = this.limits[rateClass]
    if (!limit) return
    const w = this.current(`${rateClass}:${subject}`)
    if (w && w.count >= limit) this.refuse(w, limit, rateClass)
  }

  /** The key's window, unless it has turned over. */
  private current(key: string) {
    const w = this.windows.get(key)
    if (w && this.now() - w.start >= this.windowMs) {
      this.windows.delete(key)
      return undefined
    }
    return w
  }

  private refuse(w: { start: number }, limit: number, rateClass: string): never {
    const retryAfter = Math.max(1, Math.ceil((w.start + this.windowMs - this.now()) / 1000))
    throw new ApiError(
      'RATE_LIMITED',
      `rate limit of ${limit} ${rateClass} requests per ${this.windowMs / 1000}s exceeded; retry in ${retryAfter}s`,
      { class: rateClass, limit, retry_after_s: retryAfter },
      { 'retry-after': String(retryAfter) },
    )
  }

  private sweep(now: number) {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k)
  }
}
