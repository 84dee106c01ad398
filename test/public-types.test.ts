/**
 * The public type surface of the two entry points, checked on the declaration files the package
 * ships (emitted here from src/ with the build's settings into a temp directory):
 * - every type a public signature of an export names (parameter, return, property, base class,
 *   event map, type argument, ...) that is declared in this package is itself exported from the
 *   same entry point, so a consumer can name it (`colyseus-fastnet` for the server entry,
 *   `colyseus-fastnet/client` for the client one);
 * - no export of ours has the name of an export of @colyseus/core or @colyseus/sdk (an application
 *   importing both would have to rename one);
 * - a small consumer, written only against the entry points' names, compiles.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "..");

/** Emits the declaration files of src/ into `outDir`, as `npm run build` would (declarations only). */
function emitDeclarations(outDir: string): void {
  const configPath = join(ROOT, "tsconfig.build.json");
  const config = ts.readConfigFile(configPath, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT, { outDir, emitDeclarationOnly: true, declaration: true, sourceMap: false, declarationMap: false, inlineSources: false }, configPath);
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  const result = program.emit(undefined, undefined, undefined, true);
  const errors = ts.getPreEmitDiagnostics(program).concat(result.diagnostics).filter((d) => d.category === ts.DiagnosticCategory.Error);
  assert.deepEqual(errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")), [], "declaration emit without errors");
}

/**
 * The sans-IO engine objects behind the `@internal` members `session.connection`, `server.migration`
 * (whose sessions are the endpoint's `ServerSession`s) and `SessionIo.events` (the connection's event
 * stream): escape hatches into the protocol core (src/protocol), whose own types are not part of the
 * package's API. The walk stops at them; everything else a public signature names must be exported.
 */
const ENGINE_INTERNALS = new Set(["Connection", "MigrationManager", "ServerSession", "ConnectionEvent"]);

/**
 * Declarations in `dir` that public signatures reachable from `entry` name but `entry` does not
 * export, as "Name (where it is named)" strings.
 */
function unexportedReferences(program: ts.Program, entry: string, dir: string): string[] {
  const checker = program.getTypeChecker();
  const entryFile = program.getSourceFile(entry);
  assert.ok(entryFile, `${entry} is in the program`);
  const resolveAlias = (s: ts.Symbol): ts.Symbol => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const exported = new Set(checker.getExportsOfModule(checker.getSymbolAtLocation(entryFile)!).map(resolveAlias));
  const ours = (d: ts.Node) => d.getSourceFile().fileName.startsWith(dir);
  const missing = new Map<string, string>();
  const visited = new Set<ts.Symbol>();

  const isHidden = (node: ts.Node): boolean => {
    const mods = ts.canHaveModifiers(node) ? ts.getModifiers(node) : undefined;
    if (mods?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword)) return true;
    const name = (node as { name?: ts.Node }).name;
    return !!name && ts.isPrivateIdentifier(name);
  };

  const visitSymbol = (symbol: ts.Symbol, namedIn: string): void => {
    const target = resolveAlias(symbol);
    if (visited.has(target)) return;
    const decls = (target.declarations ?? []).filter(ours);
    if (decls.length === 0) return; // Node, lib, Colyseus, ws...: not ours to export
    if (decls.every((d) => ts.isTypeParameterDeclaration(d) || ts.isParameter(d))) return;
    visited.add(target);
    if (ENGINE_INTERNALS.has(target.getName()) && !exported.has(target)) return;
    if (!exported.has(target)) missing.set(target.getName(), namedIn);
    for (const d of decls) walk(d, target.getName());
  };

  const walk = (node: ts.Node, where: string): void => {
    if (isHidden(node)) return;
    if (ts.isTypeReferenceNode(node) || ts.isExpressionWithTypeArguments(node) || ts.isTypeQueryNode(node)) {
      const nameNode = ts.isTypeReferenceNode(node) ? node.typeName : ts.isTypeQueryNode(node) ? node.exprName : node.expression;
      const symbol = checker.getSymbolAtLocation(ts.isQualifiedName(nameNode) ? nameNode.right : ts.isPropertyAccessExpression(nameNode) ? nameNode.name : nameNode);
      if (symbol) visitSymbol(symbol, where);
    } else if (ts.isImportTypeNode(node) && node.qualifier) {
      const symbol = checker.getSymbolAtLocation(ts.isQualifiedName(node.qualifier) ? node.qualifier.right : node.qualifier);
      if (symbol) visitSymbol(symbol, where);
    }
    ts.forEachChild(node, (child) => walk(child, where));
  };

  for (const symbol of exported) {
    for (const d of symbol.declarations ?? []) if (ours(d)) walk(d, symbol.getName());
  }
  return [...missing].map(([name, where]) => `${name} (named by ${where})`).sort();
}

/** Names exported by a module of node_modules, resolved from the package root. */
function exportsOf(program: ts.Program, file: string): Set<string> {
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(file);
  assert.ok(sf, `${file} is in the program`);
  return new Set(checker.getExportsOfModule(checker.getSymbolAtLocation(sf)!).map((s) => s.getName()));
}

