'use strict';
/*
 * rtflow's JavaScript worker: one long-lived Node process that runs the user's JavaScript for rtflow.
 *
 * The protocol is JSON lines. rtflow writes requests to stdin, each with an `id`; the worker answers on stdout
 * with the same `id`, in whatever order the calls finish (many may be in flight: functions may be async).
 *
 *   {"id": 1, "op": "call", "file": "/abs/prompt.js", "export": null, "args": [{"vars": {}}]}
 *   {"id": 2, "op": "load_config", "file": "/abs/promptfooconfig.js"}
 *   {"id": 3, "op": "call_ref", "file": "/abs/promptfooconfig.js", "path": "providers.0.config.handler", "args": []}
 *   {"id": 4, "op": "evaluate", "code": "output.length > 5", "names": ["output", "context"], "args": ["hello!", {}],
 *    "file": "/abs/flow.yaml", "line": 42}
 *
 *   {"id": 1, "ok": true, "value": ...}                     (no "value" when the function returned undefined)
 *   {"id": 2, "ok": false, "error": {"kind", "name", "message", "file", "line", "stack"}}
 *
 * stdout belongs to the protocol alone: whatever user code prints (console.log, process.stdout.write) is sent
 * to stderr, which rtflow forwards to its logger. The worker exits once stdin ends and no call is in flight.
 * Everything here is stateless from rtflow's point of view (a function in a config is named by file and key
 * path), so rtflow may kill and restart the worker at any time.
 */

const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL, fileURLToPath } = require('node:url');
const { inspect } = require('node:util');
const vm = require('node:vm');

// Taken before user code can run: the protocol's writer. User code's stdout goes to stderr from here on.
const writeProtocol = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

// A stray rejection or an exception thrown in a timer belongs to one user function, not to every call in
// flight: it is reported (rtflow logs it) and the worker carries on. A call that never settles times out.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`unhandled promise rejection: ${describeThrown(reason)}\n`);
});
process.on('uncaughtException', (err) => {
  process.stderr.write(`uncaught exception: ${describeThrown(err)}\n`);
});
// A broken protocol pipe means rtflow is gone; a broken stderr has nobody left to tell. Neither may loop
// through the handler above.
process.stdout.on('error', () => process.exit(1));
process.stderr.on('error', () => {});

// ------------------------------------------------------------------------------------------------ answers

// Answers finished in the same turn of the event loop leave in one write: 5,000 concurrent calls cost a
// handful of syscalls, not 5,000.
let outbox = [];
let flushScheduled = false;

