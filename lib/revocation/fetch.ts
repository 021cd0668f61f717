// Revocation sources over HTTP with undici: one bounded GET for CRL distribution points, one bounded POST for OCSP.
import { request, type Dispatcher } from 'undici'
import { ClientCertInvalidOptionError } from '../errors.js'

/**
 * The URL a revocation source may be fetched from: `http:` or `https:` only (a certificate's `ldap:` or
 * `file:` distribution point is never followed), without credentials in it. `null` for anything else.
 */
export function httpUrl (text: string, base?: URL): URL | null {
  let url: URL
  try {
    url = new URL(text, base)
  } catch {
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
  if (url.username !== '' || url.password !== '') return null
  return url
}

// Option checks both sources (`revocation.distributionPoints`, `revocation.ocsp`) share; errors name the option.

export function isOptionObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A safe integer of at least `min` (1: positive, 0: non-negative), or `fallback` when absent. */
export function integerOption (value: unknown, option: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new ClientCertInvalidOptionError(option, min === 0 ? 'must be a non-negative integer' : 'must be a positive integer')
  }
  return value
}

/** An undici Dispatcher (anything with `dispatch()`), or undefined for undici's global one. */
export function dispatcherOption (value: unknown, option: string): Dispatcher | undefined {
  if (value !== undefined && (!isOptionObject(value) || typeof value.dispatch !== 'function')) {
    throw new ClientCertInvalidOptionError(option, 'must be an undici Dispatcher (Agent, ProxyAgent, Pool)')
  }
  return value as Dispatcher | undefined
}

export interface FetchLimits {
  /** For the whole exchange, redirects and body included, in milliseconds. */
  readonly timeout: number
  /** Past this many body bytes the download is aborted. */
  readonly maxBytes: number
  /** undici's global dispatcher when undefined. */
  readonly dispatcher: Dispatcher | undefined
}

/** What makes the next request conditional (`If-None-Match`, `If-Modified-Since`). */
export interface Validators {
  readonly etag: string | null
  readonly lastModified: string | null
}

export type Fetched =
  | { readonly kind: 'fresh', readonly body: Buffer, readonly validators: Validators }
  | { readonly kind: 'not-modified' }

/** A download that did not give a CRL; its message is for the log, never for a client. */
export class FetchError extends Error {}

// Redirects followed, each to http(s) only: a CA moving its CRL to a CDN is common, a chain of them is not.
const MAX_REDIRECTS = 3

/**
 * GETs `url`, conditionally when `validators` say what was seen last. Redirects are followed by hand (undici 7's
 * `request` follows none), at most `MAX_REDIRECTS`, and only to http(s). The body is read chunk by chunk and the
 * download aborted once it passes `maxBytes` (a `Content-Length` over it is refused before any byte is read).
 */
export async function fetchCrl (url: URL, validators: Validators, limits: FetchLimits): Promise<Fetched> {
  const signal = AbortSignal.timeout(limits.timeout)
  let target = url
  for (let hops = 0; hops <= MAX_REDIRECTS; hops++) {
    const headers: Record<string, string> = { accept: 'application/pkix-crl, application/x-pem-file;q=0.9, */*;q=0.1' }
    if (validators.etag !== null) headers['if-none-match'] = validators.etag
    if (validators.lastModified !== null) headers['if-modified-since'] = validators.lastModified
    const response = await request(target, {
      method: 'GET',
      headers,
      signal,
      dispatcher: limits.dispatcher,
      headersTimeout: limits.timeout,
      bodyTimeout: limits.timeout
    })
    const { statusCode, body } = response
    if (statusCode === 200) {
      return { kind: 'fresh', body: await readBounded(body, response.headers['content-length'], limits.maxBytes, 'the CRL'), validators: validatorsOf(response.headers) }
    }
    discard(body)
    if (statusCode === 304) return { kind: 'not-modified' }
    if (statusCode < 300 || statusCode > 399) throw new FetchError(`HTTP status ${statusCode}`)
    const location = response.headers.location
    if (typeof location !== 'string') throw new FetchError('a redirect without one Location')
    const next = httpUrl(location, target)
    if (next === null) throw new FetchError('a redirect to a scheme other than http(s)')
    target = next
  }
  throw new FetchError('too many redirects')
}

type Body = Dispatcher.ResponseData['body']

/** Closes a body not to be read; undici reports that as an 'error' event, which is expected here. */
function discard (body: Body): void {
  body.on('error', () => {})
  body.destroy()
}

type Headers = Record<string, string | string[] | undefined>

function validatorsOf (headers: Headers): Validators {
  const etag = headers.etag
  const lastModified = headers['last-modified']
  return { etag: typeof etag === 'string' ? etag : null, lastModified: typeof lastModified === 'string' ? lastModified : null }
}

async function readBounded (body: Body, length: string | string[] | undefined, maxBytes: number, what: string): Promise<Buffer> {
  if (typeof length === 'string' && Number(length) > maxBytes) {
    discard(body)
    throw new FetchError(`${what} is larger than maxBytes`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > maxBytes) {
      discard(body)
      throw new FetchError(`${what} is larger than maxBytes`)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size)
}

/**
 * POSTs an OCSP request (RFC 6960 A.1) and reads the answer: status 200, `application/ocsp-response`, at most
 * `maxBytes`, all within `timeout`. No redirect is followed: a responder has no reason to send one, and a signed
 * answer from wherever it pointed would count no more.
 */
export async function postOcsp (url: URL, message: Buffer, limits: FetchLimits): Promise<Buffer> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
    body: message,
    signal: AbortSignal.timeout(limits.timeout),
    dispatcher: limits.dispatcher,
    headersTimeout: limits.timeout,
    bodyTimeout: limits.timeout
  })
  const { statusCode, body, headers } = response
  if (statusCode !== 200) {
    discard(body)
    throw new FetchError(`HTTP status ${statusCode}`)
  }
  const type = headers['content-type']
  if (typeof type !== 'string' || type.split(';')[0]!.trim().toLowerCase() !== 'application/ocsp-response') {
    discard(body)
    throw new FetchError('the answer is not application/ocsp-response')
  }
  return await readBounded(body, headers['content-length'], limits.maxBytes, 'the OCSP response')
}
