import { unitName } from '../automation/guest.ts'
import type { TemplateAutomation } from '../automation/types.ts'
import type { Template, TemplateParam } from './catalog.ts'

/**
 * The `openclaw` template (seed 003's bot hosting): the `openclaw` npm package, a multi-channel AI
 * gateway, installed in the VM and run as the service `gateway`, its model provider wired to the
 * managed AI proxy on the VM bridge. Channel tokens are the app's sensitive params, so they reach
 * the unit only as env (a root-only env file) and never sit in OpenClaw's config file.
 *
 * The channel that needs no outside service is the gateway's own OpenAI-compatible HTTP endpoint
 * (POST /v1/chat/completions, Bearer gateway token), served on the same port as its Control UI.
 */

/**
 * Pinned: the newest release whose engines accept the image's Node 22 (2026.9.3 and later want
 * Node 24). Every dependency with native code ships a linux-x64 glibc prebuild (node-pty, koffi,
 * tree-sitter, fs-safe), so the `base` image is enough: nothing is compiled.
 */
export const OPENCLAW_VERSION = '2026.9.2'
export const OPENCLAW_PORT = 18789
export const OPENCLAW_HOME = '/home/developer'
/** npm's global prefix for developer: `openclaw` lands in ~/.npm-global/bin. */
export const OPENCLAW_PREFIX = `${OPENCLAW_HOME}/.npm-global`
/** Rigbox's own files for the gateway (start wrapper, config writer, generated token). */
export const RIGBOX_DIR = `${OPENCLAW_HOME}/.openclaw-rigbox`
export const TOKEN_FILE = `${RIGBOX_DIR}/gateway-token`

/**
 * Runs before every gateway start, as developer, with the unit's env (the workspace env, which
 * carries the AI proxy's OPENAI_BASE_URL / OPENAI_API_KEY, plus the app params). It merges the
 * settings Rigbox owns into ~/.openclaw/openclaw.json and leaves everything else the user (or
 * OpenClaw itself) put there. Values come from env at each start, so a change of AI settings or
 * params applies at the next restart. Plain Node, no template literals (this file is embedded in a
 * TypeScript template string).
 */
