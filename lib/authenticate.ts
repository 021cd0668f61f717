import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { X509Certificate } from 'node:crypto'
import type { RevocationList } from './revocation/crl.js'
import {
  ClientCertBadHeaderError,
  ClientCertForbiddenError,
  ClientCertInternalError,
  ClientCertInvalidError,
  ClientCertMissingError,
  ClientCertUntrustedSourceError
} from './errors.js'
import { composeIdentity, type ClientCertIdentity } from './identity.js'
import type { RoutePolicy, Settings } from './options.js'
import { CertificateParseError } from './codecs/parse-error.js'
import type { ProxySource, DecodedForward, PeerConnection } from './sources/proxy.js'
import { connectionOf, peerFields, peerIssuer, readPeer, samePeer, socketTrust, unreadIdentity, type TlsPeer } from './sources/tls.js'
import type { UserCache } from './policy/user-cache.js'
import { judge } from './policy/verdict.js'
import type { SpiffeBundles } from './policy/spiffe-bundles.js'
import { REVOCATION_PENDING, type DistributionPoints } from './revocation/distribution-points.js'
import type { OcspClient } from './revocation/ocsp.js'
import { publishDecision } from './observability.js'
import { chainsTo } from './rotation.js'

// The request-time path: a request's certificate is read from its source (TLS socket or trusted proxy
// headers), judged, and the route's policy decides; plugin.ts registers it.

const kPeer = Symbol('fastify-client-cert.peer')
const kVerdict = Symbol('fastify-client-cert.verdict')
export const testHeader = 'x-fastify-client-cert-test-token'

interface Verdict {
  /** Several registrations (encapsulated contexts) may judge one connection, each by its own lists. */
  state: State
  generation: number
  /** Direct TLS: the server's count of client CA swaps (`ServerTrust`) the verdict was made under. */
  tlsGeneration?: number
  recheckAt: number
  identity: ClientCertIdentity | null
  /** Direct TLS: an identity whose names were left unread, good only for a route that requires a verified one. */
  unread?: boolean
}

interface PeerEntry {
  peer: TlsPeer
  [kVerdict]?: Verdict
}

type Holder = Record<PropertyKey, unknown>

export interface State {
  settings: Settings
  generation: number
  crl: RevocationList | null
  proxyCa: X509Certificate[] | null
  /** `spiffe.bundles`; judge() reads it as one of the trust lists. */
  spiffe: SpiffeBundles | null
  /** `revocation.distributionPoints`; judge() reads it as one of the trust lists. */
  distributionPoints: DistributionPoints | null
  /** `revocation.ocsp`; judge() reads it as one of the trust lists. */
  ocsp: OcspClient | null
  proxy: ProxySource | null
  users: UserCache
  tokens: Map<string, ClientCertIdentity | null> | null
}

