import net from 'node:net'

/**
 * Address parsing for the egress policy. Everything is reduced to one canonical text form before
 * it is compared, so `0x7f.1`, `127.1`, `[::ffff:127.0.0.1]` and `127.0.0.1` are all the same
 * address to every rule: a policy that can be dodged by spelling an address differently is no
 * policy.
 */

/** 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6. */
export type IpBytes = Uint8Array

export type ParsedHost = { kind: 'ip'; ip: string } | { kind: 'name'; name: string }

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/
// A last label that looks numeric makes the whole host an IPv4 literal or nothing (as in the
// WHATWG URL parser): a resolver might still read it as an address.
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|[0-9]+)$/

/**
 * The IPv4 forms `inet_aton` (and so `getaddrinfo`) accepts: 1–4 parts, each decimal, octal
 * (leading 0) or hex (0x), the last filling the remaining bytes. Strict dotted-quad only when
 * `strict` (policy entries are written by people; requests may come from anything).
 */
export function parseIpv4(text: string, strict = false): IpBytes | null {
  const parts = text.split('.')
  if (parts.length > 4) return null
  if (strict && parts.length !== 4) return null
  const nums: number[] = []
  for (const p of parts) {
    let n: number
    if (/^(?:0|[1-9][0-9]{0,9})$/.test(p)) n = Number(p)
    else if (strict) return null
    else if (/^0x[0-9a-f]{0,8}$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16)
    else if (/^0[0-7]{1,11}$/.test(p)) n = parseInt(p, 8)
    else return null
    nums.push(n)
  }
  const last = nums.pop() as number
  if (nums.some((n) => n > 255)) return null
  if (last >= 2 ** (8 * (4 - nums.length))) return null
  const out = new Uint8Array(4)
  nums.forEach((n, i) => (out[i] = n))
  for (let i = 3, v = last; i >= nums.length; i--, v = Math.floor(v / 256)) out[i] = v % 256
  return out
}

/** IPv6 text (no zone id) to 16 bytes; a trailing dotted quad becomes the last two groups. */
function parseIpv6(text: string): IpBytes | null {
  if (!net.isIPv6(text) || text.includes('%')) return null
  let s = text
  const lastColon = s.lastIndexOf(':')
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIpv4(s.slice(lastColon + 1), true)
    if (!v4) return null
    const hi = ((v4[0] << 8) | v4[1]).toString(16)
    const lo = ((v4[2] << 8) | v4[3]).toString(16)
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`
  }
  const groups = (x: string) => (x === '' ? [] : x.split(':').map((g) => parseInt(g, 16)))
  const halves = s.split('::')
  let all = groups(halves[0])
  if (halves.length === 2) {
    const rest = groups(halves[1])
    all = [...all, ...Array<number>(Math.max(0, 8 - all.length - rest.length)).fill(0), ...rest]
  }
  if (halves.length > 2 || all.length !== 8) return null
  const out = new Uint8Array(16)
  all.forEach((g, i) => {
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  })
  return out
}

const isMapped = (b: IpBytes) =>
  b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff

/** Bytes of any IP text; IPv4-mapped IPv6 comes back as the IPv4 address it carries. */
export function ipBytes(text: string, lenientV4 = false): IpBytes | null {
  const v4 = parseIpv4(text, !lenientV4)
  if (v4) return v4
  const v6 = parseIpv6(text)
  if (!v6) return null
  return isMapped(v6) ? v6.slice(12) : v6
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run of zero groups as `::`. */
export function formatIp(b: IpBytes): string {
  if (b.length === 4) return b.join('.')
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1])
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; i++) {
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

/** The canonical text of an IP address in any accepted spelling, or null. */
export function canonicalIp(text: string, lenientV4 = false): string | null {
  const b = ipBytes(text, lenientV4)
  return b && formatIp(b)
}

/**
 * A request's host as the policy sees it: lowercase, without brackets or one trailing dot, an
 * IP literal in canonical form. Null for anything that is neither an address nor a DNS name.
 */
export function parseHost(raw: string): ParsedHost | null {
  let h = raw.trim().toLowerCase()
  if (h.startsWith('[') || h.endsWith(']')) {
    if (!(h.startsWith('[') && h.endsWith(']'))) return null
    const ip = parseIpv6(h.slice(1, -1))
    return ip ? { kind: 'ip', ip: formatIp(isMapped(ip) ? ip.slice(12) : ip) } : null
  }
  if (h.endsWith('.')) h = h.slice(0, -1)
  if (h === '' || h.length > 253) return null
  const ip = ipBytes(h, true)
  if (ip) return { kind: 'ip', ip: formatIp(ip) }
  const labels = h.split('.')
  if (!labels.every((l) => LABEL.test(l))) return null
  if (NUMERIC_LABEL.test(labels[labels.length - 1])) return null
  return { kind: 'name', name: h }
}

export interface Cidr {
  bytes: IpBytes
  prefix: number
}

/** `10.20.0.0/16`, `fd00::/8` or a single address (full-length prefix); strict forms only. */
export function parseCidr(text: string): Cidr | { error: string } | null {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const bytes = ipBytes(addr)
  if (!bytes) return null
  const max = bytes.length * 8
  if (slash < 0) return { bytes, prefix: max }
  const p = text.slice(slash + 1)
  if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) return { error: `prefix must be 0–${max}` }
  const cidr = { bytes, prefix: Number(p) }
  const masked = maskTo(bytes, cidr.prefix)
  if (!masked.every((x, i) => x === bytes[i]))
    return { error: `has bits set beyond the prefix; write ${formatIp(masked)}/${p}` }
  return cidr
}

function maskTo(b: IpBytes, prefix: number): IpBytes {
  const out = new Uint8Array(b.length)
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i))
    out[i] = b[i] & ((0xff << (8 - bits)) & 0xff)
  }
  return out
}

export function inCidr(ip: IpBytes, c: Cidr): boolean {
  if (ip.length !== c.bytes.length) return false
  const m = maskTo(ip, c.prefix)
  return m.every((x, i) => x === c.bytes[i])
}

export function formatCidr(c: Cidr): string {
  return c.prefix === c.bytes.length * 8 ? formatIp(c.bytes) : `${formatIp(c.bytes)}/${c.prefix}`
}