describe("public types: what the entry points' signatures name is exported, and nothing clashes with Colyseus", function () {
  this.timeout(120_000);
  let out: string;
  let program: ts.Program;
  const coreDts = join(ROOT, "node_modules/@colyseus/core/build/index.d.ts");
  const sdkDts = join(ROOT, "node_modules/@colyseus/sdk/build/index.d.ts");

  before(async () => {
    // Inside node_modules, so the declarations resolve @colyseus/*, ws, ... as the installed package would.
    await mkdir(join(ROOT, "node_modules/.cache"), { recursive: true });
    out = await mkdtemp(join(ROOT, "node_modules/.cache/fastnet-public-types-"));
    emitDeclarations(out);
    program = ts.createProgram([join(out, "index.d.ts"), join(out, "client.d.ts"), coreDts, sdkDts], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      skipLibCheck: true,
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules/@types")],
    });
  });

  after(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  for (const entry of ["index", "client"]) {
    it(`${entry === "index" ? "colyseus-fastnet" : "colyseus-fastnet/client"}: every type of ours in a public signature is exported`, () => {
      const missing = unexportedReferences(program, join(out, `${entry}.d.ts`), out + sep);
      assert.deepEqual(missing, [], `types named in public signatures but not exported from ${entry}.ts:\n  ${missing.join("\n  ")}`);
    });
  }

  it("the check finds something: the entry points export many types, and their signatures name them", () => {
    const checker = program.getTypeChecker();
    const sf = program.getSourceFile(join(out, "client.d.ts"))!;
    const names = checker.getExportsOfModule(checker.getSymbolAtLocation(sf)!).map((s) => s.getName());
    for (const n of ["FastnetClientOptions", "RebindOptions", "FastnetCloseCode", "ReadyState", "FastnetOptionError"]) assert.ok(names.includes(n), `client exports ${n}`);
    // A control: an entry point reduced to one class must report the types that class names.
    const reduced = join(out, "reduced-entry.d.ts");
    const host = ts.createCompilerHost({});
    const text = 'export { FastnetClientTransport } from "./client/client-transport.js";\n';
    const original = host.getSourceFile;
    host.getSourceFile = (f, lang, ...rest) => (f === reduced ? ts.createSourceFile(f, text, lang) : original.call(host, f, lang, ...rest));
    host.fileExists = ((orig) => (f: string) => f === reduced || orig(f))(host.fileExists);
    const p2 = ts.createProgram([reduced], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: true, types: [] }, host);
    const missing = unexportedReferences(p2, reduced, out + sep);
    assert.ok(missing.some((m) => m.startsWith("RebindOptions")), `the reduced entry misses RebindOptions: ${missing.join(", ")}`);
  });

  it("no export has the name of a @colyseus/core or @colyseus/sdk export", () => {
    const ours = new Set([...exportsOf(program, join(out, "index.d.ts")), ...exportsOf(program, join(out, "client.d.ts"))]);
    const core = exportsOf(program, coreDts);
    const sdk = exportsOf(program, sdkDts);
    assert.ok(core.size > 50 && sdk.size > 20, "Colyseus' exports were read");
    const clashes = [...ours].filter((n) => core.has(n) || sdk.has(n));
    assert.deepEqual(clashes, []);
  });

  it("a consumer written against the entry points' names compiles", async () => {
    const consumer = join(out, "consumer.ts");
    await writeFile(
      consumer,
      `
import { FastnetTransport, FastnetCloseCode, ReadyState, FastnetOptionError, type FastnetTransportOptions, type PeerAddress, type FastnetTransportEvents, type FastnetEndpointOptions, type SessionOptions, type MigrationEvent } from "./index.js";
import { FastnetClient, transportOf, type FastnetClientOptions, type RebindOptions, type FastnetClientTransport, type ClientPath } from "./client.js";
import type { Room } from "@colyseus/sdk";

const options: FastnetTransportOptions = { idleTimeoutMs: 5000 };
const endpoint: Partial<FastnetEndpointOptions> = { maxSessions: 10 };
const session: Partial<SessionOptions> = { keepAliveMs: 100 };
const transport = new FastnetTransport({ ...options, ...endpoint, ...session });
transport.on("migration", (id: string, from: PeerAddress, to: PeerAddress) => void [id, from, to]);
const events: FastnetTransportEvents["migration"] | undefined = undefined;
const closed: number = FastnetCloseCode.Normal;
const open: number = ReadyState.OPEN;
const clientOptions: FastnetClientOptions = { path: "auto" };
const client = new FastnetClient("http://127.0.0.1:2567", clientOptions);
async function move(room: Room): Promise<void> {
  const t: FastnetClientTransport = transportOf(room);
  const rebind: RebindOptions = { localPort: 0 };
  await t.rebind(rebind);
  const path: ClientPath | null = t.path;
  void path;
}
const handler = (e: MigrationEvent): void => void e;
export { transport, events, closed, open, client, move, handler, FastnetOptionError };
`,
    );
    const p = ts.createProgram([consumer], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules/@types")],
    });
    const errors = ts.getPreEmitDiagnostics(p).map((d) => `${d.file ? `${d.file.fileName.split(sep).pop()}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : ""}${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
    assert.deepEqual(errors, []);
  });
});
