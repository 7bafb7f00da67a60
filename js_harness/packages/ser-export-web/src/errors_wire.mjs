// An error across the worker's message boundary: the worker posts {name, message}, the page throws
// the same class again (a structured clone of an Error keeps neither the subclass nor its name).
import * as errors from './errors.mjs';

const CLASSES = { ...errors, TypeError, RangeError };

/** `error` as a plain object that postMessage can carry. */
export function errorToWire(error) {
  return { name: error?.name || 'Error', message: String(error?.message ?? error) };
}

/** The Error `wire` describes: the package's class of that name, TypeError, RangeError, else Error. */
export function errorFrom(wire) {
  const Class = Object.hasOwn(CLASSES, wire.name) && typeof CLASSES[wire.name] === 'function' ? CLASSES[wire.name] : Error;
  const error = new Class(wire.message);
  if (Class === Error && wire.name) error.name = wire.name;
  return error;
}
