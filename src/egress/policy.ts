import { canonicalIp, formatCidr, inCidr, ipBytes, parseCidr, parseHost } from './address.ts'
import type { Cidr, ParsedHost } from './address.ts'
import { compileOperatorAllow, operatorMatch } from './operator.ts'
import { canonicalSet, classify, HOST_LOCAL, KIND_LABEL } from './ranges.ts'

/**
 * A workspace's egress policy. Entries: `example.com`, `*.example.com` (any subdomain, not the
 * apex), `10.0.0.5`, `10.20.0.0/16`, `2001:db8::/32`, each optionally with `:port` (IPv6 then
 * in brackets: `[2001:db8::1]:443`).
 */
export interface EgressPolicy {
  allow: string[]
  deny: string[]
}

export const MAX_ENTRIES = 100
export const MAX_ENTRY_LENGTH = 261 // a 253-character name plus `:65535`, or a bracketed CIDR

export interface EgressTarget {
  host: string
  port: number
  /** The addresses the host resolved to; ignored when the host is itself an IP literal. */
  resolved: string[]
}

export interface EgressDecision {
  allowed: boolean
  /** For a refusal, the whole sentence shown to the workspace (the 403 body). */
  reason: string
  /** The one checked address to connect to; set only when allowed. Never resolve again. */
  address?: string
}

export interface DecideOptions {
  /**
   * Let an explicit allow entry open host-local addresses too (loopback, the node's own, link-local,
   * 0.0.0.0). Off in production: those reach the control plane, other tenants' forwarded ports on
   * 127.0.0.1, or the cloud metadata service, and a workspace owner edits their own policy.
   */
  allowHostLocal?: boolean
  /**
   * The operator's allow list (RIGBOX_EGRESS_ALLOW, operator.ts): addresses and CIDRs open to
   * every workspace, whatever its own allow list says. A workspace's deny list still wins.
   */
  operatorAllow?: readonly string[]
}

type Entry = { text: string; port: number | null } & (
  | { kind: 'name'; name: string }
  | { kind: 'wildcard'; suffix: string }
  | { kind: 'cidr'; cidr: Cidr }
)

/** One entry, normalised (lowercase, no trailing dot, canonical IPs), or why it is invalid. */
export function parseEntry(raw: string): Entry | { error: string } {
  if (typeof raw !== 'string') return { error: 'must be a string' }
  const text = raw.trim().toLowerCase()
  if (text === '') return { error: 'is empty' }
  if (text.length > MAX_ENTRY_LENGTH) return { error: `is longer than ${MAX_ENTRY_LENGTH}` }
  let body = text
  let port: number | null = null
  let bracketed = false
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return { error: 'has no closing "]"' }
    body = text.slice(1, close)
    bracketed = true
    const rest = text.slice(close + 1)
    if (rest !== '') {
      if (!rest.startsWith(':')) return { error: 'has text after "]" that is not ":port"' }
      const p = parsePort(rest.slice(1))
      if (p === null) return { error: 'has an invalid port (1–65535)' }
      port = p
    }
  } else if (text.split(':').length === 2) {
    const p = parsePort(text.slice(text.indexOf(':') + 1))
    if (p === null) return { error: 'has an invalid port (1–65535)' }
    body = text.slice(0, text.indexOf(':'))
    port = p
  }
  const withPort = (s: string) => (port === null ? s : `${s.includes(':') ? `[${s}]` : s}:${port}`)

  const cidr = parseCidr(body)
  if (cidr && 'error' in cidr) return { error: cidr.error }
  if (cidr) return { kind: 'cidr', cidr, port, text: withPort(formatCidr(cidr)) }
  if (bracketed) return { error: 'has brackets around something that is not an IPv6 address' }
  if (body.includes(':')) return { error: 'is not a valid IPv6 address or CIDR' }
  if (body === '*' || body === '*.')
    return { error: 'matches everything; an empty allow list already allows all public hosts' }
  if (body.startsWith('*.')) {
    const host = parseHost(body.slice(2))
    if (!host || host.kind !== 'name') return { error: 'must be "*." followed by a domain name' }
    return { kind: 'wildcard', suffix: host.name, port, text: withPort(`*.${host.name}`) }
  }
  if (body.includes('*')) return { error: 'may use "*" only as a whole first label: *.example.com' }
  if (body.includes('/')) return { error: 'is not a valid CIDR' }
  if (ipBytes(body, true))
    return { error: 'is an IP address in an unusual form; write it as four decimal numbers' }
  const host = parseHost(body)
  if (!host || host.kind !== 'name') return { error: 'is not a valid host name, address or CIDR' }
  return { kind: 'name', name: host.name, port, text: withPort(host.name) }
}

