// The example shop's data, shared by the Express and Fastify examples: a product catalogue
// that is slow to read (so the response cache shows), and two demo users.
import { timingSafeEqual } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Product {
  id: number
  name: string
  price: number
}

export interface User {
  name: string
  role: 'customer' | 'admin'
}

/** Demo accounts. A real application checks a password hash from its database. */
const ACCOUNTS: Record<string, { password: string; user: User }> = {
  alice: { password: 'wonderland', user: { name: 'alice', role: 'customer' } },
  admin: { password: 'swordfish', user: { name: 'admin', role: 'admin' } },
}

export function authenticate(username: unknown, password: unknown): User | undefined {
  if (typeof username !== 'string' || typeof password !== 'string') return undefined
  const account = ACCOUNTS[username]
  if (!account) return undefined
  const given = Buffer.from(password)
  const expected = Buffer.from(account.password)
  return given.length === expected.length && timingSafeEqual(given, expected) ? account.user : undefined
}

/** An in-memory catalogue standing in for a database; every read costs `delayMs`. */
export class Catalog {
  readonly #products = new Map<number, Product>([
    [1, { id: 1, name: 'Espresso cup', price: 12 }],
    [2, { id: 2, name: 'Milk jug', price: 18 }],
    [3, { id: 3, name: 'Hand grinder', price: 64 }],
  ])
  /** How many times the "database" was read (the tests use it to see cache hits). */
  reads = 0

  constructor(private readonly delayMs = 50) {}

  async list(): Promise<Product[]> {
    this.reads++
    await sleep(this.delayMs)
    return [...this.#products.values()]
  }

  async get(id: number): Promise<Product | undefined> {
    this.reads++
    await sleep(this.delayMs)
    return this.#products.get(id)
  }

  setPrice(id: number, price: number): Product | undefined {
    const product = this.#products.get(id)
    if (!product) return undefined
    product.price = price
    return product
  }
}

/** A few commands to try, printed by the demo and served at `/`. */
export function tryLines(base: string): string[] {
  return [
    `curl -i ${base}/api/products                      # X-Cache: MISS, then HIT; X-RateLimit-* headers`,
    `curl -i -c jar -H 'content-type: application/json' -d '{"username":"admin","password":"swordfish"}' ${base}/login`,
    `curl -i -b jar -H 'content-type: application/json' -d '{"price":15}' ${base}/admin/products/1/price   # invalidates the 'products' tag`,
    `curl -i -b jar ${base}/me`,
    `curl -i -b jar -X POST ${base}/logout             # 204: the session is gone; /me then answers 401`,
    `for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' -d '{}' -H 'content-type: application/json' ${base}/login; done   # 5 login attempts per 15 minutes: 401s, then 429`,
    `curl -s '${base}/memkit?format=json'              # the status page's figures; ${base}/memkit in a browser shows the live page`,
  ]
}
