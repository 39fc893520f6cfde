import type { FastifyInstance } from 'fastify'
import { ApiError } from '../http/errors.ts'
import type { RouterDeps } from '../router/types.ts'
import { AppLoginStore } from './logins.ts'

/** What the app router needs from the control plane and the node, from one built app. */
export function routerDeps(app: FastifyInstance, domain: string): RouterDeps {
  const { db, keyCheck, store, node, sessionSecret } = app.rigbox
  const logins = new AppLoginStore(db)
  return {
    domain,
    sessionSecret,
    async lookup(subdomain) {
      const row = await db
        .selectFrom('apps')
        .selectAll()
        .where('subdomain', '=', subdomain)
        .executeTakeFirst()
      if (!row) return null
      return {
        appId: row.id,
        subdomain: row.subdomain,
        workspaceId: row.workspace_id,
        ownerId: row.user_id,
        visibility: row.visibility,
        allowedEmails: JSON.parse(row.allowed_emails) as string[],
        enabled: row.status === 'active',
        port: row.port,
      }
    },
    async upstream(route) {
      const ws = await store.get(route.workspaceId)
      if (!ws || ws.status !== 'running' || !node) return { error: 'not_running' }
      try {
        return await node.forwardPort(ws.id, route.port)
      } catch {
        return { error: 'not_running' }
      }
    },
    async authenticateKey(key, clientIp) {
      try {
        const found = await keyCheck.authenticate(key, clientIp)
        return found ? { userId: found.user.id, email: found.user.email } : null
      } catch (err) {
        // The address spent its failed-authentication budget (shared with the API).
        if (!(err instanceof ApiError && err.code === 'RATE_LIMITED')) throw err
        return { retryAfterS: (err.details as { retry_after_s: number }).retry_after_s }
      }
    },
    redeemLogin: (linkId, subdomain, expiresAt) => logins.redeem(linkId, subdomain, expiresAt),
    sessionCaller: (sessionId, subdomain) => logins.sessionCaller(sessionId, subdomain),
    endSession: (sessionId) => logins.endSession(sessionId),
    onRequestDone: (r) => app.rigbox.appServices.recorder.record(r),
  }
}
