// Stage 1, where a certificate comes from: a Fastify-terminated TLS connection (this file) or a trusted proxy's headers (proxy.ts, presets/).
import type { X509Certificate } from 'node:crypto'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { certificateFields, type CertificateFields, type ClientCertIdentity } from '../identity.js'

const kGuarded = Symbol('fastify-client-cert.guarded')
const kFirstHandshake = Symbol('fastify-client-cert.first-handshake')
const kTrust = Symbol('fastify-client-cert.server-trust')

/**
 * What belongs to the TLS server rather than to one registration of the plugin (several may share a server):
 * the client CAs a reload or a watched file swapped in, and the chains clients sent in full handshakes.
 */
export interface ServerTrust {
  /** The client CAs in force since the last swap; `null`: the server's own, as TLS verified with them. */
  anchors: readonly X509Certificate[] | null
  /** Counts the swaps: a verdict kept on a connection is good only for the swap it was made under. */
  generation: number
  /** A leaf's fingerprint → the leaf as read in its last full handshake, with the intermediates the client sent. */
  readonly chains: Map<string, X509Certificate>
}

// Leaves whose sent chain is remembered for resumed sessions, least recently remembered out first.
const maxRememberedChains = 1000

interface GuardedSocket extends TLSSocket {
  /** The first handshake's Finished message (TLS ≤ 1.2), `null` for TLS 1.3; absent: the plugin never saw the handshake. */
  [kFirstHandshake]?: Buffer | null
  [kTrust]?: ServerTrust
}

/** The trust of the server a socket was accepted by (the plugin saw its handshake), else `undefined`. */
export function socketTrust (socket: TLSSocket): ServerTrust | undefined {
  return (socket as GuardedSocket)[kTrust]
}

/** Swaps in the client CAs a reload gave the server, for every registration on it. */
export function setServerAnchors (server: TlsServer, anchors: readonly X509Certificate[]): void {
  const trust = serverTrust(server)
  trust.anchors = anchors
  trust.generation++
}

function serverTrust (server: TlsServer): ServerTrust {
  const marked = server as TlsServer & { [kTrust]?: ServerTrust }
  marked[kTrust] ??= { anchors: null, generation: 0, chains: new Map() }
  return marked[kTrust]
}

/**
 * What one TLS connection says about its client certificate, read once per connection (HTTP/1.1: the socket;
 * HTTP/2: the session) and kept on it, so nothing outlives the connection.
 */
export interface TlsPeer {
  /** `null`: the client sent no certificate (also a TLS 1.3 session resumed without one). */
  certificate: X509Certificate | null
  authorized: boolean
  authorizationError: string | null
  /** TLS ≤ 1.2 can renegotiate and change the peer certificate; the Finished message tells a new handshake. */
  finished: Buffer | null
  /** Parsed on first need: names of a certificate TLS refused are read only when a route asks for them. */
  fields?: CertificateFields
}

/**
 * Renegotiation is refused on every connection of `server`: Node sets `authorized` after the first good
 * handshake and never resets it, so a renegotiated certificate would inherit a verdict that was never its
 * own. Node then closes a connection whose client renegotiates (ERR_TLS_RENEGOTIATION_DISABLED); HTTP/2
 * sessions already refuse it. The first handshake is also recorded, so that a connection whose handshake
 * changed anyway is never trusted, however late the plugin first looks at it.
 */
export function guardHandshakes (server: TlsServer): void {
  const marked = server as TlsServer & { [kGuarded]?: true }
  // Several registrations on one server need one listener.
  if (marked[kGuarded] === true) return
  marked[kGuarded] = true
  const trust = serverTrust(server)
  server.on('secureConnection', function clientCertFirstHandshake (socket: GuardedSocket) {
    socket.disableRenegotiation()
    socket[kTrust] = trust
    socket[kFirstHandshake] = socket.getProtocol() === 'TLSv1.3' ? null : socket.getFinished() as Buffer
  })
}

interface Http2Like {
  stream?: { session?: { socket?: TLSSocket } }
  socket?: TLSSocket
}

/** The object a connection's state is kept on: the HTTP/2 session (whose request sockets are per-request proxies) or the socket. */
export function connectionOf (raw: unknown): { holder: object, socket: TLSSocket } | null {
  const request = raw as Http2Like
  const session = request.stream?.session
  if (session !== undefined) {
    const socket = session.socket as TLSSocket
    return socket.encrypted === true ? { holder: session, socket } : null
  }
  const socket = request.socket
  return socket !== undefined && socket !== null && socket.encrypted === true ? { holder: socket, socket } : null
}

