import dns from 'node:dns'
import os from 'node:os'

/** Every address of the host name, as the system resolver (getaddrinfo) gives them. */
export async function defaultResolve(host: string): Promise<string[]> {
  const all = await dns.promises.lookup(host, { all: true, verbatim: true })
  return all.map((a) => a.address)
}

/** Every address of this node's interfaces: loopback, its LAN and public addresses. */
export function interfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address))
}

/** Stop waiting after `ms` (a lookup cannot be cancelled, only abandoned). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}
