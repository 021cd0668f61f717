import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyClientCert, {
  type ClientCertReload,
  type FastifyClientCertOptions,
  type HttpsMaterial,
  type OcspOptions,
  type RevocationOptions,
  type WatchOptions
} from 'fastify-client-cert'

test('watch: files for the TLS material, proxy CAs, CRLs and SPIFFE bundles', () => {
  const app = Fastify()
  app.register(fastifyClientCert, {
    watch: {
      https: { key: '/run/tls/tls.key', cert: '/run/tls/tls.crt', ca: ['/run/tls/ca.crt', '/run/tls/next-ca.crt'] },
      crl: '/run/crl/ca.crl',
      spiffe: { bundles: { 'example.org': '/run/spire/bundle.pem' } },
      interval: 500
    }
  })
  expect({ proxy: { ca: '/run/proxy/ca.pem' } }).type.toBeAssignableTo<WatchOptions>()
  expect({ https: { ca: '/run/tls/ca.crt' } }).type.toBeAssignableTo<WatchOptions>()
  expect({ https: { key: Buffer.alloc(1) } }).type.not.toBeAssignableTo<WatchOptions>()
  expect({ interval: '1s' }).type.not.toBeAssignableTo<WatchOptions>()
  expect({ spiffe: { 'example.org': '/run/spire/bundle.pem' } }).type.not.toBeAssignableTo<WatchOptions>()
  expect({ crl: 42 }).type.not.toBeAssignableTo<WatchOptions>()
  expect({ watch: { https: { key: 'k', cert: 'c' } } }).type.toBeAssignableTo<FastifyClientCertOptions>()
})

test('reload(): every reloadable key, and nothing else', () => {
  const app = Fastify()
  expect(app.clientCert.reload).type.toBeCallableWith({ https: { key: 'pem', cert: Buffer.alloc(1), ca: ['pem', Buffer.alloc(1)] } })
  expect(app.clientCert.reload).type.toBeCallableWith({ spiffe: { bundles: { 'example.org': 'pem' } } })
  expect(app.clientCert.reload).type.toBeCallableWith({ spiffe: null, crl: null, ca: 'pem' })
  expect(app.clientCert.reload).type.not.toBeCallableWith({ https: { key: 42 } })
  expect(app.clientCert.reload).type.not.toBeCallableWith({ https: null })
  expect(app.clientCert.reload).type.not.toBeCallableWith({ watch: {} })
  expect(app.clientCert.reload({})).type.toBe<Promise<void>>()
  expect<ClientCertReload['https']>().type.toBe<HttpsMaterial | undefined>()
})

test('revocation.distributionPoints: true, or its settings', () => {
  expect({ distributionPoints: true }).type.toBeAssignableTo<RevocationOptions>()
  expect({ distributionPoints: { urls: ['http://crl.example.org/ca.crl'], refresh: 60_000, timeout: 2000, maxBytes: 1 << 20, mode: 'soft-fail' as const } }).type.toBeAssignableTo<RevocationOptions>()
  expect({ distributionPoints: { mode: 'lenient' as const } }).type.not.toBeAssignableTo<RevocationOptions>()
  expect({ distributionPoints: { urls: 'http://crl.example.org/ca.crl' } }).type.not.toBeAssignableTo<RevocationOptions>()
})

test('revocation.ocsp and order', () => {
  const app = Fastify()
  app.register(fastifyClientCert, { revocation: { ocsp: true } })
  app.register(fastifyClientCert, {
    revocation: {
      ocsp: { mode: 'soft-fail', url: 'http://ocsp.example.org', nonce: false, timeout: 2000, clockSkew: 60_000, unknown: 'admit', cacheTtl: 600_000, maxBytes: 65_536 },
      distributionPoints: true,
      order: 'ocsp-and-crl'
    }
  })
  expect({ unknown: 'good' as const }).type.not.toBeAssignableTo<OcspOptions>()
  expect({ mode: 'lenient' as const }).type.not.toBeAssignableTo<OcspOptions>()
  expect({ nonce: 'yes' }).type.not.toBeAssignableTo<OcspOptions>()
  expect({ ocsp: true, order: 'crl-then-ocsp' as const }).type.not.toBeAssignableTo<RevocationOptions>()
})