function parsePort(s: string): number | null {
  if (!/^[0-9]{1,5}$/.test(s)) return null
  const n = Number(s)
  return n >= 1 && n <= 65535 ? n : null
}

export type PolicyValidation = { ok: true; policy: EgressPolicy } | { ok: false; errors: string[] }

/** Checks a policy from the API; on success returns it normalised (duplicates dropped). */
export function validatePolicy(input: unknown): PolicyValidation {
  const errors: string[] = []
  const out: EgressPolicy = { allow: [], deny: [] }
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return { ok: false, errors: ['policy must be an object with "allow" and "deny" lists'] }
  const obj = input as Record<string, unknown>
  for (const key of Object.keys(obj))
    if (key !== 'allow' && key !== 'deny') errors.push(`unknown field "${key}"`)
  for (const list of ['allow', 'deny'] as const) {
    const value = obj[list] ?? []
    if (!Array.isArray(value)) {
      errors.push(`${list} must be a list of strings`)
      continue
    }
    if (value.length > MAX_ENTRIES)
      errors.push(`${list} has ${value.length} entries; at most ${MAX_ENTRIES} are allowed`)
    value.slice(0, MAX_ENTRIES).forEach((raw, i) => {
      const e = parseEntry(raw as string)
      const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 80)) : 'entry'
      if ('error' in e) errors.push(`${list}[${i}]: ${shown} ${e.error}`)
      else if (!out[list].includes(e.text)) out[list].push(e.text)
    })
  }
  return errors.length ? { ok: false, errors } : { ok: true, policy: out }
}

function compile(list: string[]): Entry[] | string {
  const out: Entry[] = []
  for (const raw of list) {
    const e = parseEntry(raw)
    if ('error' in e) return `${JSON.stringify(raw)} ${e.error}`
    out.push(e)
  }
  return out
}

const portOk = (e: Entry, port: number) => e.port === null || e.port === port

function matchesName(e: Entry, host: ParsedHost, port: number): boolean {
  if (host.kind !== 'name' || !portOk(e, port)) return false
  if (e.kind === 'name') return e.name === host.name
  if (e.kind === 'wildcard') return host.name.endsWith(`.${e.suffix}`)
  return false
}

function matchesIp(e: Entry, ip: string, port: number): boolean {
  if (e.kind !== 'cidr' || !portOk(e, port)) return false
  const b = ipBytes(ip)
  return !!b && inCidr(b, e.cidr)
}

const isLocalhostName = (h: ParsedHost) =>
  h.kind === 'name' && (h.name === 'localhost' || h.name.endsWith('.localhost'))

const refuse = (what: string, why: string): EgressDecision => ({
  allowed: false,
  reason: `egress to ${what} refused: ${why}`,
})

const allowed = (reason: string, address: string): EgressDecision => ({
  allowed: true,
  reason,
  address,
})

type Prepared = { host: ParsedHost; name: string; allow: Entry[]; deny: Entry[] }

/** The checks that need no address, shared by `decide` and `decideByName`. */
function byName(
  policy: EgressPolicy,
  rawHost: string,
  port: number,
  opts: DecideOptions,
): EgressDecision | Prepared {
  const host = parseHost(rawHost)
  if (!host) return refuse(JSON.stringify(rawHost), 'not a valid host name or address')
  const name = host.kind === 'name' ? host.name : host.ip
  const allow = compile(policy.allow)
  const deny = compile(policy.deny)
  if (typeof allow === 'string' || typeof deny === 'string') {
    const bad = typeof allow === 'string' ? allow : deny
    return refuse(name, `the workspace's egress policy is invalid: ${bad as string}`)
  }
  const denied = deny.find((e) => matchesName(e, host, port))
  if (denied) return refuse(name, `denied by the workspace's egress deny list ("${denied.text}")`)
  if (!opts.allowHostLocal && isLocalhostName(host))
    return refuse(name, 'loopback name; never reachable from a workspace')
  return { host, name, allow, deny }
}