const CONFIGURE_MJS = `// Managed by Rigbox (rewritten at every workspace start): writes the settings Rigbox owns into
// OpenClaw's config before each gateway start. Edit ~/.openclaw/openclaw.json for the rest.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { createRequire } from 'node:module'

const env = process.env
const home = os.homedir()
const prefix = env.OPENCLAW_PREFIX || path.join(home, '.npm-global')
const rigboxDir = path.join(home, '.openclaw-rigbox')
const stateDir = env.OPENCLAW_STATE_DIR || path.join(home, '.openclaw')
const file = env.OPENCLAW_CONFIG_PATH || path.join(stateDir, 'openclaw.json')

// OpenClaw reads JSON5; use the parser it ships with so a hand-edited config stays readable.
let JSON5 = JSON
try {
  JSON5 = createRequire(path.join(prefix, 'lib/node_modules/openclaw/package.json'))('json5')
} catch {}

let cfg = {}
try {
  cfg = JSON5.parse(fs.readFileSync(file, 'utf8')) || {}
} catch (err) {
  if (err.code !== 'ENOENT') {
    const aside = file + '.broken-' + Date.now()
    fs.copyFileSync(file, aside)
    console.error('openclaw config unreadable (' + err.message + '); kept as ' + aside + ', starting fresh')
  }
}
const obj = (parent, key) => {
  if (!parent[key] || typeof parent[key] !== 'object' || Array.isArray(parent[key])) parent[key] = {}
  return parent[key]
}
const list = (s) => (s || '').split(/[\\s,]+/).filter(Boolean)

// The gateway: on all interfaces (the Rigbox router reaches it through the VM's port forward),
// behind a bearer token, with the OpenAI-compatible HTTP endpoint on.
const gateway = obj(cfg, 'gateway')
gateway.mode = 'local'
gateway.port = Number(env.OPENCLAW_PORT || ${OPENCLAW_PORT})
gateway.bind = 'lan'
gateway.auth = { ...obj(gateway, 'auth'), mode: 'token', token: '\${OPENCLAW_GATEWAY_TOKEN}' }
delete gateway.auth.password
obj(obj(obj(gateway, 'http'), 'endpoints'), 'chatCompletions').enabled = true
// The Rigbox router reaches the gateway through the VM's own network (the port forward) and sets
// X-Forwarded-For; OpenClaw answers 403 to forwarded requests from proxies it does not trust.
// Only the node's router can connect from that network (it is private to this VM).
const ipv4 = (ip) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0)
const dotted = (n) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
const vmNets = []
for (const addrs of Object.values(os.networkInterfaces())) {
  for (const a of addrs || []) {
    if (a.family !== 'IPv4' || a.internal || !a.cidr) continue
    const bits = Number(a.cidr.split('/')[1])
    const size = 2 ** (32 - bits)
    vmNets.push(dotted(Math.floor(ipv4(a.address) / size) * size) + '/' + bits)
  }
}
const trusted = Array.isArray(gateway.trustedProxies) ? gateway.trustedProxies : []
gateway.trustedProxies = [...new Set([...trusted, ...vmNets])]
const origins = list(env.CONTROL_UI_ORIGINS)
if (origins.length) obj(gateway, 'controlUi').allowedOrigins = origins

// The model: the managed AI proxy is OpenAI-compatible; its key is a placeholder it replaces.
const model = env.OPENCLAW_MODEL || 'rigbox/default'
const models = obj(cfg, 'models')
models.mode = models.mode || 'merge'
obj(models, 'providers').rigbox = {
  baseUrl: env.OPENAI_BASE_URL || 'http://172.16.0.1:9090/v1',
  apiKey: env.OPENAI_API_KEY || 'managed-by-rigbox',
  api: 'openai-completions',
  models: [
    {
      id: model,
      name: model + ' (Rigbox AI proxy)',
      reasoning: false,
      input: ['text', 'image'],
      contextWindow: Number(env.OPENCLAW_CONTEXT_WINDOW || 128000),
      maxTokens: 8192,
    },
  ],
}
const defaults = obj(obj(cfg, 'agents'), 'defaults')
obj(defaults, 'model').primary = 'rigbox/' + model
// A heartbeat is an agent turn every period: off unless asked for, since it spends AI credits.
obj(defaults, 'heartbeat').every = env.OPENCLAW_HEARTBEAT_EVERY || '0m'

// Channels: on when their token is set (the token stays in the env, never in this file).
const channels = obj(cfg, 'channels')
const dmAccess = (ch, allowFrom) => {
  const ids = list(allowFrom)
  if (ids.length) {
    ch.dmPolicy = 'allowlist'
    ch.allowFrom = ids
  }
}
if (env.TELEGRAM_BOT_TOKEN) {
  const tg = obj(channels, 'telegram')
  tg.enabled = true
  delete tg.botToken
  dmAccess(tg, env.TELEGRAM_ALLOW_FROM)
} else if (channels.telegram) channels.telegram.enabled = false
if (env.DISCORD_BOT_TOKEN) {
  const dc = obj(channels, 'discord')
  dc.enabled = true
  dc.token = { source: 'env', provider: 'default', id: 'DISCORD_BOT_TOKEN' }
  dmAccess(dc, env.DISCORD_ALLOW_FROM)
} else if (channels.discord) channels.discord.enabled = false

fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
const tmp = file + '.rigbox-tmp'
fs.writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\\n', { mode: 0o600 })
fs.renameSync(tmp, file)

// The gateway token: the param when set, else one generated once and kept in a 0600 file.
if (!env.OPENCLAW_GATEWAY_TOKEN) {
  const tokenFile = path.join(rigboxDir, 'gateway-token')
  if (!fs.existsSync(tokenFile)) {
    fs.writeFileSync(tokenFile, crypto.randomBytes(24).toString('hex') + '\\n', { mode: 0o600 })
  }
}
console.log('openclaw config written: model rigbox/' + model + ', port ' + gateway.port +
  ', channels: ' + (Object.keys(channels).filter((c) => channels[c] && channels[c].enabled).join(', ') || 'none besides HTTP'))
`

/**
 * npm looks for its global config under the prefix in use ($prefix/etc/npmrc), so an install
 * with another prefix (ours, or the one OpenClaw's plugin installer passes) would lose the egress
 * proxy and operator CA that the node puts in the image's global npmrc. Pin it to that file.
 */
const KEEP_NPM_GLOBALCONFIG =
  'export NPM_CONFIG_GLOBALCONFIG="${NPM_CONFIG_GLOBALCONFIG:-$(dirname "$(dirname "$(command -v node)")")/etc/npmrc}"'

