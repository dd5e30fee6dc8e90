/**
 * Predicates: which callers may use the functions of a domain (pseud's job routing). A
 * registration's `domain` names one; the `'default'` domain is open to every caller the security
 * plugin let in. A domain with no predicate is closed: a function registered there is invisible
 * until a predicate opens it.
 */
import { DEFAULT_DOMAIN } from './registry.js';

/** Decides, from the caller's verified identity, whether it may use a domain's functions. Synchronous: it runs for every call. */
export type Predicate = (identity: string) => boolean;

const globalPredicates = new Map<string, Predicate>();

/** Registers a predicate for every peer of the process (a peer's own `predicates` option comes first). */
export function registerPredicate(domain: string, predicate: Predicate): void {
  if (typeof domain !== 'string' || domain.length === 0 || domain === DEFAULT_DOMAIN) {
    throw new TypeError(`a predicate needs a domain other than "${DEFAULT_DOMAIN}"`);
  }
  if (typeof predicate !== 'function') throw new TypeError('a predicate must be a function');
  globalPredicates.set(domain, predicate);
}

/** Removes a global predicate; returns whether there was one. */
export function unregisterPredicate(domain: string): boolean {
  return globalPredicates.delete(domain);
}

/**
 * Whether `identity` may use `domain`. A predicate that throws says no (and `onError` hears why).
 */
export function domainAllows(
  domain: string,
  identity: string,
  local: Readonly<Record<string, Predicate>> | undefined,
  onError: (error: unknown) => void,
): boolean {
  if (domain === DEFAULT_DOMAIN) return true;
  const predicate = (local && Object.hasOwn(local, domain) ? local[domain] : undefined) ?? globalPredicates.get(domain);
  if (!predicate) return false;
  try {
    return predicate(identity) === true;
  } catch (error) {
    onError(error);
    return false;
  }
}
