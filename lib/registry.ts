/**
 * Registries of callable functions under dotted names (pseud's registries).
 *
 * One global registry per process ({@link registerRpc}); local ones ({@link createLocalRegistry},
 * `peer.registerRpc`) that look in the global one after themselves. The global one never sees local
 * names. A name may be registered once per domain; the domain decides, through the security
 * plugin's predicates, which callers may use it.
 */
import { RegistrationError } from './errors.js';

/** A function that may be registered: any arguments, any (or a promised) result. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[] so that a function of any parameters is a Handler
export type Handler = (...args: any[]) => unknown;

/** Options of a registration. */
export interface RegistrationOptions {
  /** Dotted name to register under; defaults to the function's own name. */
  name?: string;
  /** The predicate domain that decides who may call it. Default `'default'` (everybody who may talk to this peer). */
  domain?: string;
  /** Pass the caller's authenticated identity (a string) as the first argument. */
  withIdentity?: boolean;
  /** Pass a CallContext (identity, method, metadata, address, deadline, signal) as the first argument. */
  withContext?: boolean;
  /** Replace an existing registration of the same name and domain instead of refusing. */
  replace?: boolean;
  /** A one-line description, shown by inspect. */
  description?: string;
  /** A raw handler: it gets a reply channel first, and answers through it (see ReplyChannel). */
  raw?: boolean;
  /** One-way: a call is acknowledged at once with no result; what the handler throws is only logged. */
  oneWay?: boolean;
  /** A validator per parameter: returns the value to use, or throws (the caller gets ParameterError). */
  params?: Validator[];
  /** A validator for the result. */
  returns?: Validator;
  /**
   * What keyword arguments (pseud's `**kw`, `invoke(..., { kwargs })`) become. `'bind'` (the
   * default): each is bound to the parameter of that name; an unknown name, or one also given by
   * position, is a ParameterError. `'object'`: they arrive together as one extra last argument.
   */
  kwargs?: 'bind' | 'object';
}

/** Checks (and may convert) one value: returns the value to use, or throws. */
export type Validator = (value: unknown) => unknown;

/** A registered function, as the engine sees it. */
export interface Registration {
  /** The dotted name callers use. */
  readonly name: string;
  /** The predicate domain it is registered in. */
  readonly domain: string;
  /** The function run. */
  readonly handler: Handler;
  /** The handler gets the caller's identity first. */
  readonly withIdentity: boolean;
  /** The handler gets a CallContext first. */
  readonly withContext: boolean;
  /** What inspect shows. */
  readonly description: string | undefined;
  /** The handler gets a ReplyChannel and answers through it. */
  readonly raw: boolean;
  /** Never answered, even when called normally. */
  readonly oneWay: boolean;
  /** One validator per parameter. */
  readonly params: readonly Validator[] | undefined;
  /** The validator of the result. */
  readonly returns: Validator | undefined;
  /** The names of the parameters the caller passes (identity and channel left out), for inspect and errors. */
  readonly paramNames: readonly string[];
  /** See {@link RegistrationOptions.kwargs}. */
  readonly kwargs: 'bind' | 'object';
}

/** What inspect tells about one function. */
export interface FunctionInfo {
  /** The dotted name to call. */
  name: string;
  /** Its `description`, when it was registered with one. */
  description?: string;
  /** Names of the parameters the caller passes. */
  params: string[];
}

/** The domain of a registration that names none. */
export const DEFAULT_DOMAIN = 'default';

/** Names under this prefix are zeropeer's own (subscribe, inspect, shutdown...). */
export const RESERVED_PREFIX = '_zeropeer.';

const NAME_PATTERN = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;
/** Longest accepted name, in characters: names travel in every WORK message. */
export const MAX_NAME_LENGTH = 256;

/** Checks a dotted name; throws {@link RegistrationError} saying what is wrong. */
export function validateName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new RegistrationError('a registration needs a name: pass one, or a named function');
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw new RegistrationError(`name is ${name.length} characters long; at most ${MAX_NAME_LENGTH}`);
  }
  if (name.startsWith(RESERVED_PREFIX)) {
    throw new RegistrationError(`names under "${RESERVED_PREFIX}" are reserved for zeropeer itself`);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new RegistrationError(
      `invalid name ${JSON.stringify(name)}: use identifiers joined by dots, like "string.lower"`,
    );
  }
  return name;
}