/** The service's command: config from env, official plugins a token asks for, then the gateway. */
const START_SH = `#!/bin/bash
# Managed by Rigbox (rewritten at every workspace start): the gateway service's command.
set -euo pipefail
export OPENCLAW_PREFIX=${OPENCLAW_PREFIX}
${KEEP_NPM_GLOBALCONFIG}
export PATH="$OPENCLAW_PREFIX/bin:$PATH"
if ! command -v openclaw >/dev/null; then
  echo "openclaw is not installed yet (see the setup script openclaw-install in setup_status)" >&2
  exit 1
fi
node ${RIGBOX_DIR}/configure.mjs
# The proxy's other SDK variables would make OpenClaw turn on providers and plugins of its own
# (OPENROUTER_API_KEY enables Perplexity web search, an external plugin it then tries to
# install); its models come from the provider configure.mjs wrote.
unset OPENROUTER_API_KEY OPENROUTER_BASE_URL ANTHROPIC_API_KEY ANTHROPIC_BASE_URL
if [ -z "\${OPENCLAW_GATEWAY_TOKEN:-}" ]; then
  OPENCLAW_GATEWAY_TOKEN=$(cat ${TOKEN_FILE})
  export OPENCLAW_GATEWAY_TOKEN
fi
# Discord is an official plugin, not bundled: installed once, when a Discord token is first set.
if [ -n "\${DISCORD_BOT_TOKEN:-}" ] && [ ! -e ${RIGBOX_DIR}/discord-plugin-installed ]; then
  if openclaw plugins install @openclaw/discord@${OPENCLAW_VERSION}; then
    touch ${RIGBOX_DIR}/discord-plugin-installed
  else
    echo "installing the Discord plugin failed; the gateway starts without Discord" >&2
  fi
fi
exec openclaw gateway --port "\${OPENCLAW_PORT:-${OPENCLAW_PORT}}" --bind lan
`

/**
 * Every start: (re)writes Rigbox's helper files, so a newer template's fixes reach old
 * workspaces, and installs OpenClaw when it is not there yet (the first boot; or a later one if
 * that install failed). An installed OpenClaw is left alone, whatever its version, so an
 * `openclaw update` by the user sticks.
 */
const INSTALL_SH = `set -euo pipefail
mkdir -p ${RIGBOX_DIR} && chmod 700 ${RIGBOX_DIR}
cat > ${RIGBOX_DIR}/configure.mjs <<'RIGBOX_EOF'
${CONFIGURE_MJS}RIGBOX_EOF
cat > ${RIGBOX_DIR}/start.sh <<'RIGBOX_EOF'
${START_SH}RIGBOX_EOF
chmod 755 ${RIGBOX_DIR}/start.sh
grep -q '.npm-global/bin' ${OPENCLAW_HOME}/.profile 2>/dev/null ||
  echo 'export PATH="$HOME/.npm-global/bin:$PATH"' >> ${OPENCLAW_HOME}/.profile
install_openclaw() {
  ${KEEP_NPM_GLOBALCONFIG}
  echo "installing openclaw@${OPENCLAW_VERSION} (a few hundred MB of packages; minutes on a small VM)"
  local start=$(date +%s) attempt
  for attempt in 1 2 3; do
    if npm install --global --prefix ${OPENCLAW_PREFIX} --no-audit --no-fund --loglevel=warn \\
      openclaw@${OPENCLAW_VERSION}; then
      echo "installed openclaw@${OPENCLAW_VERSION} in $(( $(date +%s) - start ))s"
      return 0
    fi
    echo "npm install failed (attempt $attempt)" >&2
    sleep $(( attempt * 5 ))
  done
  return 1
}
# No \`exit\` anywhere: the runner runs scripts with \`bash -l\`, where the exit builtin runs
# ~/.bash_logout, whose clear_console fails without a console and, under set -e, turns exit 0
# into 1. Falling off the end (or errexit) keeps the real status.
if [ -x ${OPENCLAW_PREFIX}/bin/openclaw ]; then
  echo "openclaw $(node -p "require('${OPENCLAW_PREFIX}/lib/node_modules/openclaw/package.json').version") is installed"
else
  install_openclaw
fi
`

export const openclawAutomation: TemplateAutomation = {
  setup_scripts: [{ name: 'openclaw-install', run_on: 'every_start', content: INSTALL_SH }],
  services: [
    {
      name: 'gateway',
      exec_start: `/bin/bash ${RIGBOX_DIR}/start.sh`,
      env_vars: { OPENCLAW_PORT: String(OPENCLAW_PORT) },
      environment_file: null,
      restart_policy: 'always',
      auto_enable: true,
      setup_script: '',
      working_directory: OPENCLAW_HOME,
      port: OPENCLAW_PORT,
    },
  ],
}

