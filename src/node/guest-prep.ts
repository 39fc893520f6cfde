import type { GuestChannel } from '../guest/index.ts'

/**
 * The egress proxy as every VM sees it: the agent listens on 172.16.0.1:3128 and tunnels to the
 * node (agent/options.ts defaults; agent/tunnel.ts writeProxyEnv puts the same URL in
 * HTTP(S)_PROXY). Package managers get it in their own config because `sudo` drops the proxy
 * env and apt never reads it.
 */
export const GUEST_PROXY_URL = 'http://172.16.0.1:3128'
const NO_PROXY = 'localhost,127.0.0.1,172.16.0.1'

/** The guest's system CA bundle (Debian's, which apt, curl, git and Python's ssl read). */
export const GUEST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'
/** Where the operator's certificates go, one per file (update-ca-certificates reads `*.crt`). */
export const GUEST_OPERATOR_CA_DIR = '/usr/local/share/ca-certificates/rigbox'
/**
 * The operator's certificates alone, for NODE_EXTRA_CA_CERTS: Node has its own roots and reads
 * this file in every process it starts, so it gets only what it lacks.
 */
export const GUEST_OPERATOR_CA_FILE = '/usr/local/share/rigbox/operator-ca.pem'
/** npm's global config: `$PREFIX/etc/npmrc`, with Node and npm installed under /usr/local. */
export const GUEST_NPM_GLOBALCONFIG = '/usr/local/etc/npmrc'

/** What the operator set for every VM (config.egress). */
export interface GuestPrepSettings {
  /** PEM text of the extra CAs (RIGBOX_GUEST_CA_CERTS), or null. */
  caCerts: string | null
}

/** Env that makes TLS clients with their own roots (Node, pip-installed requests) trust the operator's CAs. */
const CA_ENV: [string, string][] = [
  ['NODE_EXTRA_CA_CERTS', GUEST_OPERATOR_CA_FILE],
  ['REQUESTS_CA_BUNDLE', GUEST_CA_BUNDLE],
  ['SSL_CERT_FILE', GUEST_CA_BUNDLE],
]

