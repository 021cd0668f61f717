import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyClientCert from 'fastify-client-cert'

declare module 'fastify-client-cert' {
  interface FastifyClientCertUser {
    user: { id: number, name: string }
  }
}

test('request.user takes the type users declare through the merge interface, null where no user was resolved', () => {
  const app = Fastify()
  app.register(fastifyClientCert, { resolveUser: async () => ({ id: 1, name: 'alice' }) })
  app.get('/', async (request) => {
    expect(request.user).type.toBe<{ id: number, name: string } | null>()
  })
})

test('resolveUser must return the declared user (or a falsy value to refuse)', () => {
  const app = Fastify()
  expect(app.register).type.toBeCallableWith(fastifyClientCert, { resolveUser: async () => null })
  expect(app.register).type.toBeCallableWith(fastifyClientCert, { resolveUser: () => false })
  expect(app.register).type.not.toBeCallableWith(fastifyClientCert, { resolveUser: async () => ({ id: 'one', name: 'alice' }) })
})

test('userProperty can only be the declared name (here the default)', () => {
  const app = Fastify()
  expect(app.register).type.toBeCallableWith(fastifyClientCert, { userProperty: 'user' })
  expect(app.register).type.not.toBeCallableWith(fastifyClientCert, { userProperty: 'account' })
})
