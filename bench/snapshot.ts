/**
 * Snapshots through the API on a real VM: disk snapshot create and restore at two fill levels
 * (a fresh workspace, then one with 1 GiB more written), and pause/resume against a cold boot of
 * the same workspace, in one run. `npm run bench:snapshot [rounds]` (needs the base image).
 */
import fs from 'node:fs'
import path from 'node:path'
import { realApp } from './real-app.ts'

const rounds = Number(process.argv[2] ?? 3)
const { app, dataDir, call, until, close } = await realApp('rigbox-bench-snap-')

/** Seconds from the request to the status it leads to. */
async function timed(id: string, verb: string, status: string) {
  const started = performance.now()
  await call('POST', `/api/v1/workspaces/${id}/${verb}`)
  await until(id, status)
  return (performance.now() - started) / 1000
}

async function seconds<T>(f: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now()
  const out = await f()
  return [(performance.now() - started) / 1000, out]
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mib = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`

try {
  const { vm } = await call('POST', '/api/v1/workspaces', { name: 'bench', ram_mb: 512 })
  const id = vm.id as string
  const boots = [await timed(id, 'start', 'running')]

  const disk: { label: string; size: number; create: number; restore: number }[] = []
  for (const level of ['fresh (booted once)', 'after writing 1 GiB']) {
    if (disk.length) {
      await call('POST', `/api/v1/workspaces/${id}/exec`, {
        command: 'yes rigbox | head -c 1G > ~/fill && sync',
        timeout_ms: 600_000,
      })
    }
    await timed(id, 'stop', 'stopped')
    const [create, { snapshot }] = await seconds(() =>
      call('POST', `/api/v1/workspaces/${id}/snapshots`, { name: `level-${disk.length}` }),
    )
    const [restore] = await seconds(() =>
      call('POST', `/api/v1/workspaces/${id}/snapshots/${snapshot.id}/restore`),
    )
    disk.push({ label: level, size: snapshot.size_bytes, create, restore })
    boots.push(await timed(id, 'start', 'running'))
  }

  const pause: number[] = []
  const resume: number[] = []
  let memoryBytes = 0
  for (let i = 0; i < rounds; i++) {
    pause.push(await timed(id, 'pause', 'paused'))
    const state = path.join(dataDir, 'vms', id, 'host', 'memory.state')
    memoryBytes = fs.statSync(state).size
    resume.push(await timed(id, 'resume', 'running'))
    console.log(`round ${i + 1}: pause ${pause[i].toFixed(2)} s, resume ${resume[i].toFixed(2)} s`)
  }

  console.log('disk snapshots (512 MiB RAM, 3 GiB disk):')
  for (const d of disk) {
    console.log(
      `  ${d.label.padEnd(22)} size ${mib(d.size).padStart(9)}  create ${d.create.toFixed(2)} s  restore ${d.restore.toFixed(2)} s`,
    )
  }
  const boot = median(boots)
  const p = median(pause)
  const r = median(resume)
  console.log(`memory snapshots (median of ${rounds}; memory state ${mib(memoryBytes)}):`)
  console.log(`  cold boot (start → running, median of ${boots.length})  ${boot.toFixed(2)} s`)
  console.log(`  pause (→ paused)                          ${p.toFixed(2)} s`)
  console.log(`  resume (→ running)                        ${r.toFixed(2)} s`)
  console.log(`  ratio resume / cold boot                  ${(r / boot).toFixed(3)}x`)
  await call('DELETE', `/api/v1/workspaces/${id}`)
  await app.rigbox.reconciler.idle()
} finally {
  await close()
}
