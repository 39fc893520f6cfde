import type { Db } from '../db/database.ts'
import type { RequestRecord } from '../router/types.ts'

/**
 * Per-app request metrics counted by the router: per minute, requests, 5xx, bytes out, status
 * classes, a latency histogram and the Host names seen. The router adds to memory; a flush every
 * few seconds adds that to the app_metrics rows, so any number of routers can share one table
 * and the API reads it without asking them.
 */

/** Upper bounds (ms) of the latency buckets; one more bucket holds everything slower. */
export const LATENCY_BOUNDS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000]
const BUCKETS = LATENCY_BOUNDS_MS.length + 1
const MAX_HOSTS = 20
const RETENTION_S = 7 * 24 * 3600
const FLUSH_MS = 5_000
const PRUNE_EVERY_MS = 3600_000

interface Minute {
  requests: number
  errors5xx: number
  bytesOut: number
  classes: Record<string, number>
  buckets: number[]
  hosts: Set<string>
}

const emptyMinute = (): Minute => ({
  requests: 0,
  errors5xx: 0,
  bytesOut: 0,
  classes: {},
  buckets: new Array<number>(BUCKETS).fill(0),
  hosts: new Set(),
})

function addMinute(into: Minute, m: Minute) {
  into.requests += m.requests
  into.errors5xx += m.errors5xx
  into.bytesOut += m.bytesOut
  for (const [c, n] of Object.entries(m.classes)) into.classes[c] = (into.classes[c] ?? 0) + n
  m.buckets.forEach((n, i) => (into.buckets[i]! += n))
  for (const h of m.hosts) if (into.hosts.size < MAX_HOSTS) into.hosts.add(h)
}

export const bucketOf = (ms: number) => {
  const i = LATENCY_BOUNDS_MS.findIndex((b) => ms <= b)
  return i === -1 ? BUCKETS - 1 : i
}

export class MetricsRecorder {
  private pending = new Map<string, Minute>()
  private timer: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()
  private lastPrune = 0

  constructor(
    private readonly db: Db,
    private readonly opts: {
      flushMs?: number
      now?: () => number
      onError?: (e: unknown) => void
    } = {},
  ) {
    this.timer = setInterval(() => void this.flush(), opts.flushMs ?? FLUSH_MS)
    this.timer.unref()
  }

  private now() {
    return this.opts.now?.() ?? Date.now()
  }

  /** Called by the router for every finished request to an app; memory only. */
  record(r: RequestRecord): void {
    const minute = Math.floor(this.now() / 60_000) * 60
    const key = `${r.appId}\n${minute}`
    let m = this.pending.get(key)
    if (!m) this.pending.set(key, (m = emptyMinute()))
    m.requests++
    if (r.status >= 500) m.errors5xx++
    m.bytesOut += r.bytesOut
    const cls = `${Math.floor(r.status / 100)}xx`
    m.classes[cls] = (m.classes[cls] ?? 0) + 1
    m.buckets[bucketOf(r.latencyMs)]!++
    if (m.hosts.size < MAX_HOSTS && r.host) m.hosts.add(r.host)
  }

  /** Adds what was counted to the table (one transaction per flush); serialised. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write()).catch((e) => this.opts.onError?.(e))
    return this.flushing
  }

  private async write() {
    const batch = this.pending
    this.pending = new Map()
    for (const [key, m] of batch) {
      const [appId, minuteText] = key.split('\n') as [string, string]
      try {
        await this.add(appId, Number(minuteText), m)
      } catch (err) {
        // An app deleted meanwhile (its rows go with it) is no error; anything else is retried.
        if (!String(err).includes('FOREIGN KEY')) {
          this.merge(key, m)
          throw err
        }
      }
    }
    if (this.now() - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = this.now()
      await this.prune()
    }
  }

  private merge(key: string, m: Minute) {
    const cur = this.pending.get(key)
    if (cur) addMinute(cur, m)
    else this.pending.set(key, m)
  }

  private add(appId: string, minute: number, m: Minute) {
    return this.db.transaction().execute(async (trx) => {
      const old = await trx
        .selectFrom('app_metrics')
        .selectAll()
        .where('app_id', '=', appId)
        .where('minute', '=', minute)
        .executeTakeFirst()
      const sum = emptyMinute()
      if (old) {
        sum.requests = old.requests
        sum.errors5xx = old.errors_5xx
        sum.bytesOut = old.bytes_out
        sum.classes = JSON.parse(old.status_classes) as Record<string, number>
        const b = JSON.parse(old.latency_buckets) as number[]
        b.forEach((n, i) => (sum.buckets[Math.min(i, BUCKETS - 1)]! += n))
        for (const h of JSON.parse(old.hosts) as string[]) sum.hosts.add(h)
      }
      addMinute(sum, m)
      const row = {
        requests: sum.requests,
        errors_5xx: sum.errors5xx,
        bytes_out: sum.bytesOut,
        status_classes: JSON.stringify(sum.classes),
        latency_buckets: JSON.stringify(sum.buckets),
        hosts: JSON.stringify([...sum.hosts]),
      }
      await trx
        .insertInto('app_metrics')
        .values({ app_id: appId, minute, ...row })
        .onConflict((oc) => oc.columns(['app_id', 'minute']).doUpdateSet(row))
        .execute()
    })
  }

  /** Rows older than the longest range (7 d) go. */
  async prune() {
    const cutoff = Math.floor(this.now() / 1000) - RETENTION_S
    await this.db.deleteFrom('app_metrics').where('minute', '<', cutoff).execute()
  }

