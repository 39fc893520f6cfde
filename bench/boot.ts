/**
 * Boot: the same image booted by a bare QEMU command until its agent answers, against the API
 * path (create → start → status running: jail, cgroups, reconciler, agent handshake and
 * configuration), in the same run. Also the host memory each VM costs beyond its guest RAM.
 * `npm run bench:boot [rounds]` (needs the base image: `rig image build base`).
 */
import { spawn } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { GuestChannel } from '../src/guest/index.ts'
import { bareQemuArgs } from '../src/images/bare-boot.ts'
import { findImage } from '../src/images/build.ts'
import { imageDir, realApp } from './real-app.ts'
import { Cgroups } from '../src/vm/cgroups.ts'
import { findQemuInCgroup } from '../src/vm/qemu-run.ts'

const rounds = Number(process.argv[2] ?? 2)
const MEM_MB = 512
const image = await findImage('base', imageDir)
if (!image) throw new Error(`no base image in ${imageDir}: run rig image build base`)

/**
 * Host memory of a VMM beyond guest RAM: the resident size of every mapping except the guest
 * RAM block (the anonymous mapping of the guest's size). RSS minus guest RAM would undercount,
 * since a guest touches only part of its RAM.
 */
function overheadMb(pid: number): { rssMb: number; guestResidentMb: number; overheadMb: number } {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')
  let rss = 0
  let guest = 0
  let size = 0
  for (const line of smaps) {
    const m = /^(Size|Rss):\s+(\d+) kB/.exec(line)
    if (!m) continue
    const kb = Number(m[2])
    if (m[1] === 'Size') size = kb
    else {
      rss += kb
      // The guest RAM block: exactly the guest's size (QEMU may align it up by a page or two).
      if (size >= MEM_MB * 1024 && size <= MEM_MB * 1024 + 8192) guest += kb
    }
  }
  return { rssMb: rss / 1024, guestResidentMb: guest / 1024, overheadMb: (rss - guest) / 1024 }
}

async function bareBoot() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-bench-bare-'))
  const overlay = path.join(dir, 'disk.qcow2')
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    image!.rootfsPath,
    '-F',
    'raw',
    overlay,
  ])
  const sock = (n: string) => path.join(dir, `${n}.sock`)
  const started = performance.now()
  const qemu = spawn(
    'qemu-system-x86_64',
    bareQemuArgs(image!, {
      overlay,
      memMb: MEM_MB,
      vcpus: 1,
      agentSock: sock('agent'),
      bulkSock: sock('bulk'),
      tunnelSock: sock('tunnel'),
      serialLog: path.join(dir, 'console.log'),
    }),
    { stdio: 'ignore' },
  )
  const guest = new GuestChannel()
  try {
    await guest.connect({ agentSock: sock('agent'), bulkSock: sock('bulk'), timeoutMs: 300_000 })
    const seconds = (performance.now() - started) / 1000
    await new Promise((r) => setTimeout(r, 3000)) // let boot-time allocations settle
    return { seconds, memory: overheadMb(qemu.pid!) }
  } finally {
    guest.close()
    qemu.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function apiBoot() {
  const { app, call, until, cgroupParent, close } = await realApp('rigbox-bench-api-')
  try {
    const started = performance.now()
    const { vm } = await call('POST', '/api/v1/workspaces', { name: 'bench', ram_mb: MEM_MB })
    await call('POST', `/api/v1/workspaces/${vm.id}/start`)
    await until(vm.id, 'running', 50)
    const seconds = (performance.now() - started) / 1000
    await new Promise((r) => setTimeout(r, 3000))
    // The QEMU among the VM's processes (its inbound relay shares the cgroup).
    const pid = await findQemuInCgroup(new Cgroups(undefined, cgroupParent), vm.id)
    if (!pid) throw new Error(`no QEMU in the cgroup of ${vm.id}`)
    const memory = overheadMb(pid)
    await call('DELETE', `/api/v1/workspaces/${vm.id}`)
    await app.rigbox.reconciler.idle()
    return { seconds, memory }
  } finally {
    await close()
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const bare: Awaited<ReturnType<typeof bareBoot>>[] = []
const api: Awaited<ReturnType<typeof apiBoot>>[] = []
for (let i = 0; i < rounds; i++) {
  bare.push(await bareBoot())
  api.push(await apiBoot())
  console.log(
    `round ${i + 1}: bare ${bare[i].seconds.toFixed(1)} s, API ${api[i].seconds.toFixed(1)} s`,
  )
}
const b = median(bare.map((r) => r.seconds))
const a = median(api.map((r) => r.seconds))
console.log(`boot to agent ready (median of ${rounds}, ${MEM_MB} MiB, 1 vCPU):`)
console.log(`  bare QEMU command         ${b.toFixed(1)} s`)
console.log(`  API create → running      ${a.toFixed(1)} s`)
console.log(`  ratio API/bare            ${(a / b).toFixed(2)}x`)
const mem = (label: string, rs: typeof bare) => {
  const m = rs.at(-1)!.memory
  console.log(
    `  ${label.padEnd(24)} RSS ${m.rssMb.toFixed(0)} MiB, guest RAM resident ${m.guestResidentMb.toFixed(0)} MiB, beyond guest RAM ${m.overheadMb.toFixed(0)} MiB`,
  )
}
console.log('host memory per VM:')
mem('bare (tb-size 64)', bare)
mem('rigbox (jailed, tb 64)', api)
