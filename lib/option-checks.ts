/** The checks every option goes through: unknown keys refused by name (with the closest known key as a hint), numbers in range. */

/** Throws a TypeError naming the first key of `given` that is not in `known`. */
export function rejectUnknownKeys(given: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      const near = known.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
      throw new TypeError(`unknown option "${key}" for ${where}${near ? ` (did you mean "${near}"?)` : ''}`);
    }
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The largest value a time or size option takes: what setTimeout accepts (about 24.8 days). */
export const MAX_OPTION_VALUE = 2 ** 31 - 1;

/** Reads a positive number option (at most {@link MAX_OPTION_VALUE}), or its default; throws a TypeError naming it otherwise. */
export function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !(value <= MAX_OPTION_VALUE)) {
    throw new TypeError(`options.${name} must be a positive number, at most ${MAX_OPTION_VALUE}`);
  }
  return value;
}

/** Reads a whole number option, 0 or more. */
export function wholeNumber(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || (value as number) < 0) throw new TypeError(`options.${name} must be a whole number`);
  return value as number;
}
