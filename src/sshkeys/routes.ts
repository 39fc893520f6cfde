import { z } from 'zod'
import type { User } from '../auth/store.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { defineRoute, messageSchema } from '../http/route.ts'
import { newId, nowIso } from '../lib/ids.ts'
import { limitsFor } from '../limits/service.ts'
import type { NodeClient } from '../node/types.ts'
import { parsePublicKey, SshKeyError } from '../ssh/keys.ts'
import { workspaceIdParams } from '../workspaces/schemas.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { SshKeyRow, SshKeyStore } from './store.ts'

const keySchema = z
  .object({
    id: z.string(),
    user_id: z.string(),
    name: z.string(),
    public_key: z.string(),
    fingerprint: z.string().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'SshKeyWithFingerprint' })

const entrySchema = z
  .object({ fingerprint: z.string(), key_type: z.string(), comment: z.string() })
  .meta({ id: 'SshKeyEntry' })

export interface SshKeyDeps {
  keys: SshKeyStore
  workspaces: WorkspaceService
  node: NodeClient | null
  /** Pushes the current keys into one running workspace. */
  sync: (workspaceId: string) => Promise<void>
}

const tag = 'ssh-keys'
const common = { tag, auth: 'user' as const, rateClass: 'auth' as const }
const view = (k: SshKeyRow) => ({ ...k })

/** authorized_keys lines → entries; lines that are not keys are skipped. */
function entries(lines: string[]) {
  return lines.flatMap((line) => {
    try {
      const k = parsePublicKey(line)
      return [{ fingerprint: k.fingerprint, key_type: k.type, comment: k.comment }]
    } catch {
      return []
    }
  })
}

export function sshKeyRoutes(d: SshKeyDeps) {
  /** Keys change → every running workspace of the user gets them at once. */
  const syncAll = async (user: User) => {
    const running = (await d.workspaces.list(user)).filter((w) => w.status === 'running')
    await Promise.allSettled(running.map((w) => d.sync(w.id)))
  }

  const authorizedKeys = async (user: User, id: string) => {
    const ws = await d.workspaces.get(user, id)
    if (ws.status === 'running' && d.node) {
      const file = await d.node.readFile(ws.id, '/home/developer/.ssh/authorized_keys', 1 << 20)
      return { ws, lines: file.toString('utf8').split('\n') }
    }
    return { ws, lines: (await d.keys.listByUser(user.id)).map((k) => k.public_key) }
  }

  return [
    defineRoute({
      ...common,
      method: 'POST',
      path: '/ssh-keys',
      summary: 'Register an SSH public key (synced into your running workspaces at once)',
      body: z.object({ name: z.string().trim().min(1).max(100), public_key: z.string().max(8192) }),
      status: 201,
      response: keySchema,
      handler: async ({ user, body }) => {
        let parsed
        try {
          parsed = parsePublicKey(body.public_key)
        } catch (err) {
          if (err instanceof SshKeyError) throw new ApiError('VALIDATION_ERROR', err.message)
          throw err
        }
        const existing = await d.keys.listByUser(user.id)
        const max = limitsFor(user).max_ssh_keys
        if (existing.length + 1 > max) {
          throw new ApiError(
            'LIMIT_EXCEEDED',
            `plan limit max_ssh_keys exceeded: your plan allows ${max}`,
            {
              limit: 'max_ssh_keys',
              allowed: max,
            },
          )
        }
        if (existing.some((k) => k.fingerprint === parsed.fingerprint)) {
          throw new ApiError('CONFLICT', `this key (${parsed.fingerprint}) is registered already`)
        }
        const row: SshKeyRow = {
          id: newId('key', 12).replace(/^key-/, 'sshkey-'),
          user_id: user.id,
          name: body.name,
          public_key: `${parsed.type} ${parsed.blob.toString('base64')}${parsed.comment ? ` ${parsed.comment}` : ''}`,
          fingerprint: parsed.fingerprint,
          created_at: nowIso(),
        }
        await d.keys.insert(row)
        await syncAll(user)
        return view(row)
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/ssh-keys',
      summary: 'List your SSH keys with fingerprints',
      response: z.object({ ssh_keys: z.array(keySchema) }).meta({ id: 'SshKeysResponse' }),
      flat: { schema: z.array(keySchema), from: (r) => r.ssh_keys },
      handler: async ({ user }) => ({ ssh_keys: (await d.keys.listByUser(user.id)).map(view) }),
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/ssh-keys/:id',
      summary: 'Remove an SSH key (removed from your running workspaces at once)',
      params: z.object({ id: z.string().min(1).max(64) }),
      response: messageSchema,
      handler: async ({ user, params }) => {
        if (!(await d.keys.remove(user.id, params.id))) throw notFound('resource', params.id)
        await syncAll(user)
        return { message: `SSH key ${params.id} removed` }
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/ssh-keys',
      summary: "The keys in the workspace's authorized_keys (read from the VM when it runs)",
      params: workspaceIdParams,
      response: z
        .object({ keys: z.array(entrySchema) })
        .meta({ id: 'ListWorkspaceSshKeysResponse' }),
      handler: async ({ user, params }) => ({
        keys: entries((await authorizedKeys(user, params.id)).lines),
      }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/ssh-keys/sync',
      summary: 'Write your registered keys into the running workspace now',
      params: workspaceIdParams,
      response: z
        .object({ synced: z.number().int().min(0), keys: z.array(entrySchema) })
        .meta({ id: 'SyncSshKeysResponse' }),
      handler: async ({ user, params }) => {
        const ws = await d.workspaces.get(user, params.id)
        if (ws.status !== 'running') {
          throw new ApiError(
            'INVALID_STATE',
            `workspace ${ws.id} is ${ws.status}; keys sync when it starts`,
          )
        }
        await d.sync(ws.id)
        const keys = entries((await authorizedKeys(user, ws.id)).lines)
        return { synced: keys.length, keys }
      },
    }),
  ]
}
