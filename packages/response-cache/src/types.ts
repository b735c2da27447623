/** A header value as Node hands it over: one line, or several lines of the same field. */
export type HeaderValue = string | string[]

/** Response header fields in order, names as the handler spelled them. */
export type HeaderList = Array<[name: string, value: HeaderValue]>

/** Request headers as Node parses them (lowercase names). The cache edits this object in place. */
export type RequestHeaders = Record<string, string | string[] | undefined>

/** What the cache needs to know about a request, extracted by a framework adapter. */
export interface CacheRequest {
  /** Upper-case method. */
  readonly method: string
  /** `http` or `https` as the framework resolved it (trust-proxy aware: X-Forwarded-Proto). */
  readonly scheme: string
  /** Host name without port as the framework resolved it (trust-proxy aware), lowercased; '' if none. */
  readonly host: string
  /** Port the request addressed (Host, or a trusted X-Forwarded-Host); '' when it named none. */
  readonly port: string
  /** The request target as the router received it: path and query, or the absolute form. */
  readonly url: string
  /** The live request headers: conditional headers are removed or replaced before the handler runs. */
  readonly headers: RequestHeaders
  /** Metrics label (the route pattern); may be filled in later by the adapter. */
  route: string | undefined
  /** Tags the route attaches, already resolved for this request. */
  readonly tags: readonly string[]
  /** Per-route settings. */
  readonly settings: RouteSettings
  /**
   * Headers the response already carried when the cache first saw it (set by earlier middleware
   * for this request, e.g. CORS). They are not stored unless the handler changes them.
   */
  readonly preset?: ReadonlyMap<string, string>
}

/** A response as the handler produced it. */
export interface CapturedResponse {
  status: number
  reason?: string
  headers: HeaderList
  body: Buffer
}

/** A response the cache wants sent: complete status, headers and body. */
export interface OutgoingResponse {
  status: number
  reason?: string
  headers: HeaderList
  /** undefined for HEAD, 204, 304: send no body. */
  body: Buffer | undefined
  /**
   * The handler declared a longer body than it wrote: send the declared Content-Length with these
   * bytes and close the connection, so the client sees the response cut short, as it would
   * without the cache. Adapters must not correct the length.
   */
  truncated?: true
}

/** Route-level settings after validation. */
export interface RouteSettings {
  readonly ttl: number | undefined
  readonly tags: readonly string[] | ((request: never) => readonly string[]) | undefined
  readonly shareAuthorization: boolean
  readonly shareCookie: boolean
  readonly staleWhileRevalidate: number
  readonly staleIfError: number
  readonly cacheServerErrors: boolean
  /** Heuristic freshness from Last-Modified (RFC 9111 §4.2.2): `fraction` of its age, at most `max` seconds. */
  readonly heuristic: { readonly fraction: number; readonly max: number } | undefined
}
