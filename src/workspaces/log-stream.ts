import type { FastifyReply, FastifyRequest } from 'fastify'
import type { User } from '../auth/store.ts'
import type { NodeClient } from '../node/types.ts'
import type { WorkspaceService } from './service.ts'

const HEARTBEAT_MS = 15_000
const STATUS_POLL_MS = 1_000

/**
 * SSE over a hijacked reply: each journal line is an event whose id is its journald cursor, so a
 * client reconnecting with Last-Event-ID resumes exactly after the last line it saw. The stream
 * ends when the workspace stops running or the client goes away.
 */
export async function streamLogs(o: {
  node: NodeClient
  ws: WorkspaceService
  user: User
  id: string
  /** Only this systemd unit's lines (an app's unit); the whole journal without it. */
  unit?: string
  request: FastifyRequest
  reply: FastifyReply
}): Promise<void> {
  const { reply, request } = o
  const lastId = request.headers['last-event-id']
  const cursor = typeof lastId === 'string' && lastId.length <= 512 ? lastId : undefined
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  })
  res.write(`retry: 2000\n: connected to ${o.id}\n\n`)
  const abort = new AbortController()
  const end = () => abort.abort()
  request.raw.on('close', end)
  const heartbeat = setInterval(() => res.write(`: heartbeat ${Date.now()}\n\n`), HEARTBEAT_MS)
  const watch = setInterval(() => {
    o.ws.get(o.user, o.id).then(
      (row) => row.status !== 'running' && end(),
      () => end(),
    )
  }, STATUS_POLL_MS)
  try {
    await o.node.followLogs(
      o.id,
      { cursor, ...(o.unit && { unit: o.unit }) },
      (line) => {
        const data = JSON.stringify({
          message: line.message,
          timestamp: line.timestamp,
          unit: line.unit,
        })
        res.write(`id: ${line.cursor}\nevent: log\ndata: ${data}\n\n`)
      },
      abort.signal,
    )
  } catch (err) {
    if (!abort.signal.aborted) request.log.warn({ err }, 'log stream ended with an error')
  } finally {
    clearInterval(heartbeat)
    clearInterval(watch)
    request.raw.off('close', end)
    if (!res.writableEnded) res.end('event: end\ndata: {}\n\n')
  }
}
