import { randomBytes } from 'node:crypto'
import ssh2 from 'ssh2'
import { call, type TestApp } from './app.ts'

/**
 * One of every resource a user can own, keyed the way path parameters name them
 * (`resourceKey` in ./openapi.ts): `workspaces.id`, `snapshots.snapshot_id`, `apps.id`, …
 */
export type ResourceIds = Record<string, string>

/** An ed25519 public key line; ssh2 makes a malformed one now and then (about 1 in 200). */
export function publicKey(): string {
  for (;;) {
    const line = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'owner' }).public
    if (!(ssh2.utils.parseKey(line) instanceof Error)) return line
  }
}

async function must(res: Promise<{ status: number; json: unknown; body: string }>, what: string) {
  const r = await res
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${r.body}`)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return r.json as any
}

/**
 * Creates, for the key's user, a running workspace that has a snapshot (taken while it was
 * stopped), an app on it, an SSH key and a second API key; and names the user itself. Needs a
 * node (the fake one will do).
 */
export async function createOwnedResources(t: TestApp, key: string): Promise<ResourceIds> {
  const suffix = randomBytes(3).toString('hex')
  const idle = () => t.app.rigbox.reconciler.idle()
  const script = await must(
    call(t.app, key, 'POST', '/api/v1/setup-scripts', {
      name: `script-${suffix}`,
      content: 'echo hi',
      run_on: 'every_start',
    }),
    'setup script',
  )
  const spec = await must(
    call(t.app, key, 'POST', '/api/v1/service-specs', {
      name: `svc-${suffix}`,
      exec_start: '/usr/bin/sleep infinity',
    }),
    'service spec',
  )
  const ws = (
    await must(
      call(t.app, key, 'POST', '/api/v1/workspaces', {
        name: `owned-${suffix}`,
        setup_script_ids: [script.id],
        service_spec_ids: [spec.id],
      }),
      'ws',
    )
  ).vm.id as string
  for (const step of ['start', 'stop']) {
    await must(call(t.app, key, 'POST', `/api/v1/workspaces/${ws}/${step}`), step)
    await idle()
  }
  const snapshot = await must(
    call(t.app, key, 'POST', `/api/v1/workspaces/${ws}/snapshots`, { name: `snap-${suffix}` }),
    'snapshot',
  )
  await must(call(t.app, key, 'POST', `/api/v1/workspaces/${ws}/start`), 'restart')
  await idle()
  const app = await must(
    call(t.app, key, 'POST', '/api/v1/apps', {
      name: `app-${suffix}`,
      workspace_id: ws,
      port: 8080,
    }),
    'app',
  )
  const source = await must(
    call(t.app, key, 'POST', `/api/v1/apps/${app.app.id}/log-sources`, {
      source_type: 'file_path',
      source_ref: '/var/log/app.log',
    }),
    'log source',
  )
  // A job is made by installing into a VM; the fake node has no guest, so it is recorded here.
  const jobId = `job-${suffix}`
  const now = new Date().toISOString()
  await t.app.rigbox.db
    .insertInto('workspace_jobs')
    .values({
      id: jobId,
      workspace_id: ws,
      user_id: me0(app),
      kind: 'tool_install',
      target: 'terminal',
      app_id: null,
      status: 'failed',
      exit_code: 1,
      stdout: '',
      stderr: 'no guest',
      created_at: now,
      updated_at: now,
    })
    .execute()
  const sshKey = await must(
    call(t.app, key, 'POST', '/api/v1/ssh-keys', {
      name: `key-${suffix}`,
      public_key: publicKey(),
    }),
    'ssh key',
  )
  const apiKey = await must(
    call(t.app, key, 'POST', '/api/v1/api-keys', { name: `second-${suffix}` }),
    'api key',
  )
  const me = await must(call(t.app, key, 'GET', '/api/v1/users/me'), 'me')
  return {
    // Admin operations on a user (`/admin/users/{id}/credits`) aim at the owner.
    'users.id': me.user.id,
    'workspaces.id': ws,
    'snapshots.snapshot_id': snapshot.snapshot.id,
    'apps.id': app.app.id,
    'log-sources.source_id': source.source.id,
    'setup-scripts.id': script.id,
    'service-specs.id': spec.id,
    'services.name': `svc-${suffix}`,
    'tools.tool': 'terminal',
    'jobs.job_id': jobId,
    'ssh-keys.id': sshKey.id,
    'api-keys.id': apiKey.api_key.id,
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const me0 = (app: any) => app.app.user_id as string

/** The id a body property refers to, e.g. `workspace_id` → the `workspaces.id` resource. */
export function bodyReference(ids: ResourceIds, property: string): string | undefined {
  const m = /^(.+)_id$/.exec(property)
  if (!m) return undefined
  const collection = `${m[1].replaceAll('_', '-')}s`
  return ids[`${collection}.id`] ?? ids[`${collection}.${property}`]
}