function send(message) {
  outbox.push(JSON.stringify(message));
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function flush(written) {
  flushScheduled = false;
  if (outbox.length === 0) return;
  const text = outbox.join('\n') + '\n';
  outbox = [];
  writeProtocol(text, written);
}

/** An error whose message is already what the user should read; `kind` says which step failed. */
class WorkerError extends Error {
  constructor(kind, message, where) {
    super(message);
    this.kind = kind;
    this.where = where || null;
  }
}

// -------------------------------------------------------------------------------------------- where errors are

const WORKER_FILE = __filename;
const FRAME = /^\s*at (?:.*?\()?((?:file:\/\/)?[^()\s][^()]*?):(\d+):(\d+)\)?\s*$/;
const SYNTAX_HEADER = /^((?:file:\/\/)?\/.*|[A-Za-z]:\\.*):(\d+)$/;

function toPath(location) {
  if (location.startsWith('file://')) {
    try {
      return fileURLToPath(location);
    } catch {
      return location;
    }
  }
  return location;
}

function realPath(file) {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}

/** The user's file and line an error comes from: a syntax error's header, else the first frame in `file`. */
function locate(stack, file) {
  if (typeof stack !== 'string') return null;
  const realFile = realPath(file); // Node names a module by its real path in stacks
  const lines = stack.split('\n');
  // V8 puts "path:line" (then the source line and a caret) above a SyntaxError thrown while compiling a module.
  const header = SYNTAX_HEADER.exec(lines[0]);
  if (header) {
    const headerPath = toPath(header[1]);
    return { file: headerPath === realFile ? file : headerPath, line: Number(header[2]) };
  }
  let firstUserFrame = null;
  for (const line of lines) {
    const frame = FRAME.exec(line);
    if (!frame) continue;
    const framePath = toPath(frame[1]);
    if (framePath === file || framePath === realFile) return { file, line: Number(frame[2]) };
    if (framePath.startsWith('node:') || framePath === WORKER_FILE || !path.isAbsolute(framePath)) continue;
    if (firstUserFrame === null) firstUserFrame = { file: framePath, line: Number(frame[2]) };
  }
  return firstUserFrame;
}

function describeThrown(value) {
  if (value !== null && typeof value === 'object' && typeof value.stack === 'string') return value.stack;
  return inspect(value);
}

/** The protocol's form of anything user code threw (not only Errors: `throw "oops"` is legal JavaScript). */
function errorAnswer(thrown, file) {
  if (thrown instanceof WorkerError) {
    return { kind: thrown.kind, name: null, message: thrown.message, ...(thrown.where || { file }), stack: null };
  }
  const isErrorLike = thrown !== null && typeof thrown === 'object' && typeof thrown.stack === 'string';
  if (!isErrorLike) {
    return { kind: 'threw', name: null, message: `threw ${inspect(thrown)}`, file, line: null, stack: null };
  }
  const where = thrown.rtflowWhere || locate(thrown.stack, file) || { file, line: null };
  let message = String(thrown.message);
  if (/Cannot use import statement outside a module|Unexpected token 'export'/.test(message)) {
    message += ' (rename the file to .mjs, or add "type": "module" to its package.json)';
  }
  return { kind: 'threw', name: String(thrown.name || 'Error'), message, ...where, stack: thrown.stack };
}

// ------------------------------------------------------------------------------------------ loading modules

const packageTypes = new Map(); // folder -> "module" | "commonjs"

/** The `type` of the nearest package.json above `folder`, as Node itself would read it. */
function packageType(folder) {
  const known = packageTypes.get(folder);
  if (known !== undefined) return known;
  let type = 'commonjs';
  const manifest = path.join(folder, 'package.json');
  if (fs.existsSync(manifest)) {
    try {
      type = JSON.parse(fs.readFileSync(manifest, 'utf8')).type === 'module' ? 'module' : 'commonjs';
    } catch {
      type = 'commonjs'; // Node reports a broken package.json itself when it loads the module
    }
  } else {
    const parent = path.dirname(folder);
    type = parent === folder ? 'commonjs' : packageType(parent);
  }
  packageTypes.set(folder, type);
  return type;
}

function usesRequire(file) {
  const extension = path.extname(file);
  if (extension === '.cjs' || extension === '.cts') return true;
  // TypeScript goes through import(), where Node also detects ES module syntax in a package without a type.
  if (extension === '.js') return packageType(path.dirname(file)) === 'commonjs';
  return false;
}

async function importFile(file) {
  if (!fs.existsSync(file)) throw new WorkerError('load', 'no such file', { file, line: null });
  if (usesRequire(file)) {
    try {
      return { format: 'commonjs', exports: require(file) };
    } catch (err) {
      const code = err && err.code;
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw err;
    }
  }
  return { format: 'module', exports: await import(pathToFileURL(file).href) };
}

const modules = new Map(); // file -> Promise of {format, exports}: each file loads once, however many ask

function loadModule(file) {
  let loading = modules.get(file);
  if (loading === undefined) {
    loading = importFile(file).catch(async (err) => {
      modules.delete(file);
      throw await asLoadError(err, file);
    });
    modules.set(file, loading);
  }
  return loading;
}

/** A failed load, marked as such and, for an ES module's syntax error, given the line V8 keeps to itself. */
async function asLoadError(err, file) {
  if (err === null || typeof err !== 'object' || err instanceof WorkerError) return err;
  try {
    err.rtflowKind = 'load';
    if (err instanceof SyntaxError && locate(err.stack, file) === null) {
      // Node prints an ES module's syntax error location but does not put it on the error; `--check` says it.
      err.rtflowWhere = await syntaxErrorLocation(file);
    }
  } catch {
    // a frozen error keeps the kind `threw` and no line
  }
  return err;
}

function syntaxErrorLocation(file) {
  return new Promise((resolve) => {
    const checkSyntax = [...process.execArgv, '--check', file];
    execFile(process.execPath, checkSyntax, { timeout: 10000 }, (_error, _stdout, stderr) => {
      const header = SYNTAX_HEADER.exec(String(stderr).split('\n')[0]);
      resolve(header ? { file: toPath(header[1]), line: Number(header[2]) } : null);
    });
  });
}

function keysOf(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') ? Object.keys(value) : [];
}

/** What a module offers, for the message when the export asked for is not a function. */
function exportNames(loaded) {
  if (loaded.format === 'commonjs') {
    return keysOf(loaded.exports).filter((name) => name !== 'default' && name !== '__esModule');
  }
  const names = new Set(keysOf(loaded.exports));
  for (const name of keysOf(loaded.exports.default)) names.add(name); // a CommonJS module's, imported
  names.delete('__esModule');
  return [...names];
}

/** What `export` names in a loaded module; null is the default export (CommonJS: module.exports itself). */
function pickExport(loaded, exportName) {
  const exports = loaded.exports;
  if (loaded.format === 'commonjs') {
    if (exportName === null) {
      // TypeScript and Babel compile `export default` to `exports.default`.
      const compiledDefault = exports !== null && typeof exports === 'object' && 'default' in exports;
      return compiledDefault ? exports.default : exports;
    }
    return exports === null || exports === undefined ? undefined : exports[exportName];
  }
  if (exportName === null) return exports.default;
  if (exportName in exports) return exports[exportName];
  // A CommonJS module imported as ESM keeps its module.exports under `default`.
  const fallback = exports.default;
  if (fallback !== null && (typeof fallback === 'object' || typeof fallback === 'function') && exportName in fallback) {
    return fallback[exportName];
  }
  return undefined;
}

function exportLabel(exportName) {
  return exportName === null ? 'the default export' : `export \`${exportName}\``;
}

async function functionAt(file, exportName) {
  const loaded = await loadModule(file);
  let target = pickExport(loaded, exportName);
  // An object whose `default` is the function: a compiled ES module, reached through CommonJS interop.
  if (target !== null && typeof target === 'object' && typeof target.default === 'function') target = target.default;
  if (typeof target === 'function') return target;
  const names = exportNames(loaded);
  const found = target === undefined ? 'there is none' : `it is ${describeValue(target)}`;
  const known = names.length ? `; the module exports: ${names.join(', ')}` : '';
  throw new WorkerError('export', `${exportLabel(exportName)} is not a function (${found})${known}`, {
    file,
    line: null,
  });
}

// ---------------------------------------------------------------------------------------------- configs

const configs = new Map(); // file -> Promise of the resolved config object

/** promptfoo's rules: the module's export, awaited if it is a promise, called (and awaited) if a function. */
function resolveConfig(file) {
  let resolving = configs.get(file);
  if (resolving === undefined) {
    resolving = (async () => {
      const loaded = await loadModule(file);
      let config = await pickExport(loaded, null);
      if (typeof config === 'function') config = await config();
      if (config === null || typeof config !== 'object' || Array.isArray(config)) {
        throw new WorkerError('result', `the config must be an object, but the module gives ${describeValue(config)}`, {
          file,
          line: null,
        });
      }
      return config;
    })();
    resolving.catch(() => configs.delete(file));
    configs.set(file, resolving);
  }
  return resolving;
}

/** The function at a dotted key path and the object holding it (its `this`). Keys may contain dots. */
function functionAtPath(config, keyPath, file) {
  const parts = keyPath.split('.');
  let holder = null;
  let value = config;
  let index = 0;
  while (index < parts.length) {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) break;
    let end = parts.length;
    while (end > index && !(parts.slice(index, end).join('.') in value)) end -= 1;
    if (end === index) break;
    holder = value;
    value = value[parts.slice(index, end).join('.')];
    index = end;
  }
  if (index < parts.length || typeof value !== 'function') {
    throw new WorkerError('export', `the config has no function at ${keyPath}`, { file, line: null });
  }
  return { holder, fn: value };
}

