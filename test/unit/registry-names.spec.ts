/**
 * validateName and parameterNames alone: which dotted names a registration takes, and the
 * parameter names inspect shows, read from a function's source whatever its shape.
 */
import { expect } from 'chai';
import { RegistrationError } from '../../lib/index.js';
import { MAX_NAME_LENGTH, RESERVED_PREFIX, SOURCE_FUNCTION, parameterNames, validateName, type Handler } from '../../lib/registry.js';

describe('validateName', () => {
  for (const name of ['lower', 'string.lower', 'a.b.c.d', '_private', '$jq', 'a1.b2', 'x'.repeat(MAX_NAME_LENGTH)]) {
    it(`accepts ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}… (${name.length})` : name)}`, () => {
      expect(validateName(name)).to.equal(name);
    });
  }

  const refused: Array<[string, unknown, RegExp]> = [
    ['an empty string', '', /needs a name/],
    ['undefined', undefined, /needs a name/],
    ['a number', 42, /needs a name/],
    ['a leading dot', '.lower', /invalid name/],
    ['a trailing dot', 'string.', /invalid name/],
    ['two dots', 'string..lower', /invalid name/],
    ['a leading digit', '1st', /invalid name/],
    ['a digit after a dot', 'a.1', /invalid name/],
    ['a dash', 'to-lower', /invalid name/],
    ['a space', 'to lower', /invalid name/],
    ['a slash', 'a/b', /invalid name/],
    ['a non-ASCII letter', 'café', /invalid name/],
    ['the reserved prefix', `${RESERVED_PREFIX}inspect`, /reserved for zeropeer/],
    ['one character too long', 'x'.repeat(MAX_NAME_LENGTH + 1), new RegExp(`${MAX_NAME_LENGTH + 1} characters long; at most ${MAX_NAME_LENGTH}`)],
  ];
  for (const [label, name, reason] of refused) {
    it(`refuses ${label} with RegistrationError`, () => {
      let thrown: unknown;
      try {
        validateName(name);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).to.be.instanceOf(RegistrationError);
      expect((thrown as Error).message).to.match(reason);
    });
  }

  it('"_zeropeer" alone (no dot) is an ordinary name', () => {
    expect(validateName('_zeropeer')).to.equal('_zeropeer');
  });
});

describe('parameterNames', () => {
  const cases: Array<[string, Handler, string[]]> = [
    ['no parameters', function none() {}, []],
    ['plain parameters', function add(a: number, b: number) { return a + b; }, ['a', 'b']],
    ['defaults', function f(a = 1, b = 'two', c = null) { return [a, b, c]; }, ['a', 'b', 'c']],
    ['a default that calls a function with commas', function f(a = Math.max(1, 2, 3), b = 0) { return [a, b]; }, ['a', 'b']],
    ['nested parentheses in a default', function f(a = ((1 + 2) * (3 - 4)), b = [(5), (6)]) { return [a, b]; }, ['a', 'b']],
    ['an object literal default', function f(a = { x: 1, y: [2, 3] }, b = 0) { return [a, b]; }, ['a', 'b']],
    ['strings with commas and brackets', function f(a = 'x, y', b = '(', c = ')', d = '{[') { return [a, b, c, d]; }, ['a', 'b', 'c', 'd']],
    ['escaped quotes in a string default', function f(a = 'it\'s, (odd)', b = "say \"hi\", )") { return [a, b]; }, ['a', 'b']],
    ['a template literal with commas', function f(a = `x, ${1}, )`, b = 0) { return [a, b]; }, ['a', 'b']],
    ['object destructuring', function f({ x, y }: { x: number; y: number }, z: number) { return [x, y, z]; }, ['#0', 'z']],
    ['array destructuring', function f([first, second]: number[], rest: number) { return [first, second, rest]; }, ['#0', 'rest']],
    ['destructuring with defaults', function f({ a = 1, b = 2 } = {}, c = 3) { return [a, b, c]; }, ['#0', 'c']],
    ['rest parameters', function f(a: number, ...others: number[]) { return [a, others]; }, ['a', 'others']],
    ['only rest', function f(...all: unknown[]) { return all; }, ['all']],
    ['a single-parameter arrow without parentheses', ((x: number) => x) as Handler, ['x']],
    ['an arrow with parentheses', (a: number, b: number) => a + b, ['a', 'b']],
    ['an arrow with no parameters', () => 1, []],
    ['an arrow whose default is an arrow', (a = (p: number, q: number) => p + q, b = 2) => [a, b], ['a', 'b']],
    ['an async function', async function fetchIt(url: string, retries: number) { return [url, retries]; }, ['url', 'retries']],
    ['an async arrow', async (id: string, options: object) => [id, options], ['id', 'options']],
    ['an async single-parameter arrow', (async (value: unknown) => value) as Handler, ['value']],
    ['a generator', function* gen(from: number, to: number) { yield from + to; }, ['from', 'to']],
    ['a method shorthand', ({ move(dx: number, dy: number) { return dx + dy; } }).move, ['dx', 'dy']],
    ['a trailing comma', function f(a: number, b: number,) { return a + b; }, ['a', 'b']],
    ['names with $ and _', function f($scope: unknown, _private: unknown, a1: unknown) { return [$scope, a1]; }, ['$scope', '_private', 'a1']],
  ];
  for (const [label, fn, names] of cases) {
    it(`${label} -> ${JSON.stringify(names)}`, () => {
      expect(parameterNames(fn)).to.deep.equal(names);
    });
  }

  it('comments in the parameter list are ignored', () => {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- a function whose source has comments in its parameter list
    const fn = new Function('a /* , fake */', 'b // , nope\n', 'return a + b') as Handler;
    expect(parameterNames(fn)).to.deep.equal(['a', 'b']);
  });

  // Comments are stripped from the source before the parameter list is read, without regard to
  // strings: '//' or '/*' inside a string default swallows the parameters after it.
  it("a URL default ('https://...') does not hide the parameters after it", () => {
    function fetchPage(url = 'https://example.com/a', timeoutMs = 1000) { return [url, timeoutMs]; }
    expect(parameterNames(fetchPage)).to.deep.equal(['url', 'timeoutMs']);
  });

  it("strings that look like a block comment ('/*', '*/') do not hide parameters", () => {
    function glob(pattern = 'src/*', exclude = '*/test', depth = 1) { return [pattern, exclude, depth]; }
    expect(parameterNames(glob)).to.deep.equal(['pattern', 'exclude', 'depth']);
  });

  it('a function built from source text with odd spacing', () => {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- a function whose source has comments in its parameter list
    const fn = new Function('  first  ', '\tsecond = ( 1 , 2 )', 'return 0') as Handler;
    expect(parameterNames(fn)).to.deep.equal(['first', 'second']);
  });

  it('a wrapper marked with SOURCE_FUNCTION shows the parameters of the function it wraps', () => {
    function original(left: number, right: number) {
      return left + right;
    }
    const wrapper = Object.assign((...args: number[]) => original(args[0]!, args[1]!), { [SOURCE_FUNCTION]: original });
    expect(parameterNames(wrapper)).to.deep.equal(['left', 'right']);
  });

  it('a bound function (no readable source) has no names', () => {
    function f(a: number, b: number) { return a + b; }
    expect(parameterNames(f.bind(null))).to.deep.equal([]);
  });
});
