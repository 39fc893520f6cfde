import { execFile } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'

/** Runs a command without a shell; rejects with its stderr on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = String(stderr || stdout || err.message).trim()
          reject(new Error(`${cmd} ${args.join(' ')}: ${detail}`))
        } else {
          resolve(stdout)
        }
      },
    )
  })
}

export interface ProcInfo {
  pid: number
  ppid: number
  state: string
  /** Clock ticks since boot; with the pid it names one process for good (pids are reused). */
  startTime: number
}

/** Parses /proc/PID/stat; null if the process is gone. */
export async function procInfo(pid: number): Promise<ProcInfo | null> {
  let text: string
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // The command name is in parentheses and may itself contain spaces or parentheses.
  const close = text.lastIndexOf(')')
  const fields = text.slice(close + 2).split(' ')
  return {
    pid,
    state: fields[0],
    ppid: Number(fields[1]),
    startTime: Number(fields[19]),
  }
}

export async function procCmdline(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    const args = raw.split('\0')
    if (args.at(-1) === '') args.pop()
    return args
  } catch {
    return null
  }
}

/** Real uid of a process, from /proc/PID/status. */
export async function procUid(pid: number): Promise<number | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8')
    const m = /^Uid:\s+(\d+)/m.exec(text)
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** Alive and not a zombie (a zombie still answers kill(pid, 0)). */
export async function isAlive(pid: number, startTime?: number): Promise<boolean> {
  const info = await procInfo(pid)
  if (!info || info.state === 'Z' || info.state === 'X') return false
  return startTime === undefined || info.startTime === startTime
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Polls until the process is gone; false if it still lives at the deadline. */
export async function waitGone(pid: number, timeoutMs: number, startTime?: number) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (!(await isAlive(pid, startTime))) return true
    if (Date.now() >= deadline) return false
    await sleep(50)
  }
}

export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal)
    return true
  } catch {
    return false
  }
}

export function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  )
}

/** `p`, or null if it has not settled within `ms`. */
export function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout
  const t = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)))
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

/** The last lines of a log file, for error messages ('' if none). */
export async function readTail(file: string, lines = 10): Promise<string> {
  const text = (await readFile(file, 'utf8').catch(() => '')).trim()
  return text ? `\n${text.split('\n').slice(-lines).join('\n')}` : ''
}
