/** A Lua string literal: printable ASCII as is, every other byte as a decimal escape. */
export function lua(value: string): string {
  let out = '"';
  for (const b of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(b);
    out += b >= 0x20 && b < 0x7f && c !== '"' && c !== '\\' ? c : `\\${String(b).padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** A YAML double-quoted scalar (a JSON string is one). */
export function yamlString(s: string): string {
  return JSON.stringify(s);
}
