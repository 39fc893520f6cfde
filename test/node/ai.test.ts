import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { REPLY, startAiUpstream, type AiUpstream } from '../helpers/ai-upstream.ts'
import { sdkBundle } from '../helpers/sdk-bundle.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/** Guest programs using the official SDKs as any user would; each prints one JSON line. */
const OPENAI_SCRIPT = `
import OpenAI from 'openai'
const ai = new OpenAI() // OPENAI_BASE_URL and OPENAI_API_KEY from the login env
const messages = [{ role: 'user', content: 'Say something about foxes.' }]
const out = {}
out.models = (await ai.models.list()).data.map((m) => m.id)
const r = await ai.chat.completions.create({ model: 'test/small', messages })
out.chat = { text: r.choices[0].message.content, usage: r.usage }
const s = await ai.chat.completions.create({ model: 'rigbox/default', messages, stream: true })
out.stream = { text: '', chunks: 0, usageChunk: false }
for await (const c of s) {
  out.stream.chunks++
  out.stream.text += c.choices[0]?.delta?.content ?? ''
  if (c.usage) out.stream.usageChunk = true
}
const e = await ai.embeddings.create({ model: 'test/embed', input: 'hello fox' })
out.embed = { dims: e.data[0].embedding.length, usage: e.usage }
console.log(JSON.stringify(out))
`
const ANTHROPIC_SCRIPT = `
import Anthropic from '@anthropic-ai/sdk'
const ai = new Anthropic() // ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY from the login env
const messages = [{ role: 'user', content: 'Say something about foxes.' }]
const m = await ai.messages.create({ model: 'test/small', max_tokens: 200, messages })
const st = ai.messages.stream({ model: 'test/small', max_tokens: 200, messages })
let streamed = ''
st.on('text', (t) => (streamed += t))
const final = await st.finalMessage()
console.log(JSON.stringify({ text: m.content[0].text, usage: m.usage, streamed, final: final.usage }))
`
/** A call that tries to pass for someone else: headers, body fields, another workspace's id. */
const SPOOF_SCRIPT = `
const other = process.argv[2]
const res = await fetch('http://172.16.0.1:9090/v1/chat/completions', {
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    authorization: 'Bearer rb_' + 'x'.repeat(40),
    'x-rigbox-workspace': other,
    'x-rigbox-user': 'usr-someoneelse',
    'x-forwarded-for': '172.16.0.99',
  },
  body: JSON.stringify({
    model: 'test/small',
    user: other,
    metadata: { workspace_id: other },
    messages: [{ role: 'user', content: 'who pays?' }],
  }),
})
console.log(JSON.stringify({ status: res.status }))
`
/**
 * The SDK pointed at the bridge explicitly: a BYOK workspace has no base-URL override, and one
 * whose AI is off has no key variable either.
 */
const BYOK_SCRIPT = `
import OpenAI from 'openai'
const apiKey = process.env.OPENAI_API_KEY ?? 'none'
const ai = new OpenAI({ baseURL: 'http://172.16.0.1:9090/v1', apiKey })
try {
  const r = await ai.chat.completions.create({
    model: 'test/small',
    messages: [{ role: 'user', content: 'hi' }],
  })
  console.log(JSON.stringify({ status: 200, text: r.choices[0].message.content }))
} catch (err) {
  console.log(JSON.stringify({ status: err.status, message: err.message }))
}
`