const secret = (key: string, label: string, description: string, order: number): TemplateParam => ({
  key,
  label,
  param_type: 'secret',
  default: '',
  description,
  required: false,
  sensitive: true,
  group: 'Channels',
  order,
})

/** Params of the `gateway` app; each reaches the unit as the upper-cased env name. */
export const openclawParams: TemplateParam[] = [
  secret(
    'telegram_bot_token',
    'Telegram bot token',
    'From @BotFather. Turns the Telegram channel on (TELEGRAM_BOT_TOKEN). Needs outbound access ' +
      'to api.telegram.org from the workspace.',
    1,
  ),
  {
    key: 'telegram_allow_from',
    label: 'Telegram user IDs allowed to DM',
    param_type: 'string',
    default: '',
    description:
      'Comma-separated numeric IDs. Empty: new users get a pairing code to approve with ' +
      '`openclaw pairing approve telegram <code>`.',
    required: false,
    sensitive: false,
    group: 'Channels',
    validation_pattern: '^[0-9, ]*$',
    order: 2,
  },
  secret(
    'discord_bot_token',
    'Discord bot token',
    'Turns the Discord channel on (DISCORD_BOT_TOKEN); its plugin is installed at the first ' +
      'start with a token. Needs outbound access to Discord.',
    3,
  ),
  {
    key: 'discord_allow_from',
    label: 'Discord user IDs allowed to DM',
    param_type: 'string',
    default: '',
    description: 'Comma-separated numeric IDs. Empty: DMs need pairing.',
    required: false,
    sensitive: false,
    group: 'Channels',
    validation_pattern: '^[0-9, ]*$',
    order: 4,
  },
  secret(
    'openclaw_gateway_token',
    'Gateway token',
    'Bearer token for the Control UI and the OpenAI-compatible /v1/chat/completions endpoint. ' +
      `Empty: one is generated in ${TOKEN_FILE}.`,
    5,
  ),
  {
    key: 'openclaw_model',
    label: 'Model',
    param_type: 'string',
    default: 'rigbox/default',
    description:
      "Model asked of the workspace's AI proxy; rigbox/default follows the workspace AI settings.",
    required: false,
    sensitive: false,
    group: 'AI',
    order: 6,
  },
  {
    key: 'openclaw_heartbeat_every',
    label: 'Heartbeat interval',
    param_type: 'string',
    default: '0m',
    description: 'e.g. 30m. Each heartbeat is an agent turn that spends AI credits; 0m is off.',
    required: false,
    sensitive: false,
    group: 'AI',
    validation_pattern: '^[0-9]+[smhd]$',
    order: 7,
  },
  {
    key: 'control_ui_origins',
    label: 'Control UI origins',
    param_type: 'string',
    default: '',
    description:
      "The app's public URL (e.g. https://gateway-xyz.rigbox.dev), comma-separated, so the " +
      'browser Control UI may connect.',
    required: false,
    sensitive: false,
    group: 'Gateway',
    order: 8,
  },
]

const journal = (ref: string, name: string, primary = false) => ({
  source_type: 'journald',
  source_ref: ref,
  display_name: name,
  is_primary: primary,
})

export const openclawTemplate: Template = {
  id: 'openclaw',
  name: 'OpenClaw',
  description:
    `OpenClaw ${OPENCLAW_VERSION}, a multi-channel AI gateway (Telegram, Discord, and an ` +
    'OpenAI-compatible HTTP API), with its models served by the managed AI proxy. Served as the ' +
    `app "gateway" on port ${OPENCLAW_PORT}; channel tokens are the app's secret params.`,
  icon: 'message-circle',
  image: 'base',
  category: 'ai',
  // The gateway alone holds ~600 MB resident; npm's install peaks near 500 MB.
  ram_mb: 2048,
  vcpu_count: 1,
  // ~520 MB of node_modules plus npm's cache (~190 MB) on top of the image.
  disk_size_mb: 6144,
  coming_soon: false,
  managed_ai_config: true,
  has_tools: false,
  default_log_sources: [
    journal(unitName('svc', 'gateway'), 'OpenClaw gateway', true),
    journal('*', 'System journal'),
  ],
  expected_apps: [
    {
      name: 'gateway',
      port: OPENCLAW_PORT,
      protocol: 'http',
      managed: true,
      system_tags: ['bot', 'ai'],
      configurable_params: openclawParams,
    },
  ],
  automation: openclawAutomation,
  app_services: { gateway: 'gateway' },
}