// ------------------------------------------------------------------------------------ results as JSON

const FUNCTION_MARKER = '$rtflow_js_function';

function describeValue(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `a function (${value.name || 'anonymous'})`;
  if (typeof value === 'bigint') return `a BigInt (${value}n)`;
  if (typeof value === 'symbol') return `a Symbol (${String(value)})`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${(value.constructor && value.constructor.name) || 'Object'})`;
  return `${typeof value} ${inspect(value)}`;
}

function formatPath(root, parts) {
  let text = root;
  for (const part of parts) text += typeof part === 'number' ? `[${part}]` : `.${part}`;
  return text;
}

/**
 * A JSON-safe copy of `value`, or a WorkerError naming what cannot be carried and where.
 *
 * JSON.stringify would silently drop functions and undefined array items and throw an opaque error on
 * BigInts and cycles; a prompt that quietly lost a message is worse than one that fails saying why. With
 * `functions` set (configs) a function becomes a marker naming its key path, for `call_ref` later.
 */
function toJson(value, parts, context) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null; // as JSON.stringify
    case 'undefined':
      return undefined;
    case 'function':
      if (context.functions) return { [FUNCTION_MARKER]: parts.join('.') };
      throw notJson(describeValue(value), parts, context);
    case 'bigint':
    case 'symbol':
      throw notJson(describeValue(value), parts, context);
    default:
      break;
  }
  if (value === null) return null;
  if (typeof value.toJSON === 'function') return toJson(value.toJSON(), parts, context);
  if (typeof value.then === 'function') throw notJson('a Promise', parts, context, ' (a missing await?)');
  if (value instanceof Map || value instanceof Set) {
    throw notJson(`a ${value.constructor.name}`, parts, context, ' (convert it to an object or an array)');
  }
  if (context.ancestors.has(value)) {
    throw notJson('a cycle', parts, context, ': it refers back to an object that contains it');
  }
  context.ancestors.add(value);
  let copy;
  if (Array.isArray(value)) {
    copy = new Array(value.length);
    for (let index = 0; index < value.length; index += 1) {
      const item = toJson(value[index], [...parts, index], context);
      // JSON.stringify would write null here, and a list of messages would quietly gain a hole.
      if (item === undefined) throw notJson('undefined', [...parts, index], context, ' inside an array');
      copy[index] = item;
    }
  } else {
    copy = {};
    for (const key of Object.keys(value)) {
      const item = toJson(value[key], [...parts, key], context);
      if (item !== undefined) copy[key] = item; // as JSON.stringify: an undefined property is left out
    }
  }
  context.ancestors.delete(value);
  return copy;
}

function notJson(what, parts, context, why = '') {
  const where = parts.length ? ` at ${formatPath(context.root, parts)}` : '';
  return new WorkerError('result', `${context.label} ${what}${where}${why}, which cannot be sent as JSON`);
}

/** The JSON form of what a called function returned; `label` says who returned it, for the error. */
function resultAsJson(value, label) {
  return toJson(value, [], { root: 'result', label: `${label} returned`, functions: false, ancestors: new Set() });
}

function configAsJson(config) {
  return toJson(config, [], { root: 'config', label: 'the config holds', functions: true, ancestors: new Set() });
}

// ----------------------------------------------------------------------------------------------- inline code

const inlineFunctions = new Map(); // JSON of [file, line, names, code] -> the compiled function

/**
 * Inline JavaScript from a flow file (a `javascript` assertion's value, a transform) as a function of `names`.
 *
 * promptfoo's rule: a single line is an expression (`return` is put before it); several lines are a function
 * body with its own `return`. It is compiled as if it stood at `line` of `file`, so an error names the line
 * in the flow file where the code is written.
 */
function inlineFunction(request) {
  const key = JSON.stringify([request.file, request.line, request.names, request.code]);
  let fn = inlineFunctions.get(key);
  if (fn === undefined) {
    const code = String(request.code);
    const body = code.includes('\n') || /^\s*return\b/.test(code) ? code : `return ${code}`;
    const lineOffset = Math.max(0, (request.line || 1) - 1);
    try {
      fn = vm.compileFunction(body, request.names || [], { filename: request.file, lineOffset });
    } catch (err) {
      if (err !== null && typeof err === 'object') err.rtflowKind = 'load';
      throw err;
    }
    inlineFunctions.set(key, fn);
  }
  return fn;
}

// A script, not a plain call, so that its run can have a `timeout`: Node interrupts a synchronous loop that
// outlives it, which ends this call alone. Killing the worker (the only way out of a loop otherwise) would fail
// every other call in flight on it as well, each of them innocent.
const CALL_INLINE = new vm.Script('globalThis[Symbol.for("rtflow.inline")]()', { filename: 'rtflow-inline' });
const INLINE_SLOT = Symbol.for('rtflow.inline');

/** Call an inline function with the request's args; its synchronous part stops after `sync_timeout_ms`. */
function runInline(fn, request) {
  globalThis[INLINE_SLOT] = () => fn(...(request.args || []));
  try {
    const budget = request.sync_timeout_ms;
    return CALL_INLINE.runInThisContext(budget ? { timeout: Math.max(1, Math.round(budget)) } : {});
  } catch (err) {
    if (err && err.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
      const seconds = (request.sync_timeout_ms / 1000).toFixed(1);
      throw new WorkerError('threw', `ran for ${seconds} s without returning (a loop that never ends?) and was stopped`, {
        file: request.file,
        line: request.line || null,
      });
    }
    throw err;
  } finally {
    delete globalThis[INLINE_SLOT];
  }
}

// ------------------------------------------------------------------------------------------- operations

const OPERATIONS = {
  async call(request) {
    const fn = await functionAt(request.file, request.export ?? null);
    const result = await fn(...(request.args || []));
    return resultAsJson(result, exportLabel(request.export ?? null));
  },
  async load_config(request) {
    return configAsJson(await resolveConfig(request.file));
  },
  async call_ref(request) {
    const { holder, fn } = functionAtPath(await resolveConfig(request.file), request.path, request.file);
    const result = await fn.apply(holder, request.args || []);
    return resultAsJson(result, `the function at ${request.path}`);
  },
  async evaluate(request) {
    return resultAsJson(await runInline(inlineFunction(request), request), 'the inline code');
  },
};

const ORPHAN_GRACE_MS = 5 * 60 * 1000;
let inFlight = 0;
let stdinEnded = false;

async function handle(request) {
  inFlight += 1;
  try {
    const operation = Object.hasOwn(OPERATIONS, request.op) ? OPERATIONS[request.op] : undefined;
    if (operation === undefined) throw new WorkerError('protocol', `unknown operation ${inspect(request.op)}`);
    const value = await operation(request);
    send({ id: request.id, ok: true, value });
  } catch (thrown) {
    const error = errorAnswer(thrown, request.file);
    if (thrown && thrown.rtflowKind === 'load') error.kind = 'load';
    send({ id: request.id, ok: false, error });
  } finally {
    inFlight -= 1;
    if (stdinEnded && inFlight === 0) finish();
  }
}

/** Exit once every answer has left: a pipe that was full holds writes in Node's queue, which exit drops. */
function finish() {
  // Not a natural exit: user code may hold timers or sockets open.
  const exit = () => process.exit(0);
  if (outbox.length > 0) flush(exit);
  else if (process.stdout.writableLength > 0) writeProtocol('', exit);
  else exit();
}

// ------------------------------------------------------------------------------------------------- input

let pendingInput = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const lines = (pendingInput + chunk).split('\n');
  pendingInput = lines.pop();
  for (const line of lines) {
    if (!line) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch (err) {
      const message = `bad request line: ${err.message}`;
      send({ id: null, ok: false, error: { kind: 'protocol', name: null, message } });
      continue;
    }
    handle(request);
  }
});
process.stdin.on('end', () => {
  stdinEnded = true;
  if (inFlight === 0) finish();
  // rtflow kills a worker it closes within a second, and bounds a config load by its timeout; this bound is
  // for a worker whose rtflow died, so that a call that never settles cannot keep it alive for ever.
  else setTimeout(finish, ORPHAN_GRACE_MS).unref();
});
