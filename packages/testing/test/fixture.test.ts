import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { rawCommand, uniquePrefix, useMemcached, withApp } from '../src/index.js'

/** Stands in for a client: records what it was built with and whether it was closed. */
class FakeClient {
  closed = false
  constructor(readonly options: { servers: string | string[]; tag?: string }) {}
  close(): void {
    this.closed = true
  }
}

const { servers, client, connect } = await useMemcached({
  count: 2,
  memcached: { itemSize: '2m' },
  createClient: (options: { servers: string | string[]; tag?: string }) => new FakeClient(options),
  client: { tag: 'shared' },
})

test('starts the servers with their options before the tests run', async () => {
  assert.equal(servers.length, 2)
  for (const server of servers) {
    assert.match(await rawCommand(server.address, 'stats settings\r\n'), /STAT item_size_max 2097152\r\n/)
  }
})

test('builds clients on every server, the shared one with its options, once', () => {
  assert.equal(client, client)
  assert.deepEqual(client.options, { servers: servers.map((s) => s.address), tag: 'shared' })
  assert.deepEqual(connect({ tag: 'other' }).options.tag, 'other')
})

test('withApp closes the app however the body ends', async () => {
  const app = new FakeClient({ servers: [] })
  await assert.rejects(
    withApp(app, () => {
      throw new Error('boom')
    }),
    /boom/,
  )
  assert.equal(app.closed, true)
  assert.equal(await withApp(Promise.resolve(new FakeClient({ servers: [] })), () => 42), 42)
})

test('uniquePrefix never repeats', () => {
  assert.notEqual(uniquePrefix(), uniquePrefix())
  assert.match(uniquePrefix('rl'), new RegExp(`^rl${process.pid}x\\d+:$`))
})

test('after the file: clients and apps closed (last first), then every server stopped', async (t) => {
  // A child test file uses the fixture; its after hook runs when its tests are done.
  const script = `
    import { test } from 'node:test'
    import { startMemcached, useMemcached } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))}
    const closed = []
    const fixture = await useMemcached({ createClient: (o) => ({ close: () => { closed.push('client:' + o.name) } }) })
    const extra = await startMemcached()
    fixture.connect({ name: 'a' })
    fixture.closeAfter({ close: () => { closed.push('app') } })
    test('t', () => {})
    process.on('exit', () => {
      console.log(JSON.stringify({ closed, running: [fixture.server.running, extra.running] }))
    })
  `
  // Not a subtest of this runner: the child reports on its own.
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  const dir = mkdtempSync(join(tmpdir(), 'memkit-fixture-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'child.test.mjs'), script)
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test-reporter=dot', join(dir, 'child.test.mjs')],
    { stdio: ['ignore', 'pipe', 'inherit'], env },
  )
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d
  })
  await new Promise((resolve) => child.once('exit', resolve))
  const line = out.split('\n').find((l) => l.startsWith('{'))
  assert.deepEqual(JSON.parse(line ?? 'null'), { closed: ['app', 'client:a'], running: [false, false] })
})
