// GuestChannel: the node's typed client for one VM's guest agent. Small control calls go over
// the `agent` port, large streams (exec output, files, log follow, pty) over `bulk`, so a big
// transfer never delays a health check.
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import { z } from 'zod'
import { PORT_AGENT, PORT_BULK, type ExecSpec, type PtySpec } from '../../agent/protocol.ts'
import { defaultConnectionOptions, PortConnection, type ConnectionOptions } from './connection.ts'
import { GuestProtocolError } from './errors.ts'
import { runExec, type ExecOptions, type ExecResult } from './exec.ts'
import { openPty, type PtyHandle } from './pty.ts'
import { fileStream, fileTooLarge, followLogs } from './streams.ts'
import { openStream, query, readAll, requestJson } from './request.ts'
import {
  ConfigResultSchema,
  DirListSchema,
  HealthSchema,
  ListeningPortsSchema,
  LogsSchema,
  MetricsSchema,
  PathResultSchema,
  WriteResultSchema,
  type ConfigResult,
  type DirEntry,
  type GuestConfig,
  type GuestHealth,
  type GuestMetrics,
  type ListeningPort,
  type LogLine,
  type LogsPage,
} from './types.ts'

export interface ConnectOptions {
  /** QEMU chardev sockets (`<vmdir>/agent.sock`, `<vmdir>/bulk.sock`). */
  agentSock: string
  bulkSock: string
  /** Overall deadline for both handshakes (covers QEMU start and guest boot). */
  timeoutMs: number
}

export interface GuestChannelOptions extends Partial<ConnectionOptions> {
  /** Default deadline of small JSON calls. */
  requestTimeoutMs?: number
}

export interface WriteFileOptions {
  /** Octal string, e.g. '0644'. Default: existing file's mode, or 0644. */
  mode?: string
  /** 'user', 'user:group' or numeric. Default: existing owner, developer under its home, else root. */
  owner?: string
  /** Create missing parent directories. */
  mkdirs?: boolean
  timeoutMs?: number
  signal?: AbortSignal
}

export class GuestChannel {
  private agent: PortConnection | null = null
  private bulk: PortConnection | null = null
  private readonly copts: ConnectionOptions
  private readonly requestTimeoutMs: number
  /** What the agent last reported in /v1/health; null until it has, and after a lost session. */
  private version: string | null = null
  private versionAsk: Promise<GuestHealth> | null = null

  constructor(opts: GuestChannelOptions = {}) {
    const { requestTimeoutMs, ...conn } = opts
    this.copts = { ...defaultConnectionOptions, ...conn }
    this.requestTimeoutMs = requestTimeoutMs ?? 15_000
  }

  /** Connects both ports (retrying until the deadline) and waits for /v1/health to answer. */
  async connect(o: ConnectOptions): Promise<GuestHealth> {
    this.close()
    const deadline = Date.now() + o.timeoutMs
    this.agent = new PortConnection(PORT_AGENT, o.agentSock, this.copts)
    this.bulk = new PortConnection(PORT_BULK, o.bulkSock, this.copts)
    // A lost session may mean a restarted agent, even another one: ask again before the next
    // spec (either port: exec goes over `bulk`, health over `agent`).
    this.version = null
    const forget = (): void => void (this.version = null)
    this.agent.on('lost', forget)
    this.bulk.on('lost', forget)
    await Promise.all([this.agent.get(o.timeoutMs), this.bulk.get(o.timeoutMs)])
    return this.health({ timeoutMs: Math.max(1000, deadline - Date.now()) })
  }

  /** Sessions established per port since connect (a reconnect adds one). */
  get sessionCounts(): { agent: number; bulk: number } {
    return { agent: this.agent?.sessions ?? 0, bulk: this.bulk?.sessions ?? 0 }
  }

  async health(o: { timeoutMs?: number } = {}): Promise<GuestHealth> {
    const h = await this.json('GET', '/v1/health', HealthSchema, undefined, o.timeoutMs)
    this.version = h.agent_version
    return h
  }

  /** The agent's version from its last health answer (null: none since a session was lost). */
  get agentVersion(): string | null {
    return this.version
  }

  /**
   * The agent's version, which decides how exec and pty specs are sent (spec-form.ts): known
   * from connect()'s health call, asked once more after a session was lost.
   */
  private async knownAgentVersion(): Promise<string | null> {
    if (this.version !== null) return this.version
    this.versionAsk ??= this.health().finally(() => (this.versionAsk = null))
    await this.versionAsk
    return this.version
  }

  configure(cfg: GuestConfig): Promise<ConfigResult> {
    return this.json('POST', '/v1/config', ConfigResultSchema, cfg, 60_000)
  }

  /** Streamed exec on `bulk`; output through callbacks and/or capped buffers (ExecOptions). */
  async exec(spec: ExecSpec, opts: ExecOptions = {}): Promise<ExecResult> {
    const bulk = this.port('bulk')
    return runExec(bulk, spec, opts, await this.knownAgentVersion())
  }

  /** Runs a command and collects its output (each stream capped at `maxOutputBytes`, 1 MiB). */
  run(
    command: string,
    opts: Omit<ExecSpec, 'command'> & { stdin?: string | Buffer; maxOutputBytes?: number } = {},
  ): Promise<ExecResult & { stdout: string; stderr: string }> {
    const { stdin, maxOutputBytes, ...spec } = opts
    return this.exec(
      { ...spec, command },
      {
        stdin,
        maxOutputBytes: maxOutputBytes ?? 1 << 20,
      },
    ) as Promise<ExecResult & { stdout: string; stderr: string }>
  }

