import type { ParamSpec } from '../apps/params.ts'

/**
 * What a workspace can install on demand: tools (served to the owner's browser from a unit the
 * user launches and stops) and catalog apps (services installed once, then served as apps).
 * Only entries that install here are listed: Debian bookworm packages through the egress proxy.
 * PyPI is unreachable from this deployment, so nothing here needs pip.
 */

export type Discovery = { type: 'CommandAvailable'; commands: string[] } | { type: 'Always' }

export interface ToolDef {
  id: string
  name: string
  description: string
  icon: string
  category: string
  /** Where it listens inside the VM. */
  port: number
  /** The routed app is `<suffix>-<workspace id>`. */
  subdomain_suffix: string
  discovery: Discovery
  install_hint: string
  tags: string[]
  /** Debian packages the install job brings in. */
  packages: string[]
  /** Bash (as root) after the packages: e.g. switching off a daemon the package starts itself. */
  post_install: string
  /** The unit's command line (systemd syntax, not a shell), run as developer. */
  exec_start: string
}

export interface CatalogAppDef {
  id: string
  name: string
  description: string
  icon: string
  category: string
  min_ram_mb: number
  min_disk_mb: number
  port: number
  subdomain_suffix: string
  system_tags: string[]
  configurable_params: ParamSpec[]
  packages: string[]
  /**
   * Bash (as root) after the packages. Gets PARAM_<KEY> for every param (value or default) and
   * CRED_<KEY> for every generated credential, in its environment, never in its text.
   */
  install_script: string
  /** The unit's command line, run as developer. */
  exec_start: string
  /** Generated at install and returned once (the user's login to the app). */
  credentials: (random: () => string) => Record<string, string>
}

/** A web terminal: bash as developer in the browser, behind the router's login. */
const terminal: ToolDef = {
  id: 'terminal',
  name: 'Web terminal',
  description: 'A bash shell as developer in your browser (Shell In A Box).',
  icon: 'terminal',
  category: 'development',
  port: 4201,
  subdomain_suffix: 'term',
  discovery: { type: 'CommandAvailable', commands: ['shellinaboxd'] },
  install_hint: 'sudo apt-get install shellinabox',
  tags: ['shell', 'bash'],
  packages: ['shellinabox'],
  // The package starts its own daemon as root with a password login on port 4200; the tool
  // runs its own unit as developer instead, so that one is switched off for good.
  post_install:
    'systemctl disable --now shellinabox >/dev/null 2>&1 || true; ' +
    'systemctl mask shellinabox >/dev/null 2>&1 || true',
  exec_start:
    '/usr/bin/shellinaboxd --disable-ssl --no-beep --port=4201 ' +
    '"--service=/:developer:developer:/home/developer:/bin/bash -l"',
}

export const TOOLS: readonly ToolDef[] = [terminal]

const SYNCTHING_HOME = '/home/developer/.config/syncthing'

/** Continuous file sync with its web UI; the workspace is one device of the user's. */
const syncthing: CatalogAppDef = {
  id: 'syncthing',
  name: 'Syncthing',
  description: 'Continuous file synchronization between your devices, with its web UI.',
  icon: 'syncthing',
  category: 'files',
  min_ram_mb: 256,
  min_disk_mb: 100,
  port: 8384,
  subdomain_suffix: 'sync',
  system_tags: ['files', 'sync'],
  configurable_params: [
    {
      key: 'gui_user',
      label: 'Web UI user name',
      param_type: 'string',
      default: 'admin',
      validation_pattern: '^[A-Za-z0-9._-]{1,64}$',
      required: true,
    },
    {
      key: 'discovery',
      label: 'Global discovery and relays',
      description: 'Find your other devices through the public Syncthing servers.',
      param_type: 'boolean',
      default: 'false',
    },
  ],
  packages: ['syncthing'],
  install_script: [
    'set -eu',
    `home=${SYNCTHING_HOME}`,
    'if [ ! -f "$home/config.xml" ]; then',
    '  sudo -u developer -H syncthing generate --no-default-folder --home="$home" \\',
    '    --gui-user="$PARAM_GUI_USER" --gui-password="$CRED_PASSWORD" >/dev/null',
    'fi',
    // Served to the router (not only loopback); nothing reaches out unless the user asked.
    'sed -i \'s#<address>127.0.0.1:8384</address>#<address>0.0.0.0:8384</address>#\' "$home/config.xml"',
    'if [ "$PARAM_DISCOVERY" != true ]; then',
    '  for o in globalAnnounceEnabled relaysEnabled natEnabled localAnnounceEnabled; do',
    '    sed -i "s#<$o>true</$o>#<$o>false</$o>#" "$home/config.xml"',
    '  done',
    'fi',
    'sed -i "s#<urAccepted>0</urAccepted>#<urAccepted>-1</urAccepted>#" "$home/config.xml"',
  ].join('\n'),
  exec_start: `/usr/bin/syncthing serve --no-browser --no-restart --home=${SYNCTHING_HOME}`,
  credentials: (random) => ({ password: random() }),
}

export const CATALOG: readonly CatalogAppDef[] = [syncthing]

export const findTool = (id: string) => TOOLS.find((t) => t.id === id)
export const findCatalogApp = (id: string) => CATALOG.find((a) => a.id === id)

/** The public shape of a tool (WorkspaceTool). */
export function toolView(t: ToolDef) {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    icon: t.icon,
    category: t.category,
    port: t.port,
    subdomain_suffix: t.subdomain_suffix,
    discovery: t.discovery,
    install_hint: t.install_hint,
    tags: t.tags,
  }
}

/** The public shape of a catalog entry (AppCatalogItem). */
export function catalogView(a: CatalogAppDef) {
  return {
    id: a.id,
    name: a.name,
    description: a.description,
    icon: a.icon,
    category: a.category,
    min_ram_mb: a.min_ram_mb,
    min_disk_mb: a.min_disk_mb,
    system_tags: a.system_tags,
    configurable_params: a.configurable_params,
    preview: false,
    destructive_delete: false,
  }
}

/**
 * Bash (as root) installing Debian packages through the egress proxy (the login shell has its
 * env). Package daemons are kept from starting during the install (policy-rc.d): what runs is
 * decided by our own units. The package lists are refreshed when older than six hours.
 */
export function aptInstallScript(packages: string[]): string {
  for (const p of packages)
    if (!/^[a-z0-9][a-z0-9+.-]*$/.test(p)) throw new Error(`bad package ${p}`)
  return [
    'set -eu',
    'export DEBIAN_FRONTEND=noninteractive',
    'opts="-q -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3"',
    'if [ -n "${http_proxy:-}" ]; then opts="$opts -o Acquire::http::Proxy=$http_proxy"; fi',
    'printf "#!/bin/sh\\nexit 101\\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d',
    'trap "rm -f /usr/sbin/policy-rc.d" EXIT',
    "if ! find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -360 | grep -q .; then",
    '  apt-get $opts update',
    'fi',
    `apt-get $opts install -y --no-install-recommends ${packages.join(' ')}`,
  ].join('\n')
}