/**
 * The parameter names of a function, read from its source (what inspect shows). Destructured or
 * unreadable parameters come out as `#index`.
 */
export function parameterNames(fn: Handler): string[] {
  const original = (fn as { [SOURCE_FUNCTION]?: Handler })[SOURCE_FUNCTION];
  if (original) return parameterNames(original);
  const source = Function.prototype.toString.call(fn);
  const arrowSingle = /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  if (arrowSingle) return [arrowSingle[1]!];
  let open = 0;
  while (open < source.length && source[open] !== '(') open = skipComment(source, open) + 1;
  if (open >= source.length) return [];
  // Split the parameter list at its top-level commas: defaults and patterns nest (), [], {} and strings.
  const parts: string[] = [];
  let depth = 0;
  let quote = '';
  let current = '';
  for (let i = open + 1; i < source.length; i++) {
    const char = source[i]!;
    if (quote) {
      if (char === '\\') {
        current += char + (source[++i] ?? '');
        continue;
      }
      if (char === quote) quote = '';
      current += char;
      continue;
    }
    if (char === '/' && (source[i + 1] === '/' || source[i + 1] === '*')) {
      i = skipComment(source, i); // comments are skipped here, outside strings only: a '//' in a default string stays
      continue;
    }
    if (char === '"' || char === "'" || char === '`') quote = char;
    else if (char === '(' || char === '[' || char === '{') depth++;
    else if (char === ')' || char === ']' || char === '}') {
      if (depth === 0) break;
      depth--;
    } else if (char === ',' && depth === 0) {
      parts.push(current);
      current = '';
      continue;
    }
    current += char;
  }
  parts.push(current);
  return parts
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part, index) => /^(?:\.\.\.)?([A-Za-z_$][\w$]*)/.exec(part)?.[1] ?? `#${index}`);
}

/** The index of the last character of a comment starting at `i`, or `i` when none starts there. */
function skipComment(source: string, i: number): number {
  if (source[i] !== '/') return i;
  if (source[i + 1] === '/') {
    const end = source.indexOf('\n', i);
    return end < 0 ? source.length : end;
  }
  if (source[i + 1] === '*') {
    const end = source.indexOf('*/', i + 2);
    return end < 0 ? source.length : end + 1;
  }
  return i;
}

/** Set on a wrapper (a bound method, say) to the function whose parameters inspect should show. */
export const SOURCE_FUNCTION = Symbol('zeropeer.sourceFunction');

/** Decides whether a registration's domain is open to the caller at hand. */
export type DomainFilter = (domain: string) => boolean;

const allDomains: DomainFilter = () => true;

/** Names to functions, per predicate domain; a local registry falls back to its parent (the global one). */
export class Registry {
  /** A name for logs and errors. */
  readonly name: string;
  /** Where names not found here are looked up (the global registry for a local one). */
  readonly parent: Registry | undefined;
  /** name -> domain -> registration */
  readonly #entries = new Map<string, Map<string, Registration>>();

  constructor(name: string, parent?: Registry) {
    this.name = name;
    this.parent = parent;
    // Bound so that `const { registerRpc } = registry` and decorator-style use work.
    this.registerRpc = this.registerRpc.bind(this);
  }