// Every file below is rewritten (or removed) at each fresh boot, so a changed or removed setting
// takes effect on an existing workspace at its next start. Blocks between BEGIN/END markers are
// used in files users may edit too (/etc/environment, npm's global npmrc): lines outside stay.
const SCRIPT = String.raw`
set -u
warn() { echo "rigbox guest prep: $*" >&2; logger -t rigbox-guest-prep -- "$*" 2>/dev/null || true; }
# put FILE: stdin to FILE (0644), atomically, untouched when the content is the same.
put() {
  mkdir -p "$(dirname "$1")" && cat >"$1.rigbox-tmp" && chmod 0644 "$1.rigbox-tmp" || return 1
  if cmp -s "$1.rigbox-tmp" "$1"; then rm -f "$1.rigbox-tmp"; else mv -f "$1.rigbox-tmp" "$1"; fi
}
# block FILE NAME: replace the lines between this block's markers with stdin (empty: drop them).
block() {
  body=$(cat)
  begin="# BEGIN rigbox $2 (managed by the node)"; end="# END rigbox $2"
  { [ -f "$1" ] && awk -v b="$begin" -v e="$end" '$0==b{s=1;next} $0==e{s=0;next} !s' "$1" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
    [ -n "$body" ] && printf '%s\n%s\n%s\n' "$begin" "$body" "$end"; } | put "$1"
}

# -- operator CA certificates (stdin: the PEM bundle, possibly empty) --
# Only those the distro does not ship already: a bundle copied from a host repeats the whole
# Mozilla set. Compared by their base64 body.
stage=$(mktemp -d)
find /usr/share/ca-certificates -name '*.crt' -exec cat {} + >"$stage/known" 2>/dev/null
cat >"$stage/in"
awk -v dir="$stage" '
  { sub(/^[ \t]+/, ""); sub(/[ \t\r]+$/, "") }
  /^-----BEGIN CERTIFICATE-----$/ { inside = 1; body = ""; next }
  inside && /^-----END CERTIFICATE-----$/ {
    inside = 0
    if (FILENAME == ARGV[1]) known[body] = 1
    else if (!(body in known)) {
      known[body] = 1; f = sprintf("%s/operator-%d.crt", dir, ++n)
      printf "-----BEGIN CERTIFICATE-----\n" >f
      for (i = 1; i <= length(body); i += 64) print substr(body, i, 64) >f
      print "-----END CERTIFICATE-----" >f; close(f)
    }
    next
  }
  inside { body = body $0 }' "$stage/known" "$stage/in"
rm -f "$stage/known" "$stage/in"
has_ca=; ls "$stage"/*.crt >/dev/null 2>&1 && has_ca=1
want=$(cat "$stage"/*.crt 2>/dev/null | sha256sum | cut -d' ' -f1)
marker=/var/lib/rigbox/guest-ca.sha256
have=$(cat "$marker" 2>/dev/null || { [ -d "$CA_DIR" ] || cat /dev/null | sha256sum | cut -d' ' -f1; })
if [ "$want" != "$have" ]; then
  # What update-ca-certificates would make of $CA_DIR, without its process per distro certificate
  # (most of a minute under TCG): the bundle without the previous operator certificates plus the
  # new ones, their .pem links, and the hash links. A later update-ca-certificates (a package
  # upgrade) reads the same files and arrives at the same store.
  cat "$CA_DIR"/*.crt >"$stage/old" 2>/dev/null
  old_links=$(ls "$CA_DIR" 2>/dev/null | sed -n 's/\.crt$/.pem/p')
  { awk '{ sub(/^[ \t]+/, ""); sub(/[ \t\r]+$/, "") }
      /^-----BEGIN CERTIFICATE-----$/ { inside = 1; body = ""; next }
      inside && /^-----END CERTIFICATE-----$/ {
        inside = 0
        if (FILENAME == ARGV[1]) drop[body] = 1
        else if (!(body in drop)) {
          print "-----BEGIN CERTIFICATE-----"
          for (i = 1; i <= length(body); i += 64) print substr(body, i, 64)
          print "-----END CERTIFICATE-----"
        }
        next
      }
      inside { body = body $0 }' "$stage/old" "$BUNDLE"
    cat "$stage"/*.crt 2>/dev/null; } >"$stage/bundle"
  if [ -s "$stage/bundle" ] || [ ! -s "$BUNDLE" ]; then
    put "$BUNDLE" <"$stage/bundle"
    for l in $old_links; do rm -f "/etc/ssl/certs/$l"; done
    rm -rf "$CA_DIR"
    if [ -n "$has_ca" ]; then
      mkdir -p "$CA_DIR" && cp "$stage"/operator-*.crt "$CA_DIR"/
      for f in "$CA_DIR"/*.crt; do ln -sf "$f" "/etc/ssl/certs/$(basename "$f" .crt).pem"; done
    fi
    if openssl rehash /etc/ssl/certs >/dev/null 2>&1; then
      mkdir -p /var/lib/rigbox && echo "$want" >"$marker"
    else warn "openssl rehash failed"; fi
  else warn "the CA bundle came out empty; trust store left as it was"; fi
fi
if [ -n "$has_ca" ]; then cat "$CA_DIR"/*.crt | put "$NODE_CA" || warn "writing $NODE_CA failed"; else rm -f "$NODE_CA"; fi
rm -rf "$stage"

# -- CA env for Node, Python requests and OpenSSL users (only with operator certs) --
user_keys=$(sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' /etc/rigbox/env 2>/dev/null)
key() { echo "$1" | cut -d= -f1; }
ours=; for kv in $CA_PAIRS; do echo "$user_keys" | grep -qx "$(key "$kv")" || ours="$ours $kv"; done
if [ -n "$has_ca" ]; then
  printf '# Managed by the rigbox node (operator CA); rewritten at every boot.\n%s' "$CA_PROFILE" | put /etc/profile.d/rigbox-ca.sh
  printf '%s' "$CA_ENVFILE" | block /etc/environment ca
  printf '# Managed by the rigbox node (operator CA); rewritten at every boot.\n[Manager]\nDefaultEnvironment=%s\n' "$CA_ASSIGN" | put /etc/systemd/system.conf.d/45-rigbox-ca.conf
  [ -z "$ours" ] || systemctl set-environment $ours || warn "systemctl set-environment failed"
else
  rm -f /etc/profile.d/rigbox-ca.sh /etc/systemd/system.conf.d/45-rigbox-ca.conf
  printf '' | block /etc/environment ca
  [ -z "$ours" ] || systemctl unset-environment $(for kv in $ours; do key "$kv"; done) 2>/dev/null || true
fi

# -- package managers: proxy (and the system bundle when operator certs are set) --
printf '// Managed by the rigbox node; rewritten at every boot.\nAcquire::http::Proxy "%s";\nAcquire::https::Proxy "%s";\n' "$PROXY" "$PROXY" | put /etc/apt/apt.conf.d/90rigbox-proxy || warn "apt proxy config failed"
{ printf 'proxy=%s\nhttps-proxy=%s\nnoproxy=%s\n' "$PROXY" "$PROXY" "$NOPROXY"
  [ -n "$has_ca" ] && printf 'cafile=%s\n' "$BUNDLE"; } | block "$NPMRC" egress || warn "npm config failed"
{ printf '# Managed by the rigbox node; rewritten at every boot. Your own settings: ~/.config/pip/pip.conf\n[global]\nproxy = %s\n' "$PROXY"
  [ -n "$has_ca" ] && printf 'cert = %s\n' "$BUNDLE"; } | put /etc/pip.conf || warn "pip config failed"
exit 0
`

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/**
 * The script with its parameters bound (shell variables set in front of it). The operator's PEM
 * bundle goes to its stdin (empty: none), so the script is the same for every setting.
 */
