// rigbox-agent: the guest side of the control channel. Bundled by esbuild into one CommonJS
// file (platform node, target node22) and run by systemd as root in every VM.
import http2 from 'node:http2'
import { defaultChannelOptions, PortChannel } from './channel.ts'
import { handleConfig } from './config.ts'
import { startRelay } from './devrelay.ts'
import { handleExec, handleExecSignal } from './exec.ts'
import { handleDelete, handleList, handleMkdir, handleRead, handleWrite } from './fsapi.ts'
import { handleLogs, handleLogsFollow } from './logs.ts'
import { parseArgs, type AgentOptions } from './options.ts'
import { openDevPort, openVirtioPort } from './port.ts'
import { AGENT_VERSION, PORT_AGENT, PORT_BULK } from './protocol.ts'
import { handlePty, handlePtyResize } from './pty.ts'
import { Router } from './router.ts'
import {
  handleHealth,
  handleListeningPorts,
  handleMetrics,
  handleShutdown,
  startCpuSampler,
} from './system.ts'
import { PORT_TUNNEL, startTunnel } from './tunnel.ts'

function log(msg: string): void {
  process.stderr.write(`rigbox-agent: ${msg}\n`)
}

function buildRouter(o: AgentOptions): Router {
  return new Router()
    .add('GET', /^\/v1\/health$/, handleHealth)
    .add('POST', /^\/v1\/config$/, (c) => handleConfig(o, c))
    .add('POST', /^\/v1\/exec$/, (c) => handleExec(o, c))
    .add('POST', /^\/v1\/exec\/(ex-[0-9a-f]+)\/signal$/, handleExecSignal)
    .add('POST', /^\/v1\/pty$/, (c) => handlePty(o, c))
    .add('POST', /^\/v1\/pty\/(pty-[0-9a-f]+)\/resize$/, handlePtyResize)
    .add('GET', /^\/v1\/files$/, handleRead)
    .add('PUT', /^\/v1\/files$/, (c) => handleWrite(o, c))
    .add('DELETE', /^\/v1\/files$/, handleDelete)
    .add('GET', /^\/v1\/files\/list$/, handleList)
    .add('POST', /^\/v1\/files\/mkdir$/, (c) => handleMkdir(o, c))
    .add('GET', /^\/v1\/metrics$/, handleMetrics)
    .add('GET', /^\/v1\/logs$/, handleLogs)
    .add('GET', /^\/v1\/logs\/follow$/, handleLogsFollow)
    .add('GET', /^\/v1\/listening-ports$/, handleListeningPorts)
    .add('POST', /^\/v1\/shutdown$/, (c) => handleShutdown(o, c, log))
}

function createServer(router: Router, port: string): http2.Http2Server {
  const server = http2.createServer({
    settings: {
      // Large windows keep bulk transfers moving over a link with a slow (TCG) guest.
      initialWindowSize: 4 << 20,
      maxConcurrentStreams: 256,
      maxHeaderListSize: 512 * 1024,
    },
    maxSessionMemory: 64,
  })
  server.on('stream', (stream, headers) => {
    router.handle(stream, headers, port).catch((e: unknown) => log(`handler: ${String(e)}`))
  })
  server.on('sessionError', (e) => log(`${port}: session error: ${e.message}`))
  return server
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  // A broken pipe to a child must never kill the agent: the watchdog relies on it staying up.
  process.on('uncaughtException', (e) => log(`uncaught: ${e.stack ?? String(e)}`))
  process.on('unhandledRejection', (e) => log(`unhandled rejection: ${String(e)}`))
  const relayPorts = [PORT_AGENT, PORT_BULK, ...(o.tunnel ? [PORT_TUNNEL] : [])]
  if (o.listenUnix) await startRelay(o.listenUnix, relayPorts, { log })
  startCpuSampler()
  const router = buildRouter(o)
  const channels = [PORT_AGENT, PORT_BULK].map((name) => {
    const open = o.portDir ? () => openDevPort(o.portDir!, name) : () => openVirtioPort(name)
    return new PortChannel(name, open, createServer(router, name), {
      ...defaultChannelOptions,
      watchdogMs: o.watchdogMs,
      log,
    })
  })
  for (const c of channels) c.start()
  const tunnel = o.tunnel ? startTunnel(o, log) : null
  const where = o.portDir ? `dev ports in ${o.portDir}` : 'virtio ports'
  log(`${AGENT_VERSION} serving on ${where} (pid ${process.pid})`)
  const stop = (): void => {
    for (const c of channels) c.stop()
    tunnel?.stop()
    setTimeout(() => process.exit(0), 100).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((e: unknown) => {
  log(`fatal: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
})
