/** A single DNS label: what a subdomain may be, so `a.b.<domain>` never matches an app. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

export interface ParsedHost {
  subdomain: string
  /** The port the client named in Host, if any. */
  port: number | null
}

/** `<sub>.<domain>[:port]` → its parts; anything else (other domains, IPs, nested labels) → null. */
export function parseHost(header: string | undefined, domain: string): ParsedHost | null {
  if (!header || header.length > 300) return null
  const m = /^([^:[\]]+?)\.?(?::(\d{1,5}))?$/.exec(header.trim().toLowerCase())
  if (!m) return null
  const name = m[1]
  const port = m[2] === undefined ? null : Number(m[2])
  if (port !== null && (port < 1 || port > 65535)) return null
  const suffix = `.${domain.toLowerCase().replace(/\.$/, '')}`
  if (!name.endsWith(suffix)) return null
  const subdomain = name.slice(0, -suffix.length)
  return LABEL.test(subdomain) ? { subdomain, port } : null
}
