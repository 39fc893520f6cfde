import type { FastifyInstance } from 'fastify'
import type { GatewayDeps } from '../ssh/types.ts'

const SSH_USER = /^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-([a-z0-9]{8})$/

/** What the SSH gateway needs from the control plane and the node, from one built app. */
export function gatewayDeps(app: FastifyInstance): GatewayDeps {
  const { store, sshKeys, node, gatewayKey } = app.rigbox
  return {
    gatewayKey,
    async resolve(username) {
      // `<workspace-name>-<id without ws->`: the name is checked too, so a guessed id alone
      // (or a renamed workspace's old name) finds nothing.
      const m = SSH_USER.exec(username)
      if (!m) return null
      const row = await store.get(`ws-${m[2]}`)
      if (!row || row.name !== m[1]) return null
      return { workspaceId: row.id, ownerId: row.user_id, status: row.status }
    },
    async ownerKeys(ownerId) {
      return (await sshKeys.listByUser(ownerId)).map((k) => k.public_key)
    },
    async guestSshd(workspaceId) {
      const row = await store.get(workspaceId)
      if (!row || row.status !== 'running' || !node) return null
      return node.forwardPort(workspaceId, 22).catch(() => null)
    },
  }
}
