// @memkit/client/internal: helpers the memkit middleware packages share (option validation,
// "client or servers"). Not a public API: it may change in any release.
export { type ClientChoice, checkClientOption, resolveClient } from './client-option.js'
export {
  boolean,
  checkKnown,
  integer,
  milliseconds,
  oneOf,
  optionalFunction,
  seconds,
  text,
} from './validate.js'
