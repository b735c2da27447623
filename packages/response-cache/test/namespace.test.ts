// Two applications on one memcached never serve each other's responses: the default key prefix
// names the application (its package.json), while every process of one application shares it.
// Each application runs in its own process, as in production, on both frameworks.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { get as httpGet } from 'node:http'
import { createInterface } from 'node:readline'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { defaultKeyPrefix } from '../src/options.js'
import { cacheTestbed, FRAMEWORKS } from './harness.js'

const bed = await cacheTestbed('ns')
const children: ChildProcess[] = []
after(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
})

function start(app: 'shop-a' | 'shop-b', framework: string): Promise<{ port: number; keyPrefix: string }> {
  const main = fileURLToPath(new URL(`./fixtures/namespace/${app}/main.ts`, import.meta.url))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, framework, bed.server.address], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(child)
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${app} exited with ${code}`)))
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line)))
  })
}

/** GET /page as the clients of every application send it: the same public Host. */
function page(port: number, host: string): Promise<{ body: string; xcache: string | undefined }> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path: '/page', headers: { host } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ body, xcache: res.headers['x-cache'] as string | undefined }))
    }).on('error', reject)
  })
}

test('the default key prefix is rc: plus eight characters naming the application', () => {
  assert.match(defaultKeyPrefix(), /^rc:[A-Za-z0-9_-]{8}:$/)
  assert.equal(defaultKeyPrefix(), defaultKeyPrefix())
})

for (const framework of FRAMEWORKS) {
  describe(`two applications on one memcached (${framework})`, () => {
    test('each serves its own responses; the processes of one application share theirs', async () => {
      const [a1, a2, b] = await Promise.all([
        start('shop-a', framework),
        start('shop-a', framework),
        start('shop-b', framework),
      ])
      assert.equal(a1.keyPrefix, a2.keyPrefix)
      assert.notEqual(a1.keyPrefix, b.keyPrefix)
      const host = `${framework}.shared.example`
      assert.deepEqual(await page(a1.port, host), { body: 'page of shop-a', xcache: 'MISS' })
      assert.deepEqual(
        await page(b.port, host),
        { body: 'page of shop-b', xcache: 'MISS' },
        "not shop-a's page",
      )
      assert.deepEqual(
        await page(a2.port, host),
        { body: 'page of shop-a', xcache: 'HIT' },
        'one application, one namespace',
      )
      assert.deepEqual(await page(b.port, host), { body: 'page of shop-b', xcache: 'HIT' })
    })
  })
}
