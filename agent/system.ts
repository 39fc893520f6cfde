// Health, metrics, listening ports and shutdown.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import type { AgentOptions } from './options.ts'
import { AGENT_VERSION } from './protocol.ts'
import { sendJson, type Ctx } from './router.ts'

function readText(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8')
  } catch {
    return ''
  }
}

function uptimeSeconds(): number {
  const v = parseFloat(readText('/proc/uptime').split(' ')[0])
  return Number.isFinite(v) ? Math.floor(v) : Math.floor(os.uptime())
}

/** `systemctl is-system-running` prints the state even when it exits non-zero (degraded...). */
function systemdState(): Promise<string> {
  return new Promise((resolve) => {
    execFile('systemctl', ['is-system-running'], { timeout: 3000 }, (_err, stdout) => {
      const s = String(stdout ?? '').trim()
      resolve(/^[a-z-]{1,32}$/.test(s) ? s : 'unknown')
    })
  })
}

export async function handleHealth(ctx: Ctx): Promise<void> {
  sendJson(ctx.stream, 200, {
    ready: true,
    boot_id: readText('/proc/sys/kernel/random/boot_id').trim(),
    uptime_s: uptimeSeconds(),
    agent_version: AGENT_VERSION,
    systemd_state: await systemdState(),
  })
}

// ---- metrics: CPU is sampled in the background so a request answers at once -----------------

let cpuPercent = 0
let lastCpu: { idle: number; total: number } | null = null

function readCpu(): { idle: number; total: number } | null {
  const line = readText('/proc/stat').split('\n')[0]
  if (!line.startsWith('cpu ')) return null
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { idle: f[3] + (f[4] || 0), total }
}

export function startCpuSampler(): void {
  const tick = (): void => {
    const now = readCpu()
    if (now && lastCpu && now.total > lastCpu.total) {
      const dt = now.total - lastCpu.total
      cpuPercent = Math.round(1000 * (1 - (now.idle - lastCpu.idle) / dt)) / 10
    }
    lastCpu = now
  }
  tick()
  setInterval(tick, 1000).unref()
}

function meminfo(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of readText('/proc/meminfo').split('\n')) {
    const m = /^(\w+):\s+(\d+)/.exec(line)
    if (m) out[m[1]] = Number(m[2]) // kB
  }
  return out
}

export async function handleMetrics(ctx: Ctx): Promise<void> {
  const mem = meminfo()
  const total = mem.MemTotal ?? Math.floor(os.totalmem() / 1024)
  const avail = mem.MemAvailable ?? Math.floor(os.freemem() / 1024)
  const fsStat = await fs.promises.statfs('/')
  const mb = (blocks: number): number => Math.round((blocks * fsStat.bsize) / (1 << 20))
  sendJson(ctx.stream, 200, {
    cpu_percent: Math.max(0, Math.min(100, cpuPercent)),
    ram_used_mb: Math.round((total - avail) / 1024),
    ram_total_mb: Math.round(total / 1024),
    disk_used_mb: mb(fsStat.blocks - fsStat.bfree),
    disk_total_mb: mb(fsStat.blocks),
    load_avg: os.loadavg().map((v) => Math.round(v * 100) / 100),
    uptime_s: uptimeSeconds(),
  })
}

// ---- listening ports -------------------------------------------------------------------------

interface Listener {
  port: number
  address: string
  protocol: 'tcp'
  inode: string
}

function hexToIp(hex: string): string {
  if (hex.length === 8)
    return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.')
  // IPv6: four 32-bit words, each in host (little-endian) byte order.
  const bytes: number[] = []
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8)
    for (let i = 3; i >= 0; i--) bytes.push(parseInt(word.slice(i * 2, i * 2 + 2), 16))
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join('.')}`
  }
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16))
  // RFC 5952: the longest run of two or more zero groups becomes '::'.
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j === i ? i + 1 : j
  }
  if (best < 0) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
}

function parseNetTcp(text: string): Listener[] {
  const out: Listener[] = []
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 10 || f[3] !== '0A') continue // 0A = LISTEN
    const [addr, port] = f[1].split(':')
    out.push({ address: hexToIp(addr), port: parseInt(port, 16), protocol: 'tcp', inode: f[9] })
  }
  return out
}

async function socketOwners(): Promise<Map<string, { pid: number; process: string }>> {
  const owners = new Map<string, { pid: number; process: string }>()
  const pids = (await fs.promises.readdir('/proc')).filter((d) => /^\d+$/.test(d))
  for (const pid of pids) {
    let fds: string[]
    try {
      fds = await fs.promises.readdir(`/proc/${pid}/fd`)
    } catch {
      continue // gone, or not ours to read
    }
    for (const fd of fds) {
      const link = await fs.promises.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
      const m = /^socket:\[(\d+)\]$/.exec(link)
      if (m && !owners.has(m[1])) {
        owners.set(m[1], { pid: Number(pid), process: readText(`/proc/${pid}/comm`).trim() })
      }
    }
  }
  return owners
}

export async function handleListeningPorts(ctx: Ctx): Promise<void> {
  const listeners = [
    ...parseNetTcp(readText('/proc/net/tcp')),
    ...parseNetTcp(readText('/proc/net/tcp6')),
  ]
  const owners = await socketOwners()
  const seen = new Set<string>()
  const out: Array<Record<string, unknown>> = []
  for (const l of listeners) {
    const key = `${l.address}|${l.port}`
    if (seen.has(key)) continue
    seen.add(key)
    const owner = owners.get(l.inode)
    out.push({
      port: l.port,
      address: l.address,
      protocol: l.protocol,
      ...(owner ? { process: owner.process, pid: owner.pid } : {}),
    })
  }
  out.sort((a, b) => Number(a.port) - Number(b.port))
  sendJson(ctx.stream, 200, out)
}

// ---- shutdown --------------------------------------------------------------------------------

export function handleShutdown(o: AgentOptions, ctx: Ctx, log: (m: string) => void): void {
  // Answer first; power off once the answer is on its way.
  ctx.stream.once('close', () => {
    setTimeout(() => {
      if (!o.system) {
        log('shutdown requested (dev mode): exiting')
        process.exit(0)
      }
      log('shutdown requested: systemctl poweroff')
      execFile('systemctl', ['poweroff'], (err) => {
        if (err) log(`systemctl poweroff failed: ${err.message}`)
      })
    }, 200)
  })
  sendJson(ctx.stream, 200, { shutting_down: true })
}

export const _test = { hexToIp, parseNetTcp }
