// Maps client certificates to users stored in SQLite, with self-service enrollment by one-time code.
// The README's "Example: users in SQLite" explains it; `server.js` runs it.
import fastifySensible from '@fastify/sensible'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import fastifyClientCert from 'fastify-client-cert'
import { createHash, randomBytes } from 'node:crypto'

const DAY = 24 * 3600_000

// Who may use the admin routes: judged on the certificate's parsed subject, before any database lookup.
const admins = { subjects: [{ OU: 'Platform' }] }

const schema = `
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  -- request.clientCert.subject / .issuer (canonical RFC 4514): the same for every renewal of a certificate
  subject TEXT,
  issuer TEXT,
  -- request.clientCert.fingerprint256, set instead of subject and issuer: pins exactly one certificate
  fingerprint256 TEXT UNIQUE,
  enrolled_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE (subject, issuer),
  CHECK ((subject IS NOT NULL AND issuer IS NOT NULL) <> (fingerprint256 IS NOT NULL))
);
CREATE TABLE IF NOT EXISTS enrollment_codes (
  code_sha256 TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
`

function sha256 (code) {
  return createHash('sha256').update(code).digest('hex')
}

function certificateKey (identity) {
  return { subject: identity.subject, issuer: identity.issuer, fingerprint256: identity.fingerprint256 }
}

/**
 * @param {object} options
 * @param {{ key: string, cert: string, ca: string }} options.https the server's key and certificate, and the CA(s) of client certificates
 * @param {string} [options.database] SQLite file path (default ':memory:')
 * @param {Array<{ code: string, name: string }>} [options.enrollmentCodes] one-time codes to seed, e.g. for the first admin
 * @param {number} [options.codeTtl] how long an enrollment code stays valid, in milliseconds
 * @param {boolean | object} [options.logger]
 */
export function build ({ https, database = ':memory:', enrollmentCodes = [], codeTtl = DAY, logger = false }) {
  const app = Fastify({ logger, https: { ...https, requestCert: true, rejectUnauthorized: false } })
  // app.httpErrors: errors that carry their status and a message meant for the client.
  app.register(fastifySensible)

  const db = new Database(database)
  db.pragma('journal_mode = WAL')
  db.exec(schema)
  app.addHook('onClose', async function closeDatabase () { db.close() })

  // A pin outranks a subject match, so a pinned certificate never resolves to someone else's row.
  const findUser = db.prepare(`
    SELECT id, name FROM users
    WHERE (subject = @subject AND issuer = @issuer) OR fingerprint256 = @fingerprint256
    ORDER BY fingerprint256 IS NULL LIMIT 1`)
  const listUsers = db.prepare('SELECT id, name, subject, issuer, fingerprint256, enrolled_at AS enrolledAt FROM users ORDER BY id')
  const addUser = db.prepare('INSERT INTO users (name, subject, issuer, fingerprint256) VALUES (@name, @subject, @issuer, @fingerprint256)')
  // INSERT OR IGNORE: a seeded code that was used stays used when the server restarts with the same options.
  const addCode = db.prepare('INSERT OR IGNORE INTO enrollment_codes (code_sha256, name, expires_at) VALUES (?, ?, ?)')
  const claimCode = db.prepare(`
    UPDATE enrollment_codes SET used_at = @now
    WHERE code_sha256 = @hash AND used_at IS NULL AND expires_at > @now
    RETURNING name`)

  for (const { code, name } of enrollmentCodes) addCode.run(sha256(code), name, Date.now() + codeTtl)

  // One transaction: a refused enrollment (already enrolled, bad code) leaves the code unused.
  const enroll = db.transaction(function enroll (identity, code, pin) {
    if (findUser.get(certificateKey(identity)) !== undefined) throw app.httpErrors.conflict('This certificate is already enrolled')
    const claimed = claimCode.get({ hash: sha256(code), now: Date.now() })
    if (claimed === undefined) throw app.httpErrors.forbidden('Unknown, used or expired enrollment code')
    const binding = pin
      ? { subject: null, issuer: null, fingerprint256: identity.fingerprint256 }
      : { subject: identity.subject, issuer: identity.issuer, fingerprint256: null }
    const { lastInsertRowid } = addUser.run({ name: claimed.name, ...binding })
    return { id: Number(lastInsertRowid), name: claimed.name, pinned: pin }
  })

  // Enrolled users. resolveUser runs after TLS verified the certificate; `null` (no row) is a 403 and is
  // not cached, so a certificate enrolled a moment ago is found on its very next request.
  app.register(async function userRoutes (app) {
    await app.register(fastifyClientCert, {
      resolveUser: async (identity) => findUser.get(certificateKey(identity)) ?? null
    })

    app.get('/me', async (request) => ({
      user: request.user,
      certificate: {
        subject: request.clientCert.subject,
        issuer: request.clientCert.issuer,
        serialNumber: request.clientCert.serialNumber,
        fingerprint256: request.clientCert.fingerprint256
      }
    }))

    app.get('/admin/users', { config: { clientCert: { allow: admins } } }, async () => listUsers.all())

    app.post('/admin/enrollment-codes', {
      config: { clientCert: { allow: admins } },
      schema: {
        body: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 200 } }
        }
      }
    }, async (request, reply) => {
      const code = randomBytes(18).toString('base64url')
      const expiresAt = Date.now() + codeTtl
      addCode.run(sha256(code), request.body.name, expiresAt)
      reply.code(201)
      return { code, name: request.body.name, expiresAt: new Date(expiresAt).toISOString() }
    })
  })

  // Enrollment needs a verified certificate that is not a user yet, which resolveUser above would refuse:
  // hence its own encapsulated context, where the plugin is registered without resolveUser.
  app.register(async function enrollmentRoutes (app) {
    await app.register(fastifyClientCert)

    app.post('/enroll', {
      schema: {
        body: {
          type: 'object',
          required: ['code'],
          properties: {
            code: { type: 'string', minLength: 1, maxLength: 200 },
            pin: { type: 'boolean', default: false }
          }
        }
      }
    }, async (request, reply) => {
      const { code, pin } = request.body
      // Every certificate with an empty subject from this CA would share one subject + issuer key.
      if (!pin && request.clientCert.subject === '') throw app.httpErrors.badRequest('A certificate without a subject can only be pinned')
      const user = enroll(request.clientCert, code, pin)
      request.log.info({ userId: user.id, subject: request.clientCert.subject, pinned: pin }, 'certificate enrolled')
      reply.code(201)
      return user
    })
  })

  return app
}
