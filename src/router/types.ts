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
  /** Loopback address of the app's guest port, or why there is none. */
  upstream(
    route: AppRoute,
  ): Promise<{ host: string; port: number } | { error: 'not_running' | 'port_closed' }>
  authenticateKey(apiKey: string): Promise<Caller | null>
  /** Secret for login tokens and session cookies (HMAC-SHA256). */
  sessionSecret: Buffer
}