export function readPeer (socket: TLSSocket): TlsPeer {
  let certificate = socket.getPeerX509Certificate() ?? null
  // After a completed handshake (a request arrived) getFinished() always returns the message.
  const finished = socket.getProtocol() === 'TLSv1.3' ? null : socket.getFinished() as Buffer
  if (certificate === null) return { certificate, authorized: false, authorizationError: null, finished }
  const distrust = handshakeDistrust(socket as GuardedSocket, finished)
  // `authorized` alone is not enough: a resumed TLS 1.3 session without a certificate also says authorized.
  const authorized = distrust === null && socket.authorized === true
  if (authorized) certificate = withSentChain(socketTrust(socket)!, certificate, socket.isSessionReused())
  return {
    certificate,
    authorized,
    // Node sets authorizationError to the OpenSSL code whenever a presented certificate is not authorized.
    authorizationError: authorized ? null : distrust ?? String(socket.authorizationError),
    finished
  }
}

/**
 * A resumed session (TLS 1.2 or 1.3) brings back the client's certificate but not the intermediates it sent
 * (Node 20), so a path through them (a SPIFFE binding, a CRL or CA check after a reload) could not be rebuilt
 * and a client that did nothing wrong would be refused now and then. A full handshake that TLS authorized
 * remembers its leaf with its links; a resumed session of the same leaf (same DER, by fingerprint) is read with
 * them. They are only ever candidates for a path, which is still checked up to the anchors signature by
 * signature, and never stand in for a leaf that TLS did not authorize.
 */
function withSentChain (trust: ServerTrust, certificate: X509Certificate, resumed: boolean): X509Certificate {
  if (certificate.issuerCertificate !== undefined) {
    if (!resumed) {
      const { chains } = trust
      chains.delete(certificate.fingerprint256)
      chains.set(certificate.fingerprint256, certificate)
      if (chains.size > maxRememberedChains) chains.delete(chains.keys().next().value!)
    }
    return certificate
  }
  return resumed ? trust.chains.get(certificate.fingerprint256) ?? certificate : certificate
}

/** Why the socket's `authorized` cannot speak for its current certificate, or `null` when it can. */
function handshakeDistrust (socket: GuardedSocket, finished: Buffer | null): string | null {
  const first = socket[kFirstHandshake]
  // A connection that did not pass the server's secureConnection (handed over by other code): its history is unknown.
  if (first === undefined) return 'TLS_HANDSHAKE_UNSEEN'
  return first === null || first.equals(finished as Buffer) ? null : 'TLS_RENEGOTIATED'
}

export function peerFields (peer: TlsPeer): CertificateFields {
  peer.fields ??= certificateFields(peer.certificate!)
  return peer.fields
}

export function peerIssuer (peer: TlsPeer): X509Certificate | null {
  // Node fills issuerCertificate from the chain the client sent and the server's own CA store.
  const certificate = peer.certificate!
  const issuer = certificate.issuerCertificate
  return issuer !== undefined && certificate.checkIssued(issuer) ? issuer : null
}

// composeIdentity's order, so that both serialize alike.
const fieldKeys = [
  'subject', 'issuer', 'subjectRDNs', 'issuerRDNs', 'commonName', 'san', 'spiffeId',
  'serialNumber', 'fingerprint256', 'notBefore', 'notAfter'
] as const

/**
 * The identity of a certificate TLS refused, on a route that answers 401 whatever its names say: the same
 * fields `composeIdentity` gives, read from the certificate only if something (an onResponse hook) asks.
 * A client must not make the plugin parse thousands of names it is about to refuse anyway.
 */
export function unreadIdentity (peer: TlsPeer): ClientCertIdentity {
  const certificate = peer.certificate!
  const identity = { source: 'tls', proxy: null, verified: false, verifyError: peer.authorizationError }
  for (const key of fieldKeys) {
    // What finds the certificate in a log needs no name parsed: Node reads these from its DER.
    const get = key === 'serialNumber' || key === 'fingerprint256'
      ? function clientCertDigest () { return certificate[key] }
      : function clientCertName () { return readableFields(peer)?.[key] ?? null }
    Object.defineProperty(identity, key, { enumerable: true, get })
  }
  Object.defineProperty(identity, 'certificate', { enumerable: true, value: certificate })
  return Object.freeze(identity) as unknown as ClientCertIdentity
}

function readableFields (peer: TlsPeer): CertificateFields | null {
  try {
    return peerFields(peer)
  } catch {
    // Names the codecs refuse: `null`, as for a field a source cannot supply; the request is refused anyway.
    return null
  }
}

/** True while the socket still speaks with the handshake `peer` was read from. */
export function samePeer (peer: TlsPeer, socket: TLSSocket): boolean {
  return peer.finished === null || peer.finished.equals(socket.getFinished() as Buffer)
}