  async signalExec(execId: string, signal: string): Promise<boolean> {
    const r = await this.json(
      'POST',
      `/v1/exec/${encodeURIComponent(execId)}/signal`,
      z.object({ delivered: z.boolean() }),
      { signal },
    )
    return r.delivered
  }

  async openPty(spec: PtySpec): Promise<PtyHandle> {
    const [bulk, agent] = [this.port('bulk'), this.port('agent')]
    return openPty(bulk, agent, spec, await this.knownAgentVersion())
  }

  /** Reads a regular file (procfs ones too); a file over `maxBytes` is a GuestError 413. */
  async readFile(
    path: string,
    o: { maxBytes: number; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<Buffer> {
    const { stream, headers } = await openStream(
      this.port('bulk'),
      {
        method: 'GET',
        path: `/v1/files${query({ path, max: o.maxBytes })}`,
        signal: o.signal,
        timeoutMs: o.timeoutMs ?? this.requestTimeoutMs,
      },
      (s) => s.end(),
    )
    const declared = Number(headers['content-length'])
    if (Number.isFinite(declared) && declared > o.maxBytes) {
      // The agent answers 413 itself when told `max`; this guards against one that does not.
      stream.close(http2.constants.NGHTTP2_CANCEL)
      throw fileTooLarge(path, o.maxBytes)
    }
    return readAll(stream, o.maxBytes, o.timeoutMs)
  }

  /**
   * Streams a regular file (for piping to a download): a file over `maxBytes` is a GuestError
   * 413; a transfer that breaks its announced size fails the stream with GuestProtocolError.
   * Destroying the stream cancels the transfer in the guest.
   */
  readFileStream(
    path: string,
    o: { maxBytes: number; signal?: AbortSignal },
  ): Promise<{ size: number; mode: string; stream: Readable }> {
    return fileStream(this.port('bulk'), path, { ...o, timeoutMs: this.requestTimeoutMs })
  }

  /** Writes a file atomically in the guest (temp file + rename). */
  async writeFile(
    path: string,
    data: string | Buffer | Readable,
    o: WriteFileOptions = {},
  ): Promise<{ path: string; size: number }> {
    const q = query({ path, mode: o.mode, owner: o.owner, mkdirs: o.mkdirs })
    const timeoutMs = o.timeoutMs ?? 10 * 60_000
    const { stream } = await openStream(
      this.port('bulk'),
      { method: 'PUT', path: `/v1/files${q}`, timeoutMs, signal: o.signal },
      (s) => {
        if (data instanceof Readable) {
          data.on('error', () => s.close(http2.constants.NGHTTP2_CANCEL))
          data.pipe(s)
        } else s.end(data)
      },
    )
    const body = await readAll(stream, 64 * 1024, this.requestTimeoutMs)
    return parseJson(body, WriteResultSchema, 'writeFile')
  }

  listDir(path: string): Promise<DirEntry[]> {
    return this.json(
      'GET',
      `/v1/files/list${query({ path })}`,
      DirListSchema,
      undefined,
      30_000,
      8 << 20,
    )
  }

  async mkdir(path: string, o: { parents?: boolean } = {}): Promise<void> {
    await this.json('POST', '/v1/files/mkdir', PathResultSchema, { path, parents: !!o.parents })
  }

  async remove(path: string, o: { recursive?: boolean } = {}): Promise<void> {
    await this.json(
      'DELETE',
      `/v1/files${query({ path, recursive: o.recursive })}`,
      PathResultSchema,
    )
  }

  metrics(): Promise<GuestMetrics> {
    return this.json('GET', '/v1/metrics', MetricsSchema)
  }

  logs(o: { lines?: number; cursor?: string; unit?: string } = {}): Promise<LogsPage> {
    const path = `/v1/logs${query({ lines: o.lines, cursor: o.cursor, unit: o.unit })}`
    return this.json('GET', path, LogsSchema, undefined, 30_000, 16 << 20)
  }

  /** Streams journal entries (NDJSON on `bulk`) until `signal` aborts or the guest ends it. */
  followLogs(
    o: { cursor?: string; unit?: string },
    onLine: (line: LogLine) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return followLogs(this.port('bulk'), o, onLine, signal)
  }

  listeningPorts(): Promise<ListeningPort[]> {
    return this.json('GET', '/v1/listening-ports', ListeningPortsSchema, undefined, 30_000, 4 << 20)
  }

  /** Asks the guest to power off; resolves once it has acknowledged. */
  async shutdown(): Promise<void> {
    await this.json('POST', '/v1/shutdown', z.object({ shutting_down: z.literal(true) }), {})
  }

  /** Closes both sessions; the guest notices (GOAWAY/EOF) and waits for the next host. */
  close(): void {
    this.agent?.close()
    this.bulk?.close()
  }

  private port(which: 'agent' | 'bulk'): PortConnection {
    const p = which === 'agent' ? this.agent : this.bulk
    if (!p) throw new Error('GuestChannel: connect() first')
    return p
  }

  private json<T>(
    method: string,
    path: string,
    schema: z.ZodType<T>,
    body?: unknown,
    timeoutMs?: number,
    maxBytes?: number,
  ): Promise<T> {
    return requestJson(this.port('agent'), {
      method,
      path,
      body,
      schema,
      timeoutMs: timeoutMs ?? this.requestTimeoutMs,
      maxBytes,
    })
  }
}

function parseJson<T>(body: Buffer, schema: z.ZodType<T>, what: string): T {
  let v: unknown
  try {
    v = JSON.parse(body.toString('utf8'))
  } catch {
    throw new GuestProtocolError(`${what}: response is not JSON`)
  }
  const p = schema.safeParse(v)
  if (!p.success) throw new GuestProtocolError(`${what}: unexpected response shape`)
  return p.data
}