function tlsIdentity (state: State, raw: unknown, now: number, required: boolean): ClientCertIdentity | null {
  const connection = connectionOf(raw)
  if (connection === null) return null
  const holder = connection.holder as Holder
  let entry = holder[kPeer] as PeerEntry | undefined
  if (entry === undefined || !samePeer(entry.peer, connection.socket)) {
    entry = { peer: readPeer(connection.socket) }
    holder[kPeer] = entry
  }
  // Client CAs swapped by a reload are the server's, shared by every registration on it.
  const trust = socketTrust(connection.socket)
  const tlsGeneration = trust?.generation ?? 0
  const memo = entry[kVerdict]
  if (memo !== undefined && memo.state === state && memo.generation === state.generation && memo.tlsGeneration === tlsGeneration &&
    now <= memo.recheckAt && (required || memo.unread !== true)) return memo.identity
  const peer = entry.peer
  let identity: ClientCertIdentity | null = null
  let recheckAt = Infinity
  let unread = false
  if (peer.certificate !== null) {
    if (!peer.authorized && required) {
      // TLS refused the certificate and the route answers 401 whatever its names say: they stay unparsed.
      identity = unreadIdentity(peer)
      unread = true
    } else {
      const fields = peerFields(peer)
      // OpenSSL's word for a certificate whose issuer the (new) trust store lacks.
      const anchors = trust?.anchors ?? null
      const retired = peer.authorized && anchors !== null && !chainsTo(peer.certificate, anchors)
      const authorized = peer.authorized && !retired
      const verdict = judge(state, fields, authorized, retired ? 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' : peer.authorizationError, authorized ? peerIssuer(peer) : null, null, now)
      recheckAt = verdict.recheckAt
      identity = composeIdentity(fields, { source: 'tls', proxy: null, verified: verdict.verified, verifyError: verdict.verifyError })
    }
  }
  entry[kVerdict] = { state, generation: state.generation, tlsGeneration, recheckAt, identity, unread }
  return identity
}

function proxyIdentity (state: State, decoded: DecodedForward & { [kVerdict]?: Verdict }, presetName: string, now: number): ClientCertIdentity | null {
  const memo = decoded[kVerdict]
  if (memo !== undefined && memo.state === state && memo.generation === state.generation && now <= memo.recheckAt) return memo.identity
  let identity: ClientCertIdentity | null = null
  let recheckAt = Infinity
  if (decoded.fields !== null) {
    const verdict = judge(state, decoded.fields, decoded.proxyVerified, decoded.proxyError, null, decoded.chain, now)
    recheckAt = verdict.recheckAt
    identity = composeIdentity(decoded.fields, { source: 'proxy', proxy: presetName, verified: verdict.verified, verifyError: verdict.verifyError })
  }
  decoded[kVerdict] = { state, generation: state.generation, recheckAt, identity }
  return identity
}

/**
 * The request's identity by the configured mode; throws 400 errors for spoofed or malformed headers.
 * `required`: the route refuses an unverified certificate, so a direct TLS one TLS refused is not parsed.
 */
export function identify (state: State, request: FastifyRequest, required: boolean): ClientCertIdentity | null {
  const now = Date.now()
  const raw = request.raw
  if (state.tokens !== null) {
    const token = request.headers[testHeader]
    if (token !== undefined) return injectedIdentity(state, token)
  }
  const proxy = state.proxy
  if (proxy === null) return tlsIdentity(state, raw, now, required)
  const connection = raw as unknown as PeerConnection
  const lookup = proxy.lookup(raw.rawHeaders, connection)
  if (lookup.kind === 'forwarded') {
    const identity = proxyIdentity(state, lookup.decoded, state.settings.proxy!.preset.name, now)
    proxy.settle(lookup, identity !== null && identity.verified)
    return identity
  }
  // 'auto': a proxy's own connection has no user certificate, even when the proxy presented one itself.
  if (state.settings.mode === 'proxy' || proxy.isTrusted(connection)) return null
  return tlsIdentity(state, raw, now, required)
}

function injectedIdentity (state: State, token: string | string[]): ClientCertIdentity | null {
  // Node joins a repeated header into one string, which is no token either.
  const key = String(token)
  const identity = state.tokens!.get(key)
  if (identity === undefined) throw new ClientCertUntrustedSourceError()
  state.tokens!.delete(key)
  return identity
}

function describe (identity: ClientCertIdentity): Record<string, unknown> {
  return {
    subject: identity.subject,
    issuer: identity.issuer,
    serialNumber: identity.serialNumber,
    fingerprint256: identity.fingerprint256,
    source: identity.source
  }
}

/** The error to answer with when no identity could be read, logged; never a message that leaks details. */
export function refusal (request: FastifyRequest, error: unknown): Error {
  if (error instanceof ClientCertUntrustedSourceError) {
    request.log.warn({ remoteAddress: request.raw.socket.remoteAddress }, 'client certificate headers refused from an untrusted source (spoofing attempt?)')
    return error
  }
  if (error instanceof ClientCertBadHeaderError) {
    const cause = error.cause instanceof Error ? error.cause.message : undefined
    request.log.warn({ reason: cause }, 'malformed client certificate headers refused')
    return error
  }
  if (error instanceof CertificateParseError) {
    // A certificate TLS accepted but whose names the codecs refuse: fail closed, never guess an identity.
    request.log.warn({ reason: error.message }, 'client certificate could not be read')
    return new ClientCertInvalidError()
  }
  request.log.error({ err: error }, 'client certificate authentication failed')
  return new ClientCertInternalError()
}

/**
 * Applies a route policy to an identity. Returns the error to answer with, `null` to go on, or a promise of
 * either when `authorize` / `resolveUser` are configured.
 */
export function decide (state: State, policy: RoutePolicy, identity: ClientCertIdentity | null, request: FastifyRequest): Error | null | Promise<Error | null> {
  if (identity === null) {
    if (!policy.required) return null
    request.log.info('client certificate refused: none presented')
    return new ClientCertMissingError()
  }
  if (!identity.verified) {
    // An unverified certificate's names are the client's own words (and, over TLS, left unparsed): log what finds it.
    const refused = { serialNumber: identity.serialNumber, fingerprint256: identity.fingerprint256, source: identity.source }
    request.log.info({ clientCert: refused, verifyError: identity.verifyError }, 'client certificate not verified')
    return policy.required ? new ClientCertInvalidError() : null
  }
  if (policy.allow !== null && !policy.allow(identity)) {
    request.log.info({ clientCert: describe(identity) }, 'client certificate refused by allow rules')
    return new ClientCertForbiddenError()
  }
  const { authorize, resolveUser } = state.settings
  if (authorize === null && resolveUser === null) {
    request.log.debug({ clientCert: describe(identity) }, 'client certificate admitted')
    return null
  }
  return runHooks(state, identity, request)
}

/**
 * What a throwing `authorize` / `resolveUser` answers. An error made to be sent (http-errors' `expose`, as
 * `@fastify/sensible`'s `httpErrors` sets it, or an `@fastify/error` error) with a 4xx `statusCode` is the hook's
 * own answer: its status, code and message, and nothing else of it (an error's `headers`, which Fastify would
 * copy onto the reply, stay behind). Anything else, including a library's error that merely carries a 4xx status
 * (a database or SDK error whose message names internals), is a static 500 whose `cause` is the original.
 */
function hookFailure (request: FastifyRequest, error: unknown, identity: ClientCertIdentity, hook: string): Error {
  if (error instanceof Error) {
    const { statusCode, code, expose } = error as Error & { statusCode?: unknown, code?: unknown, expose?: unknown }
    const meant = expose === true || error.name === 'FastifyError'
    if (meant && typeof statusCode === 'number' && Number.isInteger(statusCode) && statusCode >= 400 && statusCode <= 499) {
      request.log.info({ clientCert: describe(identity), statusCode }, `${hook} refused the request`)
      const answer = new Error(error.message, { cause: error }) as Error & { statusCode: number, code?: string }
      answer.statusCode = statusCode
      if (typeof code === 'string') answer.code = code
      return answer
    }
  }
  request.log.error({ err: error, clientCert: describe(identity) }, `${hook} threw: request refused`)
  const internal = new ClientCertInternalError()
  internal.cause = error
  return internal
}

async function runHooks (state: State, identity: ClientCertIdentity, request: FastifyRequest): Promise<Error | null> {
  const { authorize, resolveUser } = state.settings
  if (authorize !== null) {
    let admitted: boolean
    try {
      admitted = await authorize(identity, request)
    } catch (error) {
      return hookFailure(request, error, identity, 'authorize')
    }
    if (admitted !== true) {
      request.log.info({ clientCert: describe(identity) }, 'client certificate refused by authorize')
      return new ClientCertForbiddenError()
    }
  }
  if (resolveUser !== null) {
    let user: unknown
    try {
      user = await state.users.resolve(identity, async function loadUser () { return await resolveUser(identity, request) })
    } catch (error) {
      return hookFailure(request, error, identity, 'resolveUser')
    }
    // Any falsy result refuses, as null does: `false`, `0` or `''` must never pass for a user.
    if (!user) {
      request.log.info({ clientCert: describe(identity) }, 'client certificate refused: resolveUser found no user')
      return new ClientCertForbiddenError()
    }
    // The property the application named (userProperty); its type comes from FastifyClientCertUser.
    const holder = request as unknown as Record<string, unknown>
    holder[state.settings.userProperty] = user
  }
  request.log.debug({ clientCert: describe(identity) }, 'client certificate admitted')
  return null
}

/**
 * A verdict that waits for a first CRL download or an OCSP answer: the fetches are awaited (each bounded by its
 * timeout), then the certificate is judged again.
 */
export function revocationPending (state: State, identity: ClientCertIdentity | null): Promise<void> | null {
  const { distributionPoints: points, ocsp } = state
  if (identity === null || identity.verifyError !== REVOCATION_PENDING || (points === null && ocsp === null)) return null
  return Promise.all([points?.settled(), ocsp?.settled()]).then(() => {})
}

export function onRequestHook (state: State, policy: RoutePolicy) {
  return function clientCertOnRequest (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    authenticateRequest(state, policy, request, done, true)
  }
}

function authenticateRequest (state: State, policy: RoutePolicy, request: FastifyRequest, done: HookHandlerDoneFunction, mayWait: boolean): void {
  let identity: ClientCertIdentity | null
  try {
    identity = identify(state, request, policy.required)
  } catch (error) {
    const refused = refusal(request, error)
    publishDecision(request, null, refused)
    done(refused)
    return
  }
  const waiting = mayWait ? revocationPending(state, identity) : null
  if (waiting !== null) {
    // A first CRL download or OCSP answer this certificate needs is under way: wait for it (bounded by its timeout), judge again.
    waiting.then(() => authenticateRequest(state, policy, request, done, false), done)
    return
  }
  request.clientCert = identity
  const outcome = decide(state, policy, identity, request)
  if (outcome === null || outcome instanceof Error) {
    publishDecision(request, identity, outcome)
    outcome === null ? done() : done(outcome)
  } else {
    outcome.then((error) => {
      publishDecision(request, identity, error)
      error === null ? done() : done(error)
    }, done)
  }
}
