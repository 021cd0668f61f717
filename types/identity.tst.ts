import Fastify from 'fastify'
import type { X509Certificate } from 'node:crypto'
import { expect, test } from 'tstyche'
import fastifyClientCert, {
  type ClientCertIdentity,
  type ClientCertPresetName,
  type FastifyClientCertOptions,
  type ProxyClientCertIdentity,
  type RDN,
  type SubjectAltNames,
  type TlsClientCertIdentity,
  type VerifiedClientCertIdentity
} from 'fastify-client-cert'

declare const identity: ClientCertIdentity

test('source narrows: a direct TLS identity always has its certificate, serial and fingerprint', () => {
  if (identity.source === 'tls') {
    expect(identity).type.toBe<TlsClientCertIdentity>()
    expect(identity.proxy).type.toBe<null>()
    expect(identity.certificate).type.toBe<X509Certificate>()
    expect(identity.serialNumber).type.toBe<string>()
    expect(identity.fingerprint256).type.toBe<string>()
    // A certificate TLS refused on a required route is not parsed: its names may be null.
    expect(identity.subject).type.toBe<string | null>()
    if (identity.verified) {
      expect(identity.subject).type.toBe<string>()
      expect(identity.subjectRDNs).type.toBe<ReadonlyArray<Readonly<RDN>>>()
      expect(identity.san).type.toBe<Readonly<SubjectAltNames>>()
      expect(identity.notBefore).type.toBe<Date>()
      expect(identity.notAfter).type.toBe<Date>()
      expect(identity.commonName).type.toBe<string | null>()
      expect(identity.spiffeId).type.toBe<string | null>()
    }
  } else {
    expect(identity).type.toBe<ProxyClientCertIdentity>()
    expect(identity.proxy).type.toBe<string>()
    expect(identity.notAfter).type.toBe<Date | null>()
  }
})

test('a forwarded whole certificate narrows on certificate !== null', () => {
  if (identity.source === 'proxy' && identity.certificate !== null) {
    expect(identity.fingerprint256).type.toBe<string>()
    expect(identity.issuer).type.toBe<string>()
    expect(identity.notAfter).type.toBe<Date>()
  }
  if (identity.certificate !== null) {
    expect(identity.serialNumber).type.toBe<string>()
  } else {
    expect(identity.source).type.toBe<'proxy'>()
    expect(identity.serialNumber).type.toBe<string | null>()
  }
})

test('requireClientCert() hands strict code a verified, non-null identity', () => {
  const app = Fastify()
  app.register(fastifyClientCert, { required: false })
  app.get('/', async (request) => {
    expect(request.clientCert).type.toBe<ClientCertIdentity | null>()
    const verified = request.requireClientCert()
    expect(verified).type.toBe<VerifiedClientCertIdentity>()
    expect(verified.verified).type.toBe<true>()
    expect(verified.fingerprint256).type.toBe<string | null>()
    if (verified.source === 'tls') {
      expect(verified.fingerprint256).type.toBe<string>()
      expect(verified.subject).type.toBe<string>()
    }
  })
})

test('request.user is unknown, or null, until declared', () => {
  const app = Fastify()
  app.get('/', async (request) => {
    expect(request.user).type.toBe<unknown>()
  })
})

test('proxy.preset is one of the preset names: a typo does not compile', () => {
  expect<ClientCertPresetName>().type.toBe<'nginx' | 'apache' | 'haproxy' | 'caddy' | 'envoy' | 'traefik' | 'aws-alb' | 'aws-alb-passthrough' | 'gcp' | 'cloudflare' | 'azure' | 'rfc9440'>()
  expect({ mode: 'proxy', proxy: { preset: 'aws-alb', trust: '10.0.0.1' } } as const).type.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'proxy', proxy: { preset: 'ngnix', trust: '10.0.0.1' } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  expect({ mode: 'proxy', proxy: { preset: 'custom', trust: '10.0.0.1' } } as const).type.not.toBeAssignableTo<FastifyClientCertOptions>()
  const app = Fastify()
  expect(app.register).type.toBeCallableWith(fastifyClientCert, {
    mode: 'proxy',
    proxy: { trust: '10.0.0.1', headers: { cert: { name: 'x-client-cert', encoding: 'pem-urlencoded' }, verified: 'present' } }
  })
  expect(app.register).type.not.toBeCallableWith(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'Nginx', trust: '10.0.0.1' } })
})
