// Stage 1, where a certificate comes from: a Fastify-terminated TLS connection (this file) or a trusted proxy's headers (proxy.ts, presets/).
import type { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { certificateFields, type CertificateFields } from '../identity.js'

/**
 * What one TLS connection says about its client certificate, read once per connection (HTTP/1.1: the socket;
 * HTTP/2: the session) and kept on it, so nothing outlives the connection.
 */
export interface TlsPeer {
  /** `null`: the client sent no certificate (also a TLS 1.3 session resumed without one). */
  fields: CertificateFields | null
  /** The certificate that issued the peer's, when the client sent the chain or the server's `ca` holds it. */
  issuer: X509Certificate | null
  authorized: boolean
  authorizationError: string | null
  /** TLS ≤ 1.2 can renegotiate and change the peer certificate; the Finished message tells a new handshake. */
  finished: Buffer | null
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
  const certificate = socket.getPeerX509Certificate()
  // After a completed handshake (a request arrived) getFinished() always returns the message.
  const finished = socket.getProtocol() === 'TLSv1.3' ? null : socket.getFinished() as Buffer
  if (certificate === undefined) {
    return { fields: null, issuer: null, authorized: false, authorizationError: null, finished }
  }
  // `authorized` alone is not enough: a resumed TLS 1.3 session without a certificate also says authorized.
  const authorized = socket.authorized === true
  return {
    fields: certificateFields(certificate),
    issuer: issuerOf(certificate),
    authorized,
    // Node sets authorizationError to the OpenSSL code whenever a presented certificate is not authorized.
    authorizationError: authorized ? null : String(socket.authorizationError),
    finished
  }
}

function issuerOf (certificate: X509Certificate): X509Certificate | null {
  // Node fills issuerCertificate from the chain the client sent and the server's own CA store.
  const issuer = certificate.issuerCertificate
  return issuer !== undefined && certificate.checkIssued(issuer) ? issuer : null
}

/** True while the socket still speaks with the handshake `peer` was read from. */
export function samePeer (peer: TlsPeer, socket: TLSSocket): boolean {
  return peer.finished === null || peer.finished.equals(socket.getFinished() as Buffer)
}
