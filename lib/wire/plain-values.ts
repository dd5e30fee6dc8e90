/**
 * What the `plain` dialect (pseud v1) sends must be standard MessagePack, read the same by any
 * library. msgpackr (with moreTypes off) already writes a Set as an array, bytes as bin, a Date
 * as the timestamp extension (-1) and, with encodeUndefinedAsNil, undefined as nil. One thing it
 * has no option for: an integer beyond 32 bits goes out as a float64, which Python reads as a
 * float. This pass turns such integers into BigInt (msgpackr writes those as int64 / uint64),
 * copying only the containers on the path to one.
 */
import { EncodingError } from '../errors.js';

/** Largest nesting the pass follows: deeper (or cyclic) values are refused before anything is sent. */
const MAX_DEPTH = 512;

function isWideInteger(value: number): boolean {
  return (value > 0xffffffff || value < -0x80000000) && Number.isSafeInteger(value);
}

/** `value` with every safe integer beyond 32 bits as a BigInt; the same object when there is none. */
export function widenIntegers(value: unknown, depth = 0): unknown {
  if (typeof value === 'number') return isWideInteger(value) ? BigInt(value) : value;
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) throw new EncodingError('cannot encode value: the value is cyclic or nested too deeply');
  if (Array.isArray(value)) return widenArray(value, depth);
  if (value instanceof Set) return widenArray([...value as Set<unknown>], depth);
  if (value instanceof Map) {
    const entries = [...(value as Map<unknown, unknown>)];
    const widened = widenArray(entries.map(([k, v]) => [k, v]), depth) as Array<[unknown, unknown]>;
    return widened.some(([k, v], i) => k !== entries[i]![0] || v !== entries[i]![1]) ? new Map(widened) : value;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value; // bytes, dates, class instances: msgpackr's business
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const widened = widenIntegers(item, depth + 1);
    if (widened !== item) copy ??= { ...(value as Record<string, unknown>) };
    if (copy) copy[key] = widened;
  }
  return copy ?? value;
}

function widenArray(array: readonly unknown[], depth: number): unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < array.length; i++) {
    const widened = widenIntegers(array[i], depth + 1);
    if (widened !== array[i]) copy ??= array.slice();
    if (copy) copy[i] = widened;
  }
  return copy ?? (array as unknown[]);
}
