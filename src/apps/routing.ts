import type { FastifyInstance } from 'fastify'
import type { RouterDeps } from '../router/types.ts'

/** What the app router needs from the control plane and the node, from one built app. */
export function routerDeps(app: FastifyInstance, domain: string): RouterDeps {
  const { db, auth, store, node, sessionSecret } = app.rigbox
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
    async authenticateKey(key) {
      const found = await auth.authenticate(key)
      return found ? { userId: found.user.id, email: found.user.email } : null
    },
  }
}
