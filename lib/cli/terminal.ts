/**
 * What the CLI writes reaches a terminal, and much of it comes from certificates and headers that an
 * attacker wrote: a name holding ESC (or the one-character CSI, U+009B) can move the cursor and repaint
 * "verified no" as "verified yes"; a bidi override (U+202E) or a line separator (U+2028) can reorder or
 * split a line in the terminal or in the editor a log is read in. Every such character is shown as an
 * escape instead: the controls (C0, DEL, C1), the invisible format characters (bidi controls, zero-width
 * characters, soft hyphen, tags), the line and paragraph separators and lone surrogates. A backslash is
 * left as it is, so RFC 4514 names read as usual; --json gives the exact strings.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu

function hex (code: number, digits: number): string {
  return code.toString(16).padStart(digits, '0')
}

function textEscape (character: string): string {
  const code = character.codePointAt(0)!
  if (code <= 0xff) return `\\x${hex(code, 2)}`
  return code <= 0xffff ? `\\u${hex(code, 4)}` : `\\u{${hex(code, 1)}}`
}

/** One line of text for the terminal: every control, format and separator character as `\xHH`, `\uHHHH` or `\u{H…}`. */
export function printable (text: string): string {
  return text.replace(UNPRINTABLE, textEscape)
}

/**
 * `value` as JSON, indented. JSON.stringify already escapes C0 and lone surrogates; the other characters
 * above become `\uHHHH` escapes too (UTF-16 units), so what a script parses is unchanged while a terminal
 * showing the JSON sees no control. The only raw control left is the indentation's line feed.
 */
export function jsonText (value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNPRINTABLE, jsonEscape)
}

function jsonEscape (character: string): string {
  if (character === '\n') return character
  let out = ''
  for (let i = 0; i < character.length; i++) out += `\\u${hex(character.charCodeAt(i), 4)}`
  return out
}
