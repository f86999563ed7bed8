import { randomBytes } from 'node:crypto';

/*
 * Crypto-random ids for stanzas, QoS msgIds and items. Drawn from a pooled buffer so a
 * hot-path id costs no syscall; 96 bits of entropy in 16 base64url chars.
 */
const POOL_SIZE = 12 * 256;
let pool = randomBytes(POOL_SIZE);
let offset = 0;

export function randomId(): string {
  if (offset + 12 > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    offset = 0;
  }
  const s = pool.toString('base64url', offset, offset + 12);
  offset += 12;
  return s;
}
