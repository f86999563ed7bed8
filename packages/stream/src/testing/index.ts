// @xmppbus/stream/testing — in-memory byte streams for unit tests (not for production).
export { duplexPair } from './duplex-pair.js';