describe('the managed AI proxy, from inside a real VM', { timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  let upstream: AiUpstream
  let vmp: VmPlatform
  let owner: string
  let stranger: string
  let ws: { id: string; name: string }
  let strangersWs: { id: string }
  // Built from parts, so that a search for them inside the VM does not find its own command line.
  const managedKey = ['sk-managed', crypto.randomBytes(12).toString('hex')].join('-')
  const byokKey = ['sk-user-own', crypto.randomBytes(12).toString('hex')].join('-')
  const api: VmPlatform['api'] = (...args) => vmp.api(...args)
  /** A login shell in the VM, as the developer, with the workspace's env. */
  const sh = async (command: string, user: 'developer' | 'root' = 'developer') => {
    const res = await api(owner, 'POST', `/api/v1/workspaces/${ws.id}/exec`, {
      command,
      user,
      timeout_ms: 120_000,
    })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }
  const runScript = async (file: string, args = '') => {
    const r = await sh(`cd ~/sdk && node ${file} ${args}`)
    assert.equal(r.exit_code, 0, r.stderr)
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as any
  }
  /** Files in the VM holding `secret` (split in two, so the search never matches itself). */
  const filesHolding = async (secret: string) => {
    const [a, b] = [secret.slice(0, 8), secret.slice(8)]
    const r = await sh(
      `k="${a}""${b}"; grep -rlF -- "$k" /etc /home /root /usr/local /usr/lib/rigbox /tmp /var/tmp /run 2>/dev/null; ` +
        `for p in /proc/[0-9]*; do [ "$p" = /proc/$$ ] && continue; tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qF -- "$k" && echo "$p/environ $(cat $p/comm)"; done; true`,
      'root',
    )
    return r.stdout.split('\n').filter(Boolean)
  }
  const usageOf = async (key: string, workspaceId: string) => {
    const res = await api(key, 'GET', '/api/v1/users/me/ai-usage')
    assert.equal(res.status, 200, res.body)
    return (res.json.by_workspace as { workspace_id: string; requests: number }[]).find(
      (w) => w.workspace_id === workspaceId,
    )
  }

  before(async () => {
    releaseVms = await holdVmLock()
    upstream = await startAiUpstream()
    vmp = await startVmPlatform({
      RIGBOX_AI_UPSTREAM_URL: upstream.openaiUrl,
      RIGBOX_AI_UPSTREAM_KEY: managedKey,
      RIGBOX_AI_ANTHROPIC_URL: upstream.url,
      RIGBOX_AI_ANTHROPIC_KEY: managedKey,
      RIGBOX_AI_BYOK_OPENAI_URL: upstream.openaiUrl,
      RIGBOX_AI_MODEL_DEFAULT: 'test/small',
      RIGBOX_AI_MODEL_FAST: 'test/small',
      RIGBOX_AI_MODEL_FREE: 'test/free',
    })
    owner = await vmp.makeUser('ai-owner@example.com')
    stranger = await vmp.makeUser('ai-stranger@example.com')
    ws = (await api(owner, 'POST', '/api/v1/workspaces', { name: 'ai-vm' })).json.vm
    strangersWs = (await api(stranger, 'POST', '/api/v1/workspaces', { name: 'elsewhere' })).json.vm
    await api(owner, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    ws = await waitStatus(vmp.platform.app, owner, ws.id, ['running'])
    // The official clients, as installed here, unpacked in the VM (no registry needed).
    const put = await vmp.platform.app.inject({
      method: 'PUT',
      url: `/api/v1/workspaces/${ws.id}/files?path=/home/developer/sdk.tgz`,
      headers: { authorization: `Bearer ${owner}`, 'content-type': 'application/octet-stream' },
      payload: sdkBundle(['openai', '@anthropic-ai/sdk']),
    })
    assert.equal(put.statusCode, 200, put.body)
    const scripts = {
      'openai.mjs': OPENAI_SCRIPT,
      'anthropic.mjs': ANTHROPIC_SCRIPT,
      'spoof.mjs': SPOOF_SCRIPT,
      'byok.mjs': BYOK_SCRIPT,
    }
    const writes = Object.entries(scripts).map(
      ([name, text]) => `cat > ~/sdk/${name} <<'EOF'\n${text}\nEOF\n`,
    )
    const unpacked = await sh(`mkdir -p ~/sdk && tar -xzf ~/sdk.tgz -C ~/sdk\n${writes.join('')}`)
    assert.equal(unpacked.exit_code, 0, unpacked.stderr)
  })

  after(async () => {
    await api(owner, 'DELETE', `/api/v1/workspaces/${ws.id}`).catch(() => undefined)
    await vmp?.close()
    await upstream?.close()
    releaseVms()
  })

  it('points unmodified SDKs at the bridge, and no real key is anywhere in the VM', async () => {
    const env = (await sh('env')).stdout
    assert.match(env, /^OPENAI_BASE_URL=http:\/\/172\.16\.0\.1:9090\/v1$/m)
    assert.match(env, /^OPENROUTER_BASE_URL=http:\/\/172\.16\.0\.1:9090\/v1$/m)
    assert.match(env, /^ANTHROPIC_BASE_URL=http:\/\/172\.16\.0\.1:9090$/m)
    assert.match(env, /^OPENAI_API_KEY=managed-by-rigbox$/m)
    assert.match(env, /^RIGBOX_AI_MODE=managed$/m)
    assert.deepEqual(await filesHolding(managedKey), [])
  })

  it('serves the openai SDK in the VM: models, chat, a stream, embeddings; and charges for them', async () => {
    const before = (await api(owner, 'GET', '/api/v1/users/me/credits')).json
    const seen = upstream.requests.length
    const out = await runScript('openai.mjs')
    assert.ok(out.models.includes('test/small') && out.models.includes('rigbox/default'))
    assert.equal(out.chat.text, REPLY)
    assert.ok(out.chat.usage.prompt_tokens > 0 && out.chat.usage.completion_tokens > 0)
    assert.equal(out.stream.text, REPLY)
    assert.ok(out.stream.chunks > 3, 'streamed in pieces')
    assert.equal(out.stream.usageChunk, false, 'the usage chunk the proxy asked for stays hidden')
    assert.ok(out.embed.dims > 0)
    // The upstream saw the managed key, never the VM's placeholder.
    for (const r of upstream.requests.slice(seen)) {
      assert.equal(r.headers.authorization, `Bearer ${managedKey}`)
    }
    const after = (await api(owner, 'GET', '/api/v1/users/me/credits')).json
    assert.ok(after.remaining_micro < before.remaining_micro, 'the calls were charged')
    const mine = await usageOf(owner, ws.id)
    assert.ok(mine && mine.requests >= 3, JSON.stringify(mine))
  })

  it('serves the Anthropic SDK in the VM: messages, streamed and not, metered', async () => {
    const out = await runScript('anthropic.mjs')
    assert.equal(out.text, REPLY)
    assert.equal(out.streamed, REPLY)
    assert.ok(out.usage.input_tokens > 0 && out.usage.output_tokens > 0)
    assert.ok(out.final.output_tokens > 0)
    const metrics = await api(owner, 'GET', `/api/v1/workspaces/${ws.id}/ai-usage/metrics/summary`)
    assert.equal(metrics.status, 200, metrics.body)
    assert.ok(metrics.json.total_requests >= 5)
    assert.ok(metrics.json.output_tokens > 0)
  })

  it('knows who pays from the VM channel alone: spoofed headers and ids change nothing', async () => {
    const mineBefore = (await usageOf(owner, ws.id))!.requests
    const strangerBefore = (await api(stranger, 'GET', '/api/v1/users/me/credits')).json
    const out = await runScript('spoof.mjs', strangersWs.id)
    assert.equal(out.status, 200)
    assert.equal((await usageOf(owner, ws.id))!.requests, mineBefore + 1)
    assert.equal(await usageOf(stranger, strangersWs.id), undefined)
    const strangerAfter = (await api(stranger, 'GET', '/api/v1/users/me/credits')).json
    assert.equal(strangerAfter.remaining_micro, strangerBefore.remaining_micro)
  })

  it('BYOK: the key reaches the provider, is not charged, and is only in the env it was put in', async () => {
    const set = await api(owner, 'PUT', `/api/v1/workspaces/${ws.id}/ai-config`, {
      mode: 'byok',
      provider: 'openai',
      api_key: byokKey,
    })
    assert.equal(set.status, 200, set.body)
    assert.equal(set.json.status, 'byok_active')
    assert.ok(!set.body.includes(byokKey), 'write-only')
    // Applied to the running VM at once: new shells have the key, and no proxy overrides.
    const env = (await sh('env')).stdout
    assert.match(env, new RegExp(`^OPENAI_API_KEY=${byokKey}$`, 'm'))
    assert.doesNotMatch(env, /^OPENAI_BASE_URL=/m)
    const envFiles = [
      '/etc/profile.d/rigbox-env.sh',
      '/etc/rigbox/env',
      '/etc/systemd/system.conf.d/50-rigbox-env.conf',
    ]
    const holding = await filesHolding(byokKey)
    assert.deepEqual(
      holding.filter((f) => !envFiles.includes(f) && !f.startsWith('/proc/')),
      [],
    )
    const credits = (await api(owner, 'GET', '/api/v1/users/me/credits')).json
    const seen = upstream.requests.length
    const out = await runScript('byok.mjs')
    assert.equal(out.status, 200, out.message)
    assert.equal(out.text, REPLY)
    assert.equal(upstream.requests[seen].headers.authorization, `Bearer ${byokKey}`)
    const after = (await api(owner, 'GET', '/api/v1/users/me/credits')).json
    assert.equal(after.remaining_micro, credits.remaining_micro, 'BYOK calls are not charged')
    // Back to managed: the key is gone from the settings and from the VM.
    const back = await api(owner, 'PUT', `/api/v1/workspaces/${ws.id}/ai-config`, {
      mode: 'managed',
    })
    assert.equal(back.json.status, 'managed_active')
    assert.match((await sh('env')).stdout, /^OPENAI_API_KEY=managed-by-rigbox$/m)
    assert.deepEqual(await filesHolding(byokKey), [])
  })

  it('off: calls are refused; rig status and rig proxy say what is what', async () => {
    assert.equal(
      (await api(owner, 'PUT', `/api/v1/workspaces/${ws.id}/mode`, { mode: 'off' })).status,
      200,
    )
    const refused = await runScript('byok.mjs')
    assert.equal(refused.status, 403)
    assert.match(refused.message, /off/i)
    const status = await sh('rig status')
    assert.equal(status.exit_code, 0, status.stderr)
    assert.match(status.stdout, /AI mode\s+off/)
    assert.match(status.stdout, /credits\s+[\d,.]+ of 2,000 left/)
    await api(owner, 'PUT', `/api/v1/workspaces/${ws.id}/mode`, { mode: null })
    const proxy = await sh('unset OPENAI_BASE_URL; eval "$(rig proxy on)"; rig proxy status')
    assert.equal(proxy.exit_code, 0, proxy.stderr)
    assert.match(proxy.stdout, /this shell: on/)
    assert.match(proxy.stdout, /workspace AI mode: managed/)
  })
})
