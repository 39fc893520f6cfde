/**
 * The AI proxy as a VM sees it, for tests: a real app on SQLite with the real credit, usage and
 * settings stores, the real bridge, and a local AI upstream (ai-upstream.ts). Each workspace gets
 * its own loopback listener whose connections the bridge attributes to it, as the node does with
 * a VM's tunnel. Proxy log lines are captured in `logs`.
 */
import net from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { createBridge, type Bridge } from '../../src/bridge/server.ts'
import type { Timeouts } from '../../src/ai/proxy/upstream.ts'
import type { AiUsageTable } from '../../src/db/schema.ts'
import { startAiUpstream, type AiUpstream, type UpstreamKnobs } from './ai-upstream.ts'
import { call, makeApp, makeUser, type TestApp } from './app.ts'
import { FakeNode } from './fake-node.ts'

/** Long and unmistakable, so a leak anywhere is found by a plain substring search. */
export const MANAGED_KEY = 'sk-or-v1-MANAGED-0123456789abcdef0123456789abcdef'
export const ANTHROPIC_KEY = 'sk-ant-MANAGED-fedcba9876543210fedcba9876543210'

export interface Workspace {
  id: string
  name: string
  /** The bridge as this workspace's VM reaches it (http://172.16.0.1:9090 in a VM). */
  url: string
}

export interface AiBridge {
  t: TestApp
  upstream: AiUpstream
  bridge: Bridge
  logs: string[]
  user: { id: string; key: string }
  workspace(name: string, owner?: { key: string }): Promise<Workspace>
  /** Another user of the same installation. */
  otherUser(email: string): Promise<{ id: string; key: string }>
  ledger(userId?: string): Promise<AiUsageTable[]>
  /** Waits until the user's ledger holds `count` rows (booking happens after the answer). */
  waitLedger(count: number, userId?: string): Promise<AiUsageTable[]>
  remaining(userId?: string): Promise<number>
  /** Sets what the user has left this period, in micro-credits. */
  setRemaining(micro: number, userId?: string): Promise<void>
  close(): Promise<void>
}

export async function startAiBridge(
  opts: {
    env?: Record<string, string>
    knobs?: Partial<UpstreamKnobs>
    timeouts?: Partial<Timeouts>
    /** Leave the managed upstreams unset (the "not configured" case). */
    unconfigured?: boolean
  } = {},
): Promise<AiBridge> {
  const upstream = await startAiUpstream(opts.knobs)
  const env: Record<string, string> = opts.unconfigured
    ? {}
    : {
        RIGBOX_AI_UPSTREAM_URL: upstream.openaiUrl,
        RIGBOX_AI_UPSTREAM_KEY: MANAGED_KEY,
        RIGBOX_AI_ANTHROPIC_URL: upstream.url,
        RIGBOX_AI_ANTHROPIC_KEY: ANTHROPIC_KEY,
        RIGBOX_AI_MODEL_DEFAULT: 'test/small',
        RIGBOX_AI_MODEL_FAST: 'test/small',
        RIGBOX_AI_MODEL_FREE: 'test/big',
      }
  const byok = {
    RIGBOX_AI_BYOK_OPENAI_URL: upstream.openaiUrl,
    RIGBOX_AI_BYOK_ANTHROPIC_URL: upstream.url,
    RIGBOX_AI_BYOK_GOOGLE_URL: upstream.openaiUrl,
  }
  const t = await makeApp({ node: new FakeNode(), env: { ...env, ...byok, ...opts.env } })
  const logs: string[] = []
  const log = pino(
    { level: 'trace' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString())
        done()
      },
    }),
  )
  const { credits, usage, aiSettings } = t.app.rigbox
  const bridge = await createBridge({
    ...t.app.rigbox,
    aiProxy: {
      ai: t.config.ai,
      settings: aiSettings,
      credits,
      usage,
      log,
      timeouts: opts.timeouts,
    },
  })
  const listeners: net.Server[] = []
  const made = await makeUser(t, 'ai-owner@example.com', 'pro')
  const user = { id: made.user.id, key: made.key }

  const db = t.app.rigbox.db
  const ledger = (userId = user.id) =>
    db
      .selectFrom('ai_usage')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute()
  const remaining = async (userId = user.id) => credits.available(userId)

  return {
    t,
    upstream,
    bridge,
    logs,
    user,
    async workspace(name, owner = user) {
      const res = await call(t.app, owner.key, 'POST', '/api/v1/workspaces', { name })
      if (res.status !== 201) throw new Error(`workspace create failed: ${res.status} ${res.body}`)
      const id = res.json.vm.id as string
      const server = net.createServer((sock) => bridge.handle(sock, id))
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      listeners.push(server)
      return { id, name, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` }
    },
    async otherUser(email) {
      const u = await makeUser(t, email, 'pro')
      return { id: u.user.id, key: u.key }
    },
    ledger,
    async waitLedger(count, userId = user.id) {
      const deadline = Date.now() + 10_000
      for (;;) {
        const rows = await ledger(userId)
        if (rows.length >= count || Date.now() > deadline) return rows
        await new Promise((r) => setTimeout(r, 10))
      }
    },
    remaining,
    async setRemaining(micro, userId = user.id) {
      const account = await credits.account(userId)
      const used = account.allowance_micro + account.granted_micro - account.reserved_micro - micro
      await db
        .updateTable('ai_accounts')
        .set({ used_micro: used })
        .where('user_id', '=', userId)
        .execute()
    },
    async close() {
      for (const l of listeners) l.close()
      await bridge.close()
      await t.close()
      await upstream.close()
    },
  }
}
