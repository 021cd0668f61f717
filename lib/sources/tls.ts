// Stage 1, where a certificate comes from: a Fastify-terminated TLS connection (this file) or a trusted proxy's headers (proxy.ts, presets/).
import type { X509Certificate } from 'node:crypto'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { certificateFields, type CertificateFields, type ClientCertIdentity } from '../identity.js'

const kGuarded = Symbol('fastify-client-cert.guarded')
const kFirstHandshake = Symbol('fastify-client-cert.first-handshake')

interface GuardedSocket extends TLSSocket {
  /** The first handshake's Finished message (TLS ≤ 1.2), `null` for TLS 1.3; absent: the plugin never saw the handshake. */
  [kFirstHandshake]?: Buffer | null
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
  server.on('secureConnection', function clientCertFirstHandshake (socket: GuardedSocket) {
    socket.disableRenegotiation()
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
  const certificate = socket.getPeerX509Certificate() ?? null
  // After a completed handshake (a request arrived) getFinished() always returns the message.
  const finished = socket.getProtocol() === 'TLSv1.3' ? null : socket.getFinished() as Buffer
  if (certificate === null) return { certificate, authorized: false, authorizationError: null, finished }
  const distrust = handshakeDistrust(socket as GuardedSocket, finished)
  // `authorized` alone is not enough: a resumed TLS 1.3 session without a certificate also says authorized.
  const authorized = distrust === null && socket.authorized === true
  return {
    certificate,
    authorized,
    // Node sets authorizationError to the OpenSSL code whenever a presented certificate is not authorized.
    authorizationError: authorized ? null : distrust ?? String(socket.authorizationError),
    finished
  }
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