  /**
   * Registers a function.
   *
   * @example
   * registry.registerRpc(function lower(s: string) { return s.toLowerCase(); });
   * registry.registerRpc('string.upper', (s: string) => s.toUpperCase());
   * registry.registerRpc(whoAmI, { name: 'me', withIdentity: true });
   */
  registerRpc<F extends Handler>(fn: F, options?: RegistrationOptions): F;
  registerRpc<F extends Handler>(name: string, fn: F, options?: RegistrationOptions): F;
  registerRpc<F extends Handler>(
    nameOrFn: string | F,
    fnOrOptions?: F | RegistrationOptions,
    maybeOptions?: RegistrationOptions,
  ): F {
    let fn: unknown;
    let options: RegistrationOptions;
    let name: unknown;
    if (typeof nameOrFn === 'string') {
      fn = fnOrOptions;
      options = maybeOptions ?? {};
      name = nameOrFn;
    } else {
      fn = nameOrFn;
      options = (fnOrOptions as RegistrationOptions | undefined) ?? {};
      name = options.name ?? (typeof nameOrFn === 'function' ? nameOrFn.name : undefined);
    }
    if (typeof fn !== 'function') {
      throw new RegistrationError(`the handler for ${JSON.stringify(name)} is not a function`);
    }
    if (options.params !== undefined && (!Array.isArray(options.params) || !options.params.every((v) => typeof v === 'function'))) {
      throw new RegistrationError(`params of ${JSON.stringify(name)} must be an array of validator functions`);
    }
    if (options.returns !== undefined && typeof options.returns !== 'function') {
      throw new RegistrationError(`returns of ${JSON.stringify(name)} must be a validator function`);
    }
    if (options.raw && options.oneWay) throw new RegistrationError('a registration is raw or one-way, not both');
    const withIdentity = options.withIdentity ?? false;
    const withContext = options.withContext ?? false;
    if (withIdentity && withContext) throw new RegistrationError('withContext replaces withIdentity: pass one of them');
    const raw = options.raw ?? false;
    if (options.kwargs !== undefined && options.kwargs !== 'bind' && options.kwargs !== 'object') {
      throw new RegistrationError(`kwargs of ${JSON.stringify(name)} must be 'bind' or 'object'`);
    }
    const registration: Registration = {
      name: validateName(name),
      domain: options.domain ?? DEFAULT_DOMAIN,
      handler: fn as Handler,
      withIdentity,
      withContext,
      description: options.description,
      raw,
      oneWay: options.oneWay ?? false,
      params: options.params,
      returns: options.returns,
      paramNames: parameterNames(fn as Handler).slice((raw ? 1 : 0) + (withIdentity || withContext ? 1 : 0)),
      kwargs: options.kwargs ?? 'bind',
    };
    if (typeof registration.domain !== 'string' || registration.domain.length === 0) {
      throw new RegistrationError('domain must be a non-empty string');
    }
    let domains = this.#entries.get(registration.name);
    if (!domains) {
      domains = new Map();
      this.#entries.set(registration.name, domains);
    } else if (domains.has(registration.domain) && !options.replace) {
      throw new RegistrationError(
        `${JSON.stringify(registration.name)} is already registered in domain "${registration.domain}" ` +
          `of registry "${this.name}"; pass { replace: true } to replace it`,
      );
    }
    domains.set(registration.domain, registration);
    return fn as F;
  }

  /** Removes a registration; returns whether there was one. */
  unregisterRpc(name: string, domain: string = DEFAULT_DOMAIN): boolean {
    const domains = this.#entries.get(name);
    if (!domains?.delete(domain)) return false;
    if (domains.size === 0) this.#entries.delete(name);
    return true;
  }

  /**
   * The registration a caller gets for `name`: this registry's first, then its parent's. Among the
   * domains the filter opens, `'default'` comes last so that a more specific domain wins.
   */
  lookup(name: string, filter: DomainFilter = allDomains): Registration | undefined {
    const domains = this.#entries.get(name);
    if (domains) {
      let fallback: Registration | undefined;
      for (const registration of domains.values()) {
        if (!filter(registration.domain)) continue;
        if (registration.domain !== DEFAULT_DOMAIN) return registration;
        fallback = registration;
      }
      if (fallback) return fallback;
    }
    return this.parent?.lookup(name, filter);
  }

  /** Every registration visible from here (local ones shadow the parent's of the same name and domain). */
  *registrations(): IterableIterator<Registration> {
    const seen = new Set<string>();
    for (const domains of this.#entries.values()) {
      for (const registration of domains.values()) {
        seen.add(`${registration.domain}\0${registration.name}`);
        yield registration;
      }
    }
    if (this.parent) {
      for (const registration of this.parent.registrations()) {
        if (!seen.has(`${registration.domain}\0${registration.name}`)) yield registration;
      }
    }
  }
}

/** The process-wide registry every peer sees. */
export const globalRegistry = new Registry('global');

/** Registers a function for every peer of this process. Same signatures as {@link Registry.registerRpc}. */
// eslint-disable-next-line @typescript-eslint/unbound-method -- the Registry constructor binds registerRpc
export const registerRpc: Registry['registerRpc'] = globalRegistry.registerRpc;

/** A registry of its own that also sees the global one; pass it as `options.registry`. */
export function createLocalRegistry(name: string): Registry {
  return new Registry(name, globalRegistry);
}
