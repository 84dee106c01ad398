/**
 * Installing the package the way a user does before it is on the registry: from a git URL, and as the
 * tarball `npm pack` makes. Both start from a clone with no dist/: the `prepare` script builds it (npm
 * installs the clone's devDependencies for that step, then runs it).
 *
 * The git test clones this repository's HEAD (committed work only) into a temp dir, installs it into a
 * scratch ESM app with npm (`git+file://` URL, `--prefer-offline`: packages come from the npm cache
 * where they are there), and imports both entry points from a plain Node ESM script. Every child
 * process runs in its own process group with a deadline, and the temp dir is removed at the end.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repoRoot = resolve(import.meta.dirname, "..");

interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in its own process group and resolves with its output if it exits 0. On a non-zero
 * exit, or past `timeoutMs` (the whole group is then killed: npm starts git and a nested npm), it
 * rejects with the command and the tail of its output.
 */
function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<RunResult> {
  // Scripts run by `npm test` inherit npm_* variables (npm_config_*, npm_package_*): they would make the
  // nested npm behave as if it ran for this repository. The scratch app gets a user's environment.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith("npm_")) env[key] = value;
  }
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // The group is already gone.
      }
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) {
        resolvePromise({ stdout, stderr });
        return;
      }
      const what = timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? signal}`;
      const tail = (stdout + stderr).split("\n").slice(-40).join("\n");
      reject(new Error(`${command} ${args.join(" ")} (in ${cwd}) ${what}:\n${tail}`));
    });
  });
}

/** Exported names of a module, sorted. */
function namesOf(module: object): string[] {
  return Object.keys(module).sort();
}

describe("package: installing from git and from a tarball", function () {
  // npm installs the clone's devDependencies from its cache and builds dist/ for the `prepare` step: on
  // a busy 2-core machine about a minute.
  this.timeout(180_000);

  let temp: string;
  let clone: string;
  let head: string;

  before(async () => {
    temp = await mkdtemp(join(tmpdir(), "fastnet-package-"));
    clone = join(temp, "clone");
    head = (await run("git", ["rev-parse", "HEAD"], repoRoot, 10_000)).stdout.trim();
    await run("git", ["clone", "--quiet", "--no-checkout", repoRoot, clone], temp, 60_000);
    await run("git", ["checkout", "--quiet", head], clone, 30_000);
    await assert.rejects(readdir(join(clone, "dist")), { code: "ENOENT" }, "a fresh clone has no dist/");
  });

  after(async () => {
    if (temp) await rm(temp, { recursive: true, force: true });
  });

  it("npm install git+file://<clone> builds dist/, and a Node ESM app imports both entry points", async () => {
    const app = join(temp, "app");
    await mkdir(app);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "scratch-app", private: true, type: "module" }));
    // The Quick start's install line, with the package from git instead of the registry.
    await run(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        `git+file://${clone}#${head}`,
        "@colyseus/core@^0.18.17",
        "@colyseus/schema@^5.0.34",
        "@colyseus/sdk@^0.18.4",
      ],
      app,
      150_000,
    );

    const installed = join(app, "node_modules", "colyseus-fastnet");
    const shipped = await readdir(installed);
    assert.ok(shipped.includes("dist"), `dist/ is installed (got ${shipped.join(", ")})`);
    assert.ok(!shipped.includes("src"), "src/ is not shipped");
    // Source maps name ../src/*.ts, which is not shipped: the sources travel inside the map instead.
    const map = JSON.parse(await readFile(join(installed, "dist", "client.js.map"), "utf8")) as { sources: string[]; sourcesContent?: string[] };
    assert.equal(map.sourcesContent?.length, map.sources.length, "client.js.map carries its sources");
    assert.match(map.sourcesContent![0]!, /FastnetClient/);

    await writeFile(
      join(app, "check.mjs"),
      [
        'const server = await import("colyseus-fastnet");',
        'const client = await import("colyseus-fastnet/client");',
        "const kinds = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, typeof v]));",
        "console.log(JSON.stringify({ server: kinds(server), client: kinds(client) }));",
      ].join("\n"),
    );
    const { stdout } = await run(process.execPath, ["check.mjs"], app, 30_000);
    const exported = JSON.parse(stdout) as { server: Record<string, string>; client: Record<string, string> };

    // The installed entry points export exactly what the source entry points do.
    const source = { server: await import("../src/index.js"), client: await import("../src/client.js") };
    assert.deepEqual(Object.keys(exported.server).sort(), namesOf(source.server));
    assert.deepEqual(Object.keys(exported.client).sort(), namesOf(source.client));
    assert.equal(exported.server.FastnetTransport, "function");
    assert.equal(exported.server.FastnetServer, "function");
    assert.equal(exported.client.FastnetClient, "function");
    assert.equal(exported.client.transportOf, "function");
  });

  it("npm pack on a clone with no dist/ builds it and ships dist/, README and docs, not src/", async () => {
    // The clone needs its devDependencies (tsc) to build: this repository's node_modules stands in for
    // the `npm ci` a user runs first.
    await symlink(join(repoRoot, "node_modules"), join(clone, "node_modules"), "dir");
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json"], clone, 120_000);
    // npm prints the build's output before the JSON report.
    const report = JSON.parse(stdout.slice(stdout.indexOf("\n[") + 1)) as Array<{ files: Array<{ path: string }> }>;
    const files = report[0]!.files.map((f) => f.path);
    for (const expected of ["dist/index.js", "dist/index.d.ts", "dist/client.js", "dist/client.d.ts", "dist/client.js.map", "README.md", "package.json"]) {
      assert.ok(files.includes(expected), `the tarball holds ${expected}`);
    }
    assert.ok(files.some((f) => f.startsWith("docs/")), "the tarball holds docs/");
    assert.deepEqual(files.filter((f) => f.startsWith("src/") || f.startsWith("test/")), [], "no src/ or test/ in the tarball");
  });
});