/**
 * A refusal that the host name alone already decides (invalid host or policy, a deny entry, an
 * allow list nothing but an address could match), else null. The proxy asks this before
 * resolving, so a refused name is never looked up: a DNS query is itself a way out.
 */
export function decideByName(
  policy: EgressPolicy,
  host: string,
  port: number,
  opts: DecideOptions = {},
): EgressDecision | null {
  const p = byName(policy, host, port, opts)
  if ('allowed' in p) return p
  if (p.host.kind === 'ip' || p.allow.length === 0) return null
  // The name may resolve to an address the operator opened: only its addresses can tell.
  if (opts.operatorAllow?.length) return null
  if (p.allow.some((e) => e.kind === 'cidr' || matchesName(e, p.host, port))) return null
  return refuse(`${p.name}:${port}`, "not in the workspace's egress allow list")
}

/**
 * Whether a workspace may open a connection to `target`, in this order: a deny entry matching the
 * name or any resolved address refuses; host-local addresses are refused (unless `allowHostLocal`);
 * an exact-name or address allow entry allows, even a private address (how a user opens a database
 * in their own network on purpose); an operator allow entry (`opts.operatorAllow`) allows the same
 * way, and a single-address operator entry even opens a host-local address, since the operator
 * named it on purpose; a non-empty allow list that does not match refuses; any
 * non-public resolved address refuses; anything else is allowed. A wildcard allow entry satisfies
 * the allow list but does not open non-public addresses: whoever runs a subdomain's DNS could
 * point it anywhere.
 */
export function decide(
  policy: EgressPolicy,
  target: EgressTarget,
  nodeAddresses: ReadonlySet<string>,
  opts: DecideOptions = {},
): EgressDecision {
  const p = byName(policy, target.host, target.port, opts)
  if ('allowed' in p) return p
  const { host, name, allow, deny } = p
  const addrs = host.kind === 'ip' ? [host.ip] : target.resolved.map((a) => canonicalIp(a))
  if (addrs.length === 0) return refuse(name, 'the host has no address')
  if (addrs.some((a) => a === null)) return refuse(name, 'the host resolved to an invalid address')
  const ips = addrs as string[]
  const shown = (ip: string) => (host.kind === 'ip' ? ip : `${name} (${ip})`)

  for (const e of deny) {
    const ip = ips.find((a) => matchesIp(e, a, target.port))
    if (ip) return refuse(shown(ip), `denied by the workspace's egress deny list ("${e.text}")`)
  }

  const node = canonicalSet(nodeAddresses)
  const operator = compileOperatorAllow(opts.operatorAllow)
  if (!opts.allowHostLocal) {
    for (const ip of ips) {
      const kind = classify(ip, node)
      // Only an address the operator listed exactly: a wide CIDR (10.0.0.0/8) must not open the
      // node's own address inside it by accident.
      if (HOST_LOCAL.has(kind) && !operatorMatch(operator, ip)?.exact)
        return refuse(shown(ip), `${KIND_LABEL[kind]}; never reachable from a workspace`)
    }
  }

  const exact = allow.find((e) => e.kind === 'name' && matchesName(e, host, target.port))
  if (exact) return allowed(`explicitly allowed by "${exact.text}"`, ips[0])
  for (const ip of ips) {
    const e = allow.find((x) => matchesIp(x, ip, target.port))
    if (e) return allowed(`explicitly allowed by "${e.text}"`, ip)
  }
  for (const ip of ips) {
    const e = operatorMatch(operator, ip)
    if (e) return allowed(`allowed by the operator's egress allow list ("${e.text}")`, ip)
  }
  const wild = allow.find((e) => e.kind === 'wildcard' && matchesName(e, host, target.port))
  if (allow.length > 0 && !wild)
    return refuse(`${name}:${target.port}`, "not in the workspace's egress allow list")

  if (isLocalhostName(host))
    return refuse(name, "loopback name; add it to the workspace's egress allow list")
  for (const ip of ips) {
    const kind = classify(ip, node)
    if (kind === 'public') continue
    const add = host.kind === 'ip' ? ip : `${ip} or ${name}`
    return refuse(shown(ip), `${KIND_LABEL[kind]}; add ${add} to the workspace's egress allow list`)
  }
  return allowed(wild ? `allowed by "${wild.text}"` : 'public address', ips[0])
}
