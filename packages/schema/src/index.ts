// Contracts
export { payload, event, method } from './contract.js';
export type {
  PayloadContract,
  PayloadOf,
  PayloadInit,
  MethodContract,
  MethodInit,
  RequestOf,
  ResponseOf,
  ErrorContract,
} from './contract.js';

// Codec
export { encode, decode, validate, matches, toXml, fromXml, rawPayload, compiledValidator } from './codec.js';
export type { EncodeOptions, DecodeOptions, FromXmlOptions } from './codec.js';

// Reflection (docs/protocol.md §6)
export {
  describeMethod,
  describeEvent,
  describeMessage,
  methodFromDescriptor,
  payloadFromDescriptor,
  REFLECTED_SCHEMA_LIMITS,
} from './reflect.js';

// Errors
export { ValidationError, SchemaError } from './errors.js';
export type { ValidationIssue, ValidationErrorOptions } from './errors.js';
