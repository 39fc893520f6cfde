import type { Target } from './proxy.ts'

export type Visibility = 'public' | 'private' | 'privileged'
export interface AppRoute {
  appId: string
  subdomain: string
  workspaceId: string
  ownerId: string
  visibility: Visibility
  allowedEmails: string[] // lowercased
  enabled: boolean // route on/off (POST /apps/{id}/stop|start) — off answers 404
  /** The app's port inside the VM. */
  port: number
}
export interface Caller {
  userId: string
  email: string
}
export interface RouterDeps {
  domain: string
  lookup(subdomain: string): Promise<AppRoute | null>
  /** The way to the app's guest port (the node's `forwardPort`), or why there is none. */
  upstream(route: AppRoute): Promise<Target | { error: 'not_running' | 'port_closed' }>
  /**
   * The key's owner, or null; `{ retryAfterS }` while the client's address has spent its budget
   * of failed authentications (shared with the API).
   */
  authenticateKey(
    apiKey: string,
    clientIp: string,
  ): Promise<Caller | null | { retryAfterS: number }>
  /**
   * Uses up a login link (its id from the signed token), atomically: a second use, even a
   * concurrent one, an expired link, or one whose API key is gone finds nothing. On success a
   * session starts for the link's user, bound to the key that made the link.
   */
  redeemLogin(
    linkId: string,
    subdomain: string,
    sessionExpiresAt: number,
  ): Promise<{ sessionId: string; caller: Caller } | null>
  /**
   * The session's user while it is live: not logged out, its key not revoked, not expired.
   * Asked on every request that carries a session cookie, so a revocation takes effect at once
   * on every router sharing the database.
   */
  sessionCaller(sessionId: string, subdomain: string): Promise<Caller | null>
  /** Ends a session (logout). */
  endSession(sessionId: string): Promise<void>
  /** Secret for login tokens and session cookies (HMAC-SHA256). */
  sessionSecret: Buffer
  /** Told of every finished HTTP request to an app (metrics); must not throw or block. */
  onRequestDone?(r: RequestRecord): void
}

/** One HTTP request to an app, as the router saw it end. */
export interface RequestRecord {
  appId: string
  subdomain: string
  /** The status sent; 499 when the client left before any answer. */
  status: number
  /** Body bytes sent to the client. */
  bytesOut: number
  latencyMs: number
  /** The Host asked for, without its port. */
  host: string
}