  async close() {
    clearInterval(this.timer)
    await this.flush()
  }
}

export const metricRanges = ['1h', '6h', '24h', '7d'] as const
export type MetricRange = (typeof metricRanges)[number]
/** Range length and the step its series is drawn at (60 to 168 points). */
const RANGES: Record<MetricRange, { seconds: number; step: number }> = {
  '1h': { seconds: 3600, step: 60 },
  '6h': { seconds: 6 * 3600, step: 300 },
  '24h': { seconds: 24 * 3600, step: 900 },
  '7d': { seconds: 7 * 24 * 3600, step: 3600 },
}

/** The latency at quantile q, interpolated inside its bucket; 0 without requests. */
export function percentile(buckets: number[], q: number): number {
  const total = buckets.reduce((a, b) => a + b, 0)
  if (!total) return 0
  const target = q * total
  let before = 0
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!
    if (n && before + n >= target) {
      const lower = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!
      const upper = LATENCY_BOUNDS_MS[i] ?? lower
      return lower + ((upper - lower) * (target - before)) / n
    }
    before += n
  }
  return LATENCY_BOUNDS_MS.at(-1)!
}

/** Reads the counted minutes back for the API. */
export class MetricsQueries {
  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  private async minutes(appId: string, range: MetricRange) {
    const { seconds, step } = RANGES[range]
    const end = Math.floor(this.now() / 1000)
    const start = Math.floor((end - seconds) / step) * step + step
    const rows = await this.db
      .selectFrom('app_metrics')
      .selectAll()
      .where('app_id', '=', appId)
      .where('minute', '>=', start)
      .orderBy('minute')
      .execute()
    const parsed = rows.map((r) => {
      const m = emptyMinute()
      m.requests = r.requests
      m.errors5xx = r.errors_5xx
      m.bytesOut = r.bytes_out
      m.classes = JSON.parse(r.status_classes) as Record<string, number>
      ;(JSON.parse(r.latency_buckets) as number[]).forEach((n, i) => (m.buckets[i]! += n))
      for (const h of JSON.parse(r.hosts) as string[]) m.hosts.add(h)
      return { minute: r.minute, m }
    })
    return { seconds, step, start, end, parsed }
  }

  private static totals(parsed: { m: Minute }[]) {
    const all = emptyMinute()
    const hosts = new Set<string>()
    for (const { m } of parsed) {
      addMinute(all, { ...m, hosts: new Set() })
      for (const h of m.hosts) hosts.add(h)
    }
    return { all, hosts: [...hosts].sort() }
  }

  async series(appId: string, range: MetricRange) {
    const { step, start, end, parsed } = await this.minutes(appId, range)
    const steps = new Map<number, Minute>()
    for (let t = start; t <= end; t += step) steps.set(t, emptyMinute())
    for (const { minute, m } of parsed) {
      const slot = steps.get(Math.floor(minute / step) * step)
      if (slot) addMinute(slot, { ...m, hosts: new Set() })
    }
    const points = (f: (m: Minute) => number) => [...steps].map(([t, m]) => ({ t, v: round(f(m)) }))
    const { all, hosts } = MetricsQueries.totals(parsed)
    return {
      range,
      step_seconds: step,
      hosts,
      series: {
        request_rate: points((m) => m.requests / step),
        error_rate_5xx: points((m) => (m.requests ? m.errors5xx / m.requests : 0)),
        latency_p50_ms: points((m) => percentile(m.buckets, 0.5)),
        latency_p95_ms: points((m) => percentile(m.buckets, 0.95)),
        latency_p99_ms: points((m) => percentile(m.buckets, 0.99)),
        bandwidth_out_bps: points((m) => m.bytesOut / step),
      },
      status_codes: Object.entries(all.classes)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([cls, count]) => ({ class: cls, count, ratio: round(count / all.requests) })),
    }
  }

  async summary(appId: string, range: MetricRange) {
    const { seconds, parsed } = await this.minutes(appId, range)
    const { all, hosts } = MetricsQueries.totals(parsed)
    return {
      range,
      hosts,
      total_requests: all.requests,
      total_errors_5xx: all.errors5xx,
      error_rate_5xx: round(all.requests ? all.errors5xx / all.requests : 0),
      request_rate_avg: round(all.requests / seconds),
      latency_p50_ms: round(percentile(all.buckets, 0.5)),
      latency_p95_ms: round(percentile(all.buckets, 0.95)),
      latency_p99_ms: round(percentile(all.buckets, 0.99)),
      bandwidth_out_bytes: all.bytesOut,
    }
  }
}

const round = (x: number) => Math.round(x * 1e4) / 1e4