export function guestPrepScript(): string {
  const vars: Record<string, string> = {
    PROXY: GUEST_PROXY_URL,
    NOPROXY: NO_PROXY,
    BUNDLE: GUEST_CA_BUNDLE,
    CA_DIR: GUEST_OPERATOR_CA_DIR,
    NODE_CA: GUEST_OPERATOR_CA_FILE,
    NPMRC: GUEST_NPM_GLOBALCONFIG,
    // Kept when the workspace env or the shell already set it, as the agent's proxy env does.
    CA_PROFILE: CA_ENV.map(([k, v]) => `export ${k}="\${${k}-${v}}"\n`).join(''),
    CA_ENVFILE: CA_ENV.map(([k, v]) => `${k}=${v}`).join('\n'),
    CA_ASSIGN: CA_ENV.map(([k, v]) => `"${k}=${v}"`).join(' '),
    CA_PAIRS: CA_ENV.map(([k, v]) => `${k}=${v}`).join(' '),
  }
  const prelude = Object.entries(vars)
    .map(([k, v]) => `${k}=${shq(v)}\n`)
    .join('')
  return prelude + SCRIPT
}

/**
 * Node-side preparation of a freshly booted guest, before the workspace counts as running (so
 * setup scripts can already install packages): the operator's CAs in the trust store and in
 * Node's, npm's, pip's and Python's view, and the egress proxy in apt's, npm's and pip's own
 * config. Idempotent; a resumed VM keeps what its boot wrote. A step that fails inside the guest
 * does not fail the start: it is reported in the workspace's logs (journal tag
 * `rigbox-guest-prep`) and returned.
 */
export async function prepareGuest(
  guest: Pick<GuestChannel, 'run'>,
  settings: GuestPrepSettings,
): Promise<{ warnings: string[] }> {
  const res = await guest.run(guestPrepScript(), {
    user: 'root',
    stdin: settings.caCerts ?? '',
    timeout_ms: 120_000,
  })
  const warnings = res.stderr
    .split('\n')
    .filter((l) => l.startsWith('rigbox guest prep: '))
    .map((l) => l.slice('rigbox guest prep: '.length))
  if (res.exit_code !== 0) warnings.push(`guest preparation exited with ${res.exit_code}`)
  return { warnings }
}
