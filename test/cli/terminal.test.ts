// What reaches the terminal: every control, format and separator character escaped in text, and in JSON
// as \u escapes that parse back to the same string.
import t from 'tap'
import { jsonText, printable } from '../../lib/cli/terminal.js'

t.test('printable escapes controls, format characters and separators, and nothing else', async (t) => {
  t.equal(printable('CN=Jürgen Ünicode 测试, a\\,b 🙂'), 'CN=Jürgen Ünicode 测试, a\\,b 🙂', 'visible text, backslashes included, as is')
  t.equal(printable('\x00\t\n\r\x1b\x7f'), '\\x00\\x09\\x0a\\x0d\\x1b\\x7f', 'C0 and DEL')
  t.equal(printable('\u0080\u0085\u009b\u009f'), '\\x80\\x85\\x9b\\x9f', 'C1, NEL and CSI included')
  t.equal(printable('\u00ad\u061c\u200b\u200e\u202e\u2066\u2069\ufeff'), '\\xad\\u061c\\u200b\\u200e\\u202e\\u2066\\u2069\\ufeff', 'bidi and invisible format characters')
  t.equal(printable('a\u2028b\u2029c'), 'a\\u2028b\\u2029c', 'line and paragraph separators')
  t.equal(printable('\u{e0041}\ud800x'), '\\u{e0041}\\ud800x', 'a tag character beyond the BMP, a lone surrogate')
})

t.test('jsonText is JSON that parses to the same value, without raw controls', async (t) => {
  const value = { name: 'a\x1b[2J\u009b\u202e\u2028\u{e0041}\ud800\x7f', list: ['x', 'y'] }
  const text = jsonText(value)
  t.same(JSON.parse(text), value)
  t.equal(text, '{\n  "name": "a\\u001b[2J\\u009b\\u202e\\u2028\\udb40\\udc41\\ud800\\u007f",\n  "list": [\n    "x",\n    "y"\n  ]\n}')
  t.equal(jsonText(null), 'null')
})
