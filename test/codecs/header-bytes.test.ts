import t from 'tap'
import { latin1ToUtf8 } from '../../lib/codecs/header-bytes.js'
import { CertificateParseError } from '../../lib/codecs/parse-error.js'

// What node:http hands the application for a header whose bytes are this UTF-8 text.
const asReceived = (text: string) => Buffer.from(text, 'utf8').toString('latin1')

t.test('ASCII comes back unchanged', async (t) => {
  for (const value of ['', 'CN=alice,O=Example Corp,C=US', 'J\\C3\\BCrgen', '\u0000\t\u007f']) {
    t.equal(latin1ToUtf8(value), value)
  }
})

t.test('raw UTF-8 forwarded by Apache is re-decoded', async (t) => {
  const dn = 'CN=Jürgen Ünicode 测试,O=Beispiel GmbH,C=DE'
  // As captured from Apache 2.4 SSL_CLIENT_S_DN in the proxy lab.
  t.equal(asReceived(dn), 'CN=JÃ¼rgen Ã\u009cnicode æµ\u008bè¯\u0095,O=Beispiel GmbH,C=DE')
  t.equal(latin1ToUtf8(asReceived(dn)), dn)
  for (const text of ['é', 'ü at start', 'end ü', '😀 outside the BMP', 'NUL \u0000 then é', '\uffff']) {
    t.equal(latin1ToUtf8(asReceived(text)), text, text)
  }
})

t.test('a leading byte order mark is kept, not swallowed', async (t) => {
  t.equal(latin1ToUtf8('\u00ef\u00bb\u00bfCN=x'), '\ufeffCN=x')
})

t.test('invalid UTF-8 is refused, never replaced', async (t) => {
  const bad = {
    'lone continuation byte': 'a\u0080b',
    'latin1 text that is not UTF-8': 'J\u00fcrgen',
    'truncated sequence': '\u00e6\u00b5',
    'truncated at the end': 'ok \u00c3',
    'overlong encoding of /': '\u00c0\u00af',
    'overlong three-byte NUL': '\u00e0\u0080\u0080',
    'UTF-16 surrogate (CESU-8)': '\u00ed\u00a0\u0080',
    'beyond U+10FFFF': '\u00f4\u0090\u0080\u0080',
    'invalid lead byte 0xFF': '\u00ff'
  }
  for (const [name, value] of Object.entries(bad)) {
    t.throws(() => latin1ToUtf8(value), CertificateParseError, name)
  }
})

t.test('code points above U+00FF cannot come from header bytes', async (t) => {
  for (const value of ['Jürgen Ā', '\u0100', 'é€', '😀', 'ok \ud800']) {
    t.throws(() => latin1ToUtf8(value), CertificateParseError, JSON.stringify(value))
  }
})
