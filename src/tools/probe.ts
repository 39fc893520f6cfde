import { shq, unitName } from '../automation/guest.ts'
import type { NodeClient } from '../node/types.ts'
import type { ToolDef } from './catalog.ts'

/** What the VM says about a tool: installed (its discovery holds) and its unit's state. */
export interface ToolProbe {
  available: boolean
  active: boolean
  /** When the unit last became active (ms since the epoch). */
  startedAtMs: number | null
}

/** One root command for all the tools asked about (a list is one round trip, not N). */
export async function probeTools(
  node: NodeClient,
  workspaceId: string,
  tools: readonly ToolDef[],
): Promise<Map<string, ToolProbe>> {
  const lines = tools.map((t) => {
    const check =
      t.discovery.type === 'Always'
        ? 'true'
        : t.discovery.commands.map((c) => `command -v ${shq(c)} >/dev/null 2>&1`).join(' && ')
    return `if ${check}; then echo ${shq(`have ${t.id}`)}; fi`
  })
  const units = tools.map((t) => shq(unitName('tool', t.id))).join(' ')
  const r = await node.exec(
    workspaceId,
    {
      command: `${lines.join('\n')}\necho; systemctl show --timestamp=unix -p Id,ActiveState,ActiveEnterTimestamp ${units}`,
      user: 'root',
      timeoutMs: 15_000,
    },
    64 * 1024,
  )
  const have = new Set([...r.stdout.matchAll(/^have (\S+)$/gm)].map((m) => m[1]))
  const units_ = new Map<string, { active: boolean; since: number | null }>()
  for (const block of r.stdout.split(/\n\n+/)) {
    const f = Object.fromEntries(
      block
        .split('\n')
        .filter((l) => /^[A-Za-z]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    if (!f.Id) continue
    const at = /^@(\d+)/.exec(f.ActiveEnterTimestamp ?? '')
    units_.set(f.Id, {
      active: f.ActiveState === 'active',
      since: at ? Number(at[1]) * 1000 : null,
    })
  }
  return new Map(
    tools.map((t) => {
      const u = units_.get(unitName('tool', t.id))
      return [
        t.id,
        { available: have.has(t.id), active: Boolean(u?.active), startedAtMs: u?.since ?? null },
      ]
    }),
  )
}

/** Polls the guest's listening sockets until `port` is open; false after `timeoutMs`. */
export async function waitListening(
  node: NodeClient,
  workspaceId: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ports = await node.listeningPorts(workspaceId).catch(() => [])
    if (ports.some((p) => p.port === port)) return true
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 1000))
  }
}
