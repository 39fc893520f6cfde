// Opening a channel port: a virtio-serial character device in a VM, or a dev relay socket.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

const SYSFS_PORTS = '/sys/class/virtio-ports'

/** Finds `/dev/vportNpM` for a named port through sysfs (early in boot there are no udev links). */
export function findVirtioPort(name: string): string | null {
  let dirs: string[]
  try {
    dirs = fs.readdirSync(SYSFS_PORTS)
  } catch {
    return null
  }
  for (const d of dirs) {
    let portName: string
    try {
      portName = fs.readFileSync(path.join(SYSFS_PORTS, d, 'name'), 'utf8').trim()
    } catch {
      continue
    }
    if (portName !== name) continue
    const dev = `/dev/${d}`
    if (!fs.existsSync(dev)) makeNode(dev, path.join(SYSFS_PORTS, d, 'dev'))
    return dev
  }
  return null
}

// devtmpfs normally provides the node; if /dev is not devtmpfs, create it from sysfs' major:minor.
function makeNode(dev: string, devFile: string): void {
  try {
    const [major, minor] = fs.readFileSync(devFile, 'utf8').trim().split(':')
    fs.mkdirSync(path.dirname(dev), { recursive: true })
    // mknod(1) is in coreutils; node has no mknod binding.
    execFileSync('mknod', ['-m', '600', dev, 'c', major, minor])
  } catch {
    // Reported by the caller as a failed open.
  }
}

interface PipeHandle {
  open(fd: number): number
}
interface PipeWrapBinding {
  Pipe: new (type: number) => PipeHandle
  constants: { SOCKET: number }
}

/**
 * Opens a character device as a net.Socket. `new net.Socket({ fd })` refuses character devices
 * (ERR_INVALID_FD_TYPE), but a libuv pipe handle accepts any pollable fd; it must be non-blocking
 * so that a write to a throttled port never blocks the event loop (the watchdog must stay alive).
 */
export function openCharDevice(dev: string): net.Socket {
  const fd = fs.openSync(dev, fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY)
  try {
    const binding = (process as unknown as { binding(name: string): PipeWrapBinding }).binding(
      'pipe_wrap',
    )
    const handle = new binding.Pipe(binding.constants.SOCKET)
    const err = handle.open(fd)
    if (err) throw new Error(`pipe_wrap open(${dev}) failed: errno ${err}`)
    return new net.Socket({
      handle,
      readable: true,
      writable: true,
      allowHalfOpen: true,
    } as net.SocketConstructorOpts)
  } catch (e) {
    fs.closeSync(fd)
    throw e
  }
}

/** Opens the named virtio port; throws when it is not (yet) there. */
export async function openVirtioPort(name: string): Promise<net.Socket> {
  const dev = findVirtioPort(name)
  if (!dev) throw new Error(`virtio port ${name} not found under ${SYSFS_PORTS}`)
  return openCharDevice(dev)
}

/** Dev/test mode: the guest end of a relay (see devrelay.ts) stands in for the character device. */
export function devPortPath(dir: string, name: string): string {
  return path.join(dir, `${name}.guest.sock`)
}

export function openDevPort(dir: string, name: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: devPortPath(dir, name), allowHalfOpen: true })
    sock.once('connect', () => {
      sock.off('error', reject)
      resolve(sock)
    })
    sock.once('error', reject)
  })
}
